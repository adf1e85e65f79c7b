-- 0002: messages the fleet refused (unknown workflow type, data the model rejects,
-- undecodable bodies), kept with the reason so nothing is dropped silently.
CREATE TABLE ruvon_dead_letters (
    id           bigserial   PRIMARY KEY,
    task         text,
    workflow_id  text,
    reason       text        NOT NULL,
    payload      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ruvon_dead_letters_created_idx ON ruvon_dead_letters (created_at DESC);
