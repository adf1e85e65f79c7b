-- 0008: what a worker holds of the producers' messages (start, resume, cancel), so a
-- peer sends them again when it dies; when a reap took it (a reaper that dies before
-- sending them leaves the worker to be taken again); and the epoch marker each broker
-- holds, so that a broker that lost its messages is noticed at once.
ALTER TABLE ruvon_workers
    ADD COLUMN messages  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN reaped_at timestamptz;

CREATE TABLE ruvon_broker_epochs (
    broker      text        PRIMARY KEY,
    epoch       text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
