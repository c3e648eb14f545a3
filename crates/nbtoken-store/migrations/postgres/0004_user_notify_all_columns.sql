-- Server instances cache users as well as token rows (the user a request
-- authenticates as, with its permissions), so any change to a user that the
-- API shows or decides on must reach them at once, not only is_active.
-- last_login (written when a password is checked) does not fire.

DROP TRIGGER users_changed ON users;

CREATE TRIGGER users_changed
    AFTER UPDATE OF username, password, first_name, last_name, email, is_active, is_superuser,
        can_grant_tokens, date_joined
    OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION nbtoken_notify_change();
