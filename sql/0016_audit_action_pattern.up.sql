-- message: Index ix_audit_log_action_pattern (action varchar_pattern_ops, occurred_at DESC, source_ip) for action-prefix searches

CREATE INDEX ix_audit_log_action_pattern ON audit_log (action varchar_pattern_ops, occurred_at DESC, source_ip);
