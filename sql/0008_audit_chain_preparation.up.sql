-- message: Audit chain (Boundary F) preparation: audit_chain_preparation table, audit_log marker columns, drop audit_log FKs, activation-aware audit guard

-- The MAC-signed preparation row of the original revision needs the
-- application's audit-chain secret; it is written by the application, not
-- by this file. The table that holds it is created here.

CREATE TABLE audit_chain_preparation (
    singleton_id               VARCHAR(32) NOT NULL,
    format_version             INTEGER     NOT NULL,
    preparation_id             UUID        NOT NULL,
    audit_key_id               VARCHAR(64) NOT NULL,
    preparation_revision       VARCHAR(80) NOT NULL,
    target_activation_revision VARCHAR(80) NOT NULL,
    preparation_mac            VARCHAR(64) NOT NULL,
    CONSTRAINT pk_audit_chain_preparation PRIMARY KEY (singleton_id),
    CONSTRAINT uq_audit_chain_preparation_preparation_id UNIQUE (preparation_id),
    CONSTRAINT ck_audit_chain_preparation_singleton CHECK (singleton_id = 'audit-chain'),
    CONSTRAINT ck_audit_chain_preparation_format_version CHECK (format_version = 1)
);

-- Marker columns; 0009 classifies existing rows and tightens them.
ALTER TABLE audit_log ADD COLUMN legacy_frozen BOOLEAN;
ALTER TABLE audit_log ADD COLUMN hmac_version INTEGER;
ALTER TABLE audit_log ADD COLUMN hmac_key_id VARCHAR(64);
ALTER TABLE audit_log ADD COLUMN legacy_integrity_class VARCHAR(64);
ALTER TABLE audit_log ADD COLUMN legacy_origin VARCHAR(120);
ALTER TABLE audit_log ADD COLUMN chain_generation UUID;

-- Audit history keeps the ids verbatim even after the project or user is
-- deleted (a cascade would rewrite HMAC-covered rows).
ALTER TABLE audit_log DROP CONSTRAINT fk_audit_log_project_id_projects;
ALTER TABLE audit_log DROP CONSTRAINT fk_audit_log_user_id_users;

-- Activation-aware variant: as before, plus UPDATEs that change nothing
-- but the six marker columns while z4j.audit_activation = 'on'.
CREATE OR REPLACE FUNCTION audit_log_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('z4j.audit_sweep', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE'
       AND coalesce(current_setting('z4j.audit_activation', true), '') = 'on'
       AND (to_jsonb(NEW) - ARRAY['legacy_frozen', 'hmac_version', 'hmac_key_id',
                                  'legacy_integrity_class', 'legacy_origin', 'chain_generation'])
         = (to_jsonb(OLD) - ARRAY['legacy_frozen', 'hmac_version', 'hmac_key_id',
                                  'legacy_integrity_class', 'legacy_origin', 'chain_generation']) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
