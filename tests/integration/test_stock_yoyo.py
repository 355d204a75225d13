"""The promise that stock yoyo reads our bookkeeping: the `yoyo list` CLI (yoyo-migrations 9, as
installed with us), run on a database that z4j-migrate migrated, over a yoyo-layout copy of the
same revisions (X.sql + X.rollback.sql), shows every revision applied."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
from helpers import run_cli, write_pair

YOYO = Path(sys.executable).with_name("yoyo")


def _yoyo_layout(paired: Path, out: Path) -> Path:
    """The same revisions the way yoyo's own loader reads them."""
    out.mkdir()
    for up in sorted(paired.glob("*.up.sql")):
        rev_id = up.name[: -len(".up.sql")]
        (out / f"{rev_id}.sql").write_text(up.read_text(encoding="utf-8"), encoding="utf-8")
        down = paired / f"{rev_id}.down.sql"
        (out / f"{rev_id}.rollback.sql").write_text(down.read_text(encoding="utf-8"), encoding="utf-8")
    return out


def _yoyo_list(url: str, folder: Path) -> dict[str, str]:
    """yoyo's own view: migration id -> status letter (A: applied, U: unapplied)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    yoyo_url = f"postgresql+psycopg://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    r = subprocess.run(
        [str(YOYO), "list", "--batch", "--no-config-file", "--database", yoyo_url, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return {rev_id: status for status, rev_id in re.findall(r"^\s*([AU])\s+(\S+)", r.stdout, flags=re.M)}


def test_stock_yoyo_list_sees_what_z4j_migrate_applied(database_url, migrations, tmp_path):
    write_pair(migrations, "0001_users", "CREATE TABLE users (id bigint PRIMARY KEY);", "DROP TABLE users;")
    write_pair(
        migrations, "0002_email", "ALTER TABLE users ADD COLUMN email text;", "ALTER TABLE users DROP COLUMN email;"
    )
    write_pair(migrations, "0003_posts", "CREATE TABLE posts (id bigint);", "DROP TABLE posts;")
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    assert run_cli("upgrade", "--to", "2", env=env).returncode == 0
    exported = _yoyo_layout(migrations, tmp_path / "yoyo")
    assert _yoyo_list(database_url, exported) == {"0001_users": "A", "0002_email": "A", "0003_posts": "U"}
    assert run_cli("upgrade", env=env).returncode == 0
    assert set(_yoyo_list(database_url, exported).values()) == {"A"}
