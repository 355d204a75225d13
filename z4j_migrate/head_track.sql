-- z4j-migrate: the head digest table and the trigger function that keeps it (store.Store.repair_head).
-- {head} and {function} are replaced by the schema-qualified names (psycopg.sql); nothing else is.
CREATE TABLE IF NOT EXISTS {head} (digest BIT(256));
COMMENT ON TABLE {head} IS 'z4j-migrate: one row, the head digest (no index on purpose: the start-up check reads it on a fresh connection, where every index costs a catalog load)';
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $z4j$
DECLARE
  delta bit(256) := repeat('0', 256)::bit(256);
  kind text := TG_ARGV[0];
  row_text text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    UPDATE {head} SET digest = NULL;
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    IF kind = 'r' THEN
      row_text := concat('r ', OLD.migration_id, ' ', OLD.up_checksum, ' ', OLD.down_checksum);
    ELSE
      row_text := concat(kind, ' ', OLD.migration_id);
    END IF;
    delta := delta # ('x' || encode(sha256(convert_to(row_text, 'UTF8')), 'hex'))::bit(256);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    IF kind = 'r' THEN
      row_text := concat('r ', NEW.migration_id, ' ', NEW.up_checksum, ' ', NEW.down_checksum);
    ELSE
      row_text := concat(kind, ' ', NEW.migration_id);
    END IF;
    delta := delta # ('x' || encode(sha256(convert_to(row_text, 'UTF8')), 'hex'))::bit(256);
  END IF;
  UPDATE {head} SET digest = digest # delta;
  RETURN NULL;
END
$z4j$;
COMMENT ON FUNCTION {function}() IS 'z4j-migrate: keeps the head digest in step with the bookkeeping tables';
