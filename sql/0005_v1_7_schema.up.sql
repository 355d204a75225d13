-- message: Consolidated 1.7 delta: automation rules and outbox, kill switch, drop alert_events, partition schedule_fires by day, task fingerprint, misfire and agent-offline alert markers, drop projects.retention_days
-- destructive: alert_events and projects.retention_days were retired in 1.7 (their down recreates the shapes, the rows are not kept); schedule_fires_legacy is the temporary copy made while partitioning, its rows move into the partitioned table

-- Steps follow the original order; 0005's down undoes them in exact reverse.

-- 1. automation_rules
CREATE TABLE automation_rules (
    id                        UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id                UUID         NOT NULL,
    name                      VARCHAR(200) NOT NULL,
    is_enabled                BOOLEAN      NOT NULL DEFAULT true,
    dry_run                   BOOLEAN      NOT NULL DEFAULT false,
    trigger                   VARCHAR(64)  NOT NULL,
    conditions                JSONB        NOT NULL DEFAULT '{}',
    actions                   JSONB        NOT NULL DEFAULT '[]',
    max_executions_per_window INTEGER      NOT NULL DEFAULT 100,
    window_seconds            INTEGER      NOT NULL DEFAULT 3600,
    cb_tripped                BOOLEAN      NOT NULL DEFAULT false,
    cb_window_start           TIMESTAMPTZ,
    cb_execution_count        INTEGER      NOT NULL DEFAULT 0,
    last_notify_at            TIMESTAMPTZ,
    created_by                UUID,
    source_hash               VARCHAR(128),
    created_at                TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_automation_rules PRIMARY KEY (id),
    CONSTRAINT uq_automation_rules_project_name UNIQUE (project_id, name),
    CONSTRAINT fk_automation_rules_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_automation_rules_created_by_users FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_automation_rules_project_trigger ON automation_rules (project_id, trigger, is_enabled);

-- 2. per-project automation kill switch
ALTER TABLE projects ADD COLUMN automation_enabled BOOLEAN NOT NULL DEFAULT true;

-- 3. alert_events is gone in 1.7 (its rows are dropped with it, as upstream)
DROP TABLE alert_events;

-- 4. who triggered a manual fire
ALTER TABLE schedule_fires ADD COLUMN triggered_by_user_id UUID;
ALTER TABLE schedule_fires ADD CONSTRAINT fk_schedule_fires_triggered_by_user_id_users
    FOREIGN KEY (triggered_by_user_id) REFERENCES users (id) ON DELETE SET NULL;

-- 5. automation firing outbox (next_attempt_at arrives in step 9)
CREATE TABLE automation_firing_outbox (
    id         UUID        NOT NULL DEFAULT gen_random_uuid(),
    project_id UUID        NOT NULL,
    trigger    VARCHAR(64) NOT NULL,
    fields     JSONB       NOT NULL DEFAULT '{}',
    attempts   INTEGER     NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_automation_firing_outbox PRIMARY KEY (id),
    CONSTRAINT fk_automation_firing_outbox_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_automation_firing_outbox_created ON automation_firing_outbox (created_at);
CREATE INDEX ix_automation_firing_outbox_project ON automation_firing_outbox (project_id);

-- 6. partition schedule_fires by RANGE (scheduled_for): move the plain table
--    aside, create the partitioned parent with its DEFAULT and daily
--    partitions, copy every row with an explicit column list, drop the old.
LOCK TABLE schedule_fires IN ACCESS EXCLUSIVE MODE;
ALTER TABLE schedule_fires RENAME TO schedule_fires_legacy;
ALTER TABLE schedule_fires_legacy RENAME CONSTRAINT pk_schedule_fires TO pk_schedule_fires_legacy;
ALTER TABLE schedule_fires_legacy RENAME CONSTRAINT uq_schedule_fires_fire_id TO uq_schedule_fires_legacy_fire_id;
ALTER INDEX ix_schedule_fires_schedule_recent RENAME TO ix_schedule_fires_legacy_schedule_recent;
ALTER INDEX ix_schedule_fires_circuit_breaker RENAME TO ix_schedule_fires_legacy_circuit_breaker;

CREATE TABLE schedule_fires (
    id                   UUID          NOT NULL DEFAULT gen_random_uuid(),
    fire_id              UUID          NOT NULL,
    schedule_id          UUID          NOT NULL,
    project_id           UUID          NOT NULL,
    command_id           UUID,
    triggered_by_user_id UUID,
    status               VARCHAR(32)   NOT NULL,
    scheduled_for        TIMESTAMPTZ   NOT NULL,
    fired_at             TIMESTAMPTZ   NOT NULL,
    acked_at             TIMESTAMPTZ,
    latency_ms           INTEGER,
    error_code           VARCHAR(64),
    error_message        VARCHAR(2000),
    CONSTRAINT pk_schedule_fires PRIMARY KEY (id, scheduled_for),
    CONSTRAINT uq_schedule_fires_fire_id UNIQUE (fire_id, scheduled_for),
    CONSTRAINT schedule_fires_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE,
    CONSTRAINT schedule_fires_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT schedule_fires_command_id_fkey FOREIGN KEY (command_id) REFERENCES commands (id) ON DELETE SET NULL,
    CONSTRAINT schedule_fires_triggered_by_user_id_fkey FOREIGN KEY (triggered_by_user_id) REFERENCES users (id) ON DELETE SET NULL
) PARTITION BY RANGE (scheduled_for);
CREATE INDEX ix_schedule_fires_schedule_recent ON schedule_fires (schedule_id, fired_at);
CREATE INDEX ix_schedule_fires_circuit_breaker ON schedule_fires (schedule_id, status, fired_at);

CREATE TABLE IF NOT EXISTS schedule_fires_default PARTITION OF schedule_fires DEFAULT;

-- Daily partitions for CURRENT_DATE-31 .. CURRENT_DATE+7 (UTC days).
-- Idempotent, existing partitions are left alone.
DO $$
DECLARE
    d date;
BEGIN
    FOR i IN -31..7 LOOP
        d := (now() AT TIME ZONE 'UTC')::date + i;
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF schedule_fires FOR VALUES FROM (%L) TO (%L)',
            'schedule_fires_' || to_char(d, 'YYYY_MM_DD'),
            to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$;

INSERT INTO schedule_fires (id, fire_id, schedule_id, project_id, command_id, triggered_by_user_id,
                            status, scheduled_for, fired_at, acked_at, latency_ms, error_code, error_message)
SELECT id, fire_id, schedule_id, project_id, command_id, triggered_by_user_id,
       status, scheduled_for, fired_at, acked_at, latency_ms, error_code, error_message
FROM schedule_fires_legacy;

DROP TABLE schedule_fires_legacy;

-- 7. task fingerprint (groups failures of the same shape)
ALTER TABLE tasks ADD COLUMN fingerprint VARCHAR(32);
CREATE INDEX ix_tasks_project_fingerprint ON tasks (project_id, fingerprint);

-- 8. misfire alert de-duplication markers
CREATE TABLE misfire_alerts (
    id          UUID        NOT NULL DEFAULT gen_random_uuid(),
    schedule_id UUID        NOT NULL,
    anchor_at   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_misfire_alerts PRIMARY KEY (id),
    CONSTRAINT uq_misfire_alerts_schedule_anchor UNIQUE (schedule_id, anchor_at),
    CONSTRAINT fk_misfire_alerts_schedule_id_schedules FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE
);
CREATE INDEX ix_misfire_alerts_created ON misfire_alerts (created_at);

-- 9. outbox retry back-off
ALTER TABLE automation_firing_outbox ADD COLUMN next_attempt_at TIMESTAMPTZ;
CREATE INDEX ix_automation_firing_outbox_next_attempt ON automation_firing_outbox (next_attempt_at);

-- 10. last failure time per task
ALTER TABLE tasks ADD COLUMN last_failed_at TIMESTAMPTZ;

-- 11. agent offline alert de-duplication markers
CREATE TABLE agent_offline_alerts (
    id         UUID        NOT NULL DEFAULT gen_random_uuid(),
    agent_id   UUID        NOT NULL,
    anchor_at  TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_agent_offline_alerts PRIMARY KEY (id),
    CONSTRAINT uq_agent_offline_alerts_agent_anchor UNIQUE (agent_id, anchor_at),
    CONSTRAINT fk_agent_offline_alerts_agent_id_agents FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX ix_agent_offline_alerts_created ON agent_offline_alerts (created_at);

-- 12. per-project retention setting is gone (global event_retention_days)
ALTER TABLE projects DROP COLUMN retention_days;
