-- A change log, so that a running server learns of changes another process
-- (the CLI, a second server on the same file) makes: SQLite has no
-- notifications across processes, so listeners poll this table. Triggers
-- write a row for every change that matters to authentication or to what the
-- API shows, in the transaction that makes it, as PostgreSQL's
-- `nbtoken_notify_change` does; last_used writes (and last_login) do not fire.
--
-- Only the latest 1000 changes are kept: a listener that finds a gap after
-- its last seen row drops everything it cached.

CREATE TABLE nbtoken_changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind   TEXT    NOT NULL CHECK (kind IN ('token', 'user')),
    row_id INTEGER NOT NULL
);

CREATE TRIGGER nbtoken_changes_pruned AFTER INSERT ON nbtoken_changes
BEGIN
    DELETE FROM nbtoken_changes WHERE seq <= NEW.seq - 1000;
END;

CREATE TRIGGER users_token_changed
    AFTER UPDATE OF version, key, pepper_id, hmac_digest, plaintext, user_id, expires, enabled,
        write_enabled, allowed_ips, prev_pepper_id, prev_hmac_digest, prev_valid_until
    ON users_token
BEGIN
    INSERT INTO nbtoken_changes (kind, row_id) VALUES ('token', NEW.id);
END;

CREATE TRIGGER users_token_deleted AFTER DELETE ON users_token
BEGIN
    INSERT INTO nbtoken_changes (kind, row_id) VALUES ('token', OLD.id);
END;

CREATE TRIGGER users_changed
    AFTER UPDATE OF username, password, first_name, last_name, email, is_active, is_superuser,
        can_grant_tokens, date_joined
    ON users
BEGIN
    INSERT INTO nbtoken_changes (kind, row_id) VALUES ('user', NEW.id);
END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO nbtoken_changes (kind, row_id) VALUES ('user', OLD.id);
END;
