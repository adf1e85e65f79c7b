-- The SQLite store's schema (persistence/sqlite.py runs it on initialize() when
-- auto_init is true). The same tables and columns as ../schema.sql (PostgreSQL), in
-- SQLite's types: ids are canonical UUID text, JSON values are TEXT written by the
-- project's codec, and every timestamp is REAL unix seconds (UTC), so the queries compare
-- and add seconds with plain arithmetic. Every statement is idempotent.
CREATE TABLE IF NOT EXISTS workflow_executions (
    id                TEXT    PRIMARY KEY,
    workflow_type     TEXT    NOT NULL,
    workflow_version  TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    current_step      TEXT,
    state             TEXT    NOT NULL,
    runtime           TEXT    NOT NULL DEFAULT '{}',
    version           INTEGER NOT NULL DEFAULT 0,
    idempotency_key   TEXT,
    parent_id         TEXT    REFERENCES workflow_executions (id) ON DELETE SET NULL,
    error             TEXT,
    due_at            REAL,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL,
    completed_at      REAL,
    -- A key is unique per workflow type (a file from before is rebuilt so on open:
    -- scoped_keys.sql).
    UNIQUE (workflow_type, idempotency_key)
);

CREATE INDEX IF NOT EXISTS workflow_executions_due_idx
    ON workflow_executions (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_executions_status_idx
    ON workflow_executions (status, updated_at DESC);
CREATE INDEX IF NOT EXISTS workflow_executions_type_idx
    ON workflow_executions (workflow_type, status, updated_at DESC);
CREATE INDEX IF NOT EXISTS workflow_executions_parent_idx
    ON workflow_executions (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS workflow_step_history (
    id           INTEGER PRIMARY KEY,
    workflow_id  TEXT    NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    step         TEXT,
    status       TEXT    NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 1,
    version      INTEGER NOT NULL,
    duration_ms  REAL,
    error        TEXT,
    detail       TEXT,
    created_at   REAL    NOT NULL
);

CREATE INDEX IF NOT EXISTS workflow_step_history_workflow_idx
    ON workflow_step_history (workflow_id, id);
CREATE INDEX IF NOT EXISTS workflow_step_history_step_idx
    ON workflow_step_history (step, created_at);

CREATE TABLE IF NOT EXISTS ruvon_dead_letters (
    id           INTEGER PRIMARY KEY,
    task         TEXT,
    workflow_id  TEXT,
    reason       TEXT    NOT NULL,
    payload      TEXT,
    created_at   REAL    NOT NULL
);

CREATE INDEX IF NOT EXISTS ruvon_dead_letters_created_idx
    ON ruvon_dead_letters (created_at DESC);

-- One row per PARALLEL fan-out: the fan-in counter. `version` is the workflow's version
-- after the fan-out was committed; the branches' messages carry it.
CREATE TABLE IF NOT EXISTS workflow_fanouts (
    workflow_id  TEXT    NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    step         TEXT    NOT NULL,
    total        INTEGER NOT NULL,
    remaining    INTEGER NOT NULL,
    created_at   REAL    NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

-- One row per branch of a fan-out; its result waits here until the join merges all of
-- them in declared order.
CREATE TABLE IF NOT EXISTS workflow_branches (
    workflow_id  TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    item         TEXT,
    status       TEXT    NOT NULL DEFAULT 'PENDING',
    attempt      INTEGER NOT NULL DEFAULT 0,
    result       TEXT,
    error        TEXT,
    duration_ms  REAL,
    due_at       REAL,
    updated_at   REAL    NOT NULL,
    lost         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, version, idx),
    FOREIGN KEY (workflow_id, version)
        REFERENCES workflow_fanouts (workflow_id, version) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS workflow_branches_due_idx
    ON workflow_branches (due_at) WHERE status = 'PENDING';

-- Schedules registered by CRON_SCHEDULE steps.
CREATE TABLE IF NOT EXISTS ruvon_schedules (
    name              TEXT    PRIMARY KEY,
    workflow_type     TEXT    NOT NULL,
    cron_expression   TEXT    NOT NULL,
    initial_data      TEXT    NOT NULL DEFAULT '{}',
    next_run_at       REAL    NOT NULL,
    last_run_at       REAL,
    last_workflow_id  TEXT,
    runs              INTEGER NOT NULL DEFAULT 0,
    created_by        TEXT,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL
);

CREATE INDEX IF NOT EXISTS ruvon_schedules_next_idx ON ruvon_schedules (next_run_at);

-- The definition each run started with, once per version of a workflow file.
CREATE TABLE IF NOT EXISTS workflow_definitions (
    fingerprint       TEXT    PRIMARY KEY,
    workflow_type     TEXT    NOT NULL,
    workflow_version  TEXT    NOT NULL,
    snapshot          TEXT    NOT NULL,
    created_at        REAL    NOT NULL
);

-- Each worker's liveness and what it holds (a file made by an earlier version gets the
-- last two columns when it is opened).
CREATE TABLE IF NOT EXISTS ruvon_workers (
    name        TEXT    PRIMARY KEY,
    seen_at     REAL    NOT NULL,
    started_at  REAL    NOT NULL,
    holding     TEXT    NOT NULL DEFAULT '[]',
    messages    TEXT    NOT NULL DEFAULT '[]',
    reaped_at   REAL
);

-- The epoch marker each broker holds.
CREATE TABLE IF NOT EXISTS ruvon_broker_epochs (
    broker      TEXT    PRIMARY KEY,
    epoch       TEXT    NOT NULL,
    changed_at  REAL    NOT NULL
);

-- Rows written by earlier versions under WAITING_HUMAN_INPUT take Ruvon's WAITING_HUMAN.
UPDATE workflow_executions SET status = 'WAITING_HUMAN' WHERE status = 'WAITING_HUMAN_INPUT';
