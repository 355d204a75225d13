-- preflight: SELECT NOT EXISTS (SELECT 1 FROM export_jobs WHERE sink IS NOT NULL AND status IN ('pending', 'queued', 'running'))

-- Refused while an unfinished export job targets an explicit sink (the
-- older code would deliver it to the wrong place). Finished jobs only lose
-- informational size/start fields.

ALTER TABLE export_jobs DROP COLUMN started_at;
ALTER TABLE export_jobs DROP COLUMN size_bytes;
ALTER TABLE export_jobs DROP COLUMN sink;
