"""check_file_fast (JSON text from the C parser) must agree with check_file (pglast's syntax tree)."""

from __future__ import annotations

import pytest

from z4j_migrate.errors import RevisionFileError
from z4j_migrate.revisions import SqlFile, checksum
from z4j_migrate.sqlcheck import check_file, check_file_fast

TEXTS = [
    "",
    "-- only a comment\n",
    ";",
    "CREATE TABLE t (id int);",
    "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;",
    "CREATE TABLE t (id int);\nCOMMIT;",
    "SAVEPOINT a;",
    "START TRANSACTION ISOLATION LEVEL SERIALIZABLE;",
    "DROP EXTENSION pgcrypto;",
    "DROP EXTENSION IF EXISTS citext CASCADE;",
    "CREATE EXTENSION IF NOT EXISTS pgcrypto;",
    "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN COMMIT; RETURN 1; END $$;",
    "SELECT 'BEGIN; COMMIT; DROP EXTENSION x' AS \"TransactionStmt\";",
    "COMMENT ON TABLE t IS '\"TransactionStmt\" OBJECT_EXTENSION';",
    "CREATE TABLE t (id int",
    "SELEC 1;",
    "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTIFY x;",
    "DO $$ BEGIN PERFORM 1; END $$;",
    "CREATE INDEX CONCURRENTLY ix ON t (id);",
    "END;",
]


def _outcome(fn, sql_file, is_down):
    try:
        return ("ok", bool(fn(sql_file, is_down=is_down)))
    except RevisionFileError as exc:
        return ("error", exc.message, exc.line)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("is_down", [False, True])
@pytest.mark.parametrize("transactional", [True, False])
def test_fast_check_agrees_with_the_syntax_tree_check(text, is_down, transactional):
    sql_file = SqlFile("f.sql", text, checksum(text), transactional, True)
    assert _outcome(check_file_fast, sql_file, is_down) == _outcome(check_file, sql_file, is_down)
