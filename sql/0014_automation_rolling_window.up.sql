-- message: Automation rolling-window rate limit: automation_rules.config_revision and cb_config_digest, projects.automation_revision, automation_rule_admissions, backfill

LOCK TABLE projects, automation_rules IN ACCESS EXCLUSIVE MODE;

ALTER TABLE automation_rules ADD COLUMN config_revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE automation_rules ADD COLUMN cb_config_digest VARCHAR(64);
ALTER TABLE projects ADD COLUMN automation_revision INTEGER NOT NULL DEFAULT 1;

CREATE TABLE automation_rule_admissions (
    id          UUID        NOT NULL,
    rule_id     UUID        NOT NULL,
    admitted_at TIMESTAMPTZ NOT NULL,
    weight      INTEGER     NOT NULL DEFAULT 1,
    CONSTRAINT pk_automation_rule_admissions PRIMARY KEY (id),
    CONSTRAINT fk_automation_rule_admissions_rule_id_automation_rules FOREIGN KEY (rule_id) REFERENCES automation_rules (id) ON DELETE CASCADE,
    CONSTRAINT ck_automation_rule_admissions_weight_positive CHECK (weight > 0)
);
CREATE INDEX ix_automation_rule_admissions_rule_time ON automation_rule_admissions (rule_id, admitted_at);

-- Backfill the digest of the circuit-breaker configuration each rule runs
-- with, and the executions counted in a still-open fixed window carried
-- over as one weighted admission at the window start.
UPDATE automation_rules
SET cb_config_digest = encode(sha256(convert_to(
        max_executions_per_window::text || ':' || window_seconds::text, 'UTF8')), 'hex');

INSERT INTO automation_rule_admissions (id, rule_id, admitted_at, weight)
SELECT gen_random_uuid(), r.id, r.cb_window_start, r.cb_execution_count
FROM automation_rules r
WHERE r.cb_window_start IS NOT NULL
  AND r.cb_execution_count > 0
  AND r.cb_window_start > now() - make_interval(secs => r.window_seconds);
