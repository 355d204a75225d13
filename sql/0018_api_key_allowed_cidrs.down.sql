-- preflight: SELECT NOT EXISTS (SELECT 1 FROM api_keys WHERE allowed_cidrs IS NOT NULL AND allowed_cidrs NOT IN ('null'::jsonb, '[]'::jsonb))

-- Refused while any API key carries a network restriction: dropping the
-- column would silently widen where that key is accepted from.

ALTER TABLE api_keys DROP COLUMN allowed_cidrs;
