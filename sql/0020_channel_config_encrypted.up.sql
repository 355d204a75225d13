-- message: notification_channels.config and user_channels.config become TEXT (holding encrypted z4jenc1 tokens)
-- destructive: config JSONB becomes TEXT holding the same JSON text; the down casts it back while it is still JSON (a preflight refuses once encrypted tokens exist)

-- Type change only. Encrypting each row (AES-256-GCM keyed from the
-- application secret) needs that secret and is done by the application;
-- existing configs are kept as their JSON text until then.

ALTER TABLE notification_channels ALTER COLUMN config TYPE TEXT USING config::text;
ALTER TABLE user_channels ALTER COLUMN config TYPE TEXT USING config::text;
