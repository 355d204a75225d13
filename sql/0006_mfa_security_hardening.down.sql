-- preflight: SELECT NOT EXISTS (SELECT 1 FROM users WHERE mfa_locked_until > now())

-- Refused while an account is under an MFA brute-force lockout: dropping
-- mfa_locked_until would lift the lock early. Failure counters and the
-- last-used TOTP counter are short-lived and are dropped.

ALTER TABLE users DROP COLUMN last_totp_counter;
ALTER TABLE users DROP COLUMN mfa_locked_until;
ALTER TABLE users DROP COLUMN failed_mfa_count;
