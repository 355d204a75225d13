-- message: TOTP MFA: users MFA columns, mfa_recovery_codes, trusted_devices, sessions.mfa_verified_at

-- Written idempotently (IF NOT EXISTS) like the original revision, so a
-- database that already carries some of these objects converges.

ALTER TABLE users ADD COLUMN IF NOT EXISTS mfa_secret_encrypted BYTEA;
ALTER TABLE users ADD COLUMN IF NOT EXISTS mfa_enrolled_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN IF NOT EXISTS mfa_enforcement_started_at TIMESTAMPTZ;

CREATE TABLE IF NOT EXISTS mfa_recovery_codes (
    id          UUID        NOT NULL,
    user_id     UUID        NOT NULL,
    code_hash   VARCHAR     NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    consumed_at TIMESTAMPTZ,
    CONSTRAINT pk_mfa_recovery_codes PRIMARY KEY (id),
    CONSTRAINT fk_mfa_recovery_codes_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_mfa_recovery_codes_user_id ON mfa_recovery_codes (user_id);

CREATE TABLE IF NOT EXISTS trusted_devices (
    id             UUID         NOT NULL,
    user_id        UUID         NOT NULL,
    cookie_id_hash VARCHAR(64)  NOT NULL,
    label          VARCHAR(200) NOT NULL,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ  NOT NULL,
    revoked_at     TIMESTAMPTZ,
    CONSTRAINT pk_trusted_devices PRIMARY KEY (id),
    CONSTRAINT uq_trusted_devices_cookie_id_hash UNIQUE (cookie_id_hash),
    CONSTRAINT fk_trusted_devices_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_trusted_devices_user_id ON trusted_devices (user_id);
CREATE INDEX IF NOT EXISTS ix_trusted_devices_expires_at ON trusted_devices (expires_at);

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS mfa_verified_at TIMESTAMPTZ;
