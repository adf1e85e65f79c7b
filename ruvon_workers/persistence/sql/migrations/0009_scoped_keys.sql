-- 0009: an idempotency key is unique per workflow type, and the keys the engine builds
-- for the runs it starts itself take the reserved prefix `ruvon:`, which producers may
-- not use (engine/keys.py). Keys written by earlier versions are rewritten, so that a
-- step re-run after the upgrade finds the sub-workflow or FIRE_AND_FORGET run it already
-- started, and a schedule's tick the run it already started:
--   <parent-id>:<step>:<version>  of a sub-workflow      -> ruvon:child:<...>
--   <origin-id>:<step>:<version>  of a FIRE_AND_FORGET run -> ruvon:spawn:<...>
--   schedule:<name>:<tick>        of a stored schedule's run -> ruvon:schedule:<name>:<tick>
-- A key already taken in its new form (by a producer's run) is left as it was.
UPDATE workflow_executions AS w
   SET idempotency_key = 'ruvon:child:' || w.idempotency_key
 WHERE w.parent_id IS NOT NULL
   AND left(w.idempotency_key, length(w.parent_id::text) + 1) = w.parent_id::text || ':'
   AND NOT EXISTS (SELECT 1 FROM workflow_executions o
                    WHERE o.idempotency_key = 'ruvon:child:' || w.idempotency_key);

UPDATE workflow_executions AS w
   SET idempotency_key = 'ruvon:spawn:' || w.idempotency_key
 WHERE w.parent_id IS NULL
   AND w.runtime -> 'spawned_by' ->> 'id' IS NOT NULL
   AND left(w.idempotency_key, length(w.runtime -> 'spawned_by' ->> 'id') + 1)
       = (w.runtime -> 'spawned_by' ->> 'id') || ':'
   AND NOT EXISTS (SELECT 1 FROM workflow_executions o
                    WHERE o.idempotency_key = 'ruvon:spawn:' || w.idempotency_key);

UPDATE workflow_executions AS w
   SET idempotency_key = 'ruvon:' || w.idempotency_key
 WHERE left(w.idempotency_key, 9) = 'schedule:'
   AND EXISTS (SELECT 1 FROM ruvon_schedules s
                WHERE s.workflow_type = w.workflow_type
                  AND left(w.idempotency_key, length(s.name) + 10) = 'schedule:' || s.name || ':')
   AND NOT EXISTS (SELECT 1 FROM workflow_executions o
                    WHERE o.idempotency_key = 'ruvon:' || w.idempotency_key);

ALTER TABLE workflow_executions
    DROP CONSTRAINT IF EXISTS workflow_executions_idempotency_key_key;
ALTER TABLE workflow_executions
    ADD CONSTRAINT workflow_executions_type_key_key UNIQUE (workflow_type, idempotency_key);
