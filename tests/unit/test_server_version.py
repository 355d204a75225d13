"""The server-version gate on connect (db.unsupported_server): pure, so every branch is testable here."""

from __future__ import annotations

import pytest

from z4j_migrate.db import unsupported_server


@pytest.mark.parametrize("version", [140000, 140013, 150020, 180004, 190000])
def test_supported_servers_pass(version: int) -> None:
    assert unsupported_server(version, "postgresql://app:***@db:5432/z4j") is None


@pytest.mark.parametrize(("version", "major"), [(130018, "13"), (120000, "12"), (100023, "10"), (90624, "9.6")])
def test_older_servers_are_named_with_what_is_needed(version: int, major: str) -> None:
    message = unsupported_server(version, "postgresql://app:***@db:5432/z4j")
    assert message is not None
    assert f"runs PostgreSQL {major}," in message and "needs PostgreSQL 14 or newer" in message
    assert "postgresql://app:***@db:5432/z4j" in message and "Nothing was changed" in message
