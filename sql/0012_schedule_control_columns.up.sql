-- message: Schedule overlap policy (with CHECK), schedule pause marker (paused_at), agent revocation tombstone (agents.revoked_at)

ALTER TABLE schedules ADD COLUMN overlap_policy VARCHAR(32) NOT NULL DEFAULT 'allow';
ALTER TABLE schedules ADD CONSTRAINT ck_schedules_overlap_policy
    CHECK (overlap_policy IN ('allow', 'skip', 'queue'));
ALTER TABLE schedules ADD COLUMN paused_at TIMESTAMPTZ;
ALTER TABLE agents ADD COLUMN revoked_at TIMESTAMPTZ;
