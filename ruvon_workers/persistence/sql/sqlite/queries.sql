-- The SQLite store's named queries. Each starts with a "-- name: <name>" line;
-- parameters are sqlite3's named placeholders (:name). SQLite runs one statement at a
-- time, so where PostgreSQL's query is one statement (a CTE that updates and inserts),
-- persistence/sqlite.py runs several in one BEGIN IMMEDIATE transaction instead.
-- Timestamps are REAL unix seconds; :now is the transaction's clock, read once after its
-- write lock was taken (PostgreSQL's now()). JSON values are TEXT.

-- name: insert_workflow
-- Inserts a new workflow. With an idempotency key (of its workflow type) or an id
-- already taken nothing is inserted and no row is returned.
INSERT INTO workflow_executions
    (id, workflow_type, workflow_version, status, current_step, state, runtime,
     idempotency_key, parent_id, due_at, created_at, updated_at)
VALUES
    (:id, :workflow_type, :workflow_version, :status, :current_step, :state, :runtime,
     :idempotency_key, :parent_id, :now + :due_in, :now, :now)
ON CONFLICT DO NOTHING
RETURNING version, created_at, updated_at

-- name: insert_created
-- The first history row of a workflow insert_workflow inserted (same transaction).
INSERT INTO workflow_step_history (workflow_id, step, status, attempt, version, created_at)
VALUES (:id, :current_step, 'CREATED', 1, 0, :now)

-- name: get_workflow
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE id = :id

-- name: get_workflow_by_key
-- Keys are unique per workflow type.
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE workflow_type = :workflow_type AND idempotency_key = :idempotency_key

-- name: apply_transition
-- Compare-and-set: the row changes only if nobody moved it since it was read. The
-- history rows (insert_history) follow in the same transaction, so both land or neither
-- does.
UPDATE workflow_executions
   SET status = :status,
       current_step = :current_step,
       state = :state,
       runtime = :runtime,
       error = :error,
       due_at = :now + :due_in,
       version = version + 1,
       updated_at = :now,
       completed_at = CASE WHEN :terminal THEN :now ELSE NULL END
 WHERE id = :id AND version = :expected_version
RETURNING version

-- name: insert_history
INSERT INTO workflow_step_history
    (workflow_id, step, status, attempt, version, duration_ms, error, detail, created_at)
VALUES (:id, :step, :status, :attempt, :version, :duration_ms, :error, :detail, :now)

-- name: current_version
SELECT version FROM workflow_executions WHERE id = :id

-- name: list_workflows
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE (:status IS NULL OR status = :status)
   AND (:workflow_type IS NULL OR workflow_type = :workflow_type)
 ORDER BY updated_at DESC
 LIMIT :limit

-- name: step_history
SELECT step, status, attempt, version, duration_ms, error, detail, created_at
  FROM workflow_step_history
 WHERE workflow_id = :id
 ORDER BY id

-- name: claim_due
-- The recovery sweep: take workflows whose lease or retry delay is due (ACTIVE ones, and
-- those waiting on branches or a child, whose wake-up message may be lost) and push
-- their lease forward. It runs under BEGIN IMMEDIATE, SQLite's one write lock: two
-- sweeps serialize, and the second no longer sees the rows the first leased (PostgreSQL
-- uses FOR UPDATE SKIP LOCKED). A fan-out with a timeout comes due again at its deadline
-- at the latest. :types is a JSON array of workflow types, or NULL for all.
UPDATE workflow_executions
   SET due_at = CASE
           WHEN status = 'PENDING_ASYNC'
                AND json_extract(runtime, '$.parallel.deadline') IS NOT NULL
           THEN min(:now + :lease, json_extract(runtime, '$.parallel.deadline') + 0.5)
           ELSE :now + :lease END
 WHERE id IN (SELECT id FROM workflow_executions
               WHERE due_at <= :now
                 AND status IN ('ACTIVE', 'PENDING_ASYNC', 'PENDING_SUB_WORKFLOW',
                          'WAITING_CHILD_HUMAN_INPUT')
                 AND (:types IS NULL
                      OR workflow_type IN (SELECT value FROM json_each(:types)))
               ORDER BY due_at
               LIMIT :limit)
RETURNING id, workflow_type, current_step, version

-- name: extend_due
-- A claimed step whose own lease (its time limit) is longer than the sweep's.
UPDATE workflow_executions
   SET due_at = :now + :lease
 WHERE id = :id AND version = :version AND status = 'ACTIVE'

-- name: extend_branch_due
UPDATE workflow_branches
   SET due_at = :now + :lease
 WHERE workflow_id = :id AND version = :version AND idx = :idx AND status = 'PENDING'

-- name: abandon_stale_branches
-- Pending branches of a fan-out the workflow no longer waits on (it was cancelled, or
-- joined past a timeout): nothing will run them, so the sweep stops looking at them.
UPDATE workflow_branches
   SET status = 'ABANDONED', due_at = NULL, updated_at = :now
 WHERE rowid IN (SELECT b.rowid
                   FROM workflow_branches b
                   LEFT JOIN workflow_executions w ON w.id = b.workflow_id
                  WHERE b.status = 'PENDING' AND b.due_at <= :now
                    AND (w.id IS NULL OR w.status <> 'PENDING_ASYNC'
                         OR w.version <> b.version)
                  LIMIT :limit)

-- name: due_branches
-- The recovery sweep for branches: a pending branch whose lease passed (its worker died,
-- its message was lost) is re-sent, while its workflow still waits on that fan-out.
-- lease_branch then pushes each one's lease, in the same transaction.
SELECT b.workflow_id, w.workflow_type, f.step, b.version, b.idx
  FROM workflow_branches b
  JOIN workflow_fanouts f ON f.workflow_id = b.workflow_id AND f.version = b.version
  JOIN workflow_executions w ON w.id = b.workflow_id AND w.version = b.version
 WHERE b.status = 'PENDING' AND b.due_at <= :now AND w.status = 'PENDING_ASYNC'
   AND (:types IS NULL OR w.workflow_type IN (SELECT value FROM json_each(:types)))
 ORDER BY b.due_at
 LIMIT :limit

-- name: lease_branch
UPDATE workflow_branches
   SET due_at = :now + :lease
 WHERE workflow_id = :id AND version = :version AND idx = :idx

-- name: count_by_status
SELECT status, count(*) AS n FROM workflow_executions GROUP BY status

-- name: completed_durations
-- step_durations' input: every COMPLETED history row of the type, in the order written
-- (the store groups them by step and interpolates the percentiles as percentile_cont).
SELECT h.step, h.duration_ms
  FROM workflow_step_history h
  JOIN workflow_executions w ON w.id = h.workflow_id
 WHERE w.workflow_type = :workflow_type AND h.status = 'COMPLETED'
 ORDER BY h.id

-- name: insert_dead_letter
INSERT INTO ruvon_dead_letters (task, workflow_id, reason, payload, created_at)
VALUES (:task, :workflow_id, :reason, :payload, :now)

-- name: list_dead_letters
SELECT id, task, workflow_id, reason, payload, created_at
  FROM ruvon_dead_letters
 ORDER BY id DESC
 LIMIT :limit

-- name: insert_fanout
-- A PARALLEL step's fan-out, written before the compare-and-set that makes the workflow
-- PENDING_ASYNC at :version. Idempotent: a second delivery of the same step inserts
-- nothing (and cannot reset a counter that branches already decremented); the branches
-- (insert_branch) are inserted only when this returns a row.
INSERT INTO workflow_fanouts (workflow_id, version, step, total, remaining, created_at)
VALUES (:id, :version, :step, :total, :total, :now)
ON CONFLICT DO NOTHING
RETURNING version

-- name: insert_branch
INSERT INTO workflow_branches (workflow_id, version, idx, name, item, due_at, updated_at)
VALUES (:id, :version, :idx, :name, :item, :now + :lease, :now)

-- name: get_branch
SELECT name, item, status, attempt
  FROM workflow_branches
 WHERE workflow_id = :id AND version = :version AND idx = :idx

-- name: get_workflow_with_branch
-- A branch message's one read: the workflow and the branch it names.
SELECT w.id, w.workflow_type, w.workflow_version, w.status, w.current_step, w.state,
       w.version, w.runtime, w.idempotency_key, w.parent_id, w.error, w.created_at,
       w.updated_at, w.completed_at, b.name, b.item, b.status, b.attempt
  FROM workflow_executions w
  LEFT JOIN workflow_branches b
    ON b.workflow_id = w.id AND b.version = :version AND b.idx = :idx
 WHERE w.id = :id

-- name: finish_branch
-- Record a branch's outcome; count_down follows in the same transaction, whose write
-- lock serialises concurrent branches: exactly one of them sees remaining reach 0. A
-- branch already finished (a duplicate delivery) returns no row and changes nothing.
UPDATE workflow_branches
   SET status = :status, result = :result, error = :error, attempt = :attempt,
       duration_ms = :duration_ms, due_at = NULL, updated_at = :now
 WHERE workflow_id = :id AND version = :version AND idx = :idx AND status = 'PENDING'
RETURNING idx

-- name: count_down
UPDATE workflow_fanouts
   SET remaining = remaining - 1
 WHERE workflow_id = :id AND version = :version
RETURNING remaining

-- name: retry_branch
-- A failed attempt of a branch with retries left: due again after the delay.
UPDATE workflow_branches
   SET attempt = :attempt, error = :error, updated_at = :now, due_at = :now + :delay
 WHERE workflow_id = :id AND version = :version AND idx = :idx
   AND status = 'PENDING' AND attempt < :attempt
RETURNING idx

-- name: lose_branch
-- The pool process running a branch died: count it apart from failed attempts.
UPDATE workflow_branches
   SET lost = lost + 1, error = :error, updated_at = :now, due_at = :now + :lease
 WHERE workflow_id = :id AND version = :version AND idx = :idx AND status = 'PENDING'
RETURNING lost, attempt

-- name: list_branches
SELECT idx, name, status, attempt, result, error, duration_ms
  FROM workflow_branches
 WHERE workflow_id = :id AND version = :version
 ORDER BY idx

-- name: close_fanout
-- After the join: branches that never reported are given up, so no sweep re-sends them.
UPDATE workflow_branches
   SET status = 'ABANDONED', due_at = NULL, updated_at = :now
 WHERE workflow_id = :id AND version = :version AND status = 'PENDING'

-- name: schedule_exists
SELECT 1 FROM ruvon_schedules WHERE name = :name

-- name: upsert_schedule
INSERT INTO ruvon_schedules
    (name, workflow_type, cron_expression, initial_data, next_run_at, created_by,
     created_at, updated_at)
VALUES (:name, :workflow_type, :cron_expression, :initial_data, :next_run_at, :created_by,
        :now, :now)
ON CONFLICT (name) DO UPDATE
   SET workflow_type = excluded.workflow_type,
       cron_expression = excluded.cron_expression,
       initial_data = excluded.initial_data,
       next_run_at = CASE
           WHEN ruvon_schedules.cron_expression = excluded.cron_expression
           THEN ruvon_schedules.next_run_at ELSE excluded.next_run_at END,
       updated_at = excluded.updated_at

-- name: list_schedules
SELECT name, workflow_type, cron_expression, initial_data, next_run_at, last_run_at,
       last_workflow_id, runs, created_by, created_at
  FROM ruvon_schedules
 ORDER BY name

-- name: delete_schedule
DELETE FROM ruvon_schedules WHERE name = :name RETURNING name

-- name: delete_schedules_created_by
-- The schedules a run created, when it is cancelled.
DELETE FROM ruvon_schedules WHERE created_by = :id RETURNING name

-- name: due_schedules
-- With :types (a JSON array), only schedules that start one of those types. The
-- columns of list_schedules.
SELECT name, workflow_type, cron_expression, initial_data, next_run_at, last_run_at,
       last_workflow_id, runs, created_by, created_at
  FROM ruvon_schedules
 WHERE next_run_at <= :now
   AND (:types IS NULL OR workflow_type IN (SELECT value FROM json_each(:types)))
 ORDER BY next_run_at
 LIMIT :limit

-- name: advance_schedule
-- Compare-and-set on the tick: of several schedulers that fired the same tick, one moves
-- the schedule on. :fired: the tick that fired (the latest one due).
UPDATE ruvon_schedules
   SET next_run_at = :next_run_at, last_run_at = :fired, last_workflow_id = :workflow_id,
       runs = runs + 1, updated_at = :now
 WHERE name = :name AND next_run_at = :tick
RETURNING name

-- name: save_definition
INSERT INTO workflow_definitions (fingerprint, workflow_type, workflow_version, snapshot,
                                  created_at)
VALUES (:fingerprint, :workflow_type, :workflow_version, :snapshot, :now)
ON CONFLICT (fingerprint) DO NOTHING

-- name: load_definition
SELECT snapshot FROM workflow_definitions WHERE fingerprint = :fingerprint

-- name: worker_beat
INSERT INTO ruvon_workers (name, seen_at, started_at, holding, messages)
VALUES (:name, :now, :now, :holding, :messages)
ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at, holding = excluded.holding,
                                 messages = excluded.messages, reaped_at = NULL

-- name: renew_step
UPDATE workflow_executions SET due_at = max(coalesce(due_at, 0), :now + :lease)
 WHERE id = :id AND version >= :version AND status = 'ACTIVE'

-- name: renew_branch
UPDATE workflow_branches SET due_at = max(coalesce(due_at, 0), :now + :lease)
 WHERE workflow_id = :id AND version = :version AND idx = :idx AND status = 'PENDING'

-- name: gone_workers
UPDATE ruvon_workers SET reaped_at = :now
 WHERE seen_at < :now - :silent AND (reaped_at IS NULL OR reaped_at < :now - :retake)
RETURNING name, seen_at, holding, messages

-- name: forget_worker
DELETE FROM ruvon_workers WHERE name = :name

-- name: due_held_step
UPDATE workflow_executions
   SET due_at = max(:now, coalesce(json_extract(runtime, '$.retry_at'), :now))
 WHERE id = :id AND version >= :version AND status = 'ACTIVE' AND due_at > :now

-- name: due_recent_steps
UPDATE workflow_executions
   SET due_at = max(:now, coalesce(json_extract(runtime, '$.retry_at'), :now))
 WHERE status = 'ACTIVE' AND due_at > :now AND updated_at BETWEEN :first AND :last

-- name: due_held_branch
UPDATE workflow_branches SET due_at = :now
 WHERE workflow_id = :id AND version = :version AND idx = :idx AND status = 'PENDING'

-- name: note_broker_epoch
SELECT epoch FROM ruvon_broker_epochs WHERE broker = :broker

-- name: save_broker_epoch
INSERT INTO ruvon_broker_epochs (broker, epoch, changed_at) VALUES (:broker, :epoch, :now)
ON CONFLICT (broker) DO UPDATE SET epoch = excluded.epoch, changed_at = excluded.changed_at

-- name: live_holdings
SELECT holding FROM ruvon_workers WHERE reaped_at IS NULL

-- name: count_purgeable
SELECT (SELECT count(*) FROM workflow_executions
         WHERE status IN (SELECT value FROM json_each(:ended)) AND updated_at < :before),
       (SELECT count(*) FROM ruvon_dead_letters WHERE created_at < :before)

-- name: purge_workflows
DELETE FROM workflow_executions
 WHERE id IN (SELECT id FROM workflow_executions
               WHERE status IN (SELECT value FROM json_each(:ended)) AND updated_at < :before
               ORDER BY updated_at LIMIT :batch)

-- name: purge_dead_letters
DELETE FROM ruvon_dead_letters
 WHERE id IN (SELECT id FROM ruvon_dead_letters WHERE created_at < :before
               ORDER BY id LIMIT :batch)

-- name: due_unaccounted_steps
-- Every row in :statuses whose message is nowhere: not held by a live worker (:held, [id,
-- version, branch]; at that version or an earlier one) nor queued in the broker
-- (:queued, at that version). (json_each has an ``id`` column of its own: the table's
-- columns are qualified.)
UPDATE workflow_executions AS w
   SET due_at = max(:now, coalesce(json_extract(w.runtime, '$.retry_at'), :now))
 WHERE w.status IN (SELECT value FROM json_each(:statuses)) AND w.due_at > :now
   AND NOT EXISTS (SELECT 1 FROM json_each(:held) h
                    WHERE json_extract(h.value, '$[0]') = w.id
                      AND json_extract(h.value, '$[1]') <= w.version
                      AND json_extract(h.value, '$[2]') IS NULL)
   AND NOT EXISTS (SELECT 1 FROM json_each(:queued) q
                    WHERE json_extract(q.value, '$[0]') = w.id
                      AND json_extract(q.value, '$[1]') = w.version
                      AND json_extract(q.value, '$[2]') IS NULL)

-- name: due_unaccounted_branches
UPDATE workflow_branches AS b SET due_at = :now
 WHERE b.status = 'PENDING' AND b.due_at > :now
   AND NOT EXISTS (SELECT 1 FROM json_each(:held) h
                    WHERE json_extract(h.value, '$[0]') = b.workflow_id
                      AND json_extract(h.value, '$[1]') = b.version
                      AND json_extract(h.value, '$[2]') = b.idx)
   AND NOT EXISTS (SELECT 1 FROM json_each(:queued) q
                    WHERE json_extract(q.value, '$[0]') = b.workflow_id
                      AND json_extract(q.value, '$[1]') = b.version
                      AND json_extract(q.value, '$[2]') = b.idx)
