-- message: Add agent_status_history (append-only agent status snapshots, BIGSERIAL id)

CREATE TABLE agent_status_history (
    id          BIGSERIAL   NOT NULL,
    project_id  UUID        NOT NULL,
    agent_id    UUID        NOT NULL,
    captured_at TIMESTAMPTZ NOT NULL,
    payload     JSONB       NOT NULL DEFAULT '{}',
    CONSTRAINT pk_agent_status_history PRIMARY KEY (id),
    CONSTRAINT fk_agent_status_history_project_id_projects FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_agent_status_history_agent_id_agents FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX agent_status_history_agent_time_idx ON agent_status_history (agent_id, captured_at);
CREATE INDEX agent_status_history_project_time_idx ON agent_status_history (project_id, captured_at);
