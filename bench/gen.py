"""Synthetic revision sets: the same SQL rendered into each tool's layout.

Each revision is realistic small DDL with its exact down: tables with indexes and
foreign keys, added columns, plpgsql functions, indexes, views, triggers, enums and
seed rows. Every object is prefixed `pb_` so the catalog fingerprint finds exactly
the workload. The SQL avoids `%` and `:name`, so no tool needs escaping (Alembic's
`op.execute` goes through SQLAlchemy `text()`), and dollar-quoted bodies contain `;`
so statement splitters are exercised.

Layouts written under `<out>/<N>/`:
  z4j/      NNNN_slug.up.sql + NNNN_slug.down.sql (`-- message:` header) + z4j-migrate.sum (the
            checksum manifest `z4j-migrate hash` writes, as a project following the docs ships it;
            re-rendered on every call, so it is never stale, not even after a library change)
  z4j-nosum/ the same .sql files without z4j-migrate.sum (the start-up check hashes every file)
  yoyo/     NNNN_slug.sql + NNNN_slug.rollback.sql (yoyo's stock layout)
  dbmate/   NNNN_slug.sql with `-- migrate:up` / `-- migrate:down`
  alembic/  alembic.ini, env.py (stock online env.py), versions/NNNN_slug.py with op.execute
  psql/     up_tx.sql / down_tx.sql (one transaction per revision + one bookkeeping row),
            up.sql / down.sql (bare SQL, for `psql -1`)
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

SEED = 20240101
FLOOR_TABLE = "_floor_migrations"


@dataclass(frozen=True)
class Rev:
    version: int
    slug: str
    kind: str
    up: str
    down: str

    @property
    def id(self) -> str:
        return f"{self.version:04d}_{self.slug}"


class _World:
    """What exists so far, so later revisions can refer to earlier objects."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tables: list[str] = []
        self.columns: dict[str, list[str]] = {}
        self.seeded: dict[str, int] = {}
        self.n = 0

    def table(self) -> str:
        # Prefer recent tables a little, like a real schema that grows.
        k = len(self.tables)
        return self.tables[max(0, k - 1 - int(self.rng.expovariate(1 / max(1.0, k / 3))) % k)]


def _create_table(w: _World, v: int) -> tuple[str, str, str]:
    name = f"pb_t{v:04d}"
    parent = w.table() if w.tables and w.rng.random() < 0.4 else None
    fk = f",\n    parent_id bigint REFERENCES {parent} (id) ON DELETE CASCADE" if parent else ""
    up = (
        f"CREATE TABLE {name} (\n"
        "    id bigint PRIMARY KEY,\n"
        "    name text NOT NULL,\n"
        "    status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'active', 'done')),\n"
        "    payload jsonb NOT NULL DEFAULT '{}',\n"
        "    created_at timestamptz NOT NULL DEFAULT now(),\n"
        f"    updated_at timestamptz{fk}\n"
        ");\n"
        f"CREATE INDEX {name}_status_ix ON {name} (status, created_at);\n"
        + (f"CREATE INDEX {name}_parent_ix ON {name} (parent_id);\n" if parent else "")
        + f"COMMENT ON TABLE {name} IS 'synthetic table {v}';\n"
    )
    down = f"DROP TABLE {name};\n"
    w.tables.append(name)
    w.columns[name] = []
    return f"create_{name[3:]}", up, down


def _add_column(w: _World, v: int) -> tuple[str, str, str]:
    table = w.table()
    col = f"c{v:04d}"
    typ, default = w.rng.choice(
        [("integer", ""), ("text", ""), ("boolean", " NOT NULL DEFAULT false"), ("numeric(12,2)", " DEFAULT 0")]
    )
    up = f"ALTER TABLE {table} ADD COLUMN {col} {typ}{default};\n"
    down = f"ALTER TABLE {table} DROP COLUMN {col};\n"
    w.columns[table].append(col)
    return f"add_{table[3:]}_{col}", up, down


def _create_function(w: _World, v: int) -> tuple[str, str, str]:
    name = f"pb_fn{v:04d}"
    a, b = w.rng.randint(2, 9), w.rng.randint(10, 99)
    up = (
        f"CREATE FUNCTION {name}(x integer, y integer) RETURNS integer\n"
        "LANGUAGE plpgsql IMMUTABLE AS $fn$\n"
        "DECLARE\n"
        "    r integer;\n"
        "BEGIN\n"
        f"    r := x * {a} + y;  -- a comment; with a semicolon\n"
        f"    IF r > {b} THEN\n"
        f"        r := r - {b};\n"
        "    END IF;\n"
        "    RETURN r;\n"
        "END;\n"
        "$fn$;\n"
    )
    down = f"DROP FUNCTION {name}(integer, integer);\n"
    return f"function_{v:04d}", up, down


def _create_index(w: _World, v: int) -> tuple[str, str, str]:
    table = w.table()
    name = f"pb_ix{v:04d}"
    expr = w.rng.choice(["(name)", "(lower(name))", "(created_at DESC)", "(name, status)"])
    where = " WHERE status <> 'done'" if w.rng.random() < 0.3 else ""
    up = f"CREATE INDEX {name} ON {table} {expr}{where};\n"
    down = f"DROP INDEX {name};\n"
    return f"index_{table[3:]}_{v:04d}", up, down


def _create_view(w: _World, v: int) -> tuple[str, str, str]:
    table = w.table()
    name = f"pb_v{v:04d}"
    up = (
        f"CREATE VIEW {name} AS\n"
        f"SELECT t.id, t.name, t.status, t.created_at\n"
        f"FROM {table} t\n"
        "WHERE t.status IN ('new', 'active');\n"
    )
    down = f"DROP VIEW {name};\n"
    return f"view_{table[3:]}_{v:04d}", up, down


def _create_trigger(w: _World, v: int) -> tuple[str, str, str]:
    table = w.table()
    fn, trg = f"pb_touch{v:04d}", f"pb_trg{v:04d}"
    up = (
        f"CREATE FUNCTION {fn}() RETURNS trigger\n"
        "LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "    NEW.updated_at := now();\n"
        "    RETURN NEW;\n"
        "END;\n"
        "$$;\n"
        f"CREATE TRIGGER {trg} BEFORE UPDATE ON {table}\n"
        f"    FOR EACH ROW EXECUTE FUNCTION {fn}();\n"
    )
    down = f"DROP TRIGGER {trg} ON {table};\nDROP FUNCTION {fn}();\n"
    return f"trigger_{table[3:]}_{v:04d}", up, down


def _create_enum(w: _World, v: int) -> tuple[str, str, str]:
    name = f"pb_e{v:04d}"
    labels = ", ".join(f"'l{v}_{i}'" for i in range(w.rng.randint(3, 6)))
    up = f"CREATE TYPE {name} AS ENUM ({labels});\n"
    down = f"DROP TYPE {name};\n"
    return f"enum_{v:04d}", up, down


def _seed(w: _World, v: int) -> tuple[str, str, str]:
    candidates = [t for t in w.tables if t not in w.seeded] or w.tables
    table = w.rng.choice(candidates[-20:])
    lo = v * 100
    rows = ",\n".join(f"    ({lo + i}, 'seed {v} row {i}', 'active')" for i in range(w.rng.randint(3, 8)))
    hi = lo + 99
    w.seeded[table] = v
    up = f"INSERT INTO {table} (id, name, status) VALUES\n{rows};\n"
    down = f"DELETE FROM {table} WHERE id BETWEEN {lo} AND {hi};\n"
    return f"seed_{table[3:]}_{v:04d}", up, down


_KINDS = [
    ("create table", _create_table, 31),
    ("add column", _add_column, 18),
    ("create function", _create_function, 12),
    ("create index", _create_index, 9),
    ("create view", _create_view, 8),
    ("create trigger", _create_trigger, 8),
    ("create enum", _create_enum, 6),
    ("seed data", _seed, 8),
]


def revisions(n: int, seed: int = SEED) -> list[Rev]:
    """The first `n` revisions of one endless deterministic stream (so N=10 is a prefix of N=1000)."""
    rng = random.Random(seed)
    w = _World(rng)
    out: list[Rev] = []
    names = [k[0] for k in _KINDS]
    weights = [k[2] for k in _KINDS]
    makers = {k[0]: k[1] for k in _KINDS}
    for v in range(1, n + 1):
        kind = "create table" if len(w.tables) < 2 else rng.choices(names, weights)[0]
        slug, up, down = makers[kind](w, v)
        out.append(Rev(v, slug, kind, up, down))
    return out


def _alembic_files(folder: Path, revs: list[Rev]) -> None:
    (folder / "versions").mkdir(parents=True)
    (folder / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s\nsqlalchemy.url = placeholder\n\n"
        "[loggers]\nkeys = root\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = generic\n\n"
        "[logger_root]\nlevel = WARNING\nhandlers = console\n\n"
        "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n\n"
        "[formatter_generic]\nformat = %%(levelname)-5.5s [%%(name)s] %%(message)s\n",
        encoding="utf-8",
    )
    # The stock online env.py (`alembic init`), minus offline mode; the URL comes from the
    # environment so one generated set serves every database.
    (folder / "env.py").write_text(
        "import os\n"
        "from logging.config import fileConfig\n\n"
        "from alembic import context\n"
        "from sqlalchemy import engine_from_config, pool\n\n"
        "config = context.config\n"
        "if config.config_file_name is not None and not config.attributes.get('no_logging_config'):\n"
        "    fileConfig(config.config_file_name)\n"
        "config.set_main_option('sqlalchemy.url', os.environ['BENCH_ALEMBIC_URL'])\n\n\n"
        "def run_migrations_online():\n"
        "    connectable = engine_from_config(\n"
        "        config.get_section(config.config_ini_section, {}), prefix='sqlalchemy.', poolclass=pool.NullPool\n"
        "    )\n"
        "    with connectable.connect() as connection:\n"
        "        context.configure(connection=connection, target_metadata=None)\n"
        "        with context.begin_transaction():\n"
        "            context.run_migrations()\n\n\n"
        "run_migrations_online()\n",
        encoding="utf-8",
    )
    prev = None
    for r in revs:
        body = (
            f'"""{r.slug}"""\n'
            "from alembic import op\n\n"
            f"revision = {f'r{r.version:04d}'!r}\n"
            f"down_revision = {prev!r}\n"
            "branch_labels = None\n"
            "depends_on = None\n\n\n"
            "def upgrade():\n"
            f"    op.execute({r.up!r})\n\n\n"
            "def downgrade():\n"
            f"    op.execute({r.down!r})\n"
        )
        (folder / "versions" / f"{r.id}.py").write_text(body, encoding="utf-8")
        prev = f"r{r.version:04d}"


def _z4j_manifests(base: Path) -> None:
    """z4j/z4j-migrate.sum as `z4j-migrate hash` writes it for the files there now (rewritten only when its
    content changes), and none in z4j-nosum/. Checked by reading both back, so a stale or missing manifest
    (or a stray one in z4j-nosum/) fails here rather than silently timing the wrong start-up path."""
    from z4j_migrate import manifest
    from z4j_migrate.revisions import discover

    with_sum, without = base / "z4j", base / "z4j-nosum"
    manifest.write(with_sum, manifest.for_revisions(discover(with_sum)))
    (without / manifest.MANIFEST_FILE).unlink(missing_ok=True)
    if manifest.stale_files(discover(with_sum)) != [] or manifest.trusted(with_sum) is None:
        raise RuntimeError(f"{with_sum / manifest.MANIFEST_FILE} is stale or not trusted after writing it")
    if manifest.stale_files(discover(without)) is not None:
        raise RuntimeError(f"{without} has a {manifest.MANIFEST_FILE}")
    files = {p.name: p.read_bytes() for p in with_sum.glob("*.sql")}
    if files != {p.name: p.read_bytes() for p in without.glob("*.sql")}:
        raise RuntimeError(f"{with_sum} and {without} hold different revision files")


def write_sets(out: Path, sizes: list[int]) -> dict[int, Path]:
    """Render every layout for every N; returns {N: set directory}. Idempotent per (N, seed)."""
    dirs = {}
    for n in sizes:
        base = out / str(n)
        stamp = base / "manifest.json"
        revs = revisions(n)
        manifest = {"n": n, "seed": SEED, "kinds": {}, "up_bytes": sum(len(r.up) for r in revs), "generator": 4}
        for r in revs:
            manifest["kinds"][r.kind] = manifest["kinds"].get(r.kind, 0) + 1
        if stamp.exists() and json.loads(stamp.read_text()) == manifest:
            _z4j_manifests(base)
            dirs[n] = base
            continue
        shutil.rmtree(base, ignore_errors=True)
        for sub in ("z4j", "z4j-nosum", "yoyo", "dbmate", "psql"):
            (base / sub).mkdir(parents=True)
        up_tx = [f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (version text PRIMARY KEY, applied_at timestamptz);\n"]
        down_tx = []
        for r in revs:
            for sub in ("z4j", "z4j-nosum"):
                (base / sub / f"{r.id}.up.sql").write_text(f"-- message: {r.kind} ({r.slug})\n\n{r.up}", "utf-8")
                (base / sub / f"{r.id}.down.sql").write_text(r.down, "utf-8")
            (base / "yoyo" / f"{r.id}.sql").write_text(r.up, "utf-8")
            (base / "yoyo" / f"{r.id}.rollback.sql").write_text(r.down, "utf-8")
            (base / "dbmate" / f"{r.id}.sql").write_text(f"-- migrate:up\n{r.up}\n-- migrate:down\n{r.down}", "utf-8")
            up_tx.append(
                f"BEGIN;\n{r.up}INSERT INTO {FLOOR_TABLE} (version, applied_at) VALUES ('{r.id}', now());\nCOMMIT;\n"
            )
            down_tx.insert(0, f"BEGIN;\n{r.down}DELETE FROM {FLOOR_TABLE} WHERE version = '{r.id}';\nCOMMIT;\n")
        (base / "psql" / "up_tx.sql").write_text("".join(up_tx), "utf-8")
        (base / "psql" / "down_tx.sql").write_text("".join(down_tx), "utf-8")
        (base / "psql" / "up.sql").write_text("".join(r.up for r in revs), "utf-8")
        (base / "psql" / "down.sql").write_text("".join(r.down for r in reversed(revs)), "utf-8")
        _alembic_files(base / "alembic", revs)
        _z4j_manifests(base)
        stamp.write_text(json.dumps(manifest, indent=1))
        dirs[n] = base
    return dirs


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "out" / "sets"
    for n, d in write_sets(target, [10, 100, 1000]).items():
        print(n, d, json.loads((d / "manifest.json").read_text()))
