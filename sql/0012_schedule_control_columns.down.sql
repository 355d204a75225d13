-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedules WHERE paused_at IS NOT NULL)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM agents WHERE revoked_at IS NOT NULL)
-- preflight: SELECT NOT EXISTS (SELECT 1 FROM schedules WHERE overlap_policy <> 'allow')

-- Refused while a schedule is paused (it would start firing again), an
-- agent is revoked (it would be trusted again) or a schedule uses a
-- non-default overlap policy (its runs would start overlapping).
-- The same conditions are checked again under ACCESS EXCLUSIVE locks, so a
-- pause or revoke that commits after the preflight cannot slip through.

LOCK TABLE schedules, agents IN ACCESS EXCLUSIVE MODE;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM schedules WHERE paused_at IS NOT NULL OR overlap_policy <> 'allow')
       OR EXISTS (SELECT 1 FROM agents WHERE revoked_at IS NOT NULL) THEN
        RAISE EXCEPTION 'downgrade refused: a schedule is paused or has an overlap policy, or an agent is revoked'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

ALTER TABLE agents DROP COLUMN revoked_at;
ALTER TABLE schedules DROP COLUMN paused_at;
ALTER TABLE schedules DROP CONSTRAINT ck_schedules_overlap_policy;
ALTER TABLE schedules DROP COLUMN overlap_policy;
