"""`adopt`: a database another tool built is taken over only when its catalog is what the revisions
build, and `upgrade` refuses a database that holds another tool's history and none of ours.

Every history here is the tool's own: stock yoyo (installed with us) and dbmate (the npm build,
scripts/fetch-dbmate.sh) run themselves; golang-migrate's and Flyway's tables come from their
PostgreSQL DDL and the rows they write (golang-migrate database/postgres: one row, TRUNCATE then
INSERT per migration; Flyway createMetaDataTable.sql, one row per run). The live schema of the
hand-made cases is built by running the up files, as those tools do.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from helpers import query, run_cli, scalar, state_fingerprint, write_pair

import z4j_migrate
from z4j_migrate import AdoptionMismatch, DriftError, ForeignHistory

YOYO = Path(sys.executable).with_name("yoyo")
REPO = Path(__file__).resolve().parents[2]

REVISIONS = [
    (
        "0001_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);",
        "DROP TABLE users;",
    ),
    (
        "0002_posts",
        "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users, body text);\n"
        "CREATE INDEX posts_user_id_idx ON posts (user_id);",
        "DROP TABLE posts;",
    ),
    (
        "0003_state",
        "CREATE TYPE post_state AS ENUM ('draft', 'published');\n"
        "ALTER TABLE posts ADD COLUMN state post_state NOT NULL DEFAULT 'draft';",
        "ALTER TABLE posts DROP COLUMN state;\nDROP TYPE post_state;",
    ),
]

GOLANG_DDL = (
    'CREATE TABLE IF NOT EXISTS "schema_migrations" (version bigint not null primary key, dirty boolean not null)'
)
FLYWAY_DDL = """
CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");
"""


def _apply_by_hand(url: str, count: int = 3) -> None:
    """What a tool without our bookkeeping leaves: the up files, run in order."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _rev_id, up, _down in REVISIONS[:count]:
            conn.execute(up)


def _ours_absent(url: str) -> bool:
    return scalar(url, "SELECT to_regclass('public._z4j_migrate_revision')") is None


def _applied(url: str) -> list[tuple]:
    return query(url, "SELECT migration_id, up_checksum IS NOT NULL FROM _z4j_migrate_revision ORDER BY 1")


def _env(url: str, folder: Path) -> dict[str, str]:
    return {"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder)}


def _noop_statements(pg_server, url: str, folder: Path, **kw: str) -> list[str]:
    """The statements a second upgrade sends, read from the server's statement log (test_statement_counts)."""
    if pg_server.local is None:
        pytest.skip("statement counts need the suite's own cluster log")
    app = f"adopt-{uuid.uuid4().hex[:10]}"
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    log = Path(pg_server.local.log_path)
    offset = log.stat().st_size
    url = pg_server.url_for(dbname, application_name=app)
    result = z4j_migrate.upgrade(database_url=url, migrations_dir=folder, **kw)
    assert not result.applied
    time.sleep(0.05)  # the server's log writes are not ordered with the client's return
    with log.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    return [
        line
        for line in text.splitlines()
        if f" app={app} LOG:  " in line and re.search(r"LOG:  (statement: |execute [^:]*: )", line)
    ]


def _then_noop(pg_server, url: str, folder: Path, ids: list[str], **kw: str) -> None:
    """Adopted: every revision recorded with checksums, status clean, and the next start-up a no-op."""
    assert _applied(url) == [(i, True) for i in ids]
    report = z4j_migrate.status(database_url=url, migrations_dir=folder, **kw)
    assert [r.state.name for r in report.revisions] == ["APPLIED"] * len(ids), report
    statements = _noop_statements(pg_server, url, folder, **kw)
    assert 0 < len(statements) <= 3, statements


def test_golang_migrate_history_refusals_then_adopt(pg_server, database_url, migrations):
    """One golang-migrate database through every refusal, then adopted: upgrade first (refused, names
    adopt), a dirty version, a version the files lack, an extra column; each changes nothing."""
    for rev_id, up, down in REVISIONS:
        write_pair(migrations, rev_id, up, down)
    _apply_by_hand(database_url)
    query(database_url, GOLANG_DDL)
    query(database_url, "TRUNCATE schema_migrations; INSERT INTO schema_migrations (version, dirty) VALUES (3, false)")
    env = _env(database_url, migrations)
    before = state_fingerprint(database_url)

    upgrade = run_cli("upgrade", env=env)
    assert upgrade.returncode == 4, upgrade.stderr
    assert "golang-migrate" in upgrade.stderr and "z4j-migrate adopt --from golang-migrate" in upgrade.stderr
    assert "Traceback" not in upgrade.stderr and upgrade.stderr.count("\n") == 1
    with pytest.raises(ForeignHistory) as refused:
        z4j_migrate.migrate_on_startup(database_url, migrations)
    assert refused.value.tool == "golang-migrate" and refused.value.exit_code == 4
    assert state_fingerprint(database_url) == before and _ours_absent(database_url)

    query(database_url, "UPDATE schema_migrations SET dirty = true")
    dirty = run_cli("adopt", "--from", "golang-migrate", env=env)
    assert dirty.returncode == 4 and "version 3 is dirty" in dirty.stderr and "migrate force" in dirty.stderr
    assert "Traceback" not in dirty.stderr

    query(database_url, "UPDATE schema_migrations SET version = 4, dirty = false")
    with pytest.raises(DriftError, match=r"names version 4, which .* does not have") as ahead:
        z4j_migrate.adopt(database_url=database_url, migrations_dir=migrations, source="golang-migrate")
    assert ahead.value.exit_code == 5

    query(database_url, "UPDATE schema_migrations SET version = 3; ALTER TABLE users ADD COLUMN nickname text")
    extra = run_cli("adopt", "--from", "golang-migrate", env=env)
    assert extra.returncode == 5, extra.stderr
    assert "column users.nickname: in the database, not built by the revisions" in extra.stderr
    assert "Nothing was recorded" in extra.stderr and "Traceback" not in extra.stderr
    assert _ours_absent(database_url)
    assert query(database_url, "SELECT version, dirty FROM schema_migrations") == [(3, False)]
    assert scalar(database_url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'z4j_verify_%'") == 0

    query(database_url, "ALTER TABLE users DROP COLUMN nickname")
    adopted = run_cli("adopt", "--from", "golang-migrate", env=env)
    assert adopted.returncode == 0, adopted.stderr
    assert "3 revision(s)" in adopted.stdout and "recorded" in adopted.stdout
    assert query(database_url, "SELECT version, dirty FROM schema_migrations") == [(3, False)]  # left as it was
    _then_noop(pg_server, database_url, migrations, [r[0] for r in REVISIONS])
    marks = query(database_url, "SELECT comment FROM _yoyo_log WHERE operation = 'mark' ORDER BY migration_id")
    assert (
        marks
        == [("z4j-migrate adopt: from golang-migrate's history in public.schema_migrations; the catalog matched",)] * 3
    )


def test_adopt_from_flyway_and_a_failed_run_refused(pg_server, database_url, migrations):
    for rev_id, up, down in REVISIONS:
        write_pair(migrations, rev_id, up, down)
    _apply_by_hand(database_url)
    query(database_url, FLYWAY_DDL)
    rows = [
        (1, "1", "users", "SQL", "V1__users.sql", 1234567, True),
        (2, "2", "posts", "SQL", "V2__posts.sql", -7654321, True),
        (3, "3", "state", "SQL", "V3__state.sql", None, False),
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for rank, version, desc, kind, script, checksum, success in rows:
            conn.execute(
                "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, "
                "installed_by, execution_time, success) VALUES (%s, %s, %s, %s, %s, %s, 'postgres', 12, %s)",
                (rank, version, desc, kind, script, checksum, success),
            )
    before = state_fingerprint(database_url)
    with pytest.raises(ForeignHistory, match=r"failed migration \(installed_rank 3, version 3, V3__state.sql\)"):
        z4j_migrate.adopt(database_url=database_url, migrations_dir=migrations, source="flyway")
    assert state_fingerprint(database_url) == before and _ours_absent(database_url)

    query(database_url, "UPDATE flyway_schema_history SET success = true, checksum = 99 WHERE installed_rank = 3")
    query(database_url, "DROP INDEX posts_user_id_idx")
    before = state_fingerprint(database_url)
    with pytest.raises(AdoptionMismatch) as mismatch:
        z4j_migrate.adopt(database_url=database_url, migrations_dir=migrations, source="flyway")
    assert mismatch.value.differences == [
        "index posts_user_id_idx on posts: built by the revisions, missing from the database"
    ]
    assert mismatch.value.exit_code == 5
    assert state_fingerprint(database_url) == before and _ours_absent(database_url)

    query(database_url, "CREATE INDEX posts_user_id_idx ON posts (user_id)")
    result = z4j_migrate.adopt(database_url=database_url, migrations_dir=migrations, source="flyway")
    assert result.adopted == ("0001_users", "0002_posts", "0003_state") and result.source == "flyway"
    assert result.history == "public.flyway_schema_history" and result.objects > 5
    assert scalar(database_url, "SELECT count(*) FROM flyway_schema_history") == 3
    _then_noop(pg_server, database_url, migrations, list(result.adopted))


def _yoyo_url(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"postgresql+psycopg://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"


def test_adopt_from_stock_yoyo(pg_server, database_url, tmp_path):
    """Stock `yoyo apply` over yoyo's own layout (X.sql + X.rollback.sql, ids = file stems) made the
    history; the same directory, read in the yoyo layout, adopts it (by migration id)."""
    yoyo_dir = tmp_path / "yoyo"
    yoyo_dir.mkdir()
    for rev_id, up, down in REVISIONS:
        (yoyo_dir / f"{rev_id}.sql").write_text(up, encoding="utf-8")
        (yoyo_dir / f"{rev_id}.rollback.sql").write_text(down, encoding="utf-8")
    cmd = [str(YOYO), "apply", "--batch", "--no-config-file", "--database", _yoyo_url(database_url), str(yoyo_dir)]
    applied = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    yoyo_rows = query(
        database_url, "SELECT migration_hash, migration_id, applied_at_utc FROM _yoyo_migration ORDER BY 2"
    )
    assert [r[1] for r in yoyo_rows] == [r[0] for r in REVISIONS] and _ours_absent(database_url)

    upgrade = run_cli("upgrade", env={**_env(database_url, yoyo_dir), "Z4J_LAYOUT": "yoyo"})
    assert upgrade.returncode == 4 and "adopt --from yoyo" in upgrade.stderr, upgrade.stderr

    result = z4j_migrate.adopt(database_url=database_url, migrations_dir=yoyo_dir, source="yoyo", layout="yoyo")
    assert result.adopted == tuple(r[0] for r in REVISIONS)
    assert (
        query(database_url, "SELECT migration_hash, migration_id, applied_at_utc FROM _yoyo_migration ORDER BY 2")
        == yoyo_rows
    )
    _then_noop(pg_server, database_url, yoyo_dir, list(result.adopted), layout="yoyo")


def _dbmate() -> Path:
    """The binary scripts/fetch-dbmate.sh caches (make install and .ci/run call it)."""
    explicit = os.environ.get("Z4J_DBMATE")
    if explicit:
        return Path(explicit)
    cache = Path(
        os.environ.get("Z4J_DBMATE_DIR")
        or ("/var/cache/z4j-migrate/dbmate" if os.geteuid() == 0 else REPO / ".cache/dbmate")
    )
    binary = cache / "current" / "bin" / "dbmate"
    if not binary.is_file():
        pytest.fail(
            f"no dbmate binary at {binary}: run bash scripts/fetch-dbmate.sh (make install does)", pytrace=False
        )
    return binary


def test_adopt_from_dbmate(pg_server, database_url, tmp_path):
    """dbmate itself applied its own layout (one file per version, -- migrate:up / -- migrate:down) and
    wrote its schema_migrations; the same directory, read in the dbmate layout, adopts it."""
    dbmate_dir = tmp_path / "db" / "migrations"
    dbmate_dir.mkdir(parents=True)
    versions = ["20240101000001", "20240101000002", "20240101000003"]
    for version, (rev_id, up, down) in zip(versions, REVISIONS, strict=True):
        slug = rev_id.split("_", 1)[1]
        (dbmate_dir / f"{version}_{slug}.sql").write_text(f"-- migrate:up\n{up}\n\n-- migrate:down\n{down}\n")
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    url = f"postgres://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}?sslmode=disable"
    ran = subprocess.run(
        [str(_dbmate()), "--url", url, "--migrations-dir", str(dbmate_dir), "--no-dump-schema", "up"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert [r[0] for r in query(database_url, "SELECT version FROM schema_migrations ORDER BY 1")] == versions

    result = z4j_migrate.adopt(database_url=database_url, migrations_dir=dbmate_dir, source="dbmate", layout="dbmate")
    assert [int(i.split("_")[0]) for i in result.adopted] == [int(v) for v in versions]
    assert [r[0] for r in query(database_url, "SELECT version FROM schema_migrations ORDER BY 1")] == versions
    _then_noop(pg_server, database_url, dbmate_dir, list(result.adopted), layout="dbmate")


def test_adopt_to_a_database_built_by_hand(pg_server, database_url, migrations):
    """No tool at all: the first two revisions run by hand. `adopt --to 2` records them; upgrade applies
    the third, and the next start-up is a no-op."""
    for rev_id, up, down in REVISIONS:
        write_pair(migrations, rev_id, up, down)
    _apply_by_hand(database_url, 2)
    result = z4j_migrate.adopt(database_url=database_url, migrations_dir=migrations, to="2")
    assert result.adopted == ("0001_users", "0002_posts") and result.source == "hand" and result.history is None
    applied = z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert [r.id for r in applied.applied] == ["0003_state"]
    _then_noop(pg_server, database_url, migrations, [r[0] for r in REVISIONS])
    again = run_cli("adopt", "--to", "3", env=_env(database_url, migrations))
    assert again.returncode == 4 and "already manages it" in again.stderr, again.stderr


ALEMBIC_DDL = (  # what `alembic upgrade` creates (alembic/runtime/migration.py), and the row it leaves
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));\n"
    "INSERT INTO alembic_version (version_num) VALUES ('1975ea83b712');"
)


def test_alembic_database_refused_by_upgrade_then_adopted_with_to(pg_server, database_url, migrations):
    """An Alembic database: upgrade refuses naming adopt --to; --from alembic explains why not; adopt --to
    compares the catalog without alembic_version (left as it was) and records the revisions."""
    for rev_id, up, down in REVISIONS:
        write_pair(migrations, rev_id, up, down)
    _apply_by_hand(database_url, 3)
    query(database_url, ALEMBIC_DDL)
    before = state_fingerprint(database_url)
    refused = run_cli("upgrade", env=_env(database_url, migrations))
    assert refused.returncode == 4 and "alembic's history in public.alembic_version" in refused.stderr, refused.stderr
    assert "adopt --to REV" in refused.stderr and "Traceback" not in refused.stderr
    assert state_fingerprint(database_url) == before and _ours_absent(database_url)
    wrong = run_cli("adopt", "--from", "alembic", env=_env(database_url, migrations))
    assert wrong.returncode == 2 and "adopt --to REV" in wrong.stderr, wrong.stderr
    result = z4j_migrate.adopt(database_url=database_url, migrations_dir=migrations, to="3")
    assert result.adopted == tuple(r[0] for r in REVISIONS)
    assert query(database_url, "SELECT version_num FROM alembic_version") == [("1975ea83b712",)]
    _then_noop(pg_server, database_url, migrations, [r[0] for r in REVISIONS])
