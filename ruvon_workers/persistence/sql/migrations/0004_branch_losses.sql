-- 0004: a branch whose pool process died is counted apart from its failed attempts, so
-- an out-of-memory kill does not use up the step's retry policy.
ALTER TABLE workflow_branches ADD COLUMN lost integer NOT NULL DEFAULT 0;
