-- Tell every server instance when a token or user changes in a way that
-- matters for authentication, so caches drop the row at once. last_used
-- writes do not fire (they would only churn the caches).
--
-- Channel `nbtoken_changes`, payload `<schema>:token:<id>` or `<schema>:user:<id>`;
-- several schemas may share one database, so listeners filter on the schema.

CREATE FUNCTION nbtoken_notify_change() RETURNS trigger AS $$
DECLARE
    kind text := CASE WHEN TG_TABLE_NAME = 'users' THEN 'user' ELSE 'token' END;
    row_id bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
BEGIN
    PERFORM pg_notify('nbtoken_changes', TG_TABLE_SCHEMA || ':' || kind || ':' || row_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_token_changed
    AFTER UPDATE OF version, key, pepper_id, hmac_digest, plaintext, user_id, expires, enabled,
        write_enabled, allowed_ips, prev_pepper_id, prev_hmac_digest, prev_valid_until
    OR DELETE ON users_token
    FOR EACH ROW EXECUTE FUNCTION nbtoken_notify_change();

CREATE TRIGGER users_changed
    AFTER UPDATE OF is_active OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION nbtoken_notify_change();
