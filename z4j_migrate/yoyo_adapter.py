"""The one module that uses yoyo.

Every revision runs as a yoyo `Migration` of `MigrationStep`s, processed by yoyo's
`process_steps`, on yoyo's own tables, so the stock `yoyo` CLI reads our history. What
differs from stock yoyo (shared/reference/yoyo.md): the steps run on *our* connection (no
new connection and no start-up probes per revision), and the bookkeeping travels inside the
revision's own transaction (runner.py), not afterwards on another connection.

Imported only when a revision is about to run, so the no-op start-up never pays for yoyo.
Surface: `run_message` (a transactional revision: one query message) and `run_steps` (a
non-transactional one: one callable per statement, in file order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.migrations import Migration, MigrationStep

from .revisions import Revision
from .state import YOYO_TABLES


class _Backend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend over a connection we own: `connect` (yoyo's documented override
    point for making the connection) hands ours over, so yoyo's own constructor runs unchanged."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._ours = conn
        super().__init__(None, YOYO_TABLES[0])

    def connect(self, dburi: object) -> psycopg.Connection:
        return self._ours

    def init_connection(self, connection: psycopg.Connection) -> None:
        """yoyo re-sends SET search_path after each rollback; we set nothing."""

    @contextmanager
    def disable_transactions(self) -> Iterator[None]:
        """Our connection is already in autocommit; yoyo's version sends a stray ROLLBACK."""
        yield


class _Migration(Migration):
    """A yoyo Migration built from our pair instead of read from one file."""

    def __init__(self, revision: Revision, steps: list[MigrationStep]) -> None:
        super().__init__(revision.id, revision.up.path, str(Path(revision.up.path).parent))
        self.steps = steps
        self._depends = set()
        self.use_transactions = False  # a transactional revision carries its own BEGIN ... COMMIT
        self.source = ""

    def load(self) -> None:
        """Already built: yoyo's loader would read `.down.sql` as a forward migration."""


def _step(index: int, direction: str, run: Callable[[], None]) -> MigrationStep:
    def call(_connection: psycopg.Connection) -> None:
        run()

    return MigrationStep(index, call, None) if direction == "apply" else MigrationStep(index, None, call)


def run_message(conn: psycopg.Connection, revision: Revision, direction: str, message: str) -> None:
    """A transactional revision as one step: `message` carries its own BEGIN ... COMMIT (the file,
    then the bookkeeping), so yoyo adds no transaction (it would cost two round trips and nothing
    else). A failure aborts the transaction on the server; yoyo has no executed steps to undo."""
    _Migration(revision, [_step(0, direction, lambda: conn.execute(message))]).process_steps(_Backend(conn), direction)


def run_steps(
    conn: psycopg.Connection, revision: Revision, direction: str, steps: Sequence[Callable[[], None]]
) -> None:
    """A non-transactional revision, one step per statement, run in the order given. yoyo runs a
    rollback's steps last-first, so they are handed over reversed; and none has a "compensating"
    undo, so a failure leaves what ran in effect (the journal says what)."""
    built = [_step(i, direction, run) for i, run in enumerate(steps, start=1)]
    if direction == "rollback":
        built.reverse()
    _Migration(revision, built).process_steps(_Backend(conn), direction)
