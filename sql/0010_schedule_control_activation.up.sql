-- message: Schedule control (Boundary D) schema: 11 schedule-control tables, control columns on schedules/commands/schedule_fires/pending_fires, identity backfill, FK drops, generation-scoped uniques

-- Out of scope here (application logic): the Boundary-D guard triggers and
-- their helper functions, the signed audit row, and the activation of the
-- singletons (the external-epoch allocator row carries the id of that
-- signed audit row, so the application creates it). This file creates the
-- tables, columns and constraints those features use, seeds the
-- schedule_revision_state singleton (not activated) and backfills the
-- control identity of existing z4j-scheduler-owned schedules.

-- Schedules owned by an external scheduler need an external stream and
-- epoch, which only the application's activation can allocate.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM schedules WHERE scheduler <> 'z4j-scheduler') THEN
        RAISE EXCEPTION 'schedules owned by an external scheduler exist; Boundary D activation for them needs the z4j application (external stream backfill)'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

LOCK TABLE schedules, commands, schedule_fires, pending_fires IN SHARE ROW EXCLUSIVE MODE;

-- Schedule-control tables (no foreign keys by design) -----------------------

CREATE TABLE schedule_revision_state (
    singleton_id               VARCHAR(32) NOT NULL,
    current_revision           BIGINT      NOT NULL,
    change_log_pruned_through  BIGINT      NOT NULL,
    guard_version              INTEGER,
    activation_id              UUID,
    activation_manifest_digest VARCHAR(64),
    activation_audit_id        UUID,
    CONSTRAINT pk_schedule_revision_state PRIMARY KEY (singleton_id),
    CONSTRAINT ck_schedule_revision_state_singleton CHECK (singleton_id = 'schedule-revision'),
    CONSTRAINT ck_schedule_revision_state_current_revision CHECK (current_revision >= 0),
    CONSTRAINT ck_schedule_revision_state_pruned_through
        CHECK (change_log_pruned_through >= 0 AND change_log_pruned_through <= current_revision),
    CONSTRAINT ck_schedule_revision_state_activation CHECK (
        num_nulls(guard_version, activation_id, activation_manifest_digest, activation_audit_id) = 4
        OR (num_nonnulls(guard_version, activation_id, activation_manifest_digest, activation_audit_id) = 4
            AND guard_version = 1))
);

CREATE TABLE schedule_change_log (
    revision         BIGSERIAL   NOT NULL,
    project_id       UUID        NOT NULL,
    schedule_id      UUID        NOT NULL,
    schedule_owner   VARCHAR(40) NOT NULL,
    change_kind      VARCHAR(16) NOT NULL,
    protocol_version INTEGER     NOT NULL,
    snapshot         JSONB,
    occurred_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_schedule_change_log PRIMARY KEY (revision),
    CONSTRAINT ck_schedule_change_log_revision CHECK (revision > 0),
    CONSTRAINT ck_schedule_change_log_kind CHECK (change_kind IN ('upsert', 'delete', 'gap')),
    CONSTRAINT ck_schedule_change_log_snapshot CHECK (
        (change_kind = 'upsert' AND snapshot IS NOT NULL)
        OR (change_kind IN ('delete', 'gap') AND snapshot IS NULL)),
    CONSTRAINT ck_schedule_change_log_protocol_version CHECK (protocol_version = 1)
);
CREATE INDEX ix_schedule_change_log_project_id ON schedule_change_log (project_id);
CREATE INDEX ix_schedule_change_log_schedule_id ON schedule_change_log (schedule_id);
CREATE INDEX ix_schedule_change_log_schedule_owner ON schedule_change_log (schedule_owner);

CREATE TABLE schedule_terminal_holds (
    id                          UUID          NOT NULL,
    project_id                  UUID          NOT NULL,
    schedule_id                 UUID          NOT NULL,
    fire_id                     UUID          NOT NULL,
    scheduled_for               TIMESTAMPTZ   NOT NULL,
    command_id                  UUID          NOT NULL,
    observed_control_token      UUID          NOT NULL,
    receipt_control_token       UUID          NOT NULL,
    acceptance_revision         BIGINT        NOT NULL,
    terminal_status             VARCHAR(32)   NOT NULL,
    terminal_detail             VARCHAR(1024),
    state_write_nonce           UUID          NOT NULL,
    created_at                  TIMESTAMPTZ   NOT NULL,
    resolved_at                 TIMESTAMPTZ,
    resolved_by                 UUID,
    resolution_disposition      VARCHAR(32),
    resolution_source           VARCHAR(32),
    work_may_have_executed      BOOLEAN,
    resolution_control_token    UUID,
    deletion_tombstone_revision BIGINT,
    CONSTRAINT pk_schedule_terminal_holds PRIMARY KEY (id),
    CONSTRAINT uq_schedule_terminal_hold_identity UNIQUE (fire_id, scheduled_for, receipt_control_token),
    CONSTRAINT ck_schedule_terminal_holds_resolution_shape CHECK (COALESCE(
        (resolved_at IS NULL AND resolved_by IS NULL AND resolution_disposition IS NULL
            AND resolution_source IS NULL AND work_may_have_executed IS NULL
            AND resolution_control_token IS NULL AND deletion_tombstone_revision IS NULL)
        OR (resolved_at IS NOT NULL AND resolution_disposition = 'OPERATOR_SKIPPED'
            AND resolved_by IS NOT NULL AND resolution_source = 'OPERATOR'
            AND work_may_have_executed = true AND resolution_control_token IS NOT NULL
            AND deletion_tombstone_revision IS NULL)
        OR (resolved_at IS NOT NULL AND resolution_disposition = 'SCHEDULE_DELETED'
            AND resolution_source = 'SCHEDULE_DELETE' AND resolution_control_token IS NULL
            AND deletion_tombstone_revision IS NOT NULL),
        false))
);
CREATE UNIQUE INDEX uq_schedule_terminal_hold_unresolved_schedule ON schedule_terminal_holds (schedule_id)
    WHERE resolved_at IS NULL;
CREATE INDEX ix_schedule_terminal_holds_project ON schedule_terminal_holds (project_id, created_at);

CREATE TABLE schedule_occurrence_resolutions (
    id                          UUID        NOT NULL,
    project_id                  UUID        NOT NULL,
    schedule_id                 UUID        NOT NULL,
    fire_id                     UUID        NOT NULL,
    scheduled_for               TIMESTAMPTZ NOT NULL,
    command_id                  UUID,
    source_evidence_kind        VARCHAR(32) NOT NULL,
    source_evidence_id          UUID        NOT NULL,
    authority_kind              VARCHAR(16) NOT NULL,
    observed_control_token      UUID,
    receipt_control_token       UUID,
    command_status              VARCHAR(32) NOT NULL,
    work_may_have_executed      BOOLEAN     NOT NULL,
    resolution_disposition      VARCHAR(32) NOT NULL,
    resolved_at                 TIMESTAMPTZ NOT NULL,
    resolved_by                 UUID,
    resolution_source           VARCHAR(32) NOT NULL,
    resolution_control_token    UUID,
    deletion_tombstone_revision BIGINT,
    state_write_nonce           UUID        NOT NULL,
    CONSTRAINT pk_schedule_occurrence_resolutions PRIMARY KEY (id),
    CONSTRAINT uq_schedule_occurrence_resolution_evidence UNIQUE (source_evidence_kind, source_evidence_id),
    CONSTRAINT uq_schedule_occurrence_resolution_occurrence
        UNIQUE (schedule_id, fire_id, scheduled_for, authority_kind, command_id),
    CONSTRAINT ck_schedule_occurrence_resolutions_source_kind
        CHECK (source_evidence_kind IN ('COMMAND', 'PENDING_FIRE', 'SCHEDULE_FIRE')),
    CONSTRAINT ck_schedule_occurrence_resolutions_authority_kind
        CHECK (authority_kind IN ('LEGACY_NULL', 'TOKEN')),
    CONSTRAINT ck_schedule_occurrence_resolutions_disposition
        CHECK (resolution_disposition IN ('OPERATOR_SKIPPED', 'SCHEDULE_DELETED')),
    CONSTRAINT ck_schedule_occurrence_resolutions_exit_shape CHECK (COALESCE(
        (resolution_disposition = 'OPERATOR_SKIPPED' AND resolved_by IS NOT NULL
            AND resolution_source = 'OPERATOR' AND work_may_have_executed = true
            AND resolution_control_token IS NOT NULL AND deletion_tombstone_revision IS NULL)
        OR (resolution_disposition = 'SCHEDULE_DELETED' AND resolution_source = 'SCHEDULE_DELETE'
            AND resolution_control_token IS NULL AND deletion_tombstone_revision IS NOT NULL),
        false)),
    CONSTRAINT ck_schedule_occurrence_resolutions_authority_token CHECK (
        (authority_kind = 'LEGACY_NULL' AND receipt_control_token IS NULL)
        OR (authority_kind = 'TOKEN' AND receipt_control_token IS NOT NULL))
);
CREATE INDEX ix_schedule_occurrence_resolution_schedule ON schedule_occurrence_resolutions (schedule_id, resolved_at);
CREATE INDEX ix_schedule_occurrence_resolution_fire ON schedule_occurrence_resolutions (fire_id, scheduled_for);
CREATE UNIQUE INDEX uq_schedule_occurrence_resolution_legacy_commandless
    ON schedule_occurrence_resolutions (schedule_id, fire_id, scheduled_for, authority_kind)
    WHERE command_id IS NULL AND authority_kind = 'LEGACY_NULL';
CREATE UNIQUE INDEX uq_schedule_occurrence_resolution_token_commandless
    ON schedule_occurrence_resolutions (schedule_id, fire_id, scheduled_for, receipt_control_token)
    WHERE command_id IS NULL AND authority_kind = 'TOKEN';

CREATE TABLE schedule_external_epoch_allocator (
    singleton_id               VARCHAR(40) NOT NULL,
    current_epoch_number       BIGINT      NOT NULL,
    guard_version              INTEGER     NOT NULL,
    activation_id              UUID        NOT NULL,
    activation_manifest_digest VARCHAR(64) NOT NULL,
    activation_audit_id        UUID        NOT NULL,
    CONSTRAINT pk_schedule_external_epoch_allocator PRIMARY KEY (singleton_id),
    CONSTRAINT ck_schedule_external_epoch_allocator_singleton CHECK (singleton_id = 'schedule-external-epoch'),
    CONSTRAINT ck_schedule_external_epoch_allocator_epoch CHECK (current_epoch_number >= 0),
    CONSTRAINT ck_schedule_external_epoch_allocator_guard_version CHECK (guard_version = 1)
);

CREATE TABLE schedule_external_streams (
    id                             UUID         NOT NULL,
    project_id                     UUID         NOT NULL,
    owner                          VARCHAR(40)  NOT NULL,
    source_scope                   VARCHAR(500) NOT NULL,
    source_scope_digest            VARCHAR(64)  NOT NULL,
    current_epoch_uuid             UUID         NOT NULL,
    current_epoch_number           BIGINT       NOT NULL,
    phase                          VARCHAR(40)  NOT NULL,
    authorized_adapter_instance_id VARCHAR(200),
    executor_agent_id              UUID,
    executor_registry_owner_id     UUID,
    executor_session_generation    VARCHAR(200),
    executor_worker_id             VARCHAR(200),
    accepted_sequence              BIGINT       NOT NULL DEFAULT 0,
    sealed_sequence                BIGINT,
    last_snapshot_digest           VARCHAR(64),
    last_projection_digest         VARCHAR(64),
    activation_requirement         VARCHAR(100),
    created_at                     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at                     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_schedule_external_streams PRIMARY KEY (id),
    CONSTRAINT uq_schedule_external_streams_project_owner_scope UNIQUE (project_id, owner, source_scope),
    CONSTRAINT uq_schedule_external_streams_id_epoch UNIQUE (id, current_epoch_uuid),
    CONSTRAINT ck_schedule_external_streams_owner CHECK (owner <> 'z4j-scheduler'),
    CONSTRAINT ck_schedule_external_streams_epoch_number CHECK (current_epoch_number > 0),
    CONSTRAINT ck_schedule_external_streams_accepted_sequence CHECK (accepted_sequence >= 0),
    CONSTRAINT ck_schedule_external_streams_sealed_sequence
        CHECK (sealed_sequence IS NULL OR sealed_sequence >= accepted_sequence),
    CONSTRAINT ck_schedule_external_streams_phase CHECK (phase IN (
        'ACTIVATING', 'ACTIVE', 'DRAINING', 'SEALED', 'RETIRED', 'AMBIGUOUS',
        'RESTORE_REACTIVATION_REQUIRED')),
    CONSTRAINT ck_schedule_external_streams_executor_authority CHECK (
        num_nonnulls(authorized_adapter_instance_id, executor_agent_id,
                     executor_registry_owner_id, executor_session_generation) IN (0, 4))
);
CREATE INDEX ix_schedule_external_streams_project_id ON schedule_external_streams (project_id);
CREATE INDEX ix_schedule_external_stream_owner_scope ON schedule_external_streams (project_id, owner, source_scope_digest);

CREATE TABLE schedule_external_stream_epochs (
    epoch_uuid                     UUID         NOT NULL,
    epoch_number                   BIGINT       NOT NULL,
    stream_id                      UUID         NOT NULL,
    phase                          VARCHAR(40)  NOT NULL,
    authorized_adapter_instance_id VARCHAR(200),
    executor_agent_id              UUID,
    executor_registry_owner_id     UUID,
    executor_session_generation    VARCHAR(200),
    executor_worker_id             VARCHAR(200),
    accepted_sequence              BIGINT       NOT NULL DEFAULT 0,
    sealed_sequence                BIGINT,
    last_snapshot_digest           VARCHAR(64),
    last_projection_digest         VARCHAR(64),
    activation_requirement         VARCHAR(100),
    created_at                     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    activated_at                   TIMESTAMPTZ,
    sealed_at                      TIMESTAMPTZ,
    retired_at                     TIMESTAMPTZ,
    CONSTRAINT pk_schedule_external_stream_epochs PRIMARY KEY (epoch_uuid),
    CONSTRAINT uq_schedule_external_stream_epochs_epoch_number UNIQUE (epoch_number),
    CONSTRAINT uq_schedule_external_stream_epochs_stream_number UNIQUE (stream_id, epoch_number),
    CONSTRAINT ck_schedule_external_stream_epochs_epoch_number CHECK (epoch_number > 0),
    CONSTRAINT ck_schedule_external_stream_epochs_accepted_sequence CHECK (accepted_sequence >= 0),
    CONSTRAINT ck_schedule_external_stream_epochs_sealed_sequence
        CHECK (sealed_sequence IS NULL OR sealed_sequence >= accepted_sequence),
    CONSTRAINT ck_schedule_external_stream_epochs_phase CHECK (phase IN (
        'ACTIVATING', 'ACTIVE', 'DRAINING', 'SEALED', 'RETIRED', 'AMBIGUOUS',
        'RESTORE_REACTIVATION_REQUIRED')),
    CONSTRAINT ck_schedule_external_stream_epochs_executor_authority CHECK (
        num_nonnulls(authorized_adapter_instance_id, executor_agent_id,
                     executor_registry_owner_id, executor_session_generation) IN (0, 4))
);
CREATE INDEX ix_schedule_external_stream_epochs_stream_id ON schedule_external_stream_epochs (stream_id);

CREATE TABLE schedule_external_projections (
    id              UUID        NOT NULL,
    stream_id       UUID        NOT NULL,
    epoch_uuid      UUID        NOT NULL,
    epoch_number    BIGINT      NOT NULL,
    sequence        BIGINT      NOT NULL,
    kind            VARCHAR(40) NOT NULL,
    payload_digest  VARCHAR(64) NOT NULL,
    source_keys     JSONB       NOT NULL,
    mutation_digest VARCHAR(64) NOT NULL,
    operation_id    UUID,
    accepted_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_schedule_external_projections PRIMARY KEY (id),
    CONSTRAINT uq_schedule_external_projections_stream_epoch_sequence UNIQUE (stream_id, epoch_uuid, sequence),
    CONSTRAINT ck_schedule_external_projections_positive CHECK (epoch_number > 0 AND sequence > 0)
);
CREATE INDEX ix_schedule_external_projections_stream_id ON schedule_external_projections (stream_id);

CREATE TABLE schedule_external_snapshot_frames (
    id                  UUID         NOT NULL,
    project_id          UUID         NOT NULL,
    stream_id           UUID         NOT NULL,
    epoch_uuid          UUID         NOT NULL,
    epoch_number        BIGINT       NOT NULL,
    sequence            BIGINT       NOT NULL,
    snapshot_id         UUID         NOT NULL,
    frame_kind          VARCHAR(20)  NOT NULL,
    frame_index         INTEGER      NOT NULL,
    frame_count         INTEGER      NOT NULL,
    row_count           INTEGER      NOT NULL,
    owner               VARCHAR(40)  NOT NULL,
    source_scope        VARCHAR(500) NOT NULL,
    adapter_instance_id VARCHAR(200) NOT NULL,
    snapshot_digest     VARCHAR(64)  NOT NULL,
    frame_digest        VARCHAR(64)  NOT NULL,
    stable_source       BOOLEAN      NOT NULL,
    schedules           JSONB        NOT NULL,
    received_at         TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_schedule_external_snapshot_frames PRIMARY KEY (id),
    CONSTRAINT uq_schedule_external_snapshot_frames_frame UNIQUE (stream_id, epoch_uuid, sequence, frame_index),
    CONSTRAINT ck_schedule_external_snapshot_frames_positive CHECK (epoch_number > 0 AND sequence > 0),
    CONSTRAINT ck_schedule_external_snapshot_frames_counts CHECK (
        frame_count >= 0 AND row_count >= 0 AND frame_index >= 0 AND frame_index <= frame_count),
    CONSTRAINT ck_schedule_external_snapshot_frames_kind CHECK (frame_kind IN ('rows', 'terminal'))
);
CREATE INDEX ix_schedule_external_snapshot_frames_project_id ON schedule_external_snapshot_frames (project_id);
CREATE INDEX ix_schedule_external_snapshot_frames_stream_id ON schedule_external_snapshot_frames (stream_id);
CREATE INDEX ix_schedule_external_snapshot_assembly
    ON schedule_external_snapshot_frames (stream_id, epoch_uuid, sequence, snapshot_id);

CREATE TABLE schedule_external_control_operations (
    id                         UUID         NOT NULL,
    request_idempotency_key    VARCHAR(200) NOT NULL,
    schedule_id                UUID         NOT NULL,
    command_id                 UUID         NOT NULL,
    agent_id                   UUID         NOT NULL,
    stream_id                  UUID         NOT NULL,
    epoch_uuid                 UUID         NOT NULL,
    epoch_number               BIGINT       NOT NULL,
    source_key                 VARCHAR(500) NOT NULL,
    expected_accepted_sequence BIGINT       NOT NULL,
    expected_schedule_revision BIGINT       NOT NULL,
    expected_control_token     UUID         NOT NULL,
    prior_projection           JSONB        NOT NULL,
    prior_projection_digest    VARCHAR(64)  NOT NULL,
    desired_projection         JSONB        NOT NULL,
    desired_projection_digest  VARCHAR(64)  NOT NULL,
    status                     VARCHAR(20)  NOT NULL DEFAULT 'PENDING',
    adapter_instance_id        VARCHAR(200) NOT NULL,
    session_generation         VARCHAR(200) NOT NULL,
    registry_owner_id          UUID         NOT NULL,
    dispatch_lease             UUID,
    reserved_sequence          BIGINT,
    result_projection_id       UUID,
    state_nonce                UUID         NOT NULL,
    created_at                 TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at                 TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_schedule_external_control_operations PRIMARY KEY (id),
    CONSTRAINT uq_schedule_external_control_operations_command_id UNIQUE (command_id),
    CONSTRAINT uq_schedule_external_control_operations_stream_key UNIQUE (stream_id, request_idempotency_key),
    CONSTRAINT ck_schedule_external_control_operations_epoch_sequence
        CHECK (epoch_number > 0 AND expected_accepted_sequence >= 0),
    CONSTRAINT ck_schedule_external_control_operations_schedule_revision
        CHECK (expected_schedule_revision > 0),
    CONSTRAINT ck_schedule_external_control_operations_reserved_sequence
        CHECK (reserved_sequence IS NULL OR reserved_sequence > 0),
    CONSTRAINT ck_schedule_external_control_operations_status CHECK (status IN (
        'PENDING', 'CLAIMED', 'APPLIED', 'FAILED', 'AMBIGUOUS', 'CANCELLED'))
);
CREATE INDEX ix_schedule_external_control_operations_schedule_id ON schedule_external_control_operations (schedule_id);
CREATE INDEX ix_schedule_external_control_operations_stream_id ON schedule_external_control_operations (stream_id);
CREATE UNIQUE INDEX uq_schedule_external_control_unresolved ON schedule_external_control_operations (stream_id)
    WHERE status IN ('PENDING', 'CLAIMED', 'AMBIGUOUS');

CREATE TABLE schedule_owner_cutovers (
    id                            UUID         NOT NULL,
    project_id                    UUID         NOT NULL,
    from_owner                    VARCHAR(40)  NOT NULL,
    to_owner                      VARCHAR(40)  NOT NULL,
    source_scope                  VARCHAR(500) NOT NULL,
    preview_manifest_digest       VARCHAR(64)  NOT NULL,
    preview_manifest              JSONB        NOT NULL,
    cursor_policy                 VARCHAR(40)  NOT NULL,
    quiescence_attestation        JSONB        NOT NULL,
    quiescence_attestation_digest VARCHAR(64)  NOT NULL,
    source_stream_manifest        JSONB        NOT NULL,
    target_stream_id              UUID,
    result_manifest               JSONB        NOT NULL,
    result_manifest_digest        VARCHAR(64)  NOT NULL,
    completed_at                  TIMESTAMPTZ  NOT NULL,
    created_at                    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_schedule_owner_cutovers PRIMARY KEY (id),
    CONSTRAINT ck_schedule_owner_cutovers_owner_change CHECK (from_owner <> to_owner),
    CONSTRAINT ck_schedule_owner_cutovers_cursor_policy
        CHECK (cursor_policy IN ('PRESERVE', 'PRESERVE_FUTURE', 'RESET_CURSOR'))
);
CREATE INDEX ix_schedule_owner_cutovers_project_id ON schedule_owner_cutovers (project_id);

-- schedules gain control identity, quarantine, cadence acceptance, external authority

ALTER TABLE schedules ADD COLUMN control_token UUID;
ALTER TABLE schedules ADD COLUMN legacy_fire_control_token UUID;
ALTER TABLE schedules ADD COLUMN schedule_revision BIGINT;
ALTER TABLE schedules ADD COLUMN definition_digest VARCHAR(64);
ALTER TABLE schedules ADD COLUMN cadence_semantics_version INTEGER;
ALTER TABLE schedules ADD COLUMN cadence_runtime_fingerprint VARCHAR(64);
ALTER TABLE schedules ADD COLUMN quarantine_control_token UUID;
ALTER TABLE schedules ADD COLUMN quarantine_code VARCHAR(64);
ALTER TABLE schedules ADD COLUMN quarantine_detail VARCHAR(500);
ALTER TABLE schedules ADD COLUMN quarantined_at TIMESTAMPTZ;
ALTER TABLE schedules ADD COLUMN last_cadence_acceptance_control_token UUID;
ALTER TABLE schedules ADD COLUMN last_cadence_acceptance_fire_id UUID;
ALTER TABLE schedules ADD COLUMN last_cadence_acceptance_scheduled_for TIMESTAMPTZ;
ALTER TABLE schedules ADD COLUMN last_cadence_acceptance_revision BIGINT;
ALTER TABLE schedules ADD COLUMN external_stream_id UUID;
ALTER TABLE schedules ADD COLUMN external_epoch_uuid UUID;
ALTER TABLE schedules ADD COLUMN external_epoch_number BIGINT;
ALTER TABLE schedules ADD COLUMN external_source_key VARCHAR(500);
ALTER TABLE schedules ADD COLUMN external_source_sequence BIGINT;

-- Backfill gives one revision per existing schedule (in creation order), a fresh
-- control token, a digest of the definition, and the matching change-log
-- upsert row. The singleton starts at the number of revisions handed out.
INSERT INTO schedule_revision_state (singleton_id, current_revision, change_log_pruned_through)
VALUES ('schedule-revision', 0, 0);

WITH ordered AS (
    SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn
    FROM schedules
)
UPDATE schedules s
SET control_token = gen_random_uuid(),
    schedule_revision = o.rn,
    cadence_semantics_version = 1,
    cadence_runtime_fingerprint = encode(sha256(convert_to('z4j-migrate:legacy-cadence-runtime:v1', 'UTF8')), 'hex'),
    definition_digest = encode(sha256(convert_to(jsonb_build_object(
        'engine', s.engine, 'scheduler', s.scheduler, 'name', s.name,
        'task_name', s.task_name, 'kind', s.kind, 'expression', s.expression,
        'timezone', s.timezone, 'queue', s.queue, 'priority', s.priority,
        'args', s.args, 'kwargs', s.kwargs, 'is_enabled', s.is_enabled,
        'catch_up', s.catch_up)::text, 'UTF8')), 'hex')
FROM ordered o
WHERE o.id = s.id;

INSERT INTO schedule_change_log (revision, project_id, schedule_id, schedule_owner,
                                 change_kind, protocol_version, snapshot)
SELECT s.schedule_revision, s.project_id, s.id, s.scheduler, 'upsert', 1,
       jsonb_build_object(
           'id', s.id, 'project_id', s.project_id, 'engine', s.engine,
           'scheduler', s.scheduler, 'name', s.name, 'task_name', s.task_name,
           'kind', s.kind, 'expression', s.expression, 'timezone', s.timezone,
           'queue', s.queue, 'priority', s.priority, 'args', s.args,
           'kwargs', s.kwargs, 'is_enabled', s.is_enabled, 'catch_up', s.catch_up,
           'last_run_at', s.last_run_at, 'next_run_at', s.next_run_at,
           'control_token', s.control_token, 'schedule_revision', s.schedule_revision,
           'definition_digest', s.definition_digest)
FROM schedules s;

UPDATE schedule_revision_state
SET current_revision = (SELECT count(*) FROM schedules)
WHERE singleton_id = 'schedule-revision';

ALTER TABLE schedules ALTER COLUMN control_token SET NOT NULL;
ALTER TABLE schedules ALTER COLUMN schedule_revision SET NOT NULL;
ALTER TABLE schedules ALTER COLUMN definition_digest SET NOT NULL;
ALTER TABLE schedules ALTER COLUMN cadence_semantics_version SET NOT NULL;
ALTER TABLE schedules ALTER COLUMN cadence_runtime_fingerprint SET NOT NULL;

-- z4j-owned rows carry no external authority; externally owned rows carry
-- a complete one (stream, epoch, source key, sequence).
ALTER TABLE schedules ADD CONSTRAINT ck_schedules_external_authority_pairing CHECK (COALESCE(
    (scheduler = 'z4j-scheduler'
        AND external_stream_id IS NULL AND external_epoch_uuid IS NULL
        AND external_epoch_number IS NULL AND external_source_key IS NULL
        AND external_source_sequence IS NULL)
    OR (scheduler <> 'z4j-scheduler'
        AND external_stream_id IS NOT NULL AND external_epoch_uuid IS NOT NULL
        AND external_source_key IS NOT NULL
        AND external_epoch_number > 0
        AND length(external_source_key) > 0
        AND external_source_sequence >= 0),
    false));
CREATE UNIQUE INDEX uq_schedules_external_stream_source_key ON schedules (external_stream_id, external_source_key)
    WHERE external_stream_id IS NOT NULL;

-- commands gain schedule-fire evidence and delivery claim columns; the
-- project/agent foreign keys go (historical attribution is kept verbatim).

ALTER TABLE commands DROP CONSTRAINT fk_commands_project_id_projects;
ALTER TABLE commands DROP CONSTRAINT fk_commands_agent_id_agents;
ALTER TABLE commands ADD COLUMN schedule_protocol_marker INTEGER;
ALTER TABLE commands ADD COLUMN schedule_state_nonce UUID;
ALTER TABLE commands ADD COLUMN schedule_id UUID;
ALTER TABLE commands ADD COLUMN schedule_fire_id UUID;
ALTER TABLE commands ADD COLUMN schedule_scheduled_for TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN schedule_observed_control_token UUID;
ALTER TABLE commands ADD COLUMN schedule_receipt_control_token UUID;
ALTER TABLE commands ADD COLUMN schedule_execution_fire_id UUID;
ALTER TABLE commands ADD COLUMN schedule_acceptance_revision BIGINT;
ALTER TABLE commands ADD COLUMN schedule_definition_digest VARCHAR(64);
ALTER TABLE commands ADD COLUMN schedule_expected_revision BIGINT;
ALTER TABLE commands ADD COLUMN schedule_expected_last_run_at TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN schedule_expected_next_run_at TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN schedule_next_run_at TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN cadence_initial_claim_deadline TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN first_delivery_claimed_at TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN cadence_redelivery_deadline TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN delivery_transport_kind VARCHAR(32);
ALTER TABLE commands ADD COLUMN delivery_registry_owner_id UUID;
ALTER TABLE commands ADD COLUMN delivery_session_generation VARCHAR(128);
ALTER TABLE commands ADD COLUMN delivery_claim_token UUID;
ALTER TABLE commands ADD COLUMN agent_acknowledged_at TIMESTAMPTZ;

-- schedule_fires gain scheduler acknowledgement and receipt evidence; the
-- schedule/project/command foreign keys go; fire identity becomes
-- generation-scoped (fire_id + receipt token), legacy rows stay unique.

ALTER TABLE schedule_fires DROP CONSTRAINT schedule_fires_schedule_id_fkey;
ALTER TABLE schedule_fires DROP CONSTRAINT schedule_fires_project_id_fkey;
ALTER TABLE schedule_fires DROP CONSTRAINT schedule_fires_command_id_fkey;
ALTER TABLE schedule_fires ADD COLUMN scheduler_ack_status VARCHAR(32);
ALTER TABLE schedule_fires ADD COLUMN scheduler_acknowledged_at TIMESTAMPTZ;
ALTER TABLE schedule_fires ADD COLUMN scheduler_ack_task_id VARCHAR(200);
ALTER TABLE schedule_fires ADD COLUMN scheduler_ack_error_code VARCHAR(64);
ALTER TABLE schedule_fires ADD COLUMN scheduler_ack_error_message VARCHAR(2000);
ALTER TABLE schedule_fires ADD COLUMN protocol_marker INTEGER;
ALTER TABLE schedule_fires ADD COLUMN state_write_nonce UUID;
ALTER TABLE schedule_fires ADD COLUMN observed_control_token UUID;
ALTER TABLE schedule_fires ADD COLUMN receipt_control_token UUID;
ALTER TABLE schedule_fires ADD COLUMN acceptance_revision BIGINT;
ALTER TABLE schedule_fires ADD COLUMN definition_digest VARCHAR(64);
ALTER TABLE schedule_fires ADD COLUMN expected_schedule_revision BIGINT;
ALTER TABLE schedule_fires ADD COLUMN expected_last_run_at TIMESTAMPTZ;
ALTER TABLE schedule_fires ADD COLUMN expected_next_run_at TIMESTAMPTZ;
ALTER TABLE schedule_fires ADD COLUMN prepared_next_run_at TIMESTAMPTZ;
ALTER TABLE schedule_fires DROP CONSTRAINT uq_schedule_fires_fire_id;
ALTER TABLE schedule_fires ADD CONSTRAINT uq_schedule_fires_fire_receipt
    UNIQUE (fire_id, receipt_control_token, scheduled_for);
CREATE UNIQUE INDEX uq_schedule_fires_legacy_fire ON schedule_fires (fire_id, scheduled_for)
    WHERE receipt_control_token IS NULL;

-- pending_fires get the same evidence tuple, same identity change.

ALTER TABLE pending_fires ADD COLUMN protocol_marker INTEGER;
ALTER TABLE pending_fires ADD COLUMN state_write_nonce UUID;
ALTER TABLE pending_fires ADD COLUMN observed_control_token UUID;
ALTER TABLE pending_fires ADD COLUMN receipt_control_token UUID;
ALTER TABLE pending_fires ADD COLUMN definition_digest VARCHAR(64);
ALTER TABLE pending_fires ADD COLUMN expected_schedule_revision BIGINT;
ALTER TABLE pending_fires ADD COLUMN expected_last_run_at TIMESTAMPTZ;
ALTER TABLE pending_fires ADD COLUMN expected_next_run_at TIMESTAMPTZ;
ALTER TABLE pending_fires ADD COLUMN prepared_next_run_at TIMESTAMPTZ;
ALTER TABLE pending_fires ADD COLUMN acceptance_revision BIGINT;
ALTER TABLE pending_fires ADD COLUMN execution_fire_id UUID;
ALTER TABLE pending_fires DROP CONSTRAINT uq_pending_fires_fire_id;
ALTER TABLE pending_fires ADD CONSTRAINT uq_pending_fires_fire_receipt UNIQUE (fire_id, receipt_control_token);
CREATE UNIQUE INDEX uq_pending_fires_legacy_fire ON pending_fires (fire_id)
    WHERE receipt_control_token IS NULL;
