-- Drops the index only. The duplicate legacy rows removed by the upgrade
-- were stale presence records and are not restored (data no-op part).

DROP INDEX ux_agent_workers_legacy_agent;
