"""Planning rules: pure functions over revisions and history rows."""

from __future__ import annotations

import pytest

from z4j_migrate.errors import ConfigError, DriftError, IrreversibleRevision
from z4j_migrate.plan import DowngradeStep, check_reversible, downgrade_targets, find_drift, plan_upgrade
from z4j_migrate.revisions import parse_pair
from z4j_migrate.state import AppliedRow, DbState


def rev(n: int, slug: str = "r", down: str = "SELECT 1;"):
    rid = f"{n:04d}_{slug}"
    return parse_pair(
        n, rid, f"{rid}.up.sql", f"-- message: {rid}\nSELECT {n};".encode(), f"{rid}.down.sql", down.encode()
    )


def state(*revs, unknown=(), edited=()):
    applied = {}
    for r in revs:
        up = "sha256:changed" if r.id in edited else r.up.checksum
        applied[r.id] = AppliedRow(r.id, up, r.down.checksum, None, 1.0, True)
    for rid in unknown:
        applied[rid] = AppliedRow(rid, "sha256:x", "sha256:y", None, 1.0, True)
    return DbState(True, False, applied, {}, frozenset())


R = (rev(1), rev(2), rev(3))


def test_pending_in_order_and_target():
    assert [r.id for r in plan_upgrade(R, state())] == ["0001_r", "0002_r", "0003_r"]
    assert [r.id for r in plan_upgrade(R, state(R[0]))] == ["0002_r", "0003_r"]
    assert [r.id for r in plan_upgrade(R, state(), "2")] == ["0001_r", "0002_r"]
    assert [r.id for r in plan_upgrade(R, state(), "0002_r")] == ["0001_r", "0002_r"]
    assert plan_upgrade(R, state(*R)) == []


def test_unknown_target_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown revision 'nope'"):
        plan_upgrade(R, state(), "nope")


def test_edited_applied_revision_is_drift_naming_the_file():
    with pytest.raises(DriftError, match="0002_r.up.sql"):
        plan_upgrade(R, state(*R, edited=("0002_r",)))


def test_out_of_order_is_refused():
    with pytest.raises(DriftError, match="0002_r would be applied out of order.*0003_r"):
        plan_upgrade(R, state(R[0], R[2]))


def test_database_ahead_is_reported_not_refused_when_nothing_pending():
    st = state(*R, unknown=("0004_future",))
    assert plan_upgrade(R, st) == []
    assert find_drift(R, st).unknown == ("0004_future",)


def test_downgrade_targets():
    st = state(*R)
    assert downgrade_targets(st, R, to="base", steps=None) == ["0003_r", "0002_r", "0001_r"]
    assert downgrade_targets(st, R, to="1", steps=None) == ["0003_r", "0002_r"]
    assert downgrade_targets(st, R, to=None, steps=1) == ["0003_r"]
    with pytest.raises(ConfigError, match="not applied"):
        downgrade_targets(state(R[0]), R, to="0002_r", steps=None)


def test_irreversible_in_plan_is_refused_with_backup_pointer():
    irr = rev(2, "drop_old", down="-- irreversible: data is gone; restore a backup\n")
    with pytest.raises(IrreversibleRevision, match=r"0002_drop_old is irreversible.*docs/backup-restore.md"):
        check_reversible([DowngradeStep(R[2], False), DowngradeStep(irr, False)])
