"""A directory in another tool's layout is never told to write a manifest: `hash` refuses those."""

from __future__ import annotations

from z4j_migrate.cli import render_status
from z4j_migrate.directory import check_directory
from z4j_migrate.status import StatusReport


def test_check_and_status_of_a_foreign_layout_do_not_point_at_hash(tmp_path):
    (tmp_path / "1_users.up.sql").write_text("CREATE TABLE users (id bigint PRIMARY KEY);\n")
    (tmp_path / "1_users.down.sql").write_text("DROP TABLE users;\n")
    report = check_directory(tmp_path, lint=False, layout="golang-migrate")
    assert (report.revisions, report.layout) == (1, "golang-migrate")
    assert "hash" not in report.render()
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "0001_users.up.sql").write_text("-- message: users\nCREATE TABLE users (id bigint PRIMARY KEY);\n")
    (ours / "0001_users.down.sql").write_text("DROP TABLE users;\n")
    assert "z4j-migrate hash writes it" in check_directory(ours, lint=False).render()
    text = render_status(StatusReport("db", (), (), None, layout="golang-migrate"))
    assert "layout: golang-migrate" in text and "hash" not in text
    assert "z4j-migrate hash writes one" in render_status(StatusReport("db", (), (), None))
