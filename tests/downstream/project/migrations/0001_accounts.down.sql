DROP TABLE accounts;
DROP TYPE account_state;
