-- message: audit_forward_state: per-sink cursor of audit log forwarding

CREATE TABLE audit_forward_state (
    sink_id                    VARCHAR(64) NOT NULL,
    last_forwarded_occurred_at TIMESTAMPTZ,
    last_forwarded_id          UUID,
    last_attempt_at            TIMESTAMPTZ,
    last_success_at            TIMESTAMPTZ,
    consecutive_failures       INTEGER     NOT NULL DEFAULT 0,
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_audit_forward_state PRIMARY KEY (sink_id)
);
