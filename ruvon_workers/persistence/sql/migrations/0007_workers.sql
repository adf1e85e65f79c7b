-- 0007: each worker's liveness, refreshed every few seconds with the steps and branches
-- it holds (running, reserved or prefetched), so that their leases follow the worker:
-- renewed while it lives, due at once when it stops refreshing.
CREATE TABLE ruvon_workers (
    name        text        PRIMARY KEY,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz NOT NULL DEFAULT now(),
    holding     jsonb       NOT NULL DEFAULT '[]'::jsonb
);
