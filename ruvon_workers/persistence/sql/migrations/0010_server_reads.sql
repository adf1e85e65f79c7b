-- ruvon: no-transaction
-- 0010: indexes for the server's lists and overview. Lists are ordered by
-- (created_at, id), which never changes under a row, so a cursor never skips or repeats
-- one; a search by idempotency key prefix uses text_pattern_ops; the overview counts
-- the runs that ended in the last minutes by completed_at. Built concurrently, so that
-- the fleet keeps writing workflow_executions while they build (see migrate.py).
CREATE INDEX CONCURRENTLY IF NOT EXISTS workflow_executions_created_idx
    ON workflow_executions (created_at DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS workflow_executions_status_created_idx
    ON workflow_executions (status, created_at DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS workflow_executions_type_created_idx
    ON workflow_executions (workflow_type, created_at DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS workflow_executions_key_pattern_idx
    ON workflow_executions (idempotency_key text_pattern_ops)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS workflow_executions_completed_idx
    ON workflow_executions (completed_at) WHERE completed_at IS NOT NULL;
