-- preflight: SELECT NOT EXISTS (SELECT 1 FROM bulk_retry_requests)

-- Refused while any bulk retry request exists (as upstream): dropping the
-- tables would lose the request, its plan and its children's progress.

DROP INDEX ux_commands_bulk_retry_child;
ALTER TABLE commands DROP CONSTRAINT fk_commands_bulk_retry_child_id_bulk_retry_request_children;
ALTER TABLE commands DROP COLUMN bulk_retry_child_id;
DROP TABLE bulk_retry_request_children;
DROP TABLE bulk_retry_requests;
