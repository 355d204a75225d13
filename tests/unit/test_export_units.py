"""`export`: the revisions in another tool's layout, as that tool's documentation writes them, and
read back by our own reader of that layout (layouts.py) as the same SQL, order and markers."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli, write_pair

from z4j_migrate import ConfigError, RevisionFileError, export
from z4j_migrate.cli import main
from z4j_migrate.commands import export_cmd
from z4j_migrate.export import EXPORT_LAYOUTS
from z4j_migrate.revisions import RevisionSet, SqlFile, discover
from z4j_migrate.sqlcheck import settle, split_statements

FUNCTION = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;"


def source(folder: Path) -> Path:
    """Every marker an export translates: a non-transactional pair, a transactional up with a
    non-transactional down, an irreversible down, a preflight, a statement timeout; and versions of
    two widths (9999 before 10000, which file-name order gets wrong)."""
    folder.mkdir()
    write_pair(folder, "0001_users", f"CREATE TABLE users (id bigint PRIMARY KEY, email text);\n{FUNCTION}\n",
               "DROP FUNCTION f();\nDROP TABLE users;\n")  # fmt: skip
    write_pair(
        folder,
        "0002_users_email",
        "-- message: index users.email\n-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);\n",
        "-- transactional: false\n-- preflight: SELECT true\nDROP INDEX CONCURRENTLY ix_users_email;\n",
    )
    write_pair(
        folder,
        "9999_tags",
        "-- message: tags\n-- statement-timeout: 30s\nCREATE TABLE tags (id bigint, name text);\n"
        "CREATE INDEX ix_tags_name ON tags (name);\n",
        "-- transactional: false\nDROP INDEX CONCURRENTLY ix_tags_name;\nDROP TABLE tags;\n",
    )
    write_pair(
        folder,
        "10000_drop_email",
        "-- message: drop users.email\n-- destructive: unused since 2.0\nALTER TABLE users DROP COLUMN email;\n",
        "-- irreversible: restore users.email from the backup taken before 10000\n",
    )
    return folder


def sql_of(sql_file: SqlFile) -> list[str]:
    """The statements of a file without their comment lines: what the server runs."""
    if not sql_file.has_sql:
        return []
    return [
        "\n".join(line for line in s.sql.split("\n") if not line.strip().startswith("--")).strip()
        for s in split_statements(sql_file)
    ]


def shape(revset: RevisionSet) -> list[tuple]:
    """Per revision, in order: id, each side's statements and transaction mode, irreversible or not."""
    out = []
    for rev in map(settle, revset.revisions):
        out.append(
            (
                rev.id,
                sql_of(rev.up),
                rev.up.transactional,
                sql_of(rev.down),
                rev.down.transactional,
                rev.irreversible is not None,  # its message has no place where the tool has no down file
            )
        )
    return out


@pytest.fixture
def exported(tmp_path: Path):
    folder = source(tmp_path / "migrations")
    return folder, lambda layout: export(layout, tmp_path / layout, migrations_dir=folder)


def test_golang_migrate_files_and_round_trip(exported):
    folder, run = exported
    result = run("golang-migrate")
    names = [p.name for p in result.files]
    assert names == [
        "0001_users.up.sql",
        "0001_users.down.sql",
        "0002_users_email.up.sql",
        "0002_users_email.down.sql",
        "9999_tags.up.sql",
        "9999_tags.down.sql",
        "10000_drop_email.up.sql",  # irreversible: no down file
    ]
    # Byte for byte what z4j-migrate runs; our markers stay as comments (the tool has none).
    for rev in discover(folder).revisions:
        assert (result.directory / f"{rev.id}.up.sql").read_bytes() == rev.up.text.encode()
    assert shape(discover(result.directory, "golang-migrate")) == shape(discover(folder))
    assert any("x-multi-statement=true" in n and "9999_tags" in n for n in result.notes)
    assert not any("0002_users_email" in n and "x-multi-statement" in n for n in result.notes)  # one statement


def test_dbmate_one_file_with_both_blocks(exported):
    folder, run = exported
    result = run("dbmate")
    assert [p.name for p in result.files] == [
        "00001_users.sql",
        "00002_users_email.sql",
        "09999_tags.sql",
        "10000_drop_email.sql",
    ]
    text = {p.name: p.read_text() for p in result.files}
    assert text["00002_users_email.sql"] == (
        "-- migrate:up transaction:false\n-- message: index users.email\n"
        "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);\n\n"
        "-- migrate:down transaction:false\n-- preflight: SELECT true\nDROP INDEX CONCURRENTLY ix_users_email;\n"
    )
    assert (
        text["09999_tags.sql"].startswith("-- migrate:up\n")
        and "-- migrate:down transaction:false\n" in (text["09999_tags.sql"])
    )
    assert text["10000_drop_email.sql"].endswith(
        "-- migrate:down\n-- irreversible: restore users.email from the backup taken before 10000\n"
    )
    back, ours = shape(discover(result.directory, "dbmate")), shape(discover(folder))
    assert [r[0] for r in back] == ["00001_users", "00002_users_email", "09999_tags", "10000_drop_email"]
    back = [(r[0].lstrip("0"), *r[1:]) for r in back]
    ours = [(r[0].lstrip("0"), *r[1:]) for r in ours]
    # dbmate has no irreversible marker: the down block holds ours, which reading it back honours.
    assert back == ours


def test_yoyo_ids_unchanged_and_chained(exported):
    folder, run = exported
    result = run("yoyo")
    text = {p.name: p.read_text() for p in result.files}
    assert sorted(text) == sorted(
        [
            "0001_users.sql",
            "0001_users.rollback.sql",
            "0002_users_email.sql",
            "0002_users_email.rollback.sql",
            "9999_tags.sql",
            "9999_tags.rollback.sql",
            "10000_drop_email.sql",
        ]
    )
    assert text["0001_users.sql"] == (folder / "0001_users.up.sql").read_text()
    assert text["0002_users_email.sql"].startswith(
        "-- depends: 0001_users\n-- transactional: false\n-- message: index users.email\nCREATE INDEX"
    )
    assert text["0002_users_email.sql"].count("transactional") == 1  # yoyo would fail on "false false"
    # yoyo takes the mode from the up for both ways: a non-transactional down makes the up one too.
    assert text["9999_tags.sql"].startswith("-- depends: 0002_users_email\n-- transactional: false\n")
    assert text["10000_drop_email.sql"].startswith("-- depends: 9999_tags\n")
    assert any("9999_tags" in n and "outside a transaction" in n for n in result.notes)
    back, ours = shape(discover(result.directory, "yoyo")), shape(discover(folder))
    assert [r[0] for r in back] == [r[0] for r in ours]  # in our order, though 10000 sorts before 9999
    assert [r[1] for r in back] == [r[1] for r in ours] and [r[3] for r in back] == [r[3] for r in ours]
    assert back[2][2] is False and [r[5] for r in back] == [False, False, False, True]


def test_flyway_versions_undo_and_script_configuration(exported):
    folder, run = exported
    result = run("flyway")
    names = sorted(p.name for p in result.files)
    assert names == sorted(
        [
            "V0001__users.sql",
            "U0001__users.sql",
            "V0002__users_email.sql",
            "V0002__users_email.sql.conf",
            "U0002__users_email.sql",
            "U0002__users_email.sql.conf",
            "V9999__tags.sql",
            "U9999__tags.sql",
            "U9999__tags.sql.conf",
            "V10000__drop_email.sql",
        ]
    )
    conf = result.directory / "V0002__users_email.sql.conf"
    assert conf.read_text() == "executeInTransaction=false\n"
    assert "transactional" not in (result.directory / "V0002__users_email.sql").read_text()  # translated
    assert shape(discover(result.directory, "flyway")) == shape(discover(folder))
    assert any("Teams and Enterprise" in n for n in result.notes)


def test_notes_name_what_the_tool_does_not_do(exported):
    _, run = exported
    notes = run("yoyo").notes
    assert any("preflight" in n and "0002_users_email" in n for n in notes)
    assert any("statement-timeout" in n and "9999_tags" in n for n in notes)
    assert any("irreversible" in n and "10000_drop_email" in n and "no-op" in n for n in notes)


def test_refusals_write_nothing(tmp_path):
    folder = source(tmp_path / "migrations")
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("ours\n")
    with pytest.raises(ConfigError, match=r"is not empty .*--force"):
        export("dbmate", out, migrations_dir=folder)
    assert [p.name for p in out.iterdir()] == ["README.md"]
    (out / "0001_stale.sql").write_text("DROP TABLE users;\n")  # from an earlier export: must not run
    result = export("dbmate", out, migrations_dir=folder, force=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(["README.md", *(p.name for p in result.files)])
    with pytest.raises(ConfigError, match="migrations directory itself"):
        export("yoyo", folder, migrations_dir=folder, force=True)
    with pytest.raises(ConfigError, match="unknown layout 'liquibase'"):
        export("liquibase", tmp_path / "new", migrations_dir=folder)

    (folder / "0001_users.down.sql").write_text("-- migrate:down\nDROP FUNCTION f();\nDROP TABLE users;\n")
    with pytest.raises(RevisionFileError, match=r"0001_users.down.sql:1: .*dbmate would split"):
        export("dbmate", tmp_path / "new", migrations_dir=folder)
    (folder / "0001_users.down.sql").write_text("DROP FUNCTION f();\nDROP TABLE users;\n")
    (folder / "0001_users.up.sql").write_text(f"-- message: users\n\n-- depends: on users\nSELECT 1;\n{FUNCTION}\n")
    with pytest.raises(RevisionFileError, match=r"0001_users.up.sql:3: .*'-- depends:'"):
        export("yoyo", tmp_path / "new", migrations_dir=folder)
    assert not (tmp_path / "new").exists()


def test_cli(tmp_path, capsys):
    folder = source(tmp_path / "migrations")
    r = run_cli("export", "--layout", "yoyo", "--migrations-dir", str(folder), str(tmp_path / "y"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote 7 file(s) for 4 revision(s) to {tmp_path / 'y'} (yoyo)\n")
    assert "note: irreversible revisions have no down" in r.stdout
    r = run_cli("export", "--layout", "yoyo", "--migrations-dir", str(folder), str(tmp_path / "y"))
    assert r.returncode == 2 and "is not empty" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(SystemExit) as done:  # in-process from here: each process start costs a second
        main(["export", "--layout", "flyway", "--migrations-dir", str(folder), "--force", str(tmp_path / "y")])
    assert done.value.code == 0 and (tmp_path / "y" / "V0001__users.sql").exists()
    assert not (tmp_path / "y" / "0001_users.sql").exists()  # the yoyo files were replaced
    choice = next(p for p in export_cmd.params if p.name == "to_layout")
    assert tuple(choice.type.choices) == EXPORT_LAYOUTS
