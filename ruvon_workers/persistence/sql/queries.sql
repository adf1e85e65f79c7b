-- Named queries. Each starts with a "-- name: <name>" line; parameters are psycopg
-- named placeholders.

-- name: insert_workflow
-- Inserts a new workflow with its first history row. With an idempotency key already
-- taken nothing is inserted and no row is returned.
WITH inserted AS (
    INSERT INTO workflow_executions
        (id, workflow_type, workflow_version, status, current_step, state, runtime,
         idempotency_key, parent_id, due_at)
    VALUES
        (%(id)s, %(workflow_type)s, %(workflow_version)s, %(status)s, %(current_step)s,
         %(state)s, %(runtime)s, %(idempotency_key)s, %(parent_id)s,
         CASE WHEN %(due_in)s::float8 IS NULL THEN NULL
              ELSE now() + make_interval(secs => %(due_in)s::float8) END)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, version, created_at, updated_at
), history AS (
    INSERT INTO workflow_step_history (workflow_id, step, status, attempt, version, detail)
    SELECT id, %(current_step)s, 'CREATED', 1, version, NULL FROM inserted
)
SELECT id, version, created_at, updated_at FROM inserted

-- name: get_workflow
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE id = %(id)s

-- name: get_workflow_by_key
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE idempotency_key = %(idempotency_key)s

-- name: apply_transition
-- Compare-and-set: the row changes only if nobody moved it since it was read; the
-- history rows are written in the same statement, so both land or neither does.
WITH updated AS (
    UPDATE workflow_executions
       SET status = %(status)s,
           current_step = %(current_step)s,
           state = %(state)s,
           runtime = %(runtime)s,
           error = %(error)s,
           due_at = CASE WHEN %(due_in)s::float8 IS NULL THEN NULL
                         ELSE now() + make_interval(secs => %(due_in)s::float8) END,
           version = version + 1,
           updated_at = now(),
           completed_at = CASE WHEN %(terminal)s THEN now() ELSE NULL END
     WHERE id = %(id)s AND version = %(expected_version)s
    RETURNING id, version, updated_at, completed_at
), history AS (
    INSERT INTO workflow_step_history
        (workflow_id, step, status, attempt, version, duration_ms, error, detail)
    SELECT u.id, h.step, h.status, h.attempt, u.version, h.duration_ms, h.error, h.detail
      FROM updated u,
           jsonb_to_recordset(%(history)s::jsonb)
               AS h(step text, status text, attempt int, duration_ms float8, error jsonb,
                    detail jsonb)
)
SELECT version, updated_at, completed_at FROM updated

-- name: current_version
SELECT version FROM workflow_executions WHERE id = %(id)s

-- name: list_workflows
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE (%(status)s::text IS NULL OR status = %(status)s)
   AND (%(workflow_type)s::text IS NULL OR workflow_type = %(workflow_type)s)
 ORDER BY updated_at DESC
 LIMIT %(limit)s

-- name: step_history
SELECT step, status, attempt, version, duration_ms, error, detail, created_at
  FROM workflow_step_history
 WHERE workflow_id = %(id)s
 ORDER BY id

-- name: claim_due
-- The recovery sweep: take ACTIVE workflows whose lease or retry delay is due and push
-- their lease forward, so concurrent sweeps (one per worker) never claim the same row.
UPDATE workflow_executions w
   SET due_at = now() + make_interval(secs => %(lease)s::float8)
  FROM (SELECT id FROM workflow_executions
         WHERE status = 'ACTIVE' AND due_at <= now()
         ORDER BY due_at
         LIMIT %(limit)s
         FOR UPDATE SKIP LOCKED) due
 WHERE w.id = due.id
RETURNING w.id, w.workflow_type, w.current_step, w.version

-- name: count_by_status
SELECT status, count(*) AS n FROM workflow_executions GROUP BY status

-- name: step_durations
SELECT step, count(*) AS n, avg(duration_ms) AS mean_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms,
       max(duration_ms) AS max_ms
  FROM workflow_step_history h
  JOIN workflow_executions w ON w.id = h.workflow_id
 WHERE w.workflow_type = %(workflow_type)s AND h.status = 'COMPLETED'
 GROUP BY step
 ORDER BY min(h.id)

-- name: insert_dead_letter
INSERT INTO ruvon_dead_letters (task, workflow_id, reason, payload)
VALUES (%(task)s, %(workflow_id)s, %(reason)s, %(payload)s)

-- name: list_dead_letters
SELECT id, task, workflow_id, reason, payload, created_at
  FROM ruvon_dead_letters
 ORDER BY id DESC
 LIMIT %(limit)s
