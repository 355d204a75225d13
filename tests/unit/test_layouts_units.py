"""Other tools' layouts read as published (layouts.py): names, pairing, order, markers, refusals.
Pure file reading: no database (tests/integration/test_layouts.py runs them on PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from z4j_migrate import cli
from z4j_migrate.config import Settings, parse_database_url, settings_from_env
from z4j_migrate.errors import ConfigError, RevisionFileError
from z4j_migrate.plan import downgrade_targets, plan_upgrade
from z4j_migrate.revisions import discover
from z4j_migrate.state import AppliedRow, DbState


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def state(*ids: str) -> DbState:
    rows = {i: AppliedRow(i, None, None, None, None, True) for i in ids}
    return DbState(True, False, rows, {}, frozenset())


# ------------------------------------------------------------------------------- golang-migrate


def test_golang_migrate_as_published(tmp_path):
    folder = write(
        tmp_path,
        {
            "1_init.up.sql": "-- https://example.com/docs\n-- NOTE: first\nCREATE TABLE t (id int);\n",
            "1_init.down.sql": "DROP TABLE t;\n",
            "2_v6.0-upgrade.up.sql": "ALTER TABLE t ADD c int;\n",
            "2_v6.0-rollback.down.sql": "ALTER TABLE t DROP c;\n",  # paired by version: titles differ
            "100_add_x.up.sql": "-- morph:nontransactional\nCREATE INDEX CONCURRENTLY t_c ON t (c);\n",
            "100_add_x.down.sql": "-- nothing to undo\n\n",  # comment-only: a no-op down
            "101_seed.up.sql": "INSERT INTO t VALUES (1);\n",  # no down: irreversible
            "main.go": "package migrations\n",
            "README.md": "# migrations\n",
        },
    )
    revset = discover(folder, "golang-migrate")
    by_id = revset.by_id()
    assert [r.id for r in revset.revisions] == ["1_init", "2_v6.0-upgrade", "100_add_x", "101_seed"]
    assert [r.version for r in revset.revisions] == [1, 2, 100, 101]
    assert revset.layout == "golang-migrate"
    assert by_id["2_v6.0-upgrade"].down.path.endswith("2_v6.0-rollback.down.sql")
    assert by_id["2_v6.0-upgrade"].message == "v6.0 upgrade"
    first = by_id["1_init"]
    assert first.up.transactional and first.up.decided_by_sql and first.irreversible is None
    morph = by_id["100_add_x"]
    assert not morph.up.transactional and not morph.up.decided_by_sql
    assert not morph.down.has_sql and morph.down.transactional and morph.irreversible is None
    seed = by_id["101_seed"]
    assert seed.irreversible is not None and "101_seed.down.sql" in seed.irreversible
    assert not seed.down.has_sql and "-- irreversible:" in seed.down.text  # the stored copy refuses too
    assert revset.find("100") is morph and revset.find("0100") is morph


@pytest.mark.parametrize(
    ("files", "named", "words"),
    [
        (
            {"1_a.up.sql": "SELECT 1;", "01_b.up.sql": "SELECT 2;"},
            "1_a.up.sql",
            "used twice: 01_b.up.sql and 1_a.up.sql",
        ),
        ({"1_a.up.sql": "SELECT 1;", "seed.sql": "SELECT 2;"}, "seed.sql", "matches no rule of the golang-migrate"),
        ({"1_a.up.sql": "SELECT 1;", "2_b.down.sql": "SELECT 2;"}, "2_b.down.sql", "no up file of version 2"),
        ({"99999999999999999999_a.up.sql": "SELECT 1;"}, "99999999999999999999_a.up.sql", "larger than"),
    ],
)
def test_golang_migrate_refusals_name_the_file(tmp_path, files, named, words):
    with pytest.raises(RevisionFileError) as caught:
        discover(write(tmp_path, files), "golang-migrate")
    assert caught.value.path.endswith(named) and words in caught.value.message


# ------------------------------------------------------------------------------- dbmate


def test_dbmate_sections_and_markers(tmp_path):
    folder = write(
        tmp_path,
        {
            "20240101000000_create_users.sql": (
                "-- a comment above the marker\n-- migrate:up\nCREATE TABLE users (id int);\n\n"
                "-- migrate:down\nDROP TABLE users;\n"
            ),
            "20240102000000_index.sql": (
                "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n\n"
                "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY users_id;\n"
            ),
            "20240103000000_comment.sql": "-- migrate:up\nCOMMENT ON TABLE users IS 'u';\n-- migrate:down\n",
            "schema.rb": "not ours",
        },
    )
    revs = discover(folder, "dbmate").revisions
    assert [r.id for r in revs] == ["20240101000000_create_users", "20240102000000_index", "20240103000000_comment"]
    assert revs[0].version == 20240101000000 and revs[0].message == "create users"
    assert revs[0].up.decided_by_sql and "DROP" not in revs[0].up.text
    assert revs[0].down.text.startswith("\n\n\n\n-- migrate:down")  # its own lines keep the file's numbers
    assert not revs[1].up.transactional and not revs[1].down.transactional and not revs[1].up.decided_by_sql
    assert not revs[2].down.has_sql and revs[2].irreversible is None  # an empty down section: a no-op


def test_dbmate_orders_by_file_name_and_then_numbers_by_position(tmp_path):
    up = "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n"
    folder = write(tmp_path, {"1_a.sql": up, "10_b.sql": up, "2_c.sql": up})
    revs = discover(folder, "dbmate").revisions
    assert [r.id for r in revs] == ["10_b", "1_a", "2_c"]  # as dbmate sorts file names (bytes: '0' < '_')
    assert [r.version for r in revs] == [1, 2, 3]  # name order is not number order: positions


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("CREATE TABLE a (id int);\n", "no '-- migrate:up'"),
        ("-- migrate:up\nSELECT 1;\n", "no '-- migrate:down'"),
        ("-- migrate:down\nSELECT 1;\n-- migrate:up\nSELECT 2;\n", "before '-- migrate:up'"),
        ("SELECT 0;\n-- migrate:up\nSELECT 1;\n-- migrate:down\n", "statements before"),
        ("-- migrate:up\nSELECT 1;\n-- migrate:down\n-- migrate:up\nSELECT 2;\n-- migrate:down\n", "second"),
    ],
)
def test_dbmate_refusals(tmp_path, text, words):
    with pytest.raises(RevisionFileError) as caught:
        discover(write(tmp_path, {"1_a.sql": text}), "dbmate")
    assert words in caught.value.message and caught.value.path.endswith("1_a.sql")


# ------------------------------------------------------------------------------- yoyo


def test_yoyo_ids_order_and_directives(tmp_path):
    folder = write(
        tmp_path,
        {
            "20240101_01_AbCdE-create-users.sql": "-- create users\nCREATE TABLE users (id int);\n",
            "20240101_01_AbCdE-create-users.rollback.sql": "DROP TABLE users;\n",
            # named first, but depends on the next one: yoyo runs it after
            "20240101_02_AAAAA-add-index.sql": (
                "-- depends: 20240101_03_ZZZZZ-add-column\n-- transactional: false\n"
                "CREATE INDEX CONCURRENTLY users_c ON users (c);\n"
            ),
            "20240101_02_AAAAA-add-index.rollback.sql": "DROP INDEX CONCURRENTLY users_c;\n",
            "20240101_03_ZZZZZ-add-column.sql": (
                "-- depends: 20240101_01_AbCdE-create-users\nALTER TABLE users ADD c int;\n"
            ),
            "_tmp_yoyonew_draft.sql": "garbage",
            "yoyo.ini": "[DEFAULT]\n",
        },
    )
    revset = discover(folder, "yoyo")
    ids = [r.id for r in revset.revisions]
    assert ids == ["20240101_01_AbCdE-create-users", "20240101_03_ZZZZZ-add-column", "20240101_02_AAAAA-add-index"]
    assert [r.version for r in revset.revisions] == [1, 2, 3]
    users, column, index = revset.revisions
    assert users.message == "create users" and column.irreversible is not None and users.irreversible is None
    assert not index.up.transactional and not index.down.transactional and not index.up.decided_by_sql
    assert users.up.decided_by_sql
    # The planner orders by position, not by the ids' shared leading number (20240101).
    assert [r.id for r in plan_upgrade(revset.revisions, state(ids[0]), None)] == ids[1:]
    assert downgrade_targets(state(*ids), revset.revisions, to=ids[0], steps=None) == [ids[2], ids[1]]
    assert [r.id for r in plan_upgrade(revset.revisions, state(), "2")] == ids[:2]
    with pytest.raises(Exception, match="out of order"):
        plan_upgrade(revset.revisions, state(ids[0], ids[2]), None)


@pytest.mark.parametrize(
    ("files", "named", "words"),
    [
        ({"a.sql": "-- depends: nope\nSELECT 1;"}, "a.sql", "names no migration"),
        ({"a.sql": "-- depends: b\nSELECT 1;", "b.sql": "-- depends: a\nSELECT 1;"}, "a.sql", "circular"),
        ({"a.sql": "-- transactional: maybe\nSELECT 1;"}, "a.sql", "true or false"),
        ({"a.py": "steps = []"}, "a.py", "Python migration"),
        ({"post-apply.sql": "SELECT 1;"}, "post-apply.sql", "post-apply"),
        ({"b.rollback.sql": "SELECT 1;"}, "b.rollback.sql", "no migration b.sql"),
    ],
)
def test_yoyo_refusals(tmp_path, files, named, words):
    with pytest.raises(RevisionFileError) as caught:
        discover(write(tmp_path, files), "yoyo")
    assert words in caught.value.message and caught.value.path.endswith(named)


# ------------------------------------------------------------------------------- Flyway


def test_flyway_versions_undo_and_script_config(tmp_path):
    folder = write(
        tmp_path,
        {
            "V1__Create_person_table.sql": "CREATE TABLE person (id int);\n",
            "U1__Create_person_table.sql": "DROP TABLE person;\n",
            "V2__Add_index.sql": "CREATE INDEX CONCURRENTLY person_id ON person (id);\n",
            "V2__Add_index.sql.conf": "executeInTransaction=false\n",
            "V10__Seed.sql": "INSERT INTO person VALUES (1);\n",
            "flyway.toml": "[flyway]\n",
        },
    )
    revs = discover(folder, "flyway").revisions
    assert [(r.version, r.id) for r in revs] == [(1, "1_Create_person_table"), (2, "2_Add_index"), (10, "10_Seed")]
    assert revs[0].message == "Create person table" and revs[0].irreversible is None
    assert not revs[1].up.transactional and not revs[1].up.decided_by_sql
    assert revs[1].irreversible is not None and "U2__Add_index.sql" in revs[1].irreversible


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("R__views.sql", "repeatable"),
        ("V1.1__dotted.sql", "dotted version 1.1"),
        ("V1_1__dotted.sql", "dotted version 1_1"),
        ("afterMigrate.sql", "matches no rule of the flyway"),
        ("U3__orphan.sql", "no V3__ migration"),
    ],
)
def test_flyway_refusals(tmp_path, name, words):
    with pytest.raises(RevisionFileError) as caught:
        discover(write(tmp_path, {"V1__a.sql": "SELECT 1;", name: "SELECT 2;"}), "flyway")
    assert words in caught.value.message and caught.value.path.endswith(name)


# ------------------------------------------------------------------------------- choosing the layout


def test_layout_option_beats_env_beats_toml(tmp_path, monkeypatch):
    folder = write(tmp_path, {"1_a.up.sql": "SELECT 1;", "z4j-migrate.toml": 'layout = "golang-migrate"\n'})
    monkeypatch.delenv("Z4J_LAYOUT", raising=False)
    assert discover(folder).layout == "golang-migrate"  # the directory's toml
    url = "postgresql://u@h/db"
    assert settings_from_env(url, folder).layout is None  # None: the toml decides
    monkeypatch.setenv("Z4J_LAYOUT", "dbmate")
    assert settings_from_env(url, folder).layout == "dbmate"
    assert settings_from_env(url, folder, layout="yoyo").layout == "yoyo"
    assert cli.parse_upgrade(["--layout", "flyway", "upgrade"])["layout"] == "flyway"
    monkeypatch.setenv("Z4J_LAYOUT", "liquibase")
    with pytest.raises(ConfigError, match="Z4J_LAYOUT='liquibase' is not a layout"):
        settings_from_env(url, folder)
    with pytest.raises(ConfigError, match="layout='nope'"):
        Settings(parse_database_url(url), layout="nope")


def test_a_bad_layout_in_the_toml_names_the_file(tmp_path):
    folder = write(tmp_path, {"z4j-migrate.toml": 'layout = "alembic"\n'})
    with pytest.raises(RevisionFileError) as caught:
        discover(folder)
    assert caught.value.path == os.path.join(str(folder), "z4j-migrate.toml") and "alembic" in caught.value.message


def test_hash_and_new_refuse_a_foreign_layout(tmp_path, monkeypatch):
    from z4j_migrate.directory import new_revision, write_manifest

    folder = write(tmp_path, {"1_a.up.sql": "SELECT 1;", "z4j-migrate.toml": 'layout = "golang-migrate"\n'})
    monkeypatch.delenv("Z4J_LAYOUT", raising=False)
    with pytest.raises(ConfigError, match="z4j layout only"):
        write_manifest(folder)
    with pytest.raises(ConfigError, match="golang-migrate layout"):
        new_revision("add x", directory=folder)
    assert sorted(os.listdir(folder)) == ["1_a.up.sql", "z4j-migrate.toml"]


# ------------------------------------------------------------------------------- the planner, by position

# yoyo-style ids share a leading number (20240101); their numbers are their places in yoyo's order.
# Their names sort the other way round (and their leading numbers too), so name order would be wrong.
YOYO_IDS = ("20240102_01_CCCCC-c", "20240101_01_BBBBB-b", "20240101_01_AAAAA-a")


def _positioned():
    from z4j_migrate.revisions import Revision, SqlFile

    def side(text: str) -> SqlFile:
        return SqlFile("x.sql", text, f"sha256:{text}", True, True)

    return tuple(Revision(n, i, i, side(f"up {i}"), side(f"down {i}")) for n, i in enumerate(YOYO_IDS, start=1))


PLAN_BY_POSITION = [
    # (name, applied ids, upgrade target, expected pending ids or an error)
    ("empty: all, in the set's order", (), None, list(YOYO_IDS)),
    ("first applied: the rest", YOYO_IDS[:1], None, list(YOYO_IDS[1:])),
    ("--to a position", (), "2", list(YOYO_IDS[:2])),
    ("--to an id with the shared leading number", (), YOYO_IDS[1], list(YOYO_IDS[:2])),
    ("a gap below the newest applied: out of order", (YOYO_IDS[0], YOYO_IDS[2]), None, "out of order"),
    ("an unknown applied id ranks by its own number: newest", ("20991231_01_ZZZZZ-x",), None, "out of order"),
]


@pytest.mark.parametrize(("name", "applied", "to", "expected"), PLAN_BY_POSITION, ids=[c[0] for c in PLAN_BY_POSITION])
def test_plan_orders_known_ids_by_their_position(name, applied, to, expected):
    revisions = _positioned()
    if isinstance(expected, str):
        with pytest.raises(Exception, match=expected):
            plan_upgrade(revisions, state(*applied), to)
        return
    assert [r.id for r in plan_upgrade(revisions, state(*applied), to)] == expected


DOWN_BY_POSITION = [
    # (name, applied ids, --to, --steps, expected ids undone, newest first)
    ("base: newest first by position", YOYO_IDS, "base", None, list(reversed(YOYO_IDS))),
    ("--to the first id", YOYO_IDS, YOYO_IDS[0], None, [YOYO_IDS[2], YOYO_IDS[1]]),
    ("--to position 2", YOYO_IDS, "2", None, [YOYO_IDS[2]]),
    ("--steps 1: the last by position, not by name", YOYO_IDS, None, 1, [YOYO_IDS[2]]),
]


@pytest.mark.parametrize(
    ("name", "applied", "to", "steps", "expected"), DOWN_BY_POSITION, ids=[c[0] for c in DOWN_BY_POSITION]
)
def test_downgrade_orders_known_ids_by_their_position(name, applied, to, steps, expected):
    assert downgrade_targets(state(*applied), _positioned(), to=to, steps=steps) == expected
