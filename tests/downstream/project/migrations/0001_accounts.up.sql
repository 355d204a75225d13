-- message: accounts with a state enum

CREATE TYPE account_state AS ENUM ('active', 'suspended');

CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    state account_state NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ux_accounts_email ON accounts (email);
COMMENT ON TABLE accounts IS 'One row per customer account.';
