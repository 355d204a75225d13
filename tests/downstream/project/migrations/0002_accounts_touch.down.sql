DROP TRIGGER accounts_touch ON accounts;
DROP FUNCTION accounts_touch();
ALTER TABLE accounts DROP COLUMN updated_at;
