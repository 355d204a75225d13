-- message: Audit chain (Boundary F) activation: classify legacy audit rows, audit_chain_state, marker CHECK, final audit_log and audit_chain_state guards

-- The signed genesis audit row and the signed audit_chain_state row of the
-- original revision need the application's audit-chain secret; the
-- application writes them (bootstrap step). This file installs the schema
-- and classifies pre-existing rows as frozen legacy history.

-- Serialise with the application's audit append/retention paths.
SELECT pg_advisory_xact_lock(2050255578);  -- 0x7A346ADA, audit-chain lock
LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE;

-- Classify every not-yet-classified row as frozen legacy history. Without
-- the secret no HMAC can be verified, so signed rows become
-- legacy-unverifiable-key-unavailable and unsigned rows legacy-unsigned.
-- A row that cannot satisfy the marker CHECK below (for example a key id
-- set without a classification) makes the upgrade fail: that history is
-- ambiguous and needs the application's activation ceremony.
SELECT set_config('z4j.audit_activation', 'on', true);
UPDATE audit_log
SET legacy_frozen = true,
    legacy_origin = 'audit-log:preparation-v1',
    legacy_integrity_class = CASE WHEN row_hmac IS NULL THEN 'legacy-unsigned'
                                  ELSE 'legacy-unverifiable-key-unavailable' END
WHERE legacy_frozen IS NULL;
SELECT set_config('z4j.audit_activation', '', true);

ALTER TABLE audit_log ALTER COLUMN legacy_frozen SET NOT NULL;

-- Either an active chain row or a frozen legacy row, nothing in between.
ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_boundary_f_markers CHECK (COALESCE(
    (legacy_frozen = false
        AND hmac_version = 2
        AND hmac_key_id IS NOT NULL
        AND row_hmac IS NOT NULL
        AND legacy_integrity_class IS NULL
        AND legacy_origin IS NULL
        AND chain_generation IS NOT NULL)
    OR
    (legacy_frozen = true
        AND chain_generation IS NULL
        AND legacy_origin IN ('audit-log:preparation-v1',
                              'fork-quarantine:audit-log-v1-15',
                              'fork-quarantine:audit-log-v1-api-key-16')
        AND ((legacy_integrity_class IN ('legacy-linked-verified',
                                         'legacy-standalone-verified',
                                         'legacy-fork-verified')
                AND hmac_version = 1
                AND hmac_key_id IS NOT NULL
                AND row_hmac IS NOT NULL)
             OR (legacy_integrity_class = 'legacy-unsigned'
                AND hmac_version IS NULL
                AND hmac_key_id IS NULL
                AND row_hmac IS NULL)
             OR (legacy_integrity_class IN ('legacy-invalid',
                                            'legacy-unverifiable-key-unavailable')
                AND (hmac_version IS NULL OR hmac_version = 1)
                AND hmac_key_id IS NULL
                AND row_hmac IS NOT NULL))),
    false));

-- The chain link is unique among active rows only; frozen history may fork.
DROP INDEX ux_audit_log_prev_row_hmac;
CREATE UNIQUE INDEX ux_audit_log_prev_row_hmac ON audit_log (prev_row_hmac)
    WHERE prev_row_hmac IS NOT NULL AND legacy_frozen = false;

CREATE TABLE audit_chain_state (
    singleton_id             VARCHAR(32) NOT NULL,
    format_version           INTEGER     NOT NULL,
    generation               UUID        NOT NULL,
    installation_id          UUID        NOT NULL,
    state_key_id             VARCHAR(64) NOT NULL,
    head_row_hmac            VARCHAR(64),
    head_hmac_key_id         VARCHAR(64),
    head_occurred_at         TIMESTAMPTZ,
    head_id                  UUID,
    prune_row_hmac           VARCHAR(64),
    prune_hmac_key_id        VARCHAR(64),
    prune_occurred_at        TIMESTAMPTZ,
    prune_id                 UUID,
    active_row_count         BIGINT      NOT NULL,
    active_key_counts        JSONB       NOT NULL,
    frozen_row_count         BIGINT      NOT NULL,
    frozen_snapshot_digest   VARCHAR(64),
    retired_recovery_binding JSONB,
    state_mac                TEXT        NOT NULL,
    CONSTRAINT pk_audit_chain_state PRIMARY KEY (singleton_id),
    CONSTRAINT ck_audit_chain_state_singleton CHECK (singleton_id = 'audit-chain'),
    CONSTRAINT ck_audit_chain_state_format_version CHECK (format_version = 1),
    CONSTRAINT ck_audit_chain_state_active_row_count CHECK (active_row_count >= 0),
    CONSTRAINT ck_audit_chain_state_frozen_row_count CHECK (frozen_row_count >= 0)
);

-- Final audit_log guard: UPDATE is always refused; DELETE only inside a
-- named audit transition (retention, reset, frozen-export delete).
CREATE OR REPLACE FUNCTION audit_log_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND coalesce(current_setting('z4j.audit_transition', true), '')
           IN ('retention-v1', 'reset-v1', 'frozen-export-delete-v1') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- The chain-state singleton changes only inside a named audit transition.
CREATE FUNCTION audit_chain_state_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF coalesce(current_setting('z4j.audit_transition', true), '')
       IN ('append-v1', 'retention-v1', 'reset-v1', 'frozen-export-delete-v1',
           'key-rotation-v1', 'restore-v1') THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_chain_state: % refused outside an audit transition', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE EXECUTE ON FUNCTION audit_chain_state_forbid_mutation() FROM PUBLIC;

CREATE TRIGGER audit_chain_state_no_update BEFORE UPDATE OR DELETE ON audit_chain_state
    FOR EACH ROW EXECUTE FUNCTION audit_chain_state_forbid_mutation();
