"""The click commands of `z4j-migrate`: each builds its Settings, calls one library function, prints.

Imported by `z4j_migrate.cli.main` only when the arguments are not a plain upgrade (that one is
parsed without click). Errors are not handled here: they all leave through `cli.main`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from . import api
from .cli import Invocation, print_upgrade, render_status, render_status_json, revision_id
from .errors import ConfigError
from .logs import log

_DIR = click.Path(file_okay=False)
_LAYOUT_HELP = (
    "Whose file layout the revisions are in: z4j, golang-migrate, dbmate, yoyo or flyway [env Z4J_LAYOUT; "
    "else layout in the directory's z4j-migrate.toml; default z4j] (docs/revision-format.md, Layouts)."
)
_COMMON = [
    click.option("--database-url", help="Database URL or libpq string [env Z4J_DATABASE_URL]."),
    click.option(
        "--migrations-dir", type=_DIR, help="Revision directory [env Z4J_MIGRATIONS_DIR; default: bundled sql/]."
    ),
    click.option("--schema", help="Schema of the bookkeeping tables [default: public]."),
    click.option(
        "--lock-timeout", type=float, help="Seconds to wait for the migration lock [env Z4J_LOCK_TIMEOUT; default 60]."
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
        "--wait", "wait_", type=float, help="Retry connecting for up to this many seconds while the database starts."
    ),
    click.option("--layout", help=_LAYOUT_HELP),
    click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors."),
    click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors."),
]


def common(f: Callable[..., Any]) -> Callable[..., Any]:
    """The database options (cli.VALUE_OPTIONS), -v and -q: on the group and on each command."""
    for option in reversed(_COMMON):
        f = option(f)
    return f


_DRY_RUN = click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")

# ------------------------------------------------------------------ fan-out (fleet.py, docs/kubernetes.md)
_FAN_OUT = [
    click.option(
        "--targets",
        "targets_file",
        type=click.Path(dir_okay=False),
        help="Run on every target of FILE: one URL or libpq string per line, # comments (fan-out).",
    ),
    click.option(
        "--targets-query",
        help="Run on every row of this SQL, run on --database-url: a URL, libpq string or database name per row "
        "(fan-out).",
    ),
    click.option(
        "--schemas",
        help="Schema-per-tenant: run on every schema of --database-url matching this LIKE pattern (tenant_%), "
        "each its own bookkeeping and lock, search_path = tenant, public (fan-out).",
    ),
    click.option(
        "--jobs", type=click.IntRange(min=1), help="Fan-out: run this many targets at a time (one connection each) [1]."
    ),
    click.option("--fail-fast", is_flag=True, help="Fan-out: start no new target once one has failed."),
    click.option(
        "--shard",
        help="Fan-out: only every N-th target, I/N with I in 0..N-1, or auto/N (I from JOB_COMPLETION_INDEX: "
        "a Kubernetes Indexed Job).",
    ),
]
_FAN_KEYS = ("targets_file", "targets_query", "schemas", "jobs", "fail_fast", "shard")
_FLEET_JSON = click.option(
    "--json", "as_json", is_flag=True, help="One JSON summary document (of the fan-out, or of the one target)."
)


def fan_out(f: Callable[..., Any]) -> Callable[..., Any]:
    """The fan-out options: with any of them the command runs through fleet.run_fleet."""
    for option in reversed(_FAN_OUT):
        f = option(f)
    return f


def _fan_out(options: dict[str, Any], *, as_json: bool = False) -> Any:
    """The command's fleet.FanOut, its options taken out of `options`; None for the single-target
    path (unchanged, and fleet.py is not imported). `as_json`: a one-target fan-out without them."""
    if all(options.get(key) is None or options.get(key) is False for key in _FAN_KEYS) and not as_json:
        for key in _FAN_KEYS:
            options.pop(key, None)
        return None
    from .fleet import FanOut

    return FanOut.pop(options)


def _fleet(
    run: Invocation,
    options: dict[str, Any],
    fan: Any,
    command: str,
    action: Callable[..., Any],
    describe: Callable[[Any], Any],
    *,
    as_json: bool,
    every_target: bool = False,
) -> None:
    """Run `action(settings)` on every target of `fan`; print one summary; exit with the worst code."""
    from . import fleet

    if fan.tenant_mode and {**run.options, **options}.get("schema"):
        raise ConfigError("--schemas makes each tenant schema its own bookkeeping schema: drop --schema.")
    targets = fan.select(lambda url: run.settings(options if url is None else {**options, "database_url": url}))
    if fan.tenant_mode and targets and command in ("upgrade", "downgrade"):
        fleet.check_tenant_revisions(targets[0].settings.migrations_dir, targets[0].settings.layout)
    fleet.warn_if_empty(fan, targets)
    with fleet.fleet_logging(run.verbosity):
        report = fleet.run_fleet(
            targets,
            action,
            jobs=fan.jobs or 1,
            fail_fast=fan.fail_fast,
            describe=describe,
            command=command,
            shard_spec=fan.shard,
        )
    text = fleet.render_text(report, verbose=run.verbosity > 0, every_target=every_target)
    progress = getattr(run, "progress", None)
    if progress is not None:
        progress.finish()  # the live line over targets ends before the summary
    print(report.to_json() if as_json else text, flush=True)
    if report.worst_exit_code:
        raise click.exceptions.Exit(report.worst_exit_code)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@common
@click.option("--status", "show_status", is_flag=True, help="Same as the status command.")
@click.version_option(package_name="z4j-migrate")
@click.pass_context
def cli(ctx: click.Context, show_status: bool, **options: Any) -> None:
    """Apply raw-SQL PostgreSQL revisions (NNNN_slug.up.sql / .down.sql) safely.

    Without a command: upgrade to the newest revision.
    """
    ctx.obj = Invocation(options)
    if ctx.invoked_subcommand is None:
        ctx.invoke(status_cmd if show_status else upgrade_cmd)


@cli.command("upgrade")
@common
@click.option("--to", "target", help="Stop at this revision (number or id).")
@_DRY_RUN
@fan_out
@_FLEET_JSON
@click.pass_obj
def upgrade_cmd(
    run: Invocation, target: str | None = None, dry_run: bool = False, as_json: bool = False, **options: Any
) -> None:
    """Apply pending revisions."""
    fan = _fan_out(options, as_json=as_json)
    if fan is not None:
        from .fleet import describe_upgrade

        if dry_run:
            raise ConfigError("--dry-run prints one database's SQL: leave out the fan-out options and --json.")
        action = lambda s: api.upgrade(s, to=revision_id(s, target))  # noqa: E731
        return _fleet(run, options, fan, "upgrade", action, describe_upgrade, as_json=as_json)
    settings = run.settings(options)
    result = api.upgrade(settings, to=revision_id(settings, target), dry_run=dry_run)
    if dry_run:
        from .dryrun import render_upgrade

        print(render_upgrade(settings, result.planned), end="")
    else:
        print_upgrade(result, run)


@cli.command("downgrade")
@common
@click.option("--to", "to", help="Revision to go back to (it stays applied; number or id), or 'base'.")
@click.option("--steps", type=click.IntRange(min=1), help="Undo this many revisions.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_DRY_RUN
@fan_out
@_FLEET_JSON
@click.pass_obj
def downgrade_cmd(
    run: Invocation, to: str | None, steps: int | None, yes: bool, dry_run: bool, as_json: bool = False, **options: Any
) -> None:
    """Undo applied revisions (never drops extensions)."""
    if (to is None) == (steps is None):
        raise ConfigError("downgrade needs exactly one of --to REV|base or --steps N.")
    fan = _fan_out(options, as_json=as_json)
    if fan is not None:
        from .fleet import describe_downgrade

        if dry_run:
            raise ConfigError("--dry-run prints one database's SQL: leave out the fan-out options and --json.")
        if not yes and sys.stdin.isatty():
            raise ConfigError("a fan-out downgrade cannot ask each target for confirmation: add --yes.")
        action = lambda s: api.downgrade(s, to=revision_id(s, to), steps=steps)  # noqa: E731
        return _fleet(run, options, fan, "downgrade", action, describe_downgrade, as_json=as_json)
    settings = run.settings(options)
    confirm = None if yes or not sys.stdin.isatty() else _confirm
    result = api.downgrade(settings, to=revision_id(settings, to), steps=steps, confirm=confirm, dry_run=dry_run)
    if dry_run:
        from .dryrun import render_downgrade

        print(render_downgrade(settings, list(result.planned)), end="")
        return
    for undone in result.rolled_back:
        run.say(f"rolled back {undone.id} ({undone.duration_ms:.0f} ms)")
    if not result.rolled_back:
        run.say("nothing to do.")


def _confirm(plan: list[Any]) -> bool:
    print("This will undo, in order:")
    for step in plan:
        print(f"  {step.revision.id}{' (down SQL from the database)' if step.from_database else ''}")
    return click.confirm("Proceed?", default=False)


@cli.command("status")
@common
@_JSON
@click.option("--exit-code", is_flag=True, help="Exit 10 when revisions are pending, 5 on drift.")
@fan_out
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool = False, exit_code: bool = False, **options: Any) -> None:
    """Applied, pending, edited and unknown revisions; the lock holder."""
    fan = _fan_out(options)
    if fan is not None:
        from .fleet import describe_status

        describe = lambda r: describe_status(r, exit_code=exit_code)  # noqa: E731
        return _fleet(ctx.obj, options, fan, "status", api.status, describe, as_json=as_json, every_target=True)
    report = api.status(ctx.obj.settings(options))
    print(render_status_json(report) if as_json else render_status(report))
    if exit_code and not report.clean:
        ctx.exit(5)
    if exit_code and report.count("pending"):
        ctx.exit(10)


@cli.command("wait")
@common
@click.option("--timeout", "timeout_s", type=float, default=60.0, metavar="SECONDS", help="Give up then: exit 13 [60].")
@click.option("--interval", "poll_s", type=float, default=0.25, metavar="SECONDS", help="Between checks [0.25].")
@fan_out
@_FLEET_JSON
@click.pass_obj
def wait_cmd(run: Invocation, timeout_s: float, poll_s: float, as_json: bool = False, **options: Any) -> None:
    """Wait until the database holds every revision of this code (a readiness gate; takes no lock, writes nothing)."""
    from .wait import wait_for_head

    fan = _fan_out(options, as_json=as_json)
    if fan is not None:  # each target waits up to --timeout from when it starts
        from .fleet import describe_wait

        action = lambda s: wait_for_head(s, timeout_s=timeout_s, poll_s=poll_s)  # noqa: E731
        return _fleet(run, options, fan, "wait", action, describe_wait, as_json=as_json)
    settings = run.settings(options)
    result = wait_for_head(settings, timeout_s=timeout_s, poll_s=poll_s)
    plural = "" if result.revisions == 1 else "s"
    run.say(f"ready: {settings.database.display} is at head ({result.revisions} revision{plural})")


@cli.command("new")
@click.argument("message")
@click.option("--migrations-dir", type=_DIR, help="Where to create the pair.")
@click.option("--non-transactional", is_flag=True, help="Add '-- transactional: false'.")
def new_cmd(message: str, migrations_dir: str | None, non_transactional: bool) -> None:
    """Scaffold the next NNNN_slug.up.sql / .down.sql pair."""
    from .directory import new_revision

    created = new_revision(message, directory=migrations_dir, transactional=not non_transactional)
    print(created.up)
    print(created.down)
    if created.manifest is not None:
        print(f"updated {created.manifest}; run z4j-migrate hash again once the SQL is written")


@cli.command("hash")
@click.argument("directory", required=False, type=_DIR)
@click.option("--layout", help=_LAYOUT_HELP)
def hash_cmd(directory: str | None, layout: str | None = None) -> None:
    """Write z4j-migrate.sum, the checksum manifest the start-up check reads (docs/revision-format.md)."""
    from .directory import write_manifest

    path, changed, count = write_manifest(directory, layout=layout)
    print(f"{'wrote' if changed else 'up to date:'} {path} ({count} revision(s))")


@cli.command("export")
@click.argument("directory", type=_DIR)
@click.option(
    "--layout",
    "to_layout",
    required=True,
    type=click.Choice(["golang-migrate", "dbmate", "yoyo", "flyway"]),
    help="The tool to write the revisions for.",
)
@click.option("--migrations-dir", type=_DIR, help="The revisions to export [env Z4J_MIGRATIONS_DIR].")
@click.option("--from-layout", help="The layout --migrations-dir is written in [env Z4J_LAYOUT; default z4j].")
@click.option("--force", is_flag=True, help="Write into a non-empty DIRECTORY, replacing its .sql and .sql.conf files.")
def export_cmd(
    directory: str, to_layout: str, migrations_dir: str | None, from_layout: str | None, force: bool
) -> None:
    """Write the revisions into DIRECTORY in another tool's layout (docs/revision-format.md, Exporting)."""
    from .export import export

    result = export(to_layout, directory, migrations_dir=migrations_dir, force=force, from_layout=from_layout)
    print(f"wrote {len(result.files)} file(s) for {result.revisions} revision(s) to {result.directory} ({to_layout})")
    for note in result.notes:
        print(f"note: {note}")


@cli.command("check")
@click.argument("directory", required=False, type=_DIR)
@click.option("--no-lint", is_flag=True, help="Skip squawk (destructive statements are still checked).")
@click.option(
    "--tenant-mode", is_flag=True, help="Schema-per-tenant (--schemas): refuse SQL that names a fixed schema."
)
@click.option("-v", "--verbose", count=True, help="List every lint finding (default: a few per rule).")
@click.option("--layout", help=_LAYOUT_HELP)
@_JSON
@click.pass_obj
def check_cmd(
    run: Invocation,
    directory: str | None,
    no_lint: bool = False,
    tenant_mode: bool = False,
    verbose: int = 0,
    layout: str | None = None,
    as_json: bool = False,
) -> None:
    """Validate a revision directory offline (no database), then lint it: every problem, one line
    each, then exit 3 if there is any (docs/verify.md)."""
    from .directory import check_directory

    layout = layout or run.options.get("layout")
    report = check_directory(directory, lint=not no_lint, layout=layout)
    if tenant_mode and not report.problems:  # docs/kubernetes.md, "Schema-per-tenant"
        from .fleet import check_tenant_revisions

        check_tenant_revisions(report.directory, layout=layout)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render(verbose=verbose + run.options.get("verbose", 0) > 0), end="")
    report.raise_for_problems()


@cli.command("schema")
@common
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json", "mermaid"]),
    help="Markdown reference, JSON snapshot, or Mermaid erDiagram of tables and foreign keys [markdown].",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.pass_obj
def schema_cmd(run: Invocation, fmt: str | None = None, as_json: bool = False, **options: Any) -> None:
    """Print the live schema (tables, constraints, indexes, enums, functions, triggers, partitions)."""
    from .catalog import schema_reference
    from .db import connect

    if as_json and fmt not in (None, "json"):
        raise ConfigError(f"schema: --json and --format {fmt} contradict each other; give one.")
    with connect(run.settings(options)) as conn:
        print(schema_reference(conn, format="json" if as_json else fmt), end="")


@cli.command("accept")
@common
@click.argument("revision")
@click.pass_obj
def accept_cmd(run: Invocation, revision: str, **options: Any) -> None:
    """Accept the edited files of an applied revision (records new checksums; audited)."""
    from .repair import accept_edit

    settings = run.settings(options)
    rev_id = revision_id(settings, revision)
    accept_edit(settings, rev_id)
    run.say(f"accepted the current files of {rev_id}")


@cli.command("resolve")
@common
@click.argument("revision")
@click.option("--applied", "outcome", flag_value="applied", help="You finished the remaining statements by hand.")
@click.option("--not-applied", "outcome", flag_value="not-applied", help="You undid the statements that ran.")
@click.pass_obj
def resolve_cmd(run: Invocation, revision: str, outcome: str | None, **options: Any) -> None:
    """Close the journal of a non-transactional revision that stopped part-way."""
    from .repair import resolve_partial

    if outcome is None:
        raise ConfigError("resolve needs --applied or --not-applied.")
    settings = run.settings(options)
    rev_id = revision_id(settings, revision)
    resolve_partial(settings, rev_id, applied=outcome == "applied")
    run.say(f"resolved {rev_id} as {outcome}")


@cli.command("verify")
@common
@click.option("--seed", type=click.Path(dir_okay=False), help="SQL run at head before the round trip to base.")
@click.option("--smoke", type=click.Path(dir_okay=False), help="SQL run at head after the round trip.")
@click.option(
    "--no-scratch", is_flag=True, help="Verify in the --database-url database itself (must be empty; left at head)."
)
@click.option("--keep", is_flag=True, help="Do not drop the scratch database (its URL is printed).")
@click.option(
    "--keep-going", is_flag=True, help="After a revision fails, rebuild up to it and check the rest: list them all."
)
@click.option("--strict", is_flag=True, help="Warnings (a column re-added at another position) fail too.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@fan_out
@click.pass_obj
def verify_cmd(
    run: Invocation,
    seed: str | None,
    smoke: str | None,
    no_scratch: bool,
    keep: bool,
    keep_going: bool,
    strict: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Prove that every down undoes its up, on a scratch database (exit 9 if not; docs/verify.md)."""
    from .verify import render_text, verify

    fan = _fan_out(options)
    if fan is not None:  # one verification per server (or per empty database with --no-scratch)
        from .fleet import describe_verify, verified

        if fan.tenant_mode or keep:
            raise ConfigError(
                "verify --schemas: every tenant runs the same files, so verify them once (z4j-migrate verify) and "
                "check them for tenants with z4j-migrate check --tenant-mode."
                if fan.tenant_mode
                else "verify --keep prints one scratch database: leave out the fan-out options."
            )
        kw = {"keep_going": keep_going, "strict": strict}
        action = lambda s: verified(verify(s, seed=seed, smoke=smoke, scratch=not no_scratch, **kw))  # noqa: E731
        return _fleet(run, options, fan, "verify", action, describe_verify, as_json=as_json)
    settings = run.settings(options)
    if run.verbosity <= 0:
        log.setLevel(logging.WARNING)  # the engine's progress lines would drown the report
    say = (lambda _text: None) if as_json else run.progress.echo
    report = verify(
        settings,
        seed=seed,
        smoke=smoke,
        scratch=not no_scratch,
        keep=keep,
        on_progress=say,
        keep_going=keep_going,
        strict=strict,
    )
    run.progress.finish()
    print(report.to_json() if as_json else render_text(report), end="\n" if as_json else "")
    report.raise_for_problems()


@cli.command("adopt")
@common
@click.option(
    "--from",
    "source",
    type=click.Choice(["golang-migrate", "dbmate", "yoyo", "flyway", "alembic"]),
    help="The tool whose history says what is applied (alembic: explains adopt --to).",
)
@click.option("--to", "to", help="A database built by hand: the newest revision it already has (number or id).")
@click.option("--history-table", help="That tool's history table, if not its default name (TABLE or SCHEMA.TABLE).")
@click.option("--dry-run", is_flag=True, help="Build and compare; record nothing.")
@click.pass_obj
def adopt_cmd(
    run: Invocation, source: str | None, to: str | None, history_table: str | None, dry_run: bool, **options: Any
) -> None:
    """Take over a database another tool (or a person) built: record the revisions once its catalog
    matches theirs (built in a scratch database); exit 5 if not (docs/adoption.md)."""
    from .adopt import adopt

    settings = run.settings(options)
    if run.verbosity <= 0:
        log.setLevel(logging.WARNING)  # the scratch build's engine lines are not the story
    result = adopt(
        settings, source=source, to=to, history_table=history_table, dry_run=dry_run, on_progress=run.progress.echo
    )
    run.say(result.summary())
