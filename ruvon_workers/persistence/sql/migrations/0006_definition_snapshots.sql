-- 0006: the definition each run started with, stored once per version of a workflow file
-- (a run's runtime names its fingerprint), so a run finishes on the steps it began with
-- after its YAML changes.
CREATE TABLE workflow_definitions (
    fingerprint       text        PRIMARY KEY,
    workflow_type     text        NOT NULL,
    workflow_version  text        NOT NULL,
    snapshot          jsonb       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
