-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedule_revision_state WHERE guard_version IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM schedule_external_epoch_allocator)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedule_terminal_holds) AND NOT EXISTS (SELECT 1 FROM schedule_occurrence_resolutions) AND NOT EXISTS (SELECT 1 FROM schedule_owner_cutovers)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedule_external_streams) AND NOT EXISTS (SELECT 1 FROM schedule_external_stream_epochs) AND NOT EXISTS (SELECT 1 FROM schedule_external_projections) AND NOT EXISTS (SELECT 1 FROM schedule_external_snapshot_frames) AND NOT EXISTS (SELECT 1 FROM schedule_external_control_operations)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedules WHERE num_nonnulls(quarantine_control_token, quarantine_code, quarantine_detail, quarantined_at, external_stream_id, external_epoch_uuid, external_epoch_number, external_source_key, external_source_sequence) > 0)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM commands WHERE schedule_protocol_marker IS NOT NULL AND status IN ('pending', 'dispatched'))
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedule_fires GROUP BY fire_id, scheduled_for HAVING count(*) > 1) AND NOT EXISTS (SELECT 1 FROM pending_fires GROUP BY fire_id HAVING count(*) > 1)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM commands c WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = c.project_id)) AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.agent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = c.agent_id))
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedule_fires f WHERE NOT EXISTS (SELECT 1 FROM schedules s WHERE s.id = f.schedule_id) OR NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = f.project_id) OR (f.command_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.id = f.command_id)))

-- The upstream revision is irreversible because schedule authority cannot
-- be handed back once it exists. This downgrade is therefore refused when:
-- the guards were activated or the external-epoch allocator exists; any
-- schedule-control evidence row exists (holds, resolutions, cutovers,
-- external streams/epochs/projections/frames/control operations); a
-- schedule is quarantined or bound to an external stream; a schedule.fire
-- command is still in flight under the protocol; a fire id would collide
-- under the restored pre-1.8 unique constraints; or a row points at a
-- deleted project, agent, schedule or command (the restored foreign keys
-- would reject it). The change log and the revision singleton hold only
-- bookkeeping while the guards are inactive and are dropped.

LOCK TABLE schedules, commands, schedule_fires, pending_fires IN ACCESS EXCLUSIVE MODE;

-- pending_fires
DROP INDEX uq_pending_fires_legacy_fire;
ALTER TABLE pending_fires DROP CONSTRAINT uq_pending_fires_fire_receipt;
ALTER TABLE pending_fires ADD CONSTRAINT uq_pending_fires_fire_id UNIQUE (fire_id);
ALTER TABLE pending_fires DROP COLUMN execution_fire_id;
ALTER TABLE pending_fires DROP COLUMN acceptance_revision;
ALTER TABLE pending_fires DROP COLUMN prepared_next_run_at;
ALTER TABLE pending_fires DROP COLUMN expected_next_run_at;
ALTER TABLE pending_fires DROP COLUMN expected_last_run_at;
ALTER TABLE pending_fires DROP COLUMN expected_schedule_revision;
ALTER TABLE pending_fires DROP COLUMN definition_digest;
ALTER TABLE pending_fires DROP COLUMN receipt_control_token;
ALTER TABLE pending_fires DROP COLUMN observed_control_token;
ALTER TABLE pending_fires DROP COLUMN state_write_nonce;
ALTER TABLE pending_fires DROP COLUMN protocol_marker;

-- schedule_fires
DROP INDEX uq_schedule_fires_legacy_fire;
ALTER TABLE schedule_fires DROP CONSTRAINT uq_schedule_fires_fire_receipt;
ALTER TABLE schedule_fires ADD CONSTRAINT uq_schedule_fires_fire_id UNIQUE (fire_id, scheduled_for);
ALTER TABLE schedule_fires DROP COLUMN prepared_next_run_at;
ALTER TABLE schedule_fires DROP COLUMN expected_next_run_at;
ALTER TABLE schedule_fires DROP COLUMN expected_last_run_at;
ALTER TABLE schedule_fires DROP COLUMN expected_schedule_revision;
ALTER TABLE schedule_fires DROP COLUMN definition_digest;
ALTER TABLE schedule_fires DROP COLUMN acceptance_revision;
ALTER TABLE schedule_fires DROP COLUMN receipt_control_token;
ALTER TABLE schedule_fires DROP COLUMN observed_control_token;
ALTER TABLE schedule_fires DROP COLUMN state_write_nonce;
ALTER TABLE schedule_fires DROP COLUMN protocol_marker;
ALTER TABLE schedule_fires DROP COLUMN scheduler_ack_error_message;
ALTER TABLE schedule_fires DROP COLUMN scheduler_ack_error_code;
ALTER TABLE schedule_fires DROP COLUMN scheduler_ack_task_id;
ALTER TABLE schedule_fires DROP COLUMN scheduler_acknowledged_at;
ALTER TABLE schedule_fires DROP COLUMN scheduler_ack_status;
ALTER TABLE schedule_fires ADD CONSTRAINT schedule_fires_schedule_id_fkey
    FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE;
ALTER TABLE schedule_fires ADD CONSTRAINT schedule_fires_project_id_fkey
    FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE schedule_fires ADD CONSTRAINT schedule_fires_command_id_fkey
    FOREIGN KEY (command_id) REFERENCES commands (id) ON DELETE SET NULL;

-- commands
ALTER TABLE commands DROP COLUMN agent_acknowledged_at;
ALTER TABLE commands DROP COLUMN delivery_claim_token;
ALTER TABLE commands DROP COLUMN delivery_session_generation;
ALTER TABLE commands DROP COLUMN delivery_registry_owner_id;
ALTER TABLE commands DROP COLUMN delivery_transport_kind;
ALTER TABLE commands DROP COLUMN cadence_redelivery_deadline;
ALTER TABLE commands DROP COLUMN first_delivery_claimed_at;
ALTER TABLE commands DROP COLUMN cadence_initial_claim_deadline;
ALTER TABLE commands DROP COLUMN schedule_next_run_at;
ALTER TABLE commands DROP COLUMN schedule_expected_next_run_at;
ALTER TABLE commands DROP COLUMN schedule_expected_last_run_at;
ALTER TABLE commands DROP COLUMN schedule_expected_revision;
ALTER TABLE commands DROP COLUMN schedule_definition_digest;
ALTER TABLE commands DROP COLUMN schedule_acceptance_revision;
ALTER TABLE commands DROP COLUMN schedule_execution_fire_id;
ALTER TABLE commands DROP COLUMN schedule_receipt_control_token;
ALTER TABLE commands DROP COLUMN schedule_observed_control_token;
ALTER TABLE commands DROP COLUMN schedule_scheduled_for;
ALTER TABLE commands DROP COLUMN schedule_fire_id;
ALTER TABLE commands DROP COLUMN schedule_id;
ALTER TABLE commands DROP COLUMN schedule_state_nonce;
ALTER TABLE commands DROP COLUMN schedule_protocol_marker;
ALTER TABLE commands ADD CONSTRAINT fk_commands_project_id_projects
    FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE commands ADD CONSTRAINT fk_commands_agent_id_agents
    FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE SET NULL;

-- schedules
DROP INDEX uq_schedules_external_stream_source_key;
ALTER TABLE schedules DROP CONSTRAINT ck_schedules_external_authority_pairing;
ALTER TABLE schedules DROP COLUMN external_source_sequence;
ALTER TABLE schedules DROP COLUMN external_source_key;
ALTER TABLE schedules DROP COLUMN external_epoch_number;
ALTER TABLE schedules DROP COLUMN external_epoch_uuid;
ALTER TABLE schedules DROP COLUMN external_stream_id;
ALTER TABLE schedules DROP COLUMN last_cadence_acceptance_revision;
ALTER TABLE schedules DROP COLUMN last_cadence_acceptance_scheduled_for;
ALTER TABLE schedules DROP COLUMN last_cadence_acceptance_fire_id;
ALTER TABLE schedules DROP COLUMN last_cadence_acceptance_control_token;
ALTER TABLE schedules DROP COLUMN quarantined_at;
ALTER TABLE schedules DROP COLUMN quarantine_detail;
ALTER TABLE schedules DROP COLUMN quarantine_code;
ALTER TABLE schedules DROP COLUMN quarantine_control_token;
ALTER TABLE schedules DROP COLUMN cadence_runtime_fingerprint;
ALTER TABLE schedules DROP COLUMN cadence_semantics_version;
ALTER TABLE schedules DROP COLUMN definition_digest;
ALTER TABLE schedules DROP COLUMN schedule_revision;
ALTER TABLE schedules DROP COLUMN legacy_fire_control_token;
ALTER TABLE schedules DROP COLUMN control_token;

-- schedule-control tables
DROP TABLE schedule_owner_cutovers;
DROP TABLE schedule_external_control_operations;
DROP TABLE schedule_external_snapshot_frames;
DROP TABLE schedule_external_projections;
DROP TABLE schedule_external_stream_epochs;
DROP TABLE schedule_external_streams;
DROP TABLE schedule_external_epoch_allocator;
DROP TABLE schedule_occurrence_resolutions;
DROP TABLE schedule_terminal_holds;
DROP TABLE schedule_change_log;
DROP TABLE schedule_revision_state;
