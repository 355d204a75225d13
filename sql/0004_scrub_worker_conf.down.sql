-- Data no-op. The scrubbed credentials cannot (and must not) be restored,
-- and 0004 changed no schema object, so there is nothing to undo.

SELECT 1;
