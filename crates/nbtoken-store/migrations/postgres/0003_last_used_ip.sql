-- nbtoken: the client address of the last recorded use, written with
-- last_used (so operators see who still uses a v1 token, and from where).
-- NULL until used. Like last_used, it is not in the change-notify trigger of
-- 0002: a use changes nothing that authentication reads.

ALTER TABLE users_token ADD COLUMN last_used_ip inet;
