-- Upgrades a file written before idempotency keys were scoped by workflow type (its
-- workflow_executions has `idempotency_key UNIQUE`): persistence/sqlite.py runs it once,
-- with foreign keys off, in one transaction. SQLite cannot drop a column's UNIQUE, so the
-- table is rebuilt (https://sqlite.org/lang_altertable.html#otheralter), then the keys
-- the engine built are rewritten into its reserved `ruvon:` namespace, as the PostgreSQL
-- migration 0009_scoped_keys.sql does.
CREATE TABLE workflow_executions_scoped (
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
    UNIQUE (workflow_type, idempotency_key)
);
INSERT INTO workflow_executions_scoped
    (id, workflow_type, workflow_version, status, current_step, state, runtime, version,
     idempotency_key, parent_id, error, due_at, created_at, updated_at, completed_at)
SELECT id, workflow_type, workflow_version, status, current_step, state, runtime, version,
       idempotency_key, parent_id, error, due_at, created_at, updated_at, completed_at
  FROM workflow_executions;
DROP TABLE workflow_executions;
ALTER TABLE workflow_executions_scoped RENAME TO workflow_executions;

UPDATE workflow_executions AS w
   SET idempotency_key = 'ruvon:child:' || w.idempotency_key
 WHERE w.parent_id IS NOT NULL
   AND substr(w.idempotency_key, 1, length(w.parent_id) + 1) = w.parent_id || ':'
   AND NOT EXISTS (SELECT 1 FROM workflow_executions o
                    WHERE o.idempotency_key = 'ruvon:child:' || w.idempotency_key);

UPDATE workflow_executions AS w
   SET idempotency_key = 'ruvon:spawn:' || w.idempotency_key
 WHERE w.parent_id IS NULL
   AND json_extract(w.runtime, '$.spawned_by.id') IS NOT NULL
   AND substr(w.idempotency_key, 1, length(json_extract(w.runtime, '$.spawned_by.id')) + 1)
       = json_extract(w.runtime, '$.spawned_by.id') || ':'
   AND NOT EXISTS (SELECT 1 FROM workflow_executions o
                    WHERE o.idempotency_key = 'ruvon:spawn:' || w.idempotency_key);

UPDATE workflow_executions AS w
   SET idempotency_key = 'ruvon:' || w.idempotency_key
 WHERE substr(w.idempotency_key, 1, 9) = 'schedule:'
   AND EXISTS (SELECT 1 FROM ruvon_schedules s
                WHERE s.workflow_type = w.workflow_type
                  AND substr(w.idempotency_key, 1, length(s.name) + 10)
                      = 'schedule:' || s.name || ':')
   AND NOT EXISTS (SELECT 1 FROM workflow_executions o
                    WHERE o.idempotency_key = 'ruvon:' || w.idempotency_key);
