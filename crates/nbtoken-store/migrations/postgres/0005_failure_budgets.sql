-- Failed-authentication budgets shared by every instance on this database, so
-- that N instances do not give an attacker N budgets. Each instance keeps its
-- own budget as the first, free line and adds its failures here in batches;
-- windowed counters (one row per subject and minute) give a sliding estimate.
-- A subject is `ip:<address>` or `key:<v2 key>` (keys are public values).
--
-- UNLOGGED: counters are worth nothing after a crash and cost no WAL.

CREATE UNLOGGED TABLE nbtoken_failures (
    subject text NOT NULL,
    -- Unix seconds at which the window starts (a multiple of its length).
    window_start bigint NOT NULL,
    failures integer NOT NULL,
    PRIMARY KEY (subject, window_start)
);

-- Subjects some instance found over budget, until when; every instance reads
-- the recent ones each second and refuses them before checking any token.
CREATE UNLOGGED TABLE nbtoken_failure_blocks (
    subject text PRIMARY KEY,
    until timestamptz NOT NULL,
    set_at timestamptz NOT NULL
);

CREATE INDEX nbtoken_failure_blocks_set_at ON nbtoken_failure_blocks (set_at);
