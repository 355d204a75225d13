-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_chain_state)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_log WHERE legacy_frozen = false)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_log WHERE prev_row_hmac IS NOT NULL GROUP BY prev_row_hmac HAVING count(*) > 1)

-- Refused once the chain is active (a chain-state row or any active,
-- non-frozen audit row exists): the upstream revision is irreversible for
-- exactly that reason. Also refused if two rows share a prev_row_hmac,
-- which the restored (wider) unique index would reject.

SELECT pg_advisory_xact_lock(2050255578);  -- 0x7A346ADA, audit-chain lock
LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER audit_chain_state_no_update ON audit_chain_state;
DROP FUNCTION audit_chain_state_forbid_mutation();
DROP TABLE audit_chain_state;

-- Back to the 0008 activation-aware guard (needed for the reset below).
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

DROP INDEX ux_audit_log_prev_row_hmac;
CREATE UNIQUE INDEX ux_audit_log_prev_row_hmac ON audit_log (prev_row_hmac) WHERE prev_row_hmac IS NOT NULL;

ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_boundary_f_markers;
ALTER TABLE audit_log ALTER COLUMN legacy_frozen DROP NOT NULL;

-- Undo the classification made by 0009's upgrade (rows with exactly the
-- marker values it writes); other classifications are left in place.
SELECT set_config('z4j.audit_activation', 'on', true);
UPDATE audit_log
SET legacy_frozen = NULL,
    legacy_origin = NULL,
    legacy_integrity_class = NULL
WHERE legacy_frozen IS TRUE
  AND legacy_origin = 'audit-log:preparation-v1'
  AND legacy_integrity_class IN ('legacy-unsigned', 'legacy-unverifiable-key-unavailable')
  AND hmac_version IS NULL
  AND hmac_key_id IS NULL
  AND chain_generation IS NULL;
SELECT set_config('z4j.audit_activation', '', true);
