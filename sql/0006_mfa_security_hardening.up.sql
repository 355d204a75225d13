-- message: MFA hardening: users.failed_mfa_count, users.mfa_locked_until, users.last_totp_counter (TOTP anti-replay)

ALTER TABLE users ADD COLUMN failed_mfa_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_locked_until TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN last_totp_counter BIGINT;
