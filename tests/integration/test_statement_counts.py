"""What z4j-migrate sends to the server, counted from the server's own statement log (never timed).

The suite's cluster logs every statement (`log_statement = all`, `log_line_prefix = '%m [%p] app=%a '`,
see conftest.py); each run here connects with its own application_name, so its lines can be picked
out. A statement is one query message: the `statement:` or `execute ...:` line the server logs for
it. The performance targets these guard (issue #5, docs/performance.md):

- no-op upgrade (everything applied): two statements after connecting (at most 3 allowed), no ERROR
  line, the same at any number of revisions;
- per applied or rolled-back revision: at most 4 statements beyond the revision's own SQL;
- one connection per run.

No run writes an ERROR line to the server log, not even the first one on an empty database:
the bookkeeping tables are probed for before the history is read.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from helpers import write_pair

import z4j_migrate

_ENTRY = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[(?P<pid>\d+)\] app=(?P<app>.*?) "
    r"(?P<level>LOG|ERROR|FATAL|WARNING|NOTICE|STATEMENT|DETAIL|HINT|CONTEXT):  (?P<msg>.*)$"
)
_STATEMENT = re.compile(r"^(statement: |execute [^:]*: )")


class Sent:
    def __init__(self, statements: list[str], errors: list[str], pids: set[str]) -> None:
        self.statements, self.errors, self.pids = statements, errors, pids


@pytest.fixture
def server_log(pg_server) -> Path:
    local = pg_server.local
    if local is None:
        pytest.skip(
            "statement counts come from the statement log of the suite's own cluster; this server is external "
            "(Z4J_TEST_DATABASE_URL or testcontainers) and its log is not readable here"
        )
    return Path(local.log_path)


def _read(log: Path, offset: int, app: str) -> Sent:
    time.sleep(0.05)  # the server's log writes are not ordered with the client's return
    with log.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    statements, errors, pids = [], [], set()
    for line in text.splitlines():
        m = _ENTRY.match(line)
        if m is None or m["app"] != app:
            continue
        pids.add(m["pid"])
        if m["level"] == "LOG" and _STATEMENT.match(m["msg"]):
            statements.append(m["msg"])
        elif m["level"] in ("ERROR", "FATAL"):
            errors.append(m["msg"])
    return Sent(statements, errors, pids)


def _run(log: Path, pg_server, dbname: str, call, **kw) -> Sent:
    app = f"count-{uuid.uuid4().hex[:10]}"
    url = pg_server.url_for(dbname, application_name=app)
    offset = log.stat().st_size
    call(database_url=url, **kw)
    return _read(log, offset, app)


def _revisions(folder: Path, n: int) -> Path:
    """n revisions, each one statement of its own SQL up and down."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        write_pair(folder, f"{i:04d}_t{i}", f"CREATE TABLE t{i} (id bigint PRIMARY KEY);", f"DROP TABLE t{i};")
    return folder


@pytest.mark.parametrize("with_manifest", [False, True], ids=["files", "manifest"])
def test_noop_upgrade_sends_two_statements_whatever_the_size_and_no_error(
    pg_server, server_log, tmp_path, with_manifest
):
    """A probe of the catalog, then the one-row head digest: the same two at 5 and at 60 revisions."""
    from z4j_migrate import manifest
    from z4j_migrate.revisions import discover

    for n in (5, 60):
        folder = _revisions(tmp_path / f"m{n}", n)
        if with_manifest:
            manifest.write(folder, manifest.for_revisions(discover(folder)))
        db = pg_server.create_database()
        try:
            first = _run(server_log, pg_server, db, z4j_migrate.upgrade, migrations_dir=folder)
            assert first.errors == [], first.errors  # not even on an empty database
            noop = _run(server_log, pg_server, db, z4j_migrate.upgrade, migrations_dir=folder)
            assert len(noop.statements) == 2, noop.statements
            assert "to_regclass" in noop.statements[0] and "_z4j_migrate_head" in noop.statements[1]
            assert "_yoyo_migration" not in noop.statements[1]  # the history itself is not read
            assert noop.errors == [], noop.errors
            assert len(noop.pids) == 1
            status = _run(server_log, pg_server, db, z4j_migrate.status, migrations_dir=folder)
            assert status.errors == [] and len(status.pids) == 1
        finally:
            pg_server.drop_database(db)


@pytest.mark.parametrize("operation", ["upgrade", "downgrade"])
def test_each_revision_is_one_query_message_on_one_connection(pg_server, server_log, tmp_path, operation):
    sent = {}
    for n in (2, 7):
        folder = _revisions(tmp_path / f"m{n}", n)
        db = pg_server.create_database()
        try:
            up = _run(server_log, pg_server, db, z4j_migrate.upgrade, migrations_dir=folder)
            if operation == "upgrade":
                sent[n] = up
            else:
                sent[n] = _run(server_log, pg_server, db, z4j_migrate.downgrade, migrations_dir=folder, to="base")
        finally:
            pg_server.drop_database(db)
    for n, run in sent.items():
        assert run.errors == [], (n, run.errors)
        assert len(run.pids) == 1, f"{operation} of {n} revisions used {len(run.pids)} connections"
    # Five more revisions cost five more messages: settings, lock guard, the file, the bookkeeping and
    # COMMIT travel together (the server logs a multi-statement message once).
    per_revision = (len(sent[7].statements) - len(sent[2].statements)) / 5
    assert per_revision == 1, (per_revision, sent[7].statements)
