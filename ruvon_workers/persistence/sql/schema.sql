-- The full current schema. Keep it equal to replaying sql/migrations/*.sql in order
-- (tests/migration checks this). The migration table is managed by `db migrate`.
CREATE TABLE workflow_executions (
    id                uuid PRIMARY KEY,
    workflow_type     text        NOT NULL,
    workflow_version  text        NOT NULL,
    status            text        NOT NULL,
    current_step      text,
    state             jsonb       NOT NULL,
    runtime           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    version           bigint      NOT NULL DEFAULT 0,
    idempotency_key   text        UNIQUE,
    parent_id         uuid        REFERENCES workflow_executions (id) ON DELETE SET NULL,
    error             jsonb,
    due_at            timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz
);

CREATE INDEX workflow_executions_due_idx
    ON workflow_executions (due_at) WHERE status = 'ACTIVE';
CREATE INDEX workflow_executions_status_idx
    ON workflow_executions (status, updated_at DESC);
CREATE INDEX workflow_executions_type_idx
    ON workflow_executions (workflow_type, status, updated_at DESC);
CREATE INDEX workflow_executions_parent_idx
    ON workflow_executions (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE workflow_step_history (
    id           bigserial   PRIMARY KEY,
    workflow_id  uuid        NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    step         text,
    status       text        NOT NULL,
    attempt      integer     NOT NULL DEFAULT 1,
    version      bigint      NOT NULL,
    duration_ms  double precision,
    error        jsonb,
    detail       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workflow_step_history_workflow_idx ON workflow_step_history (workflow_id, id);
CREATE INDEX workflow_step_history_step_idx ON workflow_step_history (step, created_at);

CREATE TABLE ruvon_dead_letters (
    id           bigserial   PRIMARY KEY,
    task         text,
    workflow_id  text,
    reason       text        NOT NULL,
    payload      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ruvon_dead_letters_created_idx ON ruvon_dead_letters (created_at DESC);
