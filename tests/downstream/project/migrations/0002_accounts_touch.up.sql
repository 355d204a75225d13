-- message: accounts.updated_at, kept current by a trigger

ALTER TABLE accounts ADD COLUMN updated_at timestamptz;

CREATE FUNCTION accounts_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_touch();
