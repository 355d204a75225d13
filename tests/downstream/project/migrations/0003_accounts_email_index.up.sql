-- message: case-insensitive e-mail lookups
-- transactional: false

CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_accounts_lower_email ON accounts (lower(email));
