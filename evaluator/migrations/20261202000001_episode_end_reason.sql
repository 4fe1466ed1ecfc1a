-- Why an episode ended, when it did not end the ordinary way (its condition
-- stopped holding): the rule was removed or changed by a reload, the rule
-- was gone at start, or the evaluator restarted without the alert's saved
-- state. NULL for an ordinary end and for open episodes.
ALTER TABLE alerts ADD COLUMN end_reason TEXT;
