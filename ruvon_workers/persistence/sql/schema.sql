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
    idempotency_key   text,
    parent_id         uuid        REFERENCES workflow_executions (id) ON DELETE SET NULL,
    error             jsonb,
    due_at            timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    -- A key is unique per workflow type; `ruvon:` keys are the engine's (engine/keys.py).
    CONSTRAINT workflow_executions_type_key_key UNIQUE (workflow_type, idempotency_key)
);

CREATE INDEX workflow_executions_due_idx
    ON workflow_executions (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX workflow_executions_status_idx
    ON workflow_executions (status, updated_at DESC);
CREATE INDEX workflow_executions_type_idx
    ON workflow_executions (workflow_type, status, updated_at DESC);
CREATE INDEX workflow_executions_parent_idx
    ON workflow_executions (parent_id) WHERE parent_id IS NOT NULL;
-- The server's lists and overview (migration 0010).
CREATE INDEX workflow_executions_created_idx
    ON workflow_executions (created_at DESC, id DESC);
CREATE INDEX workflow_executions_status_created_idx
    ON workflow_executions (status, created_at DESC, id DESC);
CREATE INDEX workflow_executions_type_created_idx
    ON workflow_executions (workflow_type, created_at DESC, id DESC);
CREATE INDEX workflow_executions_key_pattern_idx
    ON workflow_executions (idempotency_key text_pattern_ops)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflow_executions_completed_idx
    ON workflow_executions (completed_at) WHERE completed_at IS NOT NULL;

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

-- One row per PARALLEL fan-out: the atomic fan-in counter. `version` is the workflow's
-- version after the fan-out was committed; the branches' messages carry it.
CREATE TABLE workflow_fanouts (
    workflow_id  uuid        NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    version      bigint      NOT NULL,
    step         text        NOT NULL,
    total        integer     NOT NULL,
    remaining    integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, version)
);

-- One row per branch of a fan-out; its result waits here until the join merges all of
-- them in declared order.
CREATE TABLE workflow_branches (
    workflow_id  uuid        NOT NULL,
    version      bigint      NOT NULL,
    idx          integer     NOT NULL,
    name         text        NOT NULL,
    item         jsonb,
    status       text        NOT NULL DEFAULT 'PENDING',
    attempt      integer     NOT NULL DEFAULT 0,
    result       jsonb,
    error        jsonb,
    duration_ms  double precision,
    due_at       timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    lost         integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, version, idx),
    FOREIGN KEY (workflow_id, version)
        REFERENCES workflow_fanouts (workflow_id, version) ON DELETE CASCADE
);

CREATE INDEX workflow_branches_due_idx
    ON workflow_branches (due_at) WHERE status = 'PENDING';

-- Schedules registered by CRON_SCHEDULE steps, fired by the fleet's schedulers.
CREATE TABLE ruvon_schedules (
    name              text        PRIMARY KEY,
    workflow_type     text        NOT NULL,
    cron_expression   text        NOT NULL,
    initial_data      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    next_run_at       timestamptz NOT NULL,
    last_run_at       timestamptz,
    last_workflow_id  uuid,
    runs              bigint      NOT NULL DEFAULT 0,
    created_by        uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ruvon_schedules_next_idx ON ruvon_schedules (next_run_at);

-- The definition each run started with, once per version of a workflow file.
CREATE TABLE workflow_definitions (
    fingerprint       text        PRIMARY KEY,
    workflow_type     text        NOT NULL,
    workflow_version  text        NOT NULL,
    snapshot          jsonb       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Each worker's liveness and what it holds (see migrations 0007 and 0008).
CREATE TABLE ruvon_workers (
    name        text        PRIMARY KEY,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz NOT NULL DEFAULT now(),
    holding     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    messages    jsonb       NOT NULL DEFAULT '[]'::jsonb,
    reaped_at   timestamptz
);

-- The epoch marker each broker holds (see migration 0008).
CREATE TABLE ruvon_broker_epochs (
    broker      text        PRIMARY KEY,
    epoch       text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
