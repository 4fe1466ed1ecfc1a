-- The last evaluation slot (unix ms) the holder of a rule-group lease
-- claimed (history/lease.rs, `Leases::claim_slot`): a new owner of the
-- group evaluates the slots after it that nobody evaluated. NULL for a
-- lease that claims no slots (membership, the notification leader) and
-- for a group not evaluated yet.
ALTER TABLE leases ADD COLUMN progress BIGINT;
