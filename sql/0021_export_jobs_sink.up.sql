-- message: export_jobs.sink, export_jobs.size_bytes, export_jobs.started_at

ALTER TABLE export_jobs ADD COLUMN sink VARCHAR(20);
ALTER TABLE export_jobs ADD COLUMN size_bytes BIGINT;
ALTER TABLE export_jobs ADD COLUMN started_at TIMESTAMPTZ;
