-- Drops the index; no data involved.

DROP INDEX ix_audit_log_action_pattern;
