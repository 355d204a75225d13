"""Typed errors, each carrying the process exit code the CLI documents.

    Z4jMigrateError                      (1)  base class
     +-- ConfigError                     (2)  bad setting, env value, URL or CLI argument
     +-- RevisionFileError               (3)  a revision file is malformed (names file, line)
     +-- RevisionFailed                  (1)  SQL of a revision failed; it was rolled back
     +-- ExtensionError                  (1)  an extension is not available on the server
     +-- RefusedError                    (4)  plan refused before anything ran
     |    +-- IrreversibleRevision            a downgrade would cross an irreversible revision
     |    +-- PreflightFailed                 a downgrade preflight returned false
     |    +-- DeclinedByOperator              the operator answered "no"
     |    +-- ForeignHistory                  another tool's history (and none of ours): adopt first;
     |                                        or that history is dirty / failed
     +-- DriftError                      (5)  database and code disagree (edited, out of order)
     |    +-- AdoptionMismatch                `adopt`: the live catalog is not what the revisions build
     +-- LockTimeout                     (6)  could not get the migration lock or a table lock
     +-- ConnectionFailed                (7)  could not reach / log in to the database
     +-- PrivilegeError                  (7)  logged in, but the role lacks a privilege we need
     +-- IncompleteRevision              (8)  a non-transactional revision stopped part-way
     +-- VerificationFailed              (9)  `verify`: a down does not undo its up
     +-- ReadOnlyServer                  (11) the server cannot write (hot standby, read-only default)
     +-- WaitTimeout                     (13) `wait`: the database did not reach this code's head in time
    interrupt.Interrupted                (12) SIGTERM/SIGINT (a BaseException, not a Z4jMigrateError)

Messages are one paragraph, say what is wrong and where, and never contain a
password: every message passes through `redact` when it is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SECRETS: set[str] = set()

_URL_PASSWORD = re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<post>@)", re.I)
_KV_PASSWORD = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


def register_secret(secret: str | None) -> None:
    """Remember a password so that no message we build can ever contain it."""
    if secret:
        _SECRETS.add(secret)


def register_secrets_in(value: str) -> None:
    """Remember the password of a URL or key=value string *before* parsing it.

    libpq's parse errors quote the offending token ("invalid percent-encoded
    token", "unexpected spaces found in"), which may be the raw password.
    """
    from urllib.parse import unquote

    url = re.match(r"^[a-z][a-z0-9+.-]*://(?P<auth>[^/?#]*)@", value, re.I)
    if url and ":" in url["auth"]:
        raw = url["auth"].split(":", 1)[1]
        register_secret(raw)
        register_secret(unquote(raw))
    if re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I):  # postgresql://h/db?password=... (ends at & or #)
        for match in re.finditer(r"[?&]password=(?P<pw>[^&#]*)", value, re.I):
            register_secret(match["pw"])
            register_secret(unquote(match["pw"]))
    for match in _KV_PASSWORD.finditer(value):
        register_secret(match["pw"])
        register_secret(match["pw"].strip("'"))


def redact(text: str) -> str:
    """Mask passwords in URLs, key=value strings and any registered secret."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['pre']}***{m['post']}", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m['pre']}***", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class Z4jMigrateError(Exception):
    """Base of every error z4j-migrate raises on purpose.

    A run that stops part-way says what it did first: `applied` (revision ids this run applied,
    or rolled back, before the error) and `failed` (the revision it was on), like goose's
    PartialError. The psycopg error that caused it, if any, is `__cause__`.
    """

    exit_code = 1
    applied: tuple[str, ...] = ()
    failed: str | None = None

    def __init__(self, message: str) -> None:
        self.message = redact(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConfigError(Z4jMigrateError):
    exit_code = 2


class RevisionFileError(Z4jMigrateError):
    """A revision file (or the directory) is malformed."""

    exit_code = 3

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)


class RevisionFailed(Z4jMigrateError):
    """The SQL of one revision failed; the revision left no trace (if transactional)."""

    exit_code = 1

    def __init__(
        self, message: str, *, revision: str | None = None, path: str | None = None, sqlstate: str | None = None
    ) -> None:
        self.revision = revision
        self.path = path
        self.sqlstate = sqlstate
        super().__init__(message)


class RefusedError(Z4jMigrateError):
    exit_code = 4


class IrreversibleRevision(RefusedError):
    pass


class PreflightFailed(RefusedError):
    pass


class DeclinedByOperator(RefusedError):
    pass


class ForeignHistory(RefusedError):
    """Another migration tool's history table is in the database (`tool`: golang-migrate, dbmate,
    yoyo, flyway): `upgrade` refuses until `adopt` has checked and recorded it, and `adopt` refuses a
    history that says a migration failed or stopped part-way."""

    def __init__(self, message: str, *, tool: str) -> None:
        self.tool = tool
        super().__init__(message)


class DriftError(Z4jMigrateError):
    exit_code = 5


class AdoptionMismatch(DriftError):
    """`adopt`: the database's catalog differs from the one the revisions build; `differences` names
    each object. Nothing was recorded."""

    def __init__(self, message: str, differences: Iterable[str] = ()) -> None:
        self.differences = list(differences)
        super().__init__(message)


class LockTimeout(Z4jMigrateError):
    """The migration lock, or a table lock a revision needed, stayed taken; `holder`: who had the
    migration lock (a lock.LockHolder), when known."""

    exit_code = 6

    def __init__(self, message: str, *, holder: object = None) -> None:
        self.holder = holder
        super().__init__(message)


class ConnectionFailed(Z4jMigrateError):
    exit_code = 7


class PrivilegeError(Z4jMigrateError):
    """The role may log in but lacks a privilege z4j-migrate itself needs (bookkeeping, extensions)."""

    exit_code = 7


class IncompleteRevision(Z4jMigrateError):
    exit_code = 8


class ExtensionError(Z4jMigrateError):
    """An extension the revisions need is not available on the server (contrib not installed)."""

    exit_code = 1


class VerificationFailed(Z4jMigrateError):
    exit_code = 9

    def __init__(self, message: str, differences: Iterable[str] = ()) -> None:
        self.differences = list(differences)
        super().__init__(message)


class ReadOnlyServer(Z4jMigrateError):
    """Work is pending but the server answers read-only: a hot standby, or default_transaction_read_only."""

    exit_code = 11


class WaitTimeout(Z4jMigrateError):
    """`wait` / wait_for_head: the database did not reach this code's head in time. `pending`: the
    revision ids still to apply; `holder`: who had the migration lock (a lock.LockHolder), or None."""

    exit_code = 13

    def __init__(self, message: str, *, pending: tuple[str, ...] = (), holder: object = None) -> None:
        self.pending = tuple(pending)
        self.holder = holder
        super().__init__(message)


EXIT_CODES: dict[int, str] = {
    0: "success (including: nothing to do)",
    1: "a revision's SQL failed (rolled back), or an unexpected error",
    2: "usage or configuration error (bad option, environment variable or URL)",
    3: "invalid revision files (naming, pairing, directives, encoding, forbidden SQL)",
    4: "refused before anything ran (irreversible revision, preflight false, answer 'no', another tool's history "
    "without ours: run adopt; adopt of a dirty or failed history)",
    5: "drift: an applied revision was edited, or the plan would apply out of order; adopt: the catalog differs "
    "from what the revisions build, or the history names a revision the directory lacks",
    6: "lock timeout (migration lock held by another process, or a table lock)",
    7: "cannot connect to the database (unreachable, authentication, unknown database), or the role lacks "
    "a privilege z4j-migrate needs (its bookkeeping tables, a missing extension)",
    8: "a non-transactional revision stopped part-way and needs attention",
    9: "verify found a down that does not undo its up",
    10: "status --exit-code only: revisions are pending",
    11: "revisions are pending but the server is read-only (a hot standby, or default_transaction_read_only)",
    12: "interrupted by SIGTERM or SIGINT: the statement in flight was cancelled and rolled back (or, "
    "non-transactional, journaled), the lock released",
    13: "wait: the database did not reach this code's head before --timeout (the message names the pending "
    "revisions and the lock holder)",
    141: "the output pipe was closed (e.g. piped into head): the command stopped quietly",
}
