-- Users and API tokens, mirroring NetBox 4.5+'s `users_user` / `users_token`.
--
-- Timestamps are UTC text of one fixed width (`YYYY-MM-DDTHH:MM:SS.ffffffZ`),
-- so comparing and sorting the text compares and sorts the instants.

CREATE TABLE users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    username         TEXT    NOT NULL UNIQUE,
    -- argon2id PHC string; NULL disables password login.
    password         TEXT,
    first_name       TEXT    NOT NULL DEFAULT '',
    last_name        TEXT    NOT NULL DEFAULT '',
    email            TEXT    NOT NULL DEFAULT '',
    is_active        BOOLEAN NOT NULL DEFAULT TRUE,
    is_superuser     BOOLEAN NOT NULL DEFAULT FALSE,
    can_grant_tokens BOOLEAN NOT NULL DEFAULT FALSE,
    date_joined      TEXT    NOT NULL,
    last_login       TEXT
);

CREATE TABLE users_token (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    version          INTEGER NOT NULL,
    -- v2: public lookup key, pepper id and HMAC-SHA256 digest of the secret.
    -- The secret itself is never stored.
    key              TEXT    UNIQUE,
    pepper_id        INTEGER CHECK (pepper_id BETWEEN 0 AND 32767),
    hmac_digest      TEXT,
    -- v1 only: the token value itself.
    plaintext        TEXT    UNIQUE,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    description      TEXT    NOT NULL DEFAULT '',
    created          TEXT    NOT NULL,
    expires          TEXT,
    last_used        TEXT,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    write_enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    -- JSON array of CIDR strings; NULL or empty means unrestricted.
    allowed_ips      TEXT,
    -- nbtoken: the previous digest of a rotated v2 token, accepted until
    -- prev_valid_until.
    prev_pepper_id   INTEGER CHECK (prev_pepper_id BETWEEN 0 AND 32767),
    prev_hmac_digest TEXT,
    prev_valid_until TEXT,
    -- NetBox's constraint, same name and same rule.
    CONSTRAINT enforce_version_dependent_fields CHECK (
        (version = 1 AND key IS NULL AND pepper_id IS NULL AND hmac_digest IS NULL AND plaintext IS NOT NULL)
        OR
        (version = 2 AND key IS NOT NULL AND pepper_id IS NOT NULL AND hmac_digest IS NOT NULL AND plaintext IS NULL)
    ),
    -- The previous secret is all there or not at all, and only on v2 tokens.
    CONSTRAINT enforce_previous_secret_fields CHECK (
        (prev_pepper_id IS NULL AND prev_hmac_digest IS NULL AND prev_valid_until IS NULL)
        OR
        (version = 2 AND prev_pepper_id IS NOT NULL AND prev_hmac_digest IS NOT NULL AND prev_valid_until IS NOT NULL)
    )
);

CREATE INDEX users_token_user_id ON users_token (user_id);
CREATE INDEX users_token_created ON users_token (created);
