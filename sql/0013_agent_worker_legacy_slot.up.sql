-- message: One legacy (worker_id NULL) agent_workers slot per agent: dedupe, then partial unique index ux_agent_workers_legacy_agent

-- Keep the most recently seen legacy row per agent, delete the others.
LOCK TABLE agent_workers IN SHARE ROW EXCLUSIVE MODE;

DELETE FROM agent_workers w
USING (
    SELECT id,
           row_number() OVER (PARTITION BY agent_id
                              ORDER BY last_seen_at DESC NULLS LAST, updated_at DESC, id DESC) AS rn
    FROM agent_workers
    WHERE worker_id IS NULL
) ranked
WHERE w.id = ranked.id
  AND ranked.rn > 1;

CREATE UNIQUE INDEX ux_agent_workers_legacy_agent ON agent_workers (agent_id) WHERE worker_id IS NULL;
