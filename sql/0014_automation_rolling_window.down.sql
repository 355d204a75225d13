-- Collapses the rolling-window state back into the fixed-window columns
-- before dropping it: per rule, the admissions inside the current window
-- become cb_execution_count, the oldest of them cb_window_start, so the
-- rate limit stays in force. Configuration and project revision counters
-- only serve compare-and-set in 1.9+ and are dropped.

LOCK TABLE projects, automation_rules, automation_rule_admissions IN ACCESS EXCLUSIVE MODE;

UPDATE automation_rules r
SET cb_window_start = agg.first_admitted_at,
    cb_execution_count = agg.total_weight
FROM (
    SELECT a.rule_id,
           min(a.admitted_at) AS first_admitted_at,
           sum(a.weight)::integer AS total_weight
    FROM automation_rule_admissions a
    JOIN automation_rules r2 ON r2.id = a.rule_id
    WHERE a.admitted_at > now() - make_interval(secs => r2.window_seconds)
    GROUP BY a.rule_id
) agg
WHERE r.id = agg.rule_id;

DROP TABLE automation_rule_admissions;
ALTER TABLE projects DROP COLUMN automation_revision;
ALTER TABLE automation_rules DROP COLUMN cb_config_digest;
ALTER TABLE automation_rules DROP COLUMN config_revision;
