-- What nbtoken keeps beside a NetBox database, in a schema of its own
-- (`nbtoken`): NetBox's tables are never created, altered or migrated.
-- `nbtoken netbox uninstall` drops this schema and everything in it.

-- Who used each token, as nbtoken saw it: the latest use (address,
-- User-Agent) and, for v1 tokens, how often and by whom, so an operator
-- knows which integration still sends a v1 token. No foreign key to
-- users_token: it would add a trigger to NetBox's table. Rows of deleted
-- tokens are never read (readers join on users_token).
CREATE TABLE nbtoken.token_use (
    token_id bigint PRIMARY KEY,
    last_seen timestamptz NOT NULL,
    last_ip inet,
    last_user_agent text,
    -- Recorded uses (one per last_used write the server queued).
    uses bigint NOT NULL DEFAULT 0,
    v1_uses bigint NOT NULL DEFAULT 0,
    v1_last_seen timestamptz,
    v1_last_ip inet,
    v1_last_user_agent text
);

-- Failed-authentication budgets shared by every instance (as
-- migrations/postgres/0005_failure_budgets.sql on nbtoken's own database).
CREATE UNLOGGED TABLE nbtoken.failures (
    subject text NOT NULL,
    window_start bigint NOT NULL,
    failures integer NOT NULL,
    PRIMARY KEY (subject, window_start)
);

CREATE UNLOGGED TABLE nbtoken.failure_blocks (
    subject text PRIMARY KEY,
    until timestamptz NOT NULL,
    set_at timestamptz NOT NULL
);

CREATE INDEX failure_blocks_set_at ON nbtoken.failure_blocks (set_at);
