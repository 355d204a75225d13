-- preflight: SELECT NOT EXISTS (SELECT 1 FROM notification_channels WHERE config LIKE 'z4jenc1:%')
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM user_channels WHERE config LIKE 'z4jenc1:%')

-- Refused while any channel config is still encrypted: SQL cannot decrypt
-- it, so the application must write the plaintext JSON back first. The
-- cast to JSONB then fails (and nothing changes) if a value is not JSON.

ALTER TABLE user_channels ALTER COLUMN config TYPE JSONB USING config::jsonb;
ALTER TABLE notification_channels ALTER COLUMN config TYPE JSONB USING config::jsonb;
