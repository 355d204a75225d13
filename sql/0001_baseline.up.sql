-- message: Baseline schema (z4j 1.3 shape): enum types, core tables, audit guard trigger, schedules NOTIFY trigger, partitioned events

-- Consolidated z4j 1.3 baseline. Tables whose shape changed in later
-- revisions are created here in their 1.3-era shape; later revisions add
-- or drop the differences. The extensions pgcrypto, citext and pg_trgm are
-- installed by z4j-migrate before any revision runs.

-- Enum types (labels in declaration order) -----------------------------------

CREATE TYPE agent_state AS ENUM ('online', 'offline', 'unknown');
CREATE TYPE command_status AS ENUM ('pending', 'dispatched', 'completed', 'failed', 'timeout', 'cancelled');
CREATE TYPE project_role AS ENUM ('viewer', 'operator', 'admin');
CREATE TYPE schedule_kind AS ENUM ('cron', 'interval', 'solar', 'clocked');
CREATE TYPE task_priority AS ENUM ('critical', 'high', 'normal', 'low');
CREATE TYPE task_state AS ENUM ('pending', 'received', 'started', 'success', 'failure', 'retry', 'revoked', 'rejected', 'unknown');
CREATE TYPE worker_state AS ENUM ('online', 'offline', 'draining', 'unknown');

-- Identity, projects, access ------------------------------------------------

CREATE TABLE projects (
    id                      UUID         NOT NULL DEFAULT gen_random_uuid(),
    slug                    VARCHAR(63)  NOT NULL,
    name                    VARCHAR(200) NOT NULL,
    description             VARCHAR,
    environment             VARCHAR(40)  NOT NULL DEFAULT 'production',
    timezone                VARCHAR(64)  NOT NULL DEFAULT 'UTC',
    is_active               BOOLEAN      NOT NULL DEFAULT true,
    default_scheduler_owner VARCHAR(64)  NOT NULL DEFAULT 'z4j-scheduler',
    allowed_schedulers      JSONB,
    settings                JSONB,
    organization_id         UUID,
    created_at              TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ  NOT NULL DEFAULT now(),
    -- retention_days is dropped by 0005 and re-added (last) by its down,
    -- so it is kept as the last column here.
    retention_days          INTEGER      DEFAULT 30,
    CONSTRAINT pk_projects PRIMARY KEY (id),
    CONSTRAINT uq_projects_slug UNIQUE (slug),
    CONSTRAINT slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$')
);
CREATE INDEX ix_projects_active ON projects (is_active);
CREATE INDEX ix_projects_active_partial ON projects (id) WHERE is_active;

CREATE TABLE users (
    id                    UUID         NOT NULL DEFAULT gen_random_uuid(),
    email                 CITEXT       NOT NULL,
    password_hash         VARCHAR      NOT NULL,
    display_name          VARCHAR,
    first_name            VARCHAR(100),
    last_name             VARCHAR(100),
    is_admin              BOOLEAN      NOT NULL DEFAULT false,
    is_active             BOOLEAN      NOT NULL DEFAULT true,
    last_login_at         TIMESTAMPTZ,
    force_password_change BOOLEAN      NOT NULL DEFAULT false,
    timezone              VARCHAR(64)  NOT NULL DEFAULT 'UTC',
    failed_login_count    INTEGER      NOT NULL DEFAULT 0,
    locked_until          TIMESTAMPTZ,
    last_failed_login_at  TIMESTAMPTZ,
    last_failed_login_ip  INET,
    password_changed_at   TIMESTAMPTZ,
    avatar_url            VARCHAR,
    external_id           VARCHAR(255),
    sso_provider          VARCHAR(50),
    created_at            TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT uq_users_email UNIQUE (email)
);
CREATE INDEX ix_users_active ON users (is_active);
CREATE INDEX ix_users_active_partial ON users (id) WHERE is_active;

CREATE TABLE memberships (
    id         UUID         NOT NULL DEFAULT gen_random_uuid(),
    user_id    UUID         NOT NULL,
    project_id UUID         NOT NULL,
    role       project_role NOT NULL DEFAULT 'viewer',
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_memberships PRIMARY KEY (id),
    CONSTRAINT uq_memberships_user_project UNIQUE (user_id, project_id),
    CONSTRAINT fk_memberships_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_memberships_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_memberships_user_id ON memberships (user_id);
CREATE INDEX ix_memberships_project_id ON memberships (project_id);

CREATE TABLE invitations (
    id                  UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id          UUID         NOT NULL,
    email               VARCHAR(255) NOT NULL,
    role                VARCHAR(20)  NOT NULL,
    invited_by          UUID,
    token_hash          VARCHAR      NOT NULL,
    expires_at          TIMESTAMPTZ  NOT NULL,
    accepted_at         TIMESTAMPTZ,
    accepted_by_user_id UUID,
    revoked_at          TIMESTAMPTZ,
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_invitations PRIMARY KEY (id),
    CONSTRAINT fk_invitations_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_invitations_invited_by_users FOREIGN KEY (invited_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT fk_invitations_accepted_by_user_id_users FOREIGN KEY (accepted_by_user_id) REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX ix_invitations_token_hash ON invitations (token_hash);
CREATE INDEX ix_invitations_project_pending ON invitations (project_id, expires_at);

CREATE TABLE sessions (
    id                  UUID         NOT NULL DEFAULT gen_random_uuid(),
    user_id             UUID         NOT NULL,
    csrf_token          VARCHAR(64)  NOT NULL,
    issued_at           TIMESTAMPTZ  NOT NULL DEFAULT now(),
    expires_at          TIMESTAMPTZ  NOT NULL,
    last_seen_at        TIMESTAMPTZ  NOT NULL DEFAULT now(),
    revoked_at          TIMESTAMPTZ,
    revocation_reason   VARCHAR(40),
    ip_at_issue         INET         NOT NULL,
    user_agent_at_issue VARCHAR(256),
    CONSTRAINT pk_sessions PRIMARY KEY (id),
    CONSTRAINT fk_sessions_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_sessions_user_id ON sessions (user_id);
CREATE INDEX ix_sessions_expires_at ON sessions (expires_at);
CREATE INDEX ix_sessions_user_active ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE password_reset_tokens (
    id          UUID        NOT NULL DEFAULT gen_random_uuid(),
    user_id     UUID        NOT NULL,
    token_hash  VARCHAR     NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_password_reset_tokens PRIMARY KEY (id),
    CONSTRAINT fk_password_reset_tokens_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE first_boot_tokens (
    id         UUID        NOT NULL DEFAULT gen_random_uuid(),
    token_hash VARCHAR     NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_first_boot_tokens PRIMARY KEY (id)
);

CREATE TABLE api_keys (
    id             UUID         NOT NULL DEFAULT gen_random_uuid(),
    user_id        UUID         NOT NULL,
    name           VARCHAR(200) NOT NULL,
    token_hash     VARCHAR      NOT NULL,
    prefix         VARCHAR(8)   NOT NULL,
    last_used_at   TIMESTAMPTZ,
    last_used_ip   VARCHAR,
    expires_at     TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    revoked_reason VARCHAR(200),
    scopes         TEXT[]       NOT NULL DEFAULT '{}',
    project_id     UUID,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_api_keys PRIMARY KEY (id),
    CONSTRAINT uq_api_keys_token_hash UNIQUE (token_hash),
    CONSTRAINT fk_api_keys_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_api_keys_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_api_keys_token_hash ON api_keys (token_hash);
CREATE INDEX ix_api_keys_user_id ON api_keys (user_id);
CREATE INDEX ix_api_keys_project_id ON api_keys (project_id);

-- Agents, workers, queues, tasks, events ------------------------------------

CREATE TABLE agents (
    id                 UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id         UUID         NOT NULL,
    name               VARCHAR(200) NOT NULL,
    token_hash         VARCHAR      NOT NULL,
    protocol_version   VARCHAR(20)  NOT NULL,
    framework_adapter  VARCHAR(40)  NOT NULL,
    engine_adapters    TEXT[]       NOT NULL DEFAULT '{}',
    scheduler_adapters TEXT[]       NOT NULL DEFAULT '{}',
    capabilities       JSONB        NOT NULL DEFAULT '{}',
    state              agent_state  NOT NULL DEFAULT 'unknown',
    last_seen_at       TIMESTAMPTZ,
    last_connect_at    TIMESTAMPTZ,
    metadata           JSONB        NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_agents PRIMARY KEY (id),
    CONSTRAINT uq_agents_token_hash UNIQUE (token_hash),
    CONSTRAINT uq_agents_project_name UNIQUE (project_id, name),
    CONSTRAINT fk_agents_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_agents_project_state ON agents (project_id, state);
CREATE INDEX ix_agents_last_seen_at ON agents (last_seen_at);

CREATE TABLE agent_workers (
    id              UUID         NOT NULL DEFAULT gen_random_uuid(),
    agent_id        UUID         NOT NULL,
    project_id      UUID         NOT NULL,
    worker_id       VARCHAR(128),
    role            VARCHAR(32),
    framework       VARCHAR(40),
    pid             INTEGER,
    started_at      TIMESTAMPTZ,
    state           VARCHAR(20)  NOT NULL DEFAULT 'online',
    last_seen_at    TIMESTAMPTZ,
    last_connect_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_agent_workers PRIMARY KEY (id),
    CONSTRAINT uq_agent_workers_agent_worker UNIQUE (agent_id, worker_id),
    CONSTRAINT fk_agent_workers_agent_id_agents FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE CASCADE,
    CONSTRAINT fk_agent_workers_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_agent_workers_project_state ON agent_workers (project_id, state);
CREATE INDEX ix_agent_workers_agent_state ON agent_workers (agent_id, state);

CREATE TABLE workers (
    id             UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id     UUID         NOT NULL,
    engine         VARCHAR(40)  NOT NULL,
    name           VARCHAR(200) NOT NULL,
    hostname       VARCHAR(255),
    pid            INTEGER,
    concurrency    INTEGER,
    queues         TEXT[]       NOT NULL DEFAULT '{}',
    state          worker_state NOT NULL DEFAULT 'unknown',
    last_heartbeat TIMESTAMPTZ,
    load_average   JSONB,
    memory_bytes   BIGINT,
    active_tasks   INTEGER      NOT NULL DEFAULT 0,
    metadata       JSONB        NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_workers PRIMARY KEY (id),
    CONSTRAINT uq_workers_project_engine_name UNIQUE (project_id, engine, name),
    CONSTRAINT fk_workers_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_workers_project_state ON workers (project_id, state);

CREATE TABLE queues (
    id              UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id      UUID         NOT NULL,
    name            VARCHAR(200) NOT NULL,
    engine          VARCHAR(40)  NOT NULL,
    broker_type     VARCHAR(40),
    broker_url_hint VARCHAR,
    last_seen_at    TIMESTAMPTZ,
    pending_count   INTEGER      NOT NULL DEFAULT 0,
    consumer_count  INTEGER      NOT NULL DEFAULT 0,
    metadata        JSONB        NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_queues PRIMARY KEY (id),
    CONSTRAINT uq_queues_project_engine_name UNIQUE (project_id, engine, name),
    CONSTRAINT fk_queues_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_queues_project_id ON queues (project_id);

CREATE TABLE tasks (
    id             UUID          NOT NULL DEFAULT gen_random_uuid(),
    project_id     UUID          NOT NULL,
    engine         VARCHAR(40)   NOT NULL,
    task_id        VARCHAR(200)  NOT NULL,
    name           VARCHAR(500)  NOT NULL,
    queue          VARCHAR(200),
    state          task_state    NOT NULL DEFAULT 'pending',
    priority       task_priority NOT NULL DEFAULT 'normal',
    args           JSONB,
    kwargs         JSONB,
    result         JSONB,
    exception      TEXT,
    traceback      TEXT,
    retry_count    INTEGER       NOT NULL DEFAULT 0,
    eta            TIMESTAMPTZ,
    received_at    TIMESTAMPTZ,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    runtime_ms     BIGINT,
    worker_name    VARCHAR(200),
    parent_task_id VARCHAR(200),
    root_task_id   VARCHAR(200),
    tags           TEXT[]        NOT NULL DEFAULT '{}',
    metadata       JSONB         NOT NULL DEFAULT '{}',
    search_vector  TSVECTOR,
    created_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT pk_tasks PRIMARY KEY (id),
    CONSTRAINT uq_tasks_project_engine_task_id UNIQUE (project_id, engine, task_id),
    CONSTRAINT fk_tasks_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_tasks_project_state_started ON tasks (project_id, state, started_at);
CREATE INDEX ix_tasks_project_name ON tasks (project_id, name);
CREATE INDEX ix_tasks_project_queue ON tasks (project_id, queue);
CREATE INDEX ix_tasks_project_finished ON tasks (project_id, finished_at);
CREATE INDEX ix_tasks_args_gin ON tasks USING gin (args) WHERE args IS NOT NULL;
CREATE INDEX ix_tasks_kwargs_gin ON tasks USING gin (kwargs) WHERE kwargs IS NOT NULL;
CREATE INDEX ix_tasks_search ON tasks USING gin (name gin_trgm_ops);

CREATE TABLE task_annotations (
    id              UUID        NOT NULL DEFAULT gen_random_uuid(),
    task_id         UUID        NOT NULL,
    user_id         UUID        NOT NULL,
    content         TEXT        NOT NULL,
    annotation_type VARCHAR(20) NOT NULL DEFAULT 'note',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_task_annotations PRIMARY KEY (id),
    CONSTRAINT fk_task_annotations_task_id_tasks FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE,
    CONSTRAINT fk_task_annotations_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

-- events is partitioned by RANGE (occurred_at), one partition per UTC day plus
-- a DEFAULT catch-all. The foreign keys keep PostgreSQL's default names.
CREATE TABLE events (
    id          UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id  UUID         NOT NULL,
    agent_id    UUID         NOT NULL,
    engine      VARCHAR(40)  NOT NULL,
    task_id     VARCHAR(200) NOT NULL DEFAULT '',
    kind        VARCHAR(80)  NOT NULL,
    occurred_at TIMESTAMPTZ  NOT NULL,
    payload     JSONB        NOT NULL DEFAULT '{}',
    CONSTRAINT pk_events PRIMARY KEY (project_id, occurred_at, id),
    CONSTRAINT events_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE RESTRICT,
    CONSTRAINT events_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE RESTRICT
) PARTITION BY RANGE (occurred_at);
CREATE INDEX ix_events_project_task ON events (project_id, task_id, occurred_at);
CREATE INDEX ix_events_project_kind ON events (project_id, kind, occurred_at);
CREATE INDEX ix_events_payload_gin ON events USING gin (payload);

CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;

-- Daily partitions for today .. today+6 (UTC days). Idempotent: existing
-- partitions are left alone, so running this again creates nothing new.
DO $$
DECLARE
    d date;
BEGIN
    FOR i IN 0..6 LOOP
        d := (now() AT TIME ZONE 'UTC')::date + i;
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            'events_' || to_char(d, 'YYYY_MM_DD'),
            to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$;

-- Commands ------------------------------------------------------------------

CREATE TABLE commands (
    id              UUID           NOT NULL DEFAULT gen_random_uuid(),
    project_id      UUID           NOT NULL,
    issued_by       UUID,
    agent_id        UUID,
    action          VARCHAR(80)    NOT NULL,
    target_type     VARCHAR(40)    NOT NULL,
    target_id       VARCHAR(200),
    payload         JSONB          NOT NULL DEFAULT '{}',
    idempotency_key VARCHAR(200),
    status          command_status NOT NULL DEFAULT 'pending',
    result          JSONB,
    error           TEXT,
    issued_at       TIMESTAMPTZ    NOT NULL DEFAULT now(),
    dispatched_at   TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ,
    timeout_at      TIMESTAMPTZ    NOT NULL,
    source_ip       INET,
    CONSTRAINT pk_commands PRIMARY KEY (id),
    CONSTRAINT uq_commands_project_idempotency_key UNIQUE (project_id, idempotency_key),
    -- project_id / agent_id foreign keys are dropped again by 0010.
    CONSTRAINT fk_commands_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_commands_issued_by_users FOREIGN KEY (issued_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT fk_commands_agent_id_agents FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE SET NULL
);
CREATE INDEX ix_commands_project_status_issued ON commands (project_id, status, issued_at);
CREATE INDEX ix_commands_timeout_at ON commands (timeout_at);
CREATE INDEX ix_commands_issued_by_at ON commands (issued_by, issued_at);
CREATE INDEX ix_commands_pending_timeout ON commands (timeout_at) WHERE status = 'pending' AND timeout_at IS NOT NULL;

-- Schedules and firing ------------------------------------------------------

CREATE TABLE schedules (
    id           UUID          NOT NULL DEFAULT gen_random_uuid(),
    project_id   UUID          NOT NULL,
    engine       VARCHAR(40)   NOT NULL,
    scheduler    VARCHAR(40)   NOT NULL,
    name         VARCHAR(200)  NOT NULL,
    task_name    VARCHAR(500)  NOT NULL,
    kind         schedule_kind NOT NULL,
    expression   VARCHAR       NOT NULL,
    timezone     VARCHAR(64)   NOT NULL DEFAULT 'UTC',
    queue        VARCHAR(200),
    priority     task_priority NOT NULL DEFAULT 'normal',
    args         JSONB         NOT NULL DEFAULT '[]',
    kwargs       JSONB         NOT NULL DEFAULT '{}',
    is_enabled   BOOLEAN       NOT NULL DEFAULT true,
    last_run_at  TIMESTAMPTZ,
    next_run_at  TIMESTAMPTZ,
    total_runs   BIGINT        NOT NULL DEFAULT 0,
    external_id  VARCHAR(200),
    catch_up     VARCHAR(32)   NOT NULL DEFAULT 'skip',
    source       VARCHAR(64)   NOT NULL DEFAULT 'dashboard',
    source_hash  VARCHAR(128),
    last_fire_id UUID,
    created_at   TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT pk_schedules PRIMARY KEY (id),
    CONSTRAINT uq_schedules_project_scheduler_name UNIQUE (project_id, scheduler, name),
    CONSTRAINT fk_schedules_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_schedules_project_id ON schedules (project_id);
CREATE INDEX ix_schedules_next_run ON schedules (next_run_at) WHERE is_enabled AND next_run_at IS NOT NULL;

-- schedule_fires in its pre-1.7 (not partitioned) shape; 0005 partitions it.
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
CREATE INDEX ix_schedule_fires_schedule_recent ON schedule_fires (schedule_id, fired_at);
CREATE INDEX ix_schedule_fires_circuit_breaker ON schedule_fires (schedule_id, status, fired_at);

CREATE TABLE pending_fires (
    id            UUID        NOT NULL DEFAULT gen_random_uuid(),
    fire_id       UUID        NOT NULL,
    schedule_id   UUID        NOT NULL,
    project_id    UUID        NOT NULL,
    engine        VARCHAR(40) NOT NULL,
    payload       JSONB       NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    enqueued_at   TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT pk_pending_fires PRIMARY KEY (id),
    CONSTRAINT uq_pending_fires_fire_id UNIQUE (fire_id),
    CONSTRAINT fk_pending_fires_schedule_id_schedules FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE,
    CONSTRAINT fk_pending_fires_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_pending_fires_replay ON pending_fires (project_id, engine, scheduled_for);
CREATE INDEX ix_pending_fires_expires ON pending_fires (expires_at);

CREATE TABLE scheduler_rate_buckets (
    cert_cn           VARCHAR(255)     NOT NULL,
    tokens            DOUBLE PRECISION NOT NULL,
    last_refill       TIMESTAMPTZ      NOT NULL DEFAULT now(),
    capacity          DOUBLE PRECISION NOT NULL,
    refill_per_second DOUBLE PRECISION NOT NULL,
    updated_at        TIMESTAMPTZ      NOT NULL DEFAULT now(),
    CONSTRAINT pk_scheduler_rate_buckets PRIMARY KEY (cert_cn)
);

-- Notifications -------------------------------------------------------------

CREATE TABLE notification_channels (
    id         UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id UUID         NOT NULL,
    name       VARCHAR(200) NOT NULL,
    type       VARCHAR(20)  NOT NULL,
    config     JSONB        NOT NULL,
    is_active  BOOLEAN      NOT NULL,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_notification_channels PRIMARY KEY (id),
    CONSTRAINT fk_notification_channels_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE TABLE user_channels (
    id          UUID         NOT NULL DEFAULT gen_random_uuid(),
    user_id     UUID         NOT NULL,
    name        VARCHAR(200) NOT NULL,
    type        VARCHAR(20)  NOT NULL,
    config      JSONB        NOT NULL,
    is_verified BOOLEAN      NOT NULL,
    is_active   BOOLEAN      NOT NULL,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_user_channels PRIMARY KEY (id),
    CONSTRAINT uq_user_channel_name UNIQUE (user_id, name),
    CONSTRAINT fk_user_channels_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE user_subscriptions (
    id                  UUID        NOT NULL DEFAULT gen_random_uuid(),
    user_id             UUID        NOT NULL,
    project_id          UUID        NOT NULL,
    trigger             VARCHAR(40) NOT NULL,
    filters             JSONB       NOT NULL,
    in_app              BOOLEAN     NOT NULL,
    project_channel_ids UUID[]      NOT NULL,
    user_channel_ids    UUID[]      NOT NULL,
    muted_until         TIMESTAMPTZ,
    cooldown_seconds    INTEGER     NOT NULL,
    last_fired_at       TIMESTAMPTZ,
    is_active           BOOLEAN     NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_user_subscriptions PRIMARY KEY (id),
    CONSTRAINT uq_user_subscription_trigger UNIQUE (user_id, project_id, trigger),
    CONSTRAINT fk_user_subscriptions_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_user_subscriptions_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE TABLE project_default_subscriptions (
    id                  UUID        NOT NULL DEFAULT gen_random_uuid(),
    project_id          UUID        NOT NULL,
    trigger             VARCHAR(40) NOT NULL,
    filters             JSONB       NOT NULL,
    in_app              BOOLEAN     NOT NULL,
    project_channel_ids UUID[]      NOT NULL,
    cooldown_seconds    INTEGER     NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_project_default_subscriptions PRIMARY KEY (id),
    CONSTRAINT uq_project_default_subscription_trigger UNIQUE (project_id, trigger),
    CONSTRAINT fk_project_default_subscriptions_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE TABLE user_notifications (
    id              UUID         NOT NULL DEFAULT gen_random_uuid(),
    user_id         UUID         NOT NULL,
    project_id      UUID         NOT NULL,
    subscription_id UUID,
    trigger         VARCHAR(40)  NOT NULL,
    reason          VARCHAR(20)  NOT NULL,
    title           VARCHAR(500) NOT NULL,
    body            TEXT,
    data            JSONB        NOT NULL,
    read_at         TIMESTAMPTZ,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_user_notifications PRIMARY KEY (id),
    CONSTRAINT fk_user_notifications_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_user_notifications_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_user_notifications_subscription_id_user_subscriptions FOREIGN KEY (subscription_id) REFERENCES user_subscriptions (id) ON DELETE SET NULL
);

CREATE TABLE notification_deliveries (
    id                   UUID         NOT NULL DEFAULT gen_random_uuid(),
    subscription_id      UUID,
    channel_id           UUID,
    user_channel_id      UUID,
    project_id           UUID         NOT NULL,
    trigger              VARCHAR(40)  NOT NULL,
    task_id              VARCHAR(200),
    task_name            VARCHAR(500),
    status               VARCHAR(20)  NOT NULL,
    response_code        INTEGER,
    response_body        TEXT,
    error                TEXT,
    channel_name         VARCHAR(200),
    channel_type         VARCHAR(20),
    sent_at              TIMESTAMPTZ  NOT NULL DEFAULT now(),
    triggered_by_user_id UUID,
    CONSTRAINT pk_notification_deliveries PRIMARY KEY (id),
    CONSTRAINT fk_notification_deliveries_subscription_id FOREIGN KEY (subscription_id) REFERENCES user_subscriptions (id) ON DELETE SET NULL,
    CONSTRAINT fk_notification_deliveries_channel_id FOREIGN KEY (channel_id) REFERENCES notification_channels (id) ON DELETE SET NULL,
    CONSTRAINT fk_notification_deliveries_user_channel_id FOREIGN KEY (user_channel_id) REFERENCES user_channels (id) ON DELETE SET NULL,
    CONSTRAINT fk_notification_deliveries_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_notification_deliveries_triggered_by_user_id FOREIGN KEY (triggered_by_user_id) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_notification_deliveries_project_sent ON notification_deliveries (project_id, sent_at DESC);
CREATE INDEX ix_notification_deliveries_triggered_by_user ON notification_deliveries (triggered_by_user_id);

-- alert_events exists from 1.3 to 1.6; 0005 drops it.
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

-- Audit ---------------------------------------------------------------------

CREATE TABLE audit_log (
    id            UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id    UUID,
    user_id       UUID,
    api_key_id    UUID,
    action        VARCHAR(80)  NOT NULL,
    target_type   VARCHAR(40)  NOT NULL,
    target_id     VARCHAR(200),
    result        VARCHAR(20)  NOT NULL,
    metadata      JSONB        NOT NULL DEFAULT '{}',
    source_ip     INET,
    user_agent    TEXT,
    occurred_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    outcome       VARCHAR(20),
    event_id      UUID,
    row_hmac      VARCHAR(64),
    prev_row_hmac VARCHAR(64),
    CONSTRAINT pk_audit_log PRIMARY KEY (id),
    -- These two foreign keys are dropped by 0008 (audit history must
    -- survive deletes of the referenced rows).
    CONSTRAINT fk_audit_log_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE SET NULL,
    CONSTRAINT fk_audit_log_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_audit_log_project_occurred ON audit_log (project_id, occurred_at);
CREATE INDEX ix_audit_log_user_occurred ON audit_log (user_id, occurred_at);
CREATE INDEX ix_audit_log_action_occurred ON audit_log (action, occurred_at);
CREATE INDEX ix_audit_log_occurred_at ON audit_log (occurred_at);
CREATE INDEX ix_audit_log_api_key_id ON audit_log (api_key_id) WHERE api_key_id IS NOT NULL;
CREATE UNIQUE INDEX ux_audit_log_prev_row_hmac ON audit_log (prev_row_hmac) WHERE prev_row_hmac IS NOT NULL;

-- Key/value and misc --------------------------------------------------------

CREATE TABLE z4j_meta (
    id         UUID         NOT NULL DEFAULT gen_random_uuid(),
    key        VARCHAR(100) NOT NULL,
    value      TEXT         NOT NULL,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_z4j_meta PRIMARY KEY (id),
    CONSTRAINT uq_z4j_meta_key UNIQUE (key)
);

CREATE TABLE feature_flags (
    id          UUID         NOT NULL DEFAULT gen_random_uuid(),
    key         VARCHAR(100) NOT NULL,
    description TEXT         NOT NULL,
    enabled     BOOLEAN      NOT NULL DEFAULT false,
    value       TEXT         NOT NULL,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_feature_flags PRIMARY KEY (id),
    CONSTRAINT uq_feature_flags_key UNIQUE (key)
);

CREATE TABLE extension_store (
    id          UUID         NOT NULL DEFAULT gen_random_uuid(),
    key         VARCHAR(200) NOT NULL,
    value       JSONB        NOT NULL DEFAULT '{}',
    autoload    BOOLEAN      NOT NULL DEFAULT false,
    description VARCHAR,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_extension_store PRIMARY KEY (id),
    CONSTRAINT uq_extension_store_key UNIQUE (key)
);
CREATE INDEX ix_extension_store_autoload ON extension_store (autoload);

CREATE TABLE user_preferences (
    id         UUID         NOT NULL DEFAULT gen_random_uuid(),
    user_id    UUID         NOT NULL,
    key        VARCHAR(100) NOT NULL,
    value      JSONB        NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_user_preferences PRIMARY KEY (id),
    CONSTRAINT uq_user_preferences_user_key UNIQUE (user_id, key),
    CONSTRAINT fk_user_preferences_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_user_preferences_user ON user_preferences (user_id);

CREATE TABLE project_config (
    id         UUID         NOT NULL DEFAULT gen_random_uuid(),
    project_id UUID         NOT NULL,
    key        VARCHAR(200) NOT NULL,
    value      JSONB        NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_project_config PRIMARY KEY (id),
    CONSTRAINT uq_project_config_project_key UNIQUE (project_id, key),
    CONSTRAINT fk_project_config_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_project_config_project ON project_config (project_id);

CREATE TABLE saved_views (
    id         UUID         NOT NULL DEFAULT gen_random_uuid(),
    user_id    UUID         NOT NULL,
    project_id UUID         NOT NULL,
    name       VARCHAR(200) NOT NULL,
    page       VARCHAR(50)  NOT NULL,
    filters    JSONB        NOT NULL DEFAULT '{}',
    is_default BOOLEAN      NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_saved_views PRIMARY KEY (id),
    CONSTRAINT fk_saved_views_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_saved_views_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE TABLE export_jobs (
    id           UUID        NOT NULL DEFAULT gen_random_uuid(),
    user_id      UUID        NOT NULL,
    project_id   UUID        NOT NULL,
    export_type  VARCHAR(20) NOT NULL,
    format       VARCHAR(10) NOT NULL,
    filters      JSONB       NOT NULL DEFAULT '{}',
    status       VARCHAR(20) NOT NULL DEFAULT 'pending',
    row_count    INTEGER,
    file_path    VARCHAR,
    error        VARCHAR,
    completed_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_export_jobs PRIMARY KEY (id),
    CONSTRAINT fk_export_jobs_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_export_jobs_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

-- Trigger functions and triggers --------------------------------------------

-- audit_log is append-only (1.3 variant): every UPDATE is refused; a DELETE
-- is allowed only for the retention sweep, which sets z4j.audit_sweep = 'on'.
CREATE FUNCTION audit_log_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('z4j.audit_sweep', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE EXECUTE ON FUNCTION audit_log_forbid_mutation() FROM PUBLIC;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_forbid_mutation();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_forbid_mutation();

-- Every change to schedules is announced on channel z4j_schedules_changed
-- with a JSON payload {op, id, project_id}.
CREATE FUNCTION z4j_schedules_notify() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('z4j_schedules_changed',
            json_build_object('op', 'delete', 'id', OLD.id, 'project_id', OLD.project_id)::text);
    ELSE
        PERFORM pg_notify('z4j_schedules_changed',
            json_build_object('op', lower(TG_OP), 'id', NEW.id, 'project_id', NEW.project_id)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER z4j_schedules_notify_trigger AFTER INSERT OR UPDATE OR DELETE ON schedules
    FOR EACH ROW EXECUTE FUNCTION z4j_schedules_notify();
