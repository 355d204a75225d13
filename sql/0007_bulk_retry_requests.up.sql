-- message: Bulk retry: bulk_retry_requests, bulk_retry_request_children, commands.bulk_retry_child_id (FK, unique index)

CREATE TABLE bulk_retry_requests (
    id                    UUID         NOT NULL,
    project_id            UUID         NOT NULL,
    issued_by             UUID,
    idempotency_key       VARCHAR(200) NOT NULL,
    canonicalizer_version INTEGER      NOT NULL,
    canonical_request     BYTEA        NOT NULL,
    canonical_digest      VARCHAR(64)  NOT NULL,
    effective_request     JSONB        NOT NULL,
    plan_digest           VARCHAR(64)  NOT NULL,
    control_state         VARCHAR(16)  NOT NULL DEFAULT 'running',
    target_agent_id       UUID,
    child_count           INTEGER      NOT NULL,
    max_in_flight         INTEGER      NOT NULL,
    deadline_at           TIMESTAMPTZ  NOT NULL,
    sealed_at             TIMESTAMPTZ  NOT NULL DEFAULT now(),
    created_at            TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ  NOT NULL DEFAULT now(),
    last_progress_at      TIMESTAMPTZ,
    CONSTRAINT pk_bulk_retry_requests PRIMARY KEY (id),
    CONSTRAINT uq_bulk_retry_requests_project_key UNIQUE (project_id, idempotency_key),
    CONSTRAINT fk_bulk_retry_requests_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_bulk_retry_requests_issued_by_users FOREIGN KEY (issued_by) REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX ix_bulk_retry_requests_control_progress ON bulk_retry_requests (control_state, last_progress_at, created_at);
CREATE INDEX ix_bulk_retry_requests_deadline ON bulk_retry_requests (deadline_at);

CREATE TABLE bulk_retry_request_children (
    id                        UUID        NOT NULL,
    parent_id                 UUID        NOT NULL,
    project_id                UUID        NOT NULL,
    ordinal                   INTEGER     NOT NULL,
    engine                    VARCHAR(40) NOT NULL,
    target_agent_id           UUID,
    payload                   JSONB       NOT NULL,
    payload_digest            VARCHAR(64) NOT NULL,
    payload_size              INTEGER     NOT NULL,
    required_contract_version INTEGER     NOT NULL DEFAULT 1,
    delivery_state            VARCHAR(24) NOT NULL DEFAULT 'pending',
    outcome                   VARCHAR(16) NOT NULL DEFAULT 'unobserved',
    claimed_agent_id          UUID,
    claimed_generation        UUID,
    claimed_at                TIMESTAMPTZ,
    claim_deadline_at         TIMESTAMPTZ,
    completed_at              TIMESTAMPTZ,
    error                     TEXT,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_bulk_retry_request_children PRIMARY KEY (id),
    CONSTRAINT uq_bulk_retry_request_children_parent_ordinal UNIQUE (parent_id, ordinal),
    CONSTRAINT fk_bulk_retry_request_children_parent_id_bulk_retry_requests FOREIGN KEY (parent_id) REFERENCES bulk_retry_requests (id) ON DELETE CASCADE,
    CONSTRAINT fk_bulk_retry_request_children_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE INDEX ix_bulk_retry_children_parent_delivery ON bulk_retry_request_children (parent_id, delivery_state, ordinal);
CREATE INDEX ix_bulk_retry_children_project_delivery ON bulk_retry_request_children (project_id, delivery_state, engine);
CREATE INDEX ix_bulk_retry_children_claim_deadline ON bulk_retry_request_children (claim_deadline_at);

ALTER TABLE commands ADD COLUMN bulk_retry_child_id UUID;
ALTER TABLE commands ADD CONSTRAINT fk_commands_bulk_retry_child_id_bulk_retry_request_children
    FOREIGN KEY (bulk_retry_child_id) REFERENCES bulk_retry_request_children (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX ux_commands_bulk_retry_child ON commands (bulk_retry_child_id);
