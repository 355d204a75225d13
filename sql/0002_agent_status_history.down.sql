-- Status history is telemetry (periodic snapshots), not authoritative state,
-- so the downgrade drops it without a preflight. The owned sequence
-- agent_status_history_id_seq goes with the table.

DROP TABLE agent_status_history;
