-- message: api_keys.allowed_cidrs (JSONB list of CIDRs; NULL or empty means no per-key network restriction)

ALTER TABLE api_keys ADD COLUMN allowed_cidrs JSONB;
