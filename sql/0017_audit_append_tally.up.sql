-- message: Audit append tally: audit_chain_state.observed_active_row_count kept by ALWAYS triggers on audit_log, plus index ix_commands_schedule_fire_receipt

SELECT pg_advisory_xact_lock(2050255578);  -- 0x7A346ADA, audit-chain lock
LOCK TABLE audit_log, audit_chain_state IN EXCLUSIVE MODE;

ALTER TABLE audit_chain_state ADD COLUMN observed_active_row_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_chain_state ADD CONSTRAINT ck_audit_chain_state_observed_active_row_count
    CHECK (observed_active_row_count >= 0);

-- Seed the counter of an existing chain-state row (before the protecting
-- trigger exists); the state guard only lets it change inside a transition.
SELECT set_config('z4j.audit_transition', 'append-v1', true);
UPDATE audit_chain_state
SET observed_active_row_count = (SELECT count(*) FROM audit_log WHERE legacy_frozen = false);
SELECT set_config('z4j.audit_transition', '', true);

-- On INSERT of the chain state the counter is computed from audit_log; on
-- UPDATE it may only be changed by the audit_log tally trigger (nested).
CREATE FUNCTION z4j_audit_protect_tally_v1() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.observed_active_row_count := (SELECT count(*) FROM audit_log WHERE legacy_frozen = false);
        RETURN NEW;
    END IF;
    IF NEW.observed_active_row_count IS DISTINCT FROM OLD.observed_active_row_count
       AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'audit_chain_state.observed_active_row_count is maintained by the audit_log tally trigger'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION z4j_audit_protect_tally_v1() FROM PUBLIC;

-- +1 / -1 per active (non-frozen) audit_log row inserted / deleted, both on
-- an UPDATE that flips legacy_frozen; TRUNCATE resets the counter to 0.
CREATE FUNCTION z4j_audit_tally_rows_v1() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    delta bigint := 0;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE audit_chain_state SET observed_active_row_count = 0 WHERE singleton_id = 'audit-chain';
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF OLD.legacy_frozen = false THEN
            delta := delta - 1;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NEW.legacy_frozen = false THEN
            delta := delta + 1;
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.legacy_frozen = false AND NEW.chain_generation IS DISTINCT FROM OLD.chain_generation THEN
            RAISE EXCEPTION 'audit_log: the chain_generation of an active row cannot change'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF delta <> 0 THEN
        UPDATE audit_chain_state
        SET observed_active_row_count = observed_active_row_count + delta
        WHERE singleton_id = 'audit-chain';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit_chain_state row is missing; active audit rows cannot be tallied'
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION z4j_audit_tally_rows_v1() FROM PUBLIC;

CREATE TRIGGER audit_chain_state_protect_tally BEFORE INSERT OR UPDATE ON audit_chain_state
    FOR EACH ROW EXECUTE FUNCTION z4j_audit_protect_tally_v1();
CREATE TRIGGER audit_log_tally_rows AFTER INSERT OR UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION z4j_audit_tally_rows_v1();
CREATE TRIGGER audit_log_tally_truncate AFTER TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION z4j_audit_tally_rows_v1();

-- Fire even with session_replication_role = replica.
ALTER TABLE audit_chain_state ENABLE ALWAYS TRIGGER audit_chain_state_protect_tally;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_tally_rows;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_tally_truncate;

CREATE INDEX ix_commands_schedule_fire_receipt ON commands (schedule_id, schedule_fire_id, schedule_receipt_control_token);
