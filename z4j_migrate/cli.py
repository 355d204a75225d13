"""The `z4j-migrate` command: its entry point, the one error boundary, and the click-free fast path.

Every error leaves through `main()`: one paragraph on stderr, passwords masked, the documented
exit code, a traceback only with -v. `z4j-migrate [global options] [upgrade [options]]` (what
deploy scripts run on every boot) is parsed here without click (`parse_upgrade`); everything else
goes to the click commands in `z4j_migrate.commands`. Both build their Settings with
`Invocation.settings`, and print with the helpers below, so both paths behave the same.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from . import api, interrupt
from .config import Settings, settings_from_env
from .errors import ConfigError, Z4jMigrateError, redact
from .interrupt import Interrupted
from .logs import EVENT, log
from .progress import ProgressLine

# Options that take a value, on the group and on every command with database settings: flag -> key.
VALUE_OPTIONS = {
    "--database-url": "database_url",
    "--migrations-dir": "migrations_dir",
    "--schema": "schema",
    "--lock-timeout": "lock_timeout",
    "--statement-lock-timeout": "statement_lock_timeout",
    "--statement-timeout": "statement_timeout",
    "--direct-url": "direct_url",
    "--wait": "wait_",
    "--layout": "layout",
}
SECONDS = ("lock_timeout", "statement_lock_timeout", "statement_timeout", "wait_")
FLAG = {key: flag for flag, key in VALUE_OPTIONS.items()}


class Invocation:
    """What a command was given and how loud it may be (click's ctx.obj; the fast path makes one too).

    `options` are the group's (before the command name); `settings(own)` adds the command's own,
    which win, sets up logging for the verbosity, and builds the Settings.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = _given(options or {})
        self.verbosity = 0  # -1: -q; 0; 1 and more: -v
        self.progress = ProgressLine()  # draws only on a terminal, and only for runs with work to do

    def settings(self, own: Mapping[str, Any]) -> Settings:
        merged = {**self.options, **_given(own)}
        merged["verbose"] = self.options.get("verbose", 0) + own.get("verbose", 0)
        self.verbosity = -1 if merged.get("quiet") else merged["verbose"]
        setup_logging(self.verbosity, None if self.verbosity < 0 else self.progress)
        return settings_from_options(merged)

    def say(self, text: str) -> None:
        """Progress lines for a person; -q silences them (errors and warnings still go to stderr)."""
        self.progress.finish()  # the live line ends before the summary
        if self.verbosity >= 0:
            print(text)


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that were given: click passes None (and False for flags) for the others; 0 is a value."""
    return {k: v for k, v in options.items() if v is not None and v is not False}


def settings_from_options(options: Mapping[str, Any]) -> Settings:
    """Settings from CLI option values (keys of VALUE_OPTIONS), the environment filling the rest."""
    for key in SECONDS:
        value = options.get(key)
        if value is not None and value < 0:
            raise ConfigError(f"{FLAG[key]} {value:g}: must be 0 or more seconds.")
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{FLAG[key]} {value:g}: must be a finite number of seconds.")
    return settings_from_env(
        options.get("database_url"),
        options.get("migrations_dir"),
        schema=options.get("schema"),
        lock_timeout_s=options.get("lock_timeout"),
        statement_lock_timeout_s=options.get("statement_lock_timeout"),
        statement_timeout_s=options.get("statement_timeout"),
        direct_url=options.get("direct_url"),
        connect_wait_s=options.get("wait_"),
        layout=options.get("layout"),
    )


def setup_logging(verbosity: int, progress: logging.Handler | None = None) -> None:
    """Log records on stderr, except the events the commands print on stdout themselves (which
    feed the live progress line instead, on a terminal)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: not hasattr(record, EVENT))  # "applied ...": printed once, on stdout
    log.handlers[:] = [handler] if progress is None else [handler, progress]
    log.setLevel(level)
    log.propagate = False
    logging.getLogger("yoyo").setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING)


def revision_id(settings: Settings, ref: str | None) -> str | None:
    """The id of the revision `ref` names (its number with any zero padding, or its id), which is
    what the library takes; `ref` unchanged for base, or when no revision in the directory has it
    (the library then names the problem, or finds it among the applied ones)."""
    if ref is None or ref.strip().lower() == "base":
        return ref
    from .revisions import discover

    found = discover(settings.migrations_dir, settings.layout).find(ref)
    return found.id if found is not None else ref


# ------------------------------------------------------------------------------- the fast path


def parse_upgrade(args: Sequence[str]) -> dict[str, Any] | None:
    """The options of `[global options] [upgrade [upgrade options]]`, merged as click merges them;
    None for anything else (another command, --help, --dry-run, a value click would refuse), which
    click then parses, reporting errors and help as usual."""
    levels: list[dict[str, Any]] = [{}, {}]  # before `upgrade`, after it
    level, i = 0, 0
    while i < len(args):
        arg, i = args[i], i + 1
        if level == 0 and arg == "upgrade":
            level = 1
            continue
        found = _flag(arg) or _valued(arg, args[i] if i < len(args) else None, level)
        if found is None:
            return None
        key, value, used = found
        if key == "verbose":
            value += levels[level].get("verbose", 0)
        levels[level][key] = value
        i += used
    return {**levels[0], **levels[1], "verbose": levels[0].get("verbose", 0) + levels[1].get("verbose", 0)}


def _flag(arg: str) -> tuple[str, Any, int] | None:
    if arg in ("-q", "--quiet"):
        return "quiet", True, 0
    if arg == "--verbose" or (len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"}):
        return "verbose", 1 if arg == "--verbose" else len(arg) - 1, 0
    return None


def _valued(arg: str, following: str | None, level: int) -> tuple[str, Any, int] | None:
    """`--option value` or `--option=value`: (key, value, arguments used beyond `arg`), or None."""
    name, eq, value = arg.partition("=")
    key = VALUE_OPTIONS.get(name) or ("target" if level == 1 and name == "--to" else None)
    if key is None:
        return None
    used = 0
    if not eq:
        if following is None or following.startswith("-"):
            return None  # click says what is missing (or treats a leading '-' its own way)
        value, used = following, 1
    if key in SECONDS:
        try:
            return key, float(value), used
        except ValueError:
            return None  # click's "is not a valid float"
    if key == "migrations_dir" and os.path.exists(value) and not os.path.isdir(value):
        return None  # click's "is a file"
    return key, value, used


def _upgrade(options: Mapping[str, Any]) -> int:
    """`z4j-migrate [upgrade]`, parsed by parse_upgrade: click is never imported."""
    run = Invocation()
    settings = run.settings(options)
    print_upgrade(api.upgrade(settings, to=revision_id(settings, options.get("target"))), run)
    return 0


# ------------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    ours = argv is None and os.path.basename(sys.argv[0]) in ("z4j-migrate", "__main__.py")  # the process is ours
    options = parse_upgrade(args)
    try:
        with interrupt.signals():
            code = _upgrade(options) if options is not None else _click(args)
            sys.stdout.flush()
    except BaseException as exc:  # the one error boundary
        code = _fail(exc, verbose=_wants_tracebacks(args))
    if ours and (options is not None or command_of(args) in _QUICK_EXIT):
        _exit_now(code)
    sys.exit(code)


def _wants_tracebacks(args: Sequence[str]) -> bool:
    """-v (-vv, --verbose) anywhere; read from the raw arguments, since the error may be that they do not parse."""
    return any(found[0] == "verbose" for found in map(_flag, args) if found)


def _click(args: list[str]) -> int:
    """Any other invocation: click parses it and runs the command. Not through click's `main`, whose
    handlers would turn a closed pipe into exit 1 and print errors their own way: every exception,
    click's included (usage errors, ctx.exit), goes to main()'s boundary."""
    from .commands import cli

    with cli.make_context("z4j-migrate", args) as ctx:
        code = cli.invoke(ctx)
    return code if isinstance(code, int) else 0


# Commands that hold no temporary files or threads at exit, so their process may skip teardown
# (None: the group alone, which runs upgrade or status, or prints help or the version).
_QUICK_EXIT = frozenset({"upgrade", "downgrade", "status", "wait", None})


def command_of(args: Sequence[str]) -> str | None:
    """The command name in `args`: the first argument that is neither an option nor its value."""
    i = 0
    while i < len(args):
        if not args[i].startswith("-"):
            return args[i]
        i += 2 if args[i] in VALUE_OPTIONS else 1
    return None


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown of every module, a large share of the
    no-op deploy's time once psycopg is loaded (docs/performance.md). The commands
    that get here hold no temporary files, threads or open connections; output is flushed here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _fail(exc: BaseException, verbose: bool) -> int:
    """The exit code for `exc`, after one paragraph on stderr (a traceback too with -v)."""
    if isinstance(exc, BrokenPipeError):
        return _pipe_closed()
    if isinstance(exc, SystemExit) and isinstance(exc.__context__, BrokenPipeError):
        return _pipe_closed()  # click's own handling of EPIPE ends in sys.exit(1)
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    click = sys.modules.get("click")  # only loaded when a click command ran
    if click is not None and isinstance(exc, (click.exceptions.Exit, click.Abort, click.ClickException)):
        return _click_fail(exc, click)
    if verbose:
        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    if isinstance(exc, Interrupted):
        print(f"error: {exc.summary()}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, Z4jMigrateError):
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted.", file=sys.stderr)
        return 130
    print(f"error: unexpected {exc.__class__.__name__}: {redact(str(exc))} (run with -v for details)", file=sys.stderr)
    return 1


def _click_fail(exc: BaseException, click: Any) -> int:
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, click.Abort):
        print("aborted; nothing was changed.", file=sys.stderr)
        return 4
    print(f"error: {redact(exc.format_message())} (see z4j-migrate --help)", file=sys.stderr)
    return 2


PIPE_CLOSED = 141  # what a shell shows for a program killed by SIGPIPE


def _pipe_closed() -> int:
    """The reader of our output went away (`| head -1`): stop quietly, and keep the interpreter's
    final flush of stdout from raising again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return PIPE_CLOSED


# ------------------------------------------------------------------------------- output


def print_upgrade(result: api.UpgradeResult, run: Invocation) -> None:
    if result.skipped:
        print("Z4J_AUTO_MIGRATE=false: nothing done.")
        return
    for applied in result.applied:
        run.say(f"applied {applied.id} ({applied.duration_ms:.0f} ms)")
    if not result.applied:
        run.say("nothing to do: the database is up to date.")
    if result.unknown:
        print(
            f"warning: the database has revisions this code does not know: {', '.join(result.unknown)}", file=sys.stderr
        )


def render_status(report: api.StatusReport) -> str:
    lines = [f"database: {report.database}"]
    width = max((len(r.id) for r in report.revisions), default=10)
    for r in report.revisions:
        when = r.applied_at.strftime("%Y-%m-%d %H:%M:%S") if r.applied_at else ""
        took = f"{r.duration_ms:.0f} ms" if r.duration_ms is not None else ""
        extra = f"  [{r.detail}]" if r.detail else ""
        lines.append(f"  {r.state:<10} {r.id:<{width}}  {when:<19}  {took:>8}  {r.message}{extra}")
    counts = ", ".join(
        f"{report.count(s)} {s}"
        for s in ("applied", "pending", "edited", "unknown", "partial", "unverified")
        if report.count(s)
    )
    lines.append(f"current: {report.current or 'base'} ({counts or 'no revisions'})")
    if report.missing_extensions:
        lines.append(f"missing extensions: {', '.join(report.missing_extensions)} (created by the next upgrade)")
    if report.invalid_indexes:
        lines.append(f"INVALID indexes (interrupted CREATE INDEX CONCURRENTLY): {', '.join(report.invalid_indexes)}")
    lines.append(f"lock: held by {report.lock_holder.describe()}" if report.lock_holder else "lock: free")
    if report.layout != "z4j":
        lines.append(f"layout: {report.layout} (start-up reads every revision file; a manifest is for ours only)")
    elif report.manifest_stale is None:
        lines.append("manifest: none (start-up reads every revision file; z4j-migrate hash writes one)")
    elif report.manifest_stale:
        lines.append(f"manifest: OUT OF DATE for {', '.join(report.manifest_stale)} (run z4j-migrate hash)")
    else:
        lines.append("manifest: matches the revision files")
    return "\n".join(lines)


def render_status_json(report: api.StatusReport) -> str:
    return json.dumps(
        {
            "database": report.database,
            "current": report.current,
            "revisions": [
                {
                    "id": r.id,
                    "state": r.state,
                    "message": r.message,
                    "applied_at": r.applied_at.isoformat() if r.applied_at else None,
                    "duration_ms": round(r.duration_ms, 3) if r.duration_ms is not None else None,
                    "detail": r.detail,
                }
                for r in report.revisions
            ],
            "missing_extensions": list(report.missing_extensions),
            "invalid_indexes": list(report.invalid_indexes),
            "lock_holder": report.lock_holder.describe() if report.lock_holder else None,
            "manifest": None
            if report.manifest_stale is None
            else {"up_to_date": not report.manifest_stale, "stale_files": list(report.manifest_stale)},
        },
        indent=2,
    )


if __name__ == "__main__":
    main()
