-- Named queries. Each starts with a "-- name: <name>" line; parameters are psycopg
-- named placeholders.

-- name: insert_workflow
-- Inserts a new workflow with its first history row. With an idempotency key (of its
-- workflow type) or an id already taken nothing is inserted and no row is returned.
WITH inserted AS (
    INSERT INTO workflow_executions
        (id, workflow_type, workflow_version, status, current_step, state, runtime,
         idempotency_key, parent_id, due_at)
    VALUES
        (%(id)s, %(workflow_type)s, %(workflow_version)s, %(status)s, %(current_step)s,
         %(state)s, %(runtime)s, %(idempotency_key)s, %(parent_id)s,
         CASE WHEN %(due_in)s::float8 IS NULL THEN NULL
              ELSE now() + make_interval(secs => %(due_in)s::float8) END)
    ON CONFLICT DO NOTHING
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
-- Keys are unique per workflow type.
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE workflow_type = %(workflow_type)s AND idempotency_key = %(idempotency_key)s

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
-- The recovery sweep: take workflows whose lease or retry delay is due (ACTIVE ones, and
-- those waiting on branches or a child, whose wake-up message may be lost) and push
-- their lease forward, so concurrent sweeps (one per worker) never claim the same row.
-- A fan-out with a timeout comes due again at its deadline at the latest. With
-- %(types)s, only workflows of those types (the ones the sweeping worker can run).
UPDATE workflow_executions w
   SET due_at = CASE
           WHEN w.status = 'PENDING_ASYNC' AND w.runtime->'parallel'->>'deadline' IS NOT NULL
           THEN LEAST(now() + make_interval(secs => %(lease)s::float8),
                      to_timestamp((w.runtime->'parallel'->>'deadline')::float8 + 0.5))
           ELSE now() + make_interval(secs => %(lease)s::float8) END
  FROM (SELECT id FROM workflow_executions
         WHERE due_at <= now()
           AND status IN ('ACTIVE', 'PENDING_ASYNC', 'PENDING_SUB_WORKFLOW',
                          'WAITING_CHILD_HUMAN_INPUT')
           AND (%(types)s::text[] IS NULL OR workflow_type = ANY(%(types)s::text[]))
         ORDER BY due_at
         LIMIT %(limit)s
         FOR UPDATE SKIP LOCKED) due
 WHERE w.id = due.id
RETURNING w.id, w.workflow_type, w.current_step, w.version

-- name: extend_due
-- A claimed step whose own lease (its time limit) is longer than the sweep's.
UPDATE workflow_executions
   SET due_at = now() + make_interval(secs => %(lease)s::float8)
 WHERE id = %(id)s AND version = %(version)s AND status = 'ACTIVE'

-- name: extend_branch_due
UPDATE workflow_branches
   SET due_at = now() + make_interval(secs => %(lease)s::float8)
 WHERE workflow_id = %(id)s AND version = %(version)s AND idx = %(idx)s
   AND status = 'PENDING'

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

-- name: insert_fanout
-- A PARALLEL step's fan-out, written before the compare-and-set that makes the workflow
-- PENDING_ASYNC at %(version)s. Idempotent: a second delivery of the same step inserts
-- nothing (and cannot reset a counter that branches already decremented).
WITH fanout AS (
    INSERT INTO workflow_fanouts (workflow_id, version, step, total, remaining)
    VALUES (%(id)s, %(version)s, %(step)s, %(total)s, %(total)s)
    ON CONFLICT DO NOTHING
    RETURNING workflow_id, version
)
INSERT INTO workflow_branches (workflow_id, version, idx, name, item, due_at)
SELECT f.workflow_id, f.version, b.idx, b.name, b.item,
       now() + make_interval(secs => %(lease)s::float8)
  FROM fanout f, jsonb_to_recordset(%(branches)s::jsonb) AS b(idx int, name text, item jsonb)

-- name: get_branch
SELECT name, item, status, attempt
  FROM workflow_branches
 WHERE workflow_id = %(id)s AND version = %(version)s AND idx = %(idx)s

-- name: get_workflow_with_branch
-- A branch message's one read: the workflow and the branch it names.
SELECT w.id, w.workflow_type, w.workflow_version, w.status, w.current_step, w.state,
       w.version, w.runtime, w.idempotency_key, w.parent_id, w.error, w.created_at,
       w.updated_at, w.completed_at, b.name, b.item, b.status, b.attempt
  FROM workflow_executions w
  LEFT JOIN workflow_branches b
    ON b.workflow_id = w.id AND b.version = %(version)s AND b.idx = %(idx)s
 WHERE w.id = %(id)s

-- name: finish_branch
-- Record a branch's outcome and count it down in one statement. The row lock on the
-- fan-out serialises concurrent branches: exactly one of them sees remaining reach 0.
-- A branch already finished (a duplicate delivery) returns no row and changes nothing.
WITH done AS (
    UPDATE workflow_branches
       SET status = %(status)s, result = %(result)s, error = %(error)s,
           attempt = %(attempt)s, duration_ms = %(duration_ms)s, due_at = NULL,
           updated_at = now()
     WHERE workflow_id = %(id)s AND version = %(version)s AND idx = %(idx)s
       AND status = 'PENDING'
    RETURNING workflow_id, version
)
UPDATE workflow_fanouts f
   SET remaining = f.remaining - 1
  FROM done
 WHERE f.workflow_id = done.workflow_id AND f.version = done.version
RETURNING f.remaining

-- name: retry_branch
-- A failed attempt of a branch with retries left: due again after the delay.
UPDATE workflow_branches
   SET attempt = %(attempt)s, error = %(error)s, updated_at = now(),
       due_at = now() + make_interval(secs => %(delay)s::float8)
 WHERE workflow_id = %(id)s AND version = %(version)s AND idx = %(idx)s
   AND status = 'PENDING' AND attempt < %(attempt)s
RETURNING idx

-- name: lose_branch
-- The pool process running a branch died: count it apart from failed attempts.
UPDATE workflow_branches
   SET lost = lost + 1, error = %(error)s, updated_at = now(),
       due_at = now() + make_interval(secs => %(lease)s::float8)
 WHERE workflow_id = %(id)s AND version = %(version)s AND idx = %(idx)s
   AND status = 'PENDING'
RETURNING lost, attempt

-- name: abandon_stale_branches
-- Pending branches of a fan-out the workflow no longer waits on (it was cancelled, or
-- joined past a timeout): nothing will run them, so the sweep stops looking at them.
UPDATE workflow_branches b
   SET status = 'ABANDONED', due_at = NULL, updated_at = now()
  FROM (SELECT b2.workflow_id, b2.version, b2.idx
          FROM workflow_branches b2
          LEFT JOIN workflow_executions w ON w.id = b2.workflow_id
         WHERE b2.status = 'PENDING' AND b2.due_at <= now()
           AND (w.id IS NULL OR w.status <> 'PENDING_ASYNC' OR w.version <> b2.version)
         LIMIT %(limit)s
         FOR UPDATE OF b2 SKIP LOCKED) stale
 WHERE b.workflow_id = stale.workflow_id AND b.version = stale.version AND b.idx = stale.idx

-- name: list_branches
SELECT idx, name, status, attempt, result, error, duration_ms
  FROM workflow_branches
 WHERE workflow_id = %(id)s AND version = %(version)s
 ORDER BY idx

-- name: close_fanout
-- After the join: branches that never reported are given up, so no sweep re-sends them.
UPDATE workflow_branches
   SET status = 'ABANDONED', due_at = NULL, updated_at = now()
 WHERE workflow_id = %(id)s AND version = %(version)s AND status = 'PENDING'

-- name: claim_due_branches
-- The recovery sweep for branches: a pending branch whose lease passed (its worker died,
-- its message was lost) is re-sent, while its workflow still waits on that fan-out.
UPDATE workflow_branches b
   SET due_at = now() + make_interval(secs => %(lease)s::float8)
  FROM (SELECT b2.workflow_id, b2.version, b2.idx, w.workflow_type, f.step
          FROM workflow_branches b2
          JOIN workflow_fanouts f ON f.workflow_id = b2.workflow_id AND f.version = b2.version
          JOIN workflow_executions w ON w.id = b2.workflow_id AND w.version = b2.version
         WHERE b2.status = 'PENDING' AND b2.due_at <= now() AND w.status = 'PENDING_ASYNC'
           AND (%(types)s::text[] IS NULL OR w.workflow_type = ANY(%(types)s::text[]))
         ORDER BY b2.due_at
         LIMIT %(limit)s
         FOR UPDATE OF b2 SKIP LOCKED) due
 WHERE b.workflow_id = due.workflow_id AND b.version = due.version AND b.idx = due.idx
RETURNING b.workflow_id, due.workflow_type, due.step, b.version, b.idx

-- name: upsert_schedule
-- Stores a schedule by name; says whether it was new.
INSERT INTO ruvon_schedules
    (name, workflow_type, cron_expression, initial_data, next_run_at, created_by)
VALUES (%(name)s, %(workflow_type)s, %(cron_expression)s, %(initial_data)s,
        %(next_run_at)s, %(created_by)s)
ON CONFLICT (name) DO UPDATE
   SET workflow_type = EXCLUDED.workflow_type,
       cron_expression = EXCLUDED.cron_expression,
       initial_data = EXCLUDED.initial_data,
       next_run_at = CASE
           WHEN ruvon_schedules.cron_expression = EXCLUDED.cron_expression
           THEN ruvon_schedules.next_run_at ELSE EXCLUDED.next_run_at END,
       updated_at = now()
RETURNING (xmax = 0) AS inserted  -- false: an existing schedule was updated

-- name: list_schedules
SELECT name, workflow_type, cron_expression, initial_data, next_run_at, last_run_at,
       last_workflow_id, runs, created_by, created_at
  FROM ruvon_schedules
 ORDER BY name

-- name: delete_schedule
DELETE FROM ruvon_schedules WHERE name = %(name)s RETURNING name

-- name: delete_schedules_created_by
-- The schedules a run created, when it is cancelled.
DELETE FROM ruvon_schedules WHERE created_by = %(id)s RETURNING name

-- name: due_schedules
-- With %(types)s, only schedules that start one of those types: a schedule no worker
-- here can start must not crowd out the ones it can. The columns of list_schedules.
SELECT name, workflow_type, cron_expression, initial_data, next_run_at, last_run_at,
       last_workflow_id, runs, created_by, created_at
  FROM ruvon_schedules
 WHERE next_run_at <= now()
   AND (%(types)s::text[] IS NULL OR workflow_type = ANY(%(types)s::text[]))
 ORDER BY next_run_at
 LIMIT %(limit)s

-- name: advance_schedule
-- Compare-and-set on the tick: of several schedulers that fired the same tick (each
-- start is idempotent on the tick's key), one moves the schedule on. %(fired)s: the
-- tick that fired (the latest one due, when a scheduler was down for several).
UPDATE ruvon_schedules
   SET next_run_at = %(next_run_at)s, last_run_at = %(fired)s,
       last_workflow_id = %(workflow_id)s, runs = runs + 1, updated_at = now()
 WHERE name = %(name)s AND next_run_at = %(tick)s
RETURNING name

-- name: save_definition
INSERT INTO workflow_definitions (fingerprint, workflow_type, workflow_version, snapshot)
VALUES (%(fingerprint)s, %(workflow_type)s, %(workflow_version)s, %(snapshot)s)
ON CONFLICT (fingerprint) DO NOTHING

-- name: load_definition
SELECT snapshot FROM workflow_definitions WHERE fingerprint = %(fingerprint)s

-- name: worker_beat
-- One statement per worker every few seconds: it is alive, and the leases of the steps and
-- branches it holds ([workflow id, version, branch or null]) move forward while they
-- still stand as it took them (a step at a later version too: the task holding the
-- message may be running the steps after it, see fleet.continuation). A worker taken for
-- gone that beats again is back.
WITH beat AS (
    INSERT INTO ruvon_workers AS r (name, seen_at, holding, messages)
    VALUES (%(name)s, now(), %(holding)s, %(messages)s)
    ON CONFLICT (name) DO UPDATE SET seen_at = now(), holding = EXCLUDED.holding,
                                     messages = EXCLUDED.messages, reaped_at = NULL
), held AS (
    SELECT (h->>0)::uuid AS id, (h->>1)::bigint AS version, (h->>2)::int AS idx
      FROM jsonb_array_elements(%(holding)s) h
), steps AS (
    UPDATE workflow_executions w
       SET due_at = GREATEST(w.due_at, now() + make_interval(secs => %(lease)s::float8))
      FROM held
     WHERE held.idx IS NULL AND w.id = held.id AND w.version >= held.version
       AND w.status = 'ACTIVE'
)
UPDATE workflow_branches b
   SET due_at = GREATEST(b.due_at, now() + make_interval(secs => %(lease)s::float8))
  FROM held
 WHERE held.idx IS NOT NULL AND b.workflow_id = held.id AND b.version = held.version
   AND b.idx = held.idx AND b.status = 'PENDING'

-- name: reap_workers
-- Workers silent for %(silent)s seconds are gone: what they held is due at once (where it
-- still stands as they took it; a retry not before its time), as is every step dispatched
-- between %(window)s seconds before a gone worker last refreshed and its death (one it
-- took in its last moments is in no list). Their rows stay, marked, until their reaper
-- has sent their producers' messages again (forget_worker); one not forgotten within
-- %(retake)s seconds is taken again. Re-sending a step still in the broker is a no-op.
WITH gone AS (
    UPDATE ruvon_workers SET reaped_at = now()
     WHERE seen_at < now() - make_interval(secs => %(silent)s::float8)
       AND (reaped_at IS NULL
            OR reaped_at < now() - make_interval(secs => %(retake)s::float8))
    RETURNING name, seen_at, holding, messages
), held AS (
    SELECT (h->>0)::uuid AS id, (h->>1)::bigint AS version, (h->>2)::int AS idx
      FROM gone, jsonb_array_elements(gone.holding) h
), steps AS (
    UPDATE workflow_executions w
       SET due_at = GREATEST(now(), to_timestamp((w.runtime->>'retry_at')::float8))
     WHERE w.status = 'ACTIVE' AND w.due_at > now()
       AND (EXISTS (SELECT 1 FROM held WHERE held.idx IS NULL AND held.id = w.id
                                          AND w.version >= held.version)
            OR w.updated_at BETWEEN (SELECT min(seen_at) FROM gone)
                                    - make_interval(secs => %(window)s::float8)
                                AND (SELECT max(seen_at) FROM gone)
                                    + make_interval(secs => %(silent)s::float8))
    RETURNING w.id
), branches AS (
    UPDATE workflow_branches b SET due_at = now()
      FROM held
     WHERE held.idx IS NOT NULL AND b.workflow_id = held.id AND b.version = held.version
       AND b.idx = held.idx AND b.status = 'PENDING'
    RETURNING b.workflow_id
)
SELECT (SELECT coalesce(array_agg(name), '{}') FROM gone),
       (SELECT count(*) FROM steps) + (SELECT count(*) FROM branches),
       (SELECT coalesce(jsonb_agg(m), '[]'::jsonb)
          FROM gone, jsonb_array_elements(gone.messages) m)

-- name: forget_worker
DELETE FROM ruvon_workers WHERE name = %(name)s

-- name: due_unaccounted
-- Every ACTIVE step and PENDING branch whose message is nowhere: not held by a live worker
-- (at that version or, for a step, an earlier one whose task runs the steps after it) and
-- not waiting in the broker (%(queued)s, [id, version, branch or null]) becomes due now
-- (a retry not before its time). A message that was in flight meanwhile is sent twice:
-- the copy is a no-op.
WITH held AS (
    SELECT (h->>0)::uuid AS id, (h->>1)::bigint AS version, (h->>2)::int AS idx
      FROM ruvon_workers r, jsonb_array_elements(r.holding) h
     WHERE r.reaped_at IS NULL
), queued AS (
    SELECT (q->>0)::uuid AS id, (q->>1)::bigint AS version, (q->>2)::int AS idx
      FROM jsonb_array_elements(%(queued)s) q
), steps AS (
    UPDATE workflow_executions w
       SET due_at = GREATEST(now(), to_timestamp((w.runtime->>'retry_at')::float8))
     WHERE w.status = 'ACTIVE' AND w.due_at > now()
       AND NOT EXISTS (SELECT 1 FROM held
                        WHERE held.idx IS NULL AND held.id = w.id
                          AND w.version >= held.version)
       AND NOT EXISTS (SELECT 1 FROM queued
                        WHERE queued.idx IS NULL AND queued.id = w.id
                          AND queued.version = w.version)
    RETURNING w.id
), branches AS (
    UPDATE workflow_branches b SET due_at = now()
     WHERE b.status = 'PENDING' AND b.due_at > now()
       AND NOT EXISTS (SELECT 1 FROM held
                        WHERE held.id = b.workflow_id AND held.version = b.version
                          AND held.idx = b.idx)
       AND NOT EXISTS (SELECT 1 FROM queued
                        WHERE queued.id = b.workflow_id AND queued.version = b.version
                          AND queued.idx = b.idx)
    RETURNING b.workflow_id
)
SELECT (SELECT count(*) FROM steps) + (SELECT count(*) FROM branches)

-- name: note_broker_epoch
-- The broker holds epoch %(epoch)s. Another one recorded before means the broker lost its
-- messages: every step, branch and wake-up that may have been queued there becomes due
-- now (a retry not before its time), except what live workers hold (taken from the
-- broker before it lost anything). Concurrent callers with the same epoch change it once
-- (the second one's upsert waits for the first, then finds the epoch already noted).
WITH prior AS (
    SELECT epoch FROM ruvon_broker_epochs WHERE broker = %(broker)s
), noted AS (
    INSERT INTO ruvon_broker_epochs AS e (broker, epoch) VALUES (%(broker)s, %(epoch)s)
    ON CONFLICT (broker) DO UPDATE SET epoch = EXCLUDED.epoch, changed_at = now()
     WHERE e.epoch <> EXCLUDED.epoch
    RETURNING broker
), lost AS (
    SELECT 1 FROM noted, prior
), held AS (
    SELECT (h->>0)::uuid AS id, (h->>1)::bigint AS version, (h->>2)::int AS idx
      FROM ruvon_workers r, jsonb_array_elements(r.holding) h
     WHERE r.reaped_at IS NULL
), steps AS (
    UPDATE workflow_executions w
       SET due_at = GREATEST(now(), to_timestamp((w.runtime->>'retry_at')::float8))
     WHERE EXISTS (SELECT 1 FROM lost)
       AND w.status IN ('ACTIVE', 'PENDING_ASYNC', 'PENDING_SUB_WORKFLOW',
                        'WAITING_CHILD_HUMAN_INPUT')
       AND w.due_at > now()
       AND NOT EXISTS (SELECT 1 FROM held
                        WHERE held.idx IS NULL AND held.id = w.id
                          AND w.version >= held.version)
    RETURNING w.id
), branches AS (
    UPDATE workflow_branches b SET due_at = now()
     WHERE EXISTS (SELECT 1 FROM lost)
       AND b.status = 'PENDING' AND b.due_at > now()
       AND NOT EXISTS (SELECT 1 FROM held
                        WHERE held.id = b.workflow_id AND held.version = b.version
                          AND held.idx = b.idx)
    RETURNING b.workflow_id
)
SELECT EXISTS (SELECT 1 FROM lost),
       (SELECT count(*) FROM steps) + (SELECT count(*) FROM branches)

-- name: count_purgeable
SELECT (SELECT count(*) FROM workflow_executions
         WHERE status = ANY(%(ended)s) AND updated_at < %(before)s),
       (SELECT count(*) FROM ruvon_dead_letters WHERE created_at < %(before)s)

-- name: purge_workflows
-- One batch of ended workflows last changed before %(before)s; their history, fan-outs
-- and branches go with them (ON DELETE CASCADE). Short: it never holds locks for long.
DELETE FROM workflow_executions w
 USING (SELECT id FROM workflow_executions
         WHERE status = ANY(%(ended)s) AND updated_at < %(before)s
         ORDER BY updated_at
         LIMIT %(batch)s
         FOR UPDATE SKIP LOCKED) doomed
 WHERE w.id = doomed.id
RETURNING w.id

-- name: purge_dead_letters
DELETE FROM ruvon_dead_letters
 WHERE id IN (SELECT id FROM ruvon_dead_letters WHERE created_at < %(before)s
               ORDER BY id LIMIT %(batch)s)
RETURNING id

-- name: search_workflows
-- The server's list: {filters} is joined from the fixed fragments of
-- persistence/postgres.py (each with its own placeholders), so that every combination is
-- a plain query the planner can match to an index. Newest first, keyset-paginated.
SELECT id, workflow_type, workflow_version, status, current_step, state, version, runtime,
       idempotency_key, parent_id, error, created_at, updated_at, completed_at
  FROM workflow_executions
 WHERE {filters}
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s

-- name: list_workers
SELECT name, seen_at, started_at, jsonb_array_length(holding) AS holding,
       seen_at > now() - make_interval(secs => %(silent)s::float8) AS alive
  FROM ruvon_workers
 WHERE reaped_at IS NULL
 ORDER BY name

-- name: activity_per_minute
-- Runs started and ended per minute over the last %(minutes)s minutes.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1),
                           date_trunc('minute', now()), interval '1 minute') AS minute
), started AS (
    SELECT date_trunc('minute', created_at) AS minute, count(*) AS n
      FROM workflow_executions
     WHERE created_at >= date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1)
     GROUP BY 1
), ended AS (
    SELECT date_trunc('minute', completed_at) AS minute, count(*) AS n
      FROM workflow_executions
     WHERE completed_at >= date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1)
     GROUP BY 1
)
SELECT m.minute, coalesce(s.n, 0), coalesce(e.n, 0)
  FROM minutes m LEFT JOIN started s USING (minute) LEFT JOIN ended e USING (minute)
 ORDER BY m.minute
