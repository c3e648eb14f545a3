-- nbtoken: how often each v1 token authenticated, per UTC day (the Migration
-- page's "v1 uses per day"). `day` counts days since 1970-01-01 (UTC). The
-- server adds its in-memory counts with each last_used batch and drops days
-- older than about 400; a token's rows go with it. No change-notify trigger:
-- a use changes nothing that authentication reads.

CREATE TABLE v1_use_days (
    token_id bigint NOT NULL REFERENCES users_token (id) ON DELETE CASCADE,
    day bigint NOT NULL,
    uses bigint NOT NULL,
    PRIMARY KEY (token_id, day)
);

CREATE INDEX v1_use_days_day ON v1_use_days (day);
