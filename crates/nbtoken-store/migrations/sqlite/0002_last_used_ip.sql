-- nbtoken: the client address of the last recorded use, written with
-- last_used (so operators see who still uses a v1 token, and from where).
-- Text form of an IP address (`192.0.2.10`, `2001:db8::1`); NULL until used.

ALTER TABLE users_token ADD COLUMN last_used_ip TEXT;
