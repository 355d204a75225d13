"""pytest plugin (registered through the pytest11 entry point). Filled in by the verify work."""

from __future__ import annotations


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    group = parser.getgroup("z4j-migrate")
    group.addoption("--z4j-migrations", default=None, help="Revision directory to test.")
    group.addoption("--z4j-database-url", default=None, help="Server for throwaway databases.")
