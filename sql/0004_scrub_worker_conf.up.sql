-- message: Data-only: blank out the conf key inside workers.metadata (credential leak fix)

-- Worker metadata used to carry the engine configuration verbatim under
-- the key "conf", broker URLs with passwords included. The value is
-- replaced by an empty object; the key itself is kept so readers that
-- expect it keep working.

UPDATE workers
SET metadata = jsonb_set(metadata, '{conf}', '{}'::jsonb)
WHERE jsonb_typeof(metadata) = 'object'
  AND metadata ? 'conf'
  AND metadata -> 'conf' <> '{}'::jsonb;
