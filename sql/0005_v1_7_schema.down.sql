-- preflight: SELECT NOT EXISTS (SELECT 1 FROM automation_rules)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM automation_firing_outbox)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedule_fires GROUP BY fire_id HAVING count(*) > 1)

-- Exact reverse of 0005. Refused while automation rules or undelivered
-- outbox firings exist (user configuration / pending work), or while a
-- fire_id occurs more than once (the un-partitioned table has a plain
-- UNIQUE (fire_id)). schedule_fires rows are copied back, not dropped.
-- alert_events comes back empty; retention_days comes back nullable with
-- default 30 (its values were dropped by the upgrade).

-- 12.
ALTER TABLE projects ADD COLUMN retention_days INTEGER DEFAULT 30;

-- 11.
DROP TABLE agent_offline_alerts;

-- 10.
ALTER TABLE tasks DROP COLUMN last_failed_at;

-- 9.
DROP INDEX ix_automation_firing_outbox_next_attempt;
ALTER TABLE automation_firing_outbox DROP COLUMN next_attempt_at;

-- 8.
DROP TABLE misfire_alerts;

-- 7.
DROP INDEX ix_tasks_project_fingerprint;
ALTER TABLE tasks DROP COLUMN fingerprint;

-- 6. un-partition schedule_fires, copying every row back.
LOCK TABLE schedule_fires IN ACCESS EXCLUSIVE MODE;
ALTER TABLE schedule_fires RENAME TO schedule_fires_partitioned;
ALTER TABLE schedule_fires_partitioned RENAME CONSTRAINT pk_schedule_fires TO pk_schedule_fires_partitioned;
ALTER TABLE schedule_fires_partitioned RENAME CONSTRAINT uq_schedule_fires_fire_id TO uq_schedule_fires_partitioned_fire_id;
ALTER INDEX ix_schedule_fires_schedule_recent RENAME TO ix_schedule_fires_partitioned_schedule_recent;
ALTER INDEX ix_schedule_fires_circuit_breaker RENAME TO ix_schedule_fires_partitioned_circuit_breaker;

CREATE TABLE schedule_fires (
    id            UUID          NOT NULL DEFAULT gen_random_uuid(),
    fire_id       UUID          NOT NULL,
    schedule_id   UUID          NOT NULL,
    project_id    UUID          NOT NULL,
    command_id    UUID,
    status        VARCHAR(32)   NOT NULL,
    scheduled_for TIMESTAMPTZ   NOT NULL,
    fired_at      TIMESTAMPTZ   NOT NULL,
    acked_at      TIMESTAMPTZ,
    latency_ms    INTEGER,
    error_code    VARCHAR(64),
    error_message VARCHAR(2000),
    CONSTRAINT pk_schedule_fires PRIMARY KEY (id),
    CONSTRAINT uq_schedule_fires_fire_id UNIQUE (fire_id),
    CONSTRAINT fk_schedule_fires_schedule_id_schedules FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE,
    CONSTRAINT fk_schedule_fires_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_schedule_fires_command_id_commands FOREIGN KEY (command_id) REFERENCES commands (id) ON DELETE SET NULL
);
ALTER TABLE schedule_fires ADD COLUMN triggered_by_user_id UUID;
ALTER TABLE schedule_fires ADD CONSTRAINT fk_schedule_fires_triggered_by_user_id_users
    FOREIGN KEY (triggered_by_user_id) REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX ix_schedule_fires_schedule_recent ON schedule_fires (schedule_id, fired_at);
CREATE INDEX ix_schedule_fires_circuit_breaker ON schedule_fires (schedule_id, status, fired_at);

INSERT INTO schedule_fires (id, fire_id, schedule_id, project_id, command_id, triggered_by_user_id,
                            status, scheduled_for, fired_at, acked_at, latency_ms, error_code, error_message)
SELECT id, fire_id, schedule_id, project_id, command_id, triggered_by_user_id,
       status, scheduled_for, fired_at, acked_at, latency_ms, error_code, error_message
FROM schedule_fires_partitioned;

-- Drops the parent together with its DEFAULT and daily partitions.
DROP TABLE schedule_fires_partitioned;

-- 5.
DROP TABLE automation_firing_outbox;

-- 4.
ALTER TABLE schedule_fires DROP CONSTRAINT fk_schedule_fires_triggered_by_user_id_users;
ALTER TABLE schedule_fires DROP COLUMN triggered_by_user_id;

-- 3. re-created empty, as upstream
CREATE TABLE alert_events (
    id           UUID        NOT NULL DEFAULT gen_random_uuid(),
    delivery_id  UUID        NOT NULL,
    event_type   VARCHAR(20) NOT NULL,
    user_id      UUID,
    note         TEXT,
    snooze_until TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_alert_events PRIMARY KEY (id),
    CONSTRAINT fk_alert_events_delivery_id_notification_deliveries FOREIGN KEY (delivery_id) REFERENCES notification_deliveries (id) ON DELETE CASCADE,
    CONSTRAINT fk_alert_events_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL
);

-- 2.
ALTER TABLE projects DROP COLUMN automation_enabled;

-- 1.
DROP TABLE automation_rules;
