-- nbtoken: how often each v1 token authenticated, per UTC day (the Migration
-- page's "v1 uses per day"). `day` counts days since 1970-01-01 (UTC). The
-- server adds its in-memory counts with each last_used batch and drops days
-- older than about 400; a token's rows go with it.

CREATE TABLE v1_use_days (
    token_id INTEGER NOT NULL REFERENCES users_token (id) ON DELETE CASCADE,
    day INTEGER NOT NULL,
    uses INTEGER NOT NULL,
    PRIMARY KEY (token_id, day)
);

CREATE INDEX v1_use_days_day ON v1_use_days (day);
