"""tests/downstream/project is a separate pytest project (its own pytest.ini), run in a subprocess by
tests/integration/test_verify.py; the top-level run must not collect it."""

collect_ignore = ["project"]
