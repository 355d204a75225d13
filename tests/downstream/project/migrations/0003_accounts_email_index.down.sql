DROP INDEX CONCURRENTLY IF EXISTS ix_accounts_lower_email;
