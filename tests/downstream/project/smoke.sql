-- Run at head after the round trip: the schema works, not just exists.
INSERT INTO accounts (email) VALUES ('smoke@example.com');
UPDATE accounts SET state = 'suspended' WHERE email = 'smoke@example.com';
DO $$
BEGIN
    IF (SELECT updated_at FROM accounts WHERE email = 'smoke@example.com') IS NULL THEN
        RAISE EXCEPTION 'accounts_touch did not set updated_at';
    END IF;
END
$$;
