-- The tally is derived data (it can be recomputed from audit_log), so the
-- downgrade needs no preflight.

SELECT pg_advisory_xact_lock(2050255578);  -- 0x7A346ADA, audit-chain lock
LOCK TABLE audit_log, audit_chain_state IN EXCLUSIVE MODE;

DROP INDEX ix_commands_schedule_fire_receipt;
DROP TRIGGER audit_log_tally_truncate ON audit_log;
DROP TRIGGER audit_log_tally_rows ON audit_log;
DROP TRIGGER audit_chain_state_protect_tally ON audit_chain_state;
DROP FUNCTION z4j_audit_tally_rows_v1();
DROP FUNCTION z4j_audit_protect_tally_v1();
ALTER TABLE audit_chain_state DROP CONSTRAINT ck_audit_chain_state_observed_active_row_count;
ALTER TABLE audit_chain_state DROP COLUMN observed_active_row_count;
