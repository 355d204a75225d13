-- preflight: SELECT NOT EXISTS (SELECT 1 FROM users WHERE mfa_enrolled_at IS NOT NULL OR mfa_secret_encrypted IS NOT NULL)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM mfa_recovery_codes WHERE consumed_at IS NULL)

-- Refused while any user is enrolled in MFA or holds unused recovery codes:
-- dropping the columns would silently switch MFA off for those accounts.
-- Trusted-device cookies only skip a second factor, so they are dropped.

ALTER TABLE sessions DROP COLUMN mfa_verified_at;
DROP TABLE trusted_devices;
DROP TABLE mfa_recovery_codes;
ALTER TABLE users DROP COLUMN mfa_enforcement_started_at;
ALTER TABLE users DROP COLUMN mfa_enrolled_at;
ALTER TABLE users DROP COLUMN mfa_secret_encrypted;
