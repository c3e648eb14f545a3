-- How often each v1 token authenticated, per UTC day (the Migration page's
-- "v1 uses per day"), as migrations/postgres/0006_v1_use_days.sql on
-- nbtoken's own database. `day` counts days since 1970-01-01 (UTC). No
-- foreign key to users_token (it would add a trigger to NetBox's table):
-- readers join on users_token, and the rows of deleted tokens are pruned by
-- a join, as are days older than about 400. `nbtoken netbox uninstall` drops
-- it with the schema.

CREATE TABLE nbtoken.v1_use_days (
    token_id bigint NOT NULL,
    day bigint NOT NULL,
    uses bigint NOT NULL,
    PRIMARY KEY (token_id, day)
);

CREATE INDEX v1_use_days_day ON nbtoken.v1_use_days (day);
