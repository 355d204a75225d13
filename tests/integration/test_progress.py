"""The live progress line: on a terminal (a pseudo-terminal here) it appears and ends before the
summary; piped, the output has no control characters at all."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from helpers import REPO, applied_ids, write_pair

CONTROL = ("\r", "\x1b")


def _revisions(folder, n: int = 6) -> None:
    for i in range(1, n + 1):
        write_pair(folder, f"{i:04d}_t{i}", f"CREATE TABLE t{i} (id int);\nSELECT pg_sleep(0.05);", f"DROP TABLE t{i};")


def _env(url: str, folder) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env.update({"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder), "COLUMNS": "120", "TERM": "xterm"})
    return env


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stdout and stderr on one pseudo-terminal; everything it wrote, and its exit code."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "z4j_migrate", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=REPO,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_the_progress_line_appears_and_ends_with_the_summary(database_url, migrations):
    _revisions(migrations)
    code, out = _on_a_terminal(["upgrade"], _env(database_url, migrations))
    assert code == 0, out
    assert "revisions" in out and "6/6" in out, out  # click's bar: label and position
    assert "\r" in out  # redrawn in place
    last_bar = out.rfind("6/6")
    summary = out.find("applied 0001_t1")
    assert summary > last_bar, out  # the line ended before the summary
    assert out.strip().splitlines()[-1].startswith("applied 0006_t6 ("), out  # the summary is last
    assert len(applied_ids(database_url)) == 6


def test_piped_there_are_no_control_characters(database_url, migrations):
    _revisions(migrations)
    r = subprocess.run(
        [sys.executable, "-m", "z4j_migrate", "upgrade"],
        capture_output=True,
        text=True,
        env=_env(database_url, migrations),
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert not any(c in r.stdout + r.stderr for c in CONTROL), repr(r.stdout + r.stderr)
    assert r.stdout.count("applied ") == 6
    r = subprocess.run(
        [sys.executable, "-m", "z4j_migrate", "downgrade", "--to", "base", "--yes"],
        capture_output=True,
        text=True,
        env=_env(database_url, migrations),
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode == 0 and not any(c in r.stdout + r.stderr for c in CONTROL), repr(r.stdout + r.stderr)


def test_verify_on_a_terminal_shows_its_checks_and_ends_with_the_report(database_url, migrations):
    _revisions(migrations, 4)
    code, out = _on_a_terminal(["verify"], _env(database_url, migrations))
    assert code == 0, out
    assert "checks" in out and "4/4" in out, out
    assert out.strip().splitlines()[-1].startswith("verified 4 revision(s)"), out  # the report comes last
    assert out.count("ok            0001_t1") == 1, out  # each check printed once, above the live line
    assert "\r" in out
