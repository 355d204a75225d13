"""The public surface: `__all__` is exactly what the package exports, and every error the library
raises on purpose can be caught by name from `z4j_migrate`."""

from __future__ import annotations

import inspect
import types

import z4j_migrate
from z4j_migrate import errors, interrupt


def test_all_is_the_public_names():
    public = {
        name
        for name, value in vars(z4j_migrate).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(z4j_migrate.__all__) == public
    assert len(z4j_migrate.__all__) == len(set(z4j_migrate.__all__))


def test_every_error_is_exported():
    raised = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.Z4jMigrateError)
    }
    assert raised <= set(z4j_migrate.__all__)
    assert "Interrupted" in z4j_migrate.__all__ and z4j_migrate.Interrupted is interrupt.Interrupted


def test_errors_carry_structured_fields():
    failed = z4j_migrate.RevisionFailed("x", revision="0001_a", path="0001_a.up.sql", sqlstate="42P07")
    assert (failed.revision, failed.path, failed.sqlstate, failed.applied, failed.failed) == (
        "0001_a",
        "0001_a.up.sql",
        "42P07",
        (),
        None,
    )
    holder = z4j_migrate.LockHolder(pid=42, role="migrator")
    assert z4j_migrate.LockTimeout("busy", holder=holder).holder is holder
    assert z4j_migrate.RevisionFileError("bad", path="f.sql", line=3).message == "f.sql:3: bad"


def test_export_is_a_library_call():
    """`z4j-migrate export` is one call: the layout, the directory, and keywords only after them."""
    params = inspect.signature(z4j_migrate.export).parameters
    assert list(params)[:2] == ["layout", "out_dir"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[2:])
    assert {"migrations_dir", "force"} <= set(params)
    assert z4j_migrate.ExportResult.__name__ == "ExportResult"


def test_adopt_is_a_verb_of_the_package():
    import importlib

    adopt_module = importlib.import_module("z4j_migrate.adopt")
    assert z4j_migrate.adopt is adopt_module.adopt and z4j_migrate.AdoptResult is adopt_module.AdoptResult
    assert {"adopt", "AdoptResult", "AdoptionMismatch", "ForeignHistory"} <= set(z4j_migrate.__all__)
