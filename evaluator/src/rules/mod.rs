//! (skeleton) filled in by the evaluator engine work.
