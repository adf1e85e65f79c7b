-- 0003: what PARALLEL, sub-workflows and CRON_SCHEDULE need.
--
-- Waiting workflows (PENDING_ASYNC for a fan-out, PENDING_SUB_WORKFLOW for a child)
-- carry a due_at too, so the recovery sweep wakes them if a wake-up message is lost.
DROP INDEX workflow_executions_due_idx;
CREATE INDEX workflow_executions_due_idx
    ON workflow_executions (due_at) WHERE due_at IS NOT NULL;

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
