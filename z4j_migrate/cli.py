"""The `z4j-migrate` command: a thin click layer over the API, with one error boundary.

Every error leaves through `main()`: one paragraph on stderr, passwords
masked, the documented exit code, a traceback only with -v. The bare command
(`z4j-migrate` or `z4j-migrate upgrade`, settings from the environment) skips
click entirely: it is what deploy scripts run on every boot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import api, interrupt
from .errors import ConfigError, Z4jMigrateError, redact
from .interrupt import Interrupted
from .logs import log

_quiet = False


def _say(text: str) -> None:
    """Progress lines for a person; -q silences them (errors and warnings still go to stderr)."""
    if not _quiet:
        print(text)


def _setup_logging(verbosity: int) -> None:
    global _quiet
    _quiet = verbosity < 0
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    logging.getLogger("yoyo").setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING)


def _print_upgrade(result: api.UpgradeResult) -> None:
    if result.skipped:
        print("Z4J_AUTO_MIGRATE=false: nothing done.")
        return
    for run in result.applied:
        _say(f"applied {run.id} ({run.duration_ms:.0f} ms)")
    if not result.applied:
        _say("nothing to do: the database is up to date.")
    if result.unknown:
        print(
            f"warning: the database has revisions this code does not know: {', '.join(result.unknown)}", file=sys.stderr
        )


def _fail(exc: BaseException, verbose: bool) -> int:
    if isinstance(exc, BrokenPipeError):
        return _pipe_closed()
    if isinstance(exc, SystemExit) and isinstance(exc.__context__, BrokenPipeError):
        return _pipe_closed()  # click's own handling of EPIPE ends in sys.exit(1)
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
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


PIPE_CLOSED = 141  # what a shell shows for a program killed by SIGPIPE


def _pipe_closed() -> int:
    """The reader of our output went away (`| head -1`): stop quietly, and keep the interpreter's
    final flush of stdout from raising again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return PIPE_CLOSED


def _fast_path() -> int:
    """`z4j-migrate [upgrade]` with settings from the environment: no click import."""
    _setup_logging(0)
    try:
        with interrupt.signals():
            _print_upgrade(api.upgrade())
            sys.stdout.flush()
        return 0
    except BaseException as exc:  # the one error boundary
        return _fail(exc, verbose=False)


# Commands that hold no temporary files or threads at exit, so their process may skip teardown.
_QUICK_EXIT = frozenset({"upgrade", "downgrade", "status"})


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    ours = argv is None and os.path.basename(sys.argv[0]) in ("z4j-migrate", "__main__.py")  # the process is ours
    if args in ([], ["upgrade"]):
        code = _fast_path()
        if ours:
            _exit_now(code)
        sys.exit(code)
    code = _click_main(args)
    if ours and next((a for a in args if not a.startswith("-")), None) in _QUICK_EXIT:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown of every module, which costs about 20 ms
    once psycopg is loaded: a fifth of the no-op deploy's time (docs/performance.md). The fast path
    holds no temporary files, threads or open connections; output is flushed here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _click_main(args: list[str]) -> int:
    import click

    verbose = "-v" in args or "--verbose" in args
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of raising it.
        with interrupt.signals():
            code = build_cli()(args=args, prog_name="z4j-migrate", standalone_mode=False)
            sys.stdout.flush()
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        print("aborted; nothing was changed.", file=sys.stderr)
        return 4
    except click.ClickException as exc:
        print(f"error: {redact(exc.format_message())} (see z4j-migrate --help)", file=sys.stderr)
        return 2
    except BaseException as exc:
        return _fail(exc, verbose)


def build_cli() -> Any:
    """Build the click group lazily so that the fast path never imports click."""
    import click

    from .config import settings_from_env

    def common(f: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--database-url", help="Database URL or libpq string [env Z4J_DATABASE_URL]."),
            click.option(
                "--migrations-dir",
                type=click.Path(file_okay=False),
                help="Revision directory [env Z4J_MIGRATIONS_DIR; default: bundled sql/].",
            ),
            click.option("--schema", help="Schema of the bookkeeping tables [default: public]."),
            click.option(
                "--lock-timeout",
                type=float,
                help="Seconds to wait for the migration lock [env Z4J_LOCK_TIMEOUT; default 60].",
            ),
            click.option(
                "--statement-lock-timeout",
                type=float,
                help="Seconds a statement may wait for a table lock before the revision is retried [default 5].",
            ),
            click.option(
                "--statement-timeout",
                type=float,
                help="Seconds a migration statement may run [env Z4J_STATEMENT_TIMEOUT; default 0: no limit, "
                "whatever the role sets].",
            ),
            click.option(
                "--direct-url",
                help="The server's own address, for non-transactional revisions when --database-url goes "
                "through a transaction pooler [env Z4J_DIRECT_DATABASE_URL].",
            ),
            click.option(
                "--wait",
                "wait_",
                type=float,
                help="Retry connecting for up to this many seconds while the database starts.",
            ),
            click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors."),
            click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors."),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    def settings(ctx: click.Context, **kw: Any) -> Any:
        merged = dict(ctx.obj or {})
        merged.update({k: v for k, v in kw.items() if v is not None and v is not False})
        _setup_logging(-1 if merged.get("quiet") else merged.get("verbose", 0))
        for key, name in (
            ("lock_timeout", "--lock-timeout"),
            ("wait_", "--wait"),
            ("statement_lock_timeout", "--statement-lock-timeout"),
            ("statement_timeout", "--statement-timeout"),
        ):
            if merged.get(key) is not None and merged[key] < 0:
                raise ConfigError(f"{name} {merged[key]:g}: must be 0 or more seconds.")
        return settings_from_env(
            merged.get("database_url"),
            merged.get("migrations_dir"),
            schema=merged.get("schema"),
            lock_timeout_s=merged.get("lock_timeout"),
            statement_lock_timeout_s=merged.get("statement_lock_timeout"),
            statement_timeout_s=merged.get("statement_timeout"),
            direct_url=merged.get("direct_url"),
            connect_wait_s=merged.get("wait_"),
        )

    @click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
    @common
    @click.option("--status", "show_status", is_flag=True, help="Same as the status command.")
    @click.version_option(package_name="z4j-migrate")
    @click.pass_context
    def cli(ctx: click.Context, show_status: bool, **kw: Any) -> None:
        """Apply raw-SQL PostgreSQL revisions (NNNN_slug.up.sql / .down.sql) safely.

        Without a command: upgrade to the newest revision.
        """
        ctx.obj = {k: v for k, v in kw.items() if v is not None and v is not False}
        if ctx.invoked_subcommand is None:
            if show_status:
                ctx.invoke(status_cmd)
            else:
                ctx.invoke(upgrade_cmd)

    @cli.command("upgrade")
    @common
    @click.option("--to", "target", help="Stop at this revision (number or id).")
    @click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing.")
    @click.pass_context
    def upgrade_cmd(ctx: click.Context, target: str | None = None, dry_run: bool = False, **kw: Any) -> None:
        """Apply pending revisions."""
        s = settings(ctx, **kw)
        result = api.upgrade(s, to=target, dry_run=dry_run)
        if dry_run:
            from .dryrun import render_upgrade

            print(render_upgrade(s, result.planned), end="")
            return
        _print_upgrade(result)

    @cli.command("downgrade")
    @common
    @click.option("--to", "to", help="Revision to go back to (it stays applied), or 'base'.")
    @click.option("--steps", type=click.IntRange(min=1), help="Undo this many revisions.")
    @click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
    @click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing.")
    @click.pass_context
    def downgrade_cmd(
        ctx: click.Context, to: str | None, steps: int | None, yes: bool, dry_run: bool, **kw: Any
    ) -> None:
        """Undo applied revisions (never drops extensions)."""
        if (to is None) == (steps is None):
            raise ConfigError("downgrade needs exactly one of --to REV|base or --steps N.")
        s = settings(ctx, **kw)

        def confirm(plan: list[Any]) -> bool:
            if yes or not sys.stdin.isatty():
                return True
            print("This will undo, in order:")
            for step in plan:
                src = " (down SQL from the database)" if step.from_database else ""
                print(f"  {step.revision.id}{src}")
            return click.confirm("Proceed?", default=False)

        result = api.downgrade(s, to=to, steps=steps, confirm=confirm, dry_run=dry_run)
        if dry_run:
            from .dryrun import render_downgrade

            print(render_downgrade(s, list(result.planned)), end="")
            return
        for run in result.rolled_back:
            _say(f"rolled back {run.id} ({run.duration_ms:.0f} ms)")
        if not result.rolled_back:
            _say("nothing to do.")

    @cli.command("status")
    @common
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--exit-code", is_flag=True, help="Exit 10 when revisions are pending, 5 on drift.")
    @click.pass_context
    def status_cmd(ctx: click.Context, as_json: bool = False, exit_code: bool = False, **kw: Any) -> None:
        """Applied, pending, edited and unknown revisions; the lock holder."""
        report = api.status(settings(ctx, **kw))
        print(render_status_json(report) if as_json else render_status(report))
        if exit_code and not report.clean:
            ctx.exit(5)
        if exit_code and report.count("pending"):
            ctx.exit(10)

    @cli.command("new")
    @click.argument("message")
    @click.option("--migrations-dir", type=click.Path(file_okay=False), help="Where to create the pair.")
    @click.option("--non-transactional", is_flag=True, help="Add '-- transactional: false'.")
    def new_cmd(message: str, migrations_dir: str | None, non_transactional: bool) -> None:
        """Scaffold the next NNNN_slug.up.sql / .down.sql pair."""
        from .scaffold import new_revision

        up, down = new_revision(migrations_dir, message, transactional=not non_transactional)
        print(up)
        print(down)
        from . import manifest

        if (up.parent / manifest.MANIFEST_FILE).exists():
            manifest.write(up.parent, manifest.for_directory(up.parent))
            print(f"updated {up.parent / manifest.MANIFEST_FILE}; run z4j-migrate hash again once the SQL is written")

    @cli.command("hash")
    @click.argument("directory", required=False, type=click.Path(file_okay=False))
    def hash_cmd(directory: str | None) -> None:
        """Write z4j-migrate.sum, the checksum manifest the start-up check reads (docs/revision-format.md)."""
        import os

        from . import manifest
        from .config import BUNDLED_DIR, ENV_MIGRATIONS_DIR
        from .revisions import discover

        revset = discover(directory or os.environ.get(ENV_MIGRATIONS_DIR) or BUNDLED_DIR)
        path = revset.directory / manifest.MANIFEST_FILE
        changed = manifest.write(revset.directory, manifest.for_revisions(revset))
        print(f"{'wrote' if changed else 'up to date:'} {path} ({len(revset.revisions)} revision(s))")

    @cli.command("check")
    @click.argument("directory", required=False, type=click.Path(file_okay=False))
    @click.option("--no-lint", is_flag=True, help="Skip squawk (destructive statements are still checked).")
    def check_cmd(directory: str | None, no_lint: bool = False) -> None:
        """Validate a revision directory offline (no database), then lint it (docs/verify.md)."""
        import os

        from . import manifest
        from .config import BUNDLED_DIR, ENV_MIGRATIONS_DIR
        from .errors import RevisionFileError
        from .lint import lint, render
        from .revisions import discover
        from .sqlcheck import check_revision

        revset = discover(directory or os.environ.get(ENV_MIGRATIONS_DIR) or BUNDLED_DIR)
        for revision in revset.revisions:
            check_revision(revision)
        stale = manifest.stale_files(revset, thorough=True)
        if stale:
            raise RevisionFileError(manifest.stale_message(revset.directory, stale))
        print(f"ok: {len(revset.revisions)} revision(s) in {revset.directory}")
        if stale is None:
            print(
                f"note: no {manifest.MANIFEST_FILE}: every start-up reads and hashes every revision file "
                "(z4j-migrate hash writes it; docs/revision-format.md)"
            )
        report = lint(revset, squawk=not no_lint)
        print(render(report), end="")
        if report.errors:
            first = report.errors[0]
            raise RevisionFileError(
                f"lint found {len(report.errors)} error(s), listed above; the first is {first.rule}.",
                path=first.path,
                line=first.line,
            )

    @cli.command("schema")
    @common
    @click.option("--json", "as_json", is_flag=True, help="JSON instead of Markdown.")
    @click.pass_context
    def schema_cmd(ctx: click.Context, as_json: bool = False, **kw: Any) -> None:
        """Print the live schema (tables, constraints, indexes, enums, functions, triggers, partitions)."""
        from .catalog import schema_reference
        from .db import connect

        with connect(settings(ctx, **kw)) as conn:
            print(schema_reference(conn, as_json=as_json), end="")

    @cli.command("accept")
    @common
    @click.argument("revision")
    @click.pass_context
    def accept_cmd(ctx: click.Context, revision: str, **kw: Any) -> None:
        """Accept the edited files of an applied revision (records new checksums; audited)."""
        from .repair import accept_edit

        accept_edit(settings(ctx, **kw), revision)
        _say(f"accepted the current files of {revision}")

    @cli.command("resolve")
    @common
    @click.argument("revision")
    @click.option("--applied", "outcome", flag_value="applied", help="You finished the remaining statements by hand.")
    @click.option("--not-applied", "outcome", flag_value="not-applied", help="You undid the statements that ran.")
    @click.pass_context
    def resolve_cmd(ctx: click.Context, revision: str, outcome: str | None, **kw: Any) -> None:
        """Close the journal of a non-transactional revision that stopped part-way."""
        from .repair import resolve_partial

        if outcome is None:
            raise ConfigError("resolve needs --applied or --not-applied.")
        resolve_partial(settings(ctx, **kw), revision, applied=outcome == "applied")
        _say(f"resolved {revision} as {outcome}")

    @cli.command("verify")
    @common
    @click.option("--seed", type=click.Path(dir_okay=False), help="SQL run at head before the round trip to base.")
    @click.option("--smoke", type=click.Path(dir_okay=False), help="SQL run at head after the round trip.")
    @click.option(
        "--no-scratch", is_flag=True, help="Verify in the --database-url database itself (must be empty; left at head)."
    )
    @click.option("--keep", is_flag=True, help="Do not drop the scratch database (its URL is printed).")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.pass_context
    def verify_cmd(
        ctx: click.Context, seed: str | None, smoke: str | None, no_scratch: bool, keep: bool, as_json: bool, **kw: Any
    ) -> None:
        """Prove that every down undoes its up, on a scratch database (exit 9 if not; docs/verify.md)."""
        from .verify import render_text, verify

        s = settings(ctx, **kw)
        if not (ctx.obj or {}).get("verbose") and not kw.get("verbose"):
            log.setLevel(logging.WARNING)  # the engine's "applied ..." lines would drown the report
        say = (lambda _text: None) if as_json else (lambda text: print(text, flush=True))
        report = verify(s, seed=seed, smoke=smoke, scratch=not no_scratch, keep=keep, on_progress=say)
        print(report.to_json() if as_json else render_text(report), end="\n" if as_json else "")
        report.raise_for_problems()

    # -- commands added by other modules go above this line --
    return cli


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
    if report.manifest_stale is None:
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
                    "duration_ms": r.duration_ms,
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
