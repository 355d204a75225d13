"""The planner, table-driven (like goose's UpVersions tests): history + revisions in, steps or a
refusal out. Pure: no database, no files."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from z4j_migrate.errors import ConfigError, DriftError, IncompleteRevision, IrreversibleRevision
from z4j_migrate.plan import needs_run, plan_downgrade, plan_upgrade
from z4j_migrate.revisions import RevisionSet, parse_pair
from z4j_migrate.state import AppliedRow, DbState, ProgressRow, StoredDown


def rev(n: int, *, irreversible: bool = False):
    rid = f"{n:04d}_r{n}"
    down = b"-- irreversible: restore the backup\n" if irreversible else f"SELECT -{n};".encode()
    up = f"-- message: {rid}\nSELECT {n};".encode()
    return parse_pair(n, rid, f"{rid}.up.sql", up, f"{rid}.down.sql", down)


DISK = tuple(rev(n) for n in (1, 2, 3, 5, 8))


@dataclass
class History:
    applied: tuple[int, ...] = ()
    unknown: tuple[str, ...] = ()  # applied ids this code does not have
    edited: tuple[int, ...] = ()
    partial: tuple[int, str] | None = None  # (revision, direction) of a stopped non-transactional one
    stock_yoyo: tuple[int, ...] = ()  # applied without checksums
    revisions: tuple = field(default=DISK)

    def state(self) -> DbState:
        known = {r.version: r for r in self.revisions}
        rows: dict[str, AppliedRow] = {}
        for n in self.applied:
            r = known[n]
            up = None if n in self.stock_yoyo else ("sha256:edited" if n in self.edited else r.up.checksum)
            rows[r.id] = AppliedRow(r.id, up, None if up is None else r.down.checksum, None, 1.0, True)
        for rid in self.unknown:
            rows[rid] = AppliedRow(rid, "sha256:x", "sha256:y", None, 1.0, True)
        progress = {}
        if self.partial:
            r = known[self.partial[0]]
            progress[r.id] = ProgressRow(r.id, self.partial[1], 1, 3, 4, None, None)
        return DbState(True, False, rows, progress, frozenset())


UPGRADES = [
    # (name, history, to, expected ids or error)
    ("empty database: everything", History(), None, [1, 2, 3, 5, 8]),
    ("up to date: nothing", History(applied=(1, 2, 3, 5, 8)), None, []),
    ("some applied: the rest in order", History(applied=(1, 2)), None, [3, 5, 8]),
    ("--to a number", History(applied=(1,)), "3", [2, 3]),
    ("--to a padded number", History(), "0005", [1, 2, 3, 5]),
    ("--to an id", History(), "0002_r2", [1, 2]),
    ("--to between versions", History(), "4", [1, 2, 3]),
    ("--to below what is applied: nothing", History(applied=(1, 2, 3)), "2", []),
    ("database ahead (unknown newer revision)", History(applied=(1, 2, 3, 5, 8), unknown=("0009_new",)), None, []),
    ("a gap below the newest applied: out of order", History(applied=(1, 3)), None, DriftError),
    ("an edited applied revision", History(applied=(1, 2), edited=(2,)), None, DriftError),
    ("an unknown target", History(), "0004_nope", ConfigError),
    (
        "a stopped rollback must be finished first",
        History(applied=(1, 2), partial=(2, "rollback")),
        None,
        IncompleteRevision,
    ),
]


@pytest.mark.parametrize(("name", "history", "to", "expected"), UPGRADES, ids=[c[0] for c in UPGRADES])
def test_plan_upgrade(name, history, to, expected):
    state = history.state()
    if isinstance(expected, type):
        with pytest.raises(expected):
            plan_upgrade(history.revisions, state, to)
        return
    assert [r.version for r in plan_upgrade(history.revisions, state, to)] == expected


STORED = {"0009_new": StoredDown("SELECT -9;", True)}
DOWNGRADES = [
    # (name, history, to, steps, stored downs, expected (id, from_database) or error)
    ("one step", History(applied=(1, 2, 3)), None, 1, {}, [("0003_r3", False)]),
    ("two steps", History(applied=(1, 2, 3)), None, 2, {}, [("0003_r3", False), ("0002_r2", False)]),
    ("more steps than applied: all", History(applied=(1, 2)), None, 5, {}, [("0002_r2", False), ("0001_r1", False)]),
    ("--to base", History(applied=(1, 2)), "base", None, {}, [("0002_r2", False), ("0001_r1", False)]),
    ("--to BASE (any case)", History(applied=(1,)), "BASE", None, {}, [("0001_r1", False)]),
    (
        "--to a number keeps it applied",
        History(applied=(1, 2, 3, 5)),
        "2",
        None,
        {},
        [("0005_r5", False), ("0003_r3", False)],
    ),
    ("--to the newest: nothing", History(applied=(1, 2)), "2", None, {}, []),
    ("nothing applied: nothing", History(), None, 1, {}, []),
    (
        "database ahead: the stored down is used",
        History(applied=(1,), unknown=("0009_new",)),
        None,
        1,
        STORED,
        [("0009_new", True)],
    ),
    ("database ahead without a stored down", History(applied=(1,), unknown=("0009_new",)), None, 1, {}, DriftError),
    ("--to a revision that is not applied", History(applied=(1,)), "3", None, {}, ConfigError),
    ("--steps 0", History(applied=(1,)), None, 0, {}, ConfigError),
    ("an edited revision in the plan", History(applied=(1, 2), edited=(2,)), None, 1, {}, DriftError),
    (
        "an edited revision below the plan is fine",
        History(applied=(1, 2), edited=(1,)),
        None,
        1,
        {},
        [("0002_r2", False)],
    ),
    (
        "a stopped upgrade must be finished first",
        History(applied=(1,), partial=(2, "apply")),
        None,
        1,
        {},
        IncompleteRevision,
    ),
    (
        "an irreversible revision in the plan refuses the whole plan",
        History(applied=(1, 2), revisions=(rev(1), rev(2, irreversible=True))),
        "base",
        None,
        {},
        IrreversibleRevision,
    ),
    (
        "an irreversible revision below the plan is fine",
        History(applied=(1, 2), revisions=(rev(1, irreversible=True), rev(2))),
        None,
        1,
        {},
        [("0002_r2", False)],
    ),
]


@pytest.mark.parametrize(
    ("name", "history", "to", "steps", "stored", "expected"), DOWNGRADES, ids=[c[0] for c in DOWNGRADES]
)
def test_plan_downgrade(name, history, to, steps, stored, expected):
    state = history.state()
    if isinstance(expected, type):
        with pytest.raises(expected):
            plan_downgrade(state, history.revisions, stored, to=to, steps=steps)
        return
    plan = plan_downgrade(state, history.revisions, stored, to=to, steps=steps)
    assert [(s.revision.id, s.from_database) for s in plan] == expected


def test_a_stored_down_is_parsed_with_its_directives():
    stored = {"0009_new": StoredDown("-- preflight: SELECT true\nSELECT -9;", False)}
    (step,) = plan_downgrade(History(applied=(1,), unknown=("0009_new",)).state(), DISK, stored, to=None, steps=1)
    assert step.revision.down.transactional is False and [p.sql for p in step.revision.preflights] == ["SELECT true"]


@pytest.mark.parametrize(
    ("history", "extensions", "expected"),
    [
        (History(applied=(1, 2, 3, 5, 8)), (), False),
        (History(applied=(1, 2, 3, 5, 8)), ("pgcrypto",), True),  # an extension to create
        (History(applied=(1, 2, 3, 5, 8), partial=(8, "apply")), (), True),  # a journal to finish
        (History(applied=(1, 2)), (), True),
    ],
)
def test_needs_run(history, extensions, expected):
    state = history.state()
    revset = RevisionSet(directory=None, revisions=DISK, extensions=extensions)  # type: ignore[arg-type]
    assert needs_run(revset, state, plan_upgrade(DISK, state) if not state.in_progress else []) is expected
