"""yoyo's model (Migration, MigrationStep, its backend) over a connection we own.

Imported only when a revision is about to run, so the no-op start-up path never
pays for importing yoyo.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.migrations import Migration, MigrationStep

from .revisions import Revision


class _Backend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend over a connection we own."""

    _driver = psycopg

    def __init__(self, conn: psycopg.Connection) -> None:  # no connect(), no init_database() probes
        self.uri = None
        self._connection = conn
        self.migration_table = "_yoyo_migration"
        self.DatabaseError = psycopg.DatabaseError
        self.has_transactional_ddl = True

    def init_connection(self, connection: psycopg.Connection) -> None:
        """yoyo re-sends SET search_path after each rollback; we set nothing."""

    @contextmanager
    def disable_transactions(self) -> Iterator[None]:
        """Our connection is already in autocommit; yoyo's version sends a stray ROLLBACK."""
        yield


class _Step(MigrationStep):
    """A step that never prints result rows (yoyo writes SELECT output to stdout)."""

    def _execute(self, cursor: psycopg.Cursor, stmt: str, out: object = None) -> None:
        cursor.execute(stmt)


class RevisionMigration(Migration):
    """A yoyo Migration built from our pair instead of read from one file."""

    def __init__(self, revision: Revision, steps: list[MigrationStep], transactional: bool) -> None:
        super().__init__(revision.id, revision.up.path, str(Path(revision.up.path).parent))
        self.steps = steps
        self._depends = set()
        self.use_transactions = transactional
        self.source = ""

    def load(self) -> None:
        """Already built: yoyo's loader would read `.down.sql` as a forward migration."""


def run_one_message(conn: psycopg.Connection, revision: Revision, direction: str, message: str) -> None:
    """Run a transactional revision through yoyo's model as one query message.

    The message carries its own BEGIN ... COMMIT (the file, then the bookkeeping), so
    the step runs without a yoyo transaction around it: yoyo's would add two round
    trips per revision and nothing else. A failure inside the message aborts the
    transaction on the server; yoyo has no executed steps to "compensate".
    """

    def send(connection: psycopg.Connection) -> None:
        connection.execute(message)

    step = _Step(0, send, None) if direction == "apply" else _Step(0, None, send)
    RevisionMigration(revision, [step], transactional=False).process_steps(_Backend(conn), direction)
