-- message: Data repair: truncate sub-second schedules.last_run_at/next_run_at cursors, each through a new schedule revision and change-log row

-- Each repaired schedule gets the next revision from the
-- schedule_revision_state singleton and a matching change-log row
-- (upsert with a snapshot for z4j-owned rows, gap for externally owned
-- rows), as the schedule-control protocol expects of every schedule write.

LOCK TABLE schedule_revision_state, schedule_change_log, schedules IN SHARE ROW EXCLUSIVE MODE;

WITH base AS (
    SELECT current_revision
    FROM schedule_revision_state
    WHERE singleton_id = 'schedule-revision'
    FOR UPDATE
), targets AS (
    SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn
    FROM schedules
    WHERE last_run_at <> date_trunc('second', last_run_at, 'UTC')
       OR next_run_at <> date_trunc('second', next_run_at, 'UTC')
), repaired AS (
    UPDATE schedules s
    SET last_run_at = date_trunc('second', s.last_run_at, 'UTC'),
        next_run_at = date_trunc('second', s.next_run_at, 'UTC'),
        schedule_revision = b.current_revision + t.rn,
        updated_at = now()
    FROM targets t CROSS JOIN base b
    WHERE s.id = t.id
    RETURNING s.*
), logged AS (
    INSERT INTO schedule_change_log (revision, project_id, schedule_id, schedule_owner,
                                     change_kind, protocol_version, snapshot)
    SELECT r.schedule_revision, r.project_id, r.id, r.scheduler,
           CASE WHEN r.scheduler = 'z4j-scheduler' THEN 'upsert' ELSE 'gap' END,
           1,
           CASE WHEN r.scheduler = 'z4j-scheduler' THEN jsonb_build_object(
               'id', r.id, 'project_id', r.project_id, 'engine', r.engine,
               'scheduler', r.scheduler, 'name', r.name, 'task_name', r.task_name,
               'kind', r.kind, 'expression', r.expression, 'timezone', r.timezone,
               'queue', r.queue, 'priority', r.priority, 'args', r.args,
               'kwargs', r.kwargs, 'is_enabled', r.is_enabled, 'catch_up', r.catch_up,
               'last_run_at', r.last_run_at, 'next_run_at', r.next_run_at,
               'control_token', r.control_token, 'schedule_revision', r.schedule_revision,
               'definition_digest', r.definition_digest) END
    FROM repaired r
    RETURNING revision
)
UPDATE schedule_revision_state
SET current_revision = current_revision + (SELECT count(*) FROM logged)
WHERE singleton_id = 'schedule-revision';
