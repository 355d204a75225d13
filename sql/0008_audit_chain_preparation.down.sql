-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_chain_preparation)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_log WHERE num_nonnulls(legacy_frozen, hmac_version, hmac_key_id, legacy_integrity_class, legacy_origin, chain_generation) > 0 AND NOT (legacy_frozen IS TRUE AND legacy_origin = 'audit-log:preparation-v1' AND legacy_integrity_class IN ('legacy-unsigned', 'legacy-unverifiable-key-unavailable') AND hmac_version IS NULL AND hmac_key_id IS NULL AND chain_generation IS NULL))
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.project_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = a.project_id))
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.user_id))

-- Refused while a preparation row is pending, while any audit row carries
-- marker values that could not be re-derived by 0009 (signed or verified
-- classifications, chain generations), or while audit rows point at
-- deleted projects or users (the restored foreign keys would reject them).

CREATE OR REPLACE FUNCTION audit_log_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('z4j.audit_sweep', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

ALTER TABLE audit_log ADD CONSTRAINT fk_audit_log_project_id_projects
    FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE SET NULL;
ALTER TABLE audit_log ADD CONSTRAINT fk_audit_log_user_id_users
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE audit_log DROP COLUMN chain_generation;
ALTER TABLE audit_log DROP COLUMN legacy_origin;
ALTER TABLE audit_log DROP COLUMN legacy_integrity_class;
ALTER TABLE audit_log DROP COLUMN hmac_key_id;
ALTER TABLE audit_log DROP COLUMN hmac_version;
ALTER TABLE audit_log DROP COLUMN legacy_frozen;

DROP TABLE audit_chain_preparation;
