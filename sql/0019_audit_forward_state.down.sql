-- preflight: SELECT NOT EXISTS (SELECT 1 FROM audit_forward_state WHERE last_forwarded_id IS NOT NULL OR last_forwarded_occurred_at IS NOT NULL)

-- Refused while a sink has a forwarding position: losing it would make a
-- later re-upgrade forward the whole audit log again. Delete the cursor
-- rows deliberately if that is acceptable.

DROP TABLE audit_forward_state;
