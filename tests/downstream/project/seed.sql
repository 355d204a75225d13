-- Representative rows, inserted at head before the round trip to base.
INSERT INTO accounts (email, state) VALUES ('ada@example.com', 'active'), ('bob@example.com', 'suspended');
UPDATE accounts SET state = 'active' WHERE email = 'bob@example.com';
