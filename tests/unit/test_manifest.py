"""z4j-migrate.sum, the checksum manifest: pure, no database (the CLI tests run `python -m z4j_migrate`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import run_cli, write_pair

from z4j_migrate import manifest
from z4j_migrate.config import BUNDLED_DIR
from z4j_migrate.errors import RevisionFileError
from z4j_migrate.manifest import MANIFEST_FILE
from z4j_migrate.revisions import CONFIG_FILE, RevisionSet, checksum, discover, normalise
from z4j_migrate.scaffold import new_revision
from z4j_migrate.state import head_digest

TOML = 'extensions = ["citext"]\n'
FILES = ["0001_a.down.sql", "0001_a.up.sql", "0002_b.down.sql", "0002_b.up.sql"]


def _head(revset: RevisionSet) -> int:
    return head_digest((r.id, r.up.checksum, r.down.checksum) for r in revset.revisions)


def _hash(directory: Path) -> str:
    """What `z4j-migrate hash` does; returns the manifest text."""
    text = manifest.for_revisions(discover(directory))
    manifest.write(directory, text)
    return text


def _manifest_path(directory: Path) -> Path:
    return directory / MANIFEST_FILE


def _replace_in_manifest(directory: Path, old: str, new: str) -> None:
    path = _manifest_path(directory)
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in the manifest"
    path.write_text(text.replace(old, new), encoding="utf-8", newline="\n")


def _line(directory: Path, prefix: str) -> str:
    return next(ln for ln in _manifest_path(directory).read_text(encoding="utf-8").split("\n") if ln.startswith(prefix))


def _flip_hex(line: str) -> str:
    """The same line with its last hex digit changed: a hand edit that keeps the format."""
    return line[:-1] + ("0" if line[-1] != "0" else "1")


@pytest.fixture
def revdir(tmp_path: Path) -> Path:
    """Two valid pairs and a z4j-migrate.toml; no manifest yet."""
    d = tmp_path / "migrations"
    d.mkdir()
    write_pair(d, "0001_a", "CREATE TABLE a (id int);\n", "DROP TABLE a;\n")
    write_pair(d, "0002_b", "CREATE TABLE b (id int);\n", "DROP TABLE b;\n")
    (d / CONFIG_FILE).write_text(TOML, encoding="utf-8")
    return d


@pytest.fixture
def hashed(revdir: Path) -> Path:
    """`revdir` after `z4j-migrate hash`."""
    _hash(revdir)
    return revdir


# --- 1. round trip -----------------------------------------------------------------------------


def test_read_after_write_holds_the_head_digest_of_a_fully_applied_database(revdir: Path) -> None:
    revset = discover(revdir)
    assert manifest.write(revdir, manifest.for_revisions(revset)) is True
    got = manifest.read(revdir)
    assert got is not None
    assert got.path == _manifest_path(revdir)
    assert got.head == _head(revset) != 0


def test_read_after_write_holds_the_extensions_from_the_toml(hashed: Path) -> None:
    got = manifest.read(hashed)
    assert got is not None
    assert got.extensions == ("citext",) == discover(hashed).extensions


def test_read_after_write_lists_every_sql_file_and_the_toml_with_its_checksum(hashed: Path) -> None:
    got = manifest.read(hashed)
    assert got is not None
    expected = {name: checksum(normalise((hashed / name).read_bytes(), name)) for name in [*FILES, CONFIG_FILE]}
    assert got.files == expected


def test_file_checksums_are_the_ones_discover_computes(hashed: Path) -> None:
    got = manifest.read(hashed)
    assert got is not None
    revisions = discover(hashed).revisions
    assert len(revisions) == len(FILES) // 2
    for rev in revisions:
        assert got.files[os.path.basename(rev.up.path)] == rev.up.checksum
        assert got.files[os.path.basename(rev.down.path)] == rev.down.checksum


def test_trusted_agrees_with_read_on_a_fresh_manifest(hashed: Path) -> None:
    read, trusted = manifest.read(hashed), manifest.trusted(hashed)
    assert read is not None and trusted is not None
    assert trusted.head == read.head == _head(discover(hashed))
    assert trusted.extensions == read.extensions == ("citext",)
    assert trusted.path == _manifest_path(hashed)


def test_manifest_without_toml_has_no_extensions_and_no_toml_entry(revdir: Path) -> None:
    (revdir / CONFIG_FILE).unlink()
    _hash(revdir)
    got, trusted = manifest.read(revdir), manifest.trusted(revdir)
    assert got is not None and trusted is not None
    assert got.extensions == trusted.extensions == ()
    assert sorted(got.files) == FILES
    assert trusted.head == got.head == _head(discover(revdir))


def test_empty_directory_manifest_has_head_zero_and_is_trusted(tmp_path: Path) -> None:
    _hash(tmp_path)
    got, trusted = manifest.read(tmp_path), manifest.trusted(tmp_path)
    assert got is not None and trusted is not None
    assert got.head == trusted.head == 0 == head_digest([])
    assert got.files == {}
    assert manifest.stale_files(discover(tmp_path)) == []


def test_several_extensions_keep_their_order(revdir: Path) -> None:
    (revdir / CONFIG_FILE).write_text('extensions = ["pgcrypto", "citext", "pg_trgm"]\n', encoding="utf-8")
    _hash(revdir)
    expected = ("pgcrypto", "citext", "pg_trgm")
    assert manifest.read(revdir).extensions == expected
    assert manifest.trusted(revdir).extensions == expected


def test_write_returns_false_when_content_is_unchanged(revdir: Path) -> None:
    text = manifest.for_revisions(discover(revdir))
    assert manifest.write(revdir, text) is True
    before = _manifest_path(revdir).stat().st_mtime_ns
    assert manifest.write(revdir, text) is False
    assert manifest.write(revdir, manifest.for_revisions(discover(revdir))) is False
    assert _manifest_path(revdir).stat().st_mtime_ns == before


def test_write_returns_true_and_replaces_the_file_when_content_changes(hashed: Path) -> None:
    write_pair(hashed, "0003_c", "CREATE TABLE c (id int);\n", "DROP TABLE c;\n")
    text = manifest.for_revisions(discover(hashed))
    assert manifest.write(hashed, text) is True
    assert _manifest_path(hashed).read_bytes() == text.encode("utf-8")
    assert not any(name.endswith(".tmp") for name in os.listdir(hashed)), "the temporary file must be renamed away"


def test_rendered_manifest_is_lf_and_sorted_by_file_name(hashed: Path) -> None:
    raw = _manifest_path(hashed).read_bytes()
    assert b"\r" not in raw
    lines = raw.decode("utf-8").split("\n")
    entries = [ln.split(" ")[0] for ln in lines[lines.index(_line(hashed, "files ")) + 1 :] if ln]
    assert entries == sorted([*FILES, CONFIG_FILE])


def test_for_revisions_does_not_depend_on_the_order_files_were_written(tmp_path: Path) -> None:
    first, second = tmp_path / "x", tmp_path / "y"
    first.mkdir()
    second.mkdir()
    write_pair(first, "0001_a", "CREATE TABLE a (id int);\n", "DROP TABLE a;\n")
    write_pair(first, "0002_b", "CREATE TABLE b (id int);\n", "DROP TABLE b;\n")
    write_pair(second, "0002_b", "CREATE TABLE b (id int);\n", "DROP TABLE b;\n")
    write_pair(second, "0001_a", "CREATE TABLE a (id int);\n", "DROP TABLE a;\n")
    assert manifest.for_revisions(discover(first)) == manifest.for_revisions(discover(second))


# --- 2. trusted(): when the start-up check may skip reading the files ------------------------


def test_trusted_is_none_without_a_manifest(revdir: Path) -> None:
    assert manifest.trusted(revdir) is None
    assert manifest.read(revdir) is None


def test_trusted_is_none_when_a_pair_is_added_after_hashing(hashed: Path) -> None:
    write_pair(hashed, "0003_c", "CREATE TABLE c (id int);\n", "DROP TABLE c;\n")
    assert manifest.trusted(hashed) is None


def test_trusted_is_none_when_a_single_sql_file_is_added(hashed: Path) -> None:
    (hashed / "0003_c.up.sql").write_text("-- message: c\nCREATE TABLE c (id int);\n", encoding="utf-8")
    assert manifest.trusted(hashed) is None


def test_trusted_is_none_when_any_other_sql_file_appears(hashed: Path) -> None:
    # discover() refuses a malformed name; the start-up check must read the files to say so.
    (hashed / "notes.sql").write_text("SELECT 1;\n", encoding="utf-8")
    assert manifest.trusted(hashed) is None


@pytest.mark.parametrize("name", FILES)
def test_trusted_is_none_when_a_listed_file_is_deleted(hashed: Path, name: str) -> None:
    (hashed / name).unlink()
    assert manifest.trusted(hashed) is None


def test_trusted_is_none_when_a_file_is_renamed(hashed: Path) -> None:
    (hashed / "0002_b.up.sql").rename(hashed / "0002_bb.up.sql")
    (hashed / "0002_b.down.sql").rename(hashed / "0002_bb.down.sql")
    assert manifest.trusted(hashed) is None


@pytest.mark.parametrize("prefix", ["0001_a.up.sql ", "0002_b.down.sql ", f"{CONFIG_FILE} ", "head ", "files "])
def test_trusted_and_read_are_none_when_a_line_is_hand_edited(hashed: Path, prefix: str) -> None:
    line = _line(hashed, prefix)
    _replace_in_manifest(hashed, line, _flip_hex(line))
    assert manifest.trusted(hashed) is None
    assert manifest.read(hashed) is None


def test_trusted_is_none_when_the_extensions_line_is_hand_edited(hashed: Path) -> None:
    _replace_in_manifest(hashed, "\nextensions citext\n", "\nextensions citext pgcrypto\n")
    assert manifest.trusted(hashed) is None
    assert manifest.read(hashed) is None


def test_trusted_is_none_when_the_total_line_is_hand_edited(hashed: Path) -> None:
    line = _line(hashed, "total ")
    _replace_in_manifest(hashed, line, _flip_hex(line))
    assert manifest.trusted(hashed) is None
    assert manifest.read(hashed) is None


def test_trusted_is_none_when_a_line_is_appended(hashed: Path) -> None:
    with open(_manifest_path(hashed), "a", encoding="utf-8") as f:
        f.write("0003_c.up.sql sha256:" + "0" * 64 + "\n")
    assert manifest.trusted(hashed) is None
    assert manifest.read(hashed) is None


def test_trusted_is_none_when_the_toml_extensions_change_after_hashing(hashed: Path) -> None:
    (hashed / CONFIG_FILE).write_text('extensions = ["citext", "pgcrypto"]\n', encoding="utf-8")
    assert manifest.trusted(hashed) is None


def test_trusted_is_none_when_the_toml_changes_in_any_way(hashed: Path) -> None:
    # Only the checksum is compared: a comment is enough to make the start-up check read it again.
    (hashed / CONFIG_FILE).write_text("# a comment\n" + TOML, encoding="utf-8")
    assert manifest.trusted(hashed) is None


def test_trusted_is_none_when_the_toml_is_removed_after_hashing(hashed: Path) -> None:
    (hashed / CONFIG_FILE).unlink()
    assert manifest.trusted(hashed) is None


def test_trusted_is_none_when_a_toml_is_added_after_hashing(revdir: Path) -> None:
    (revdir / CONFIG_FILE).unlink()
    _hash(revdir)
    assert manifest.trusted(revdir) is not None
    (revdir / CONFIG_FILE).write_text(TOML, encoding="utf-8")
    assert manifest.trusted(revdir) is None


def test_trusted_is_none_when_the_toml_is_not_utf8(hashed: Path) -> None:
    (hashed / CONFIG_FILE).write_bytes(b'extensions = ["cit\xffext"]\n')
    assert manifest.trusted(hashed) is None


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated-in-the-body"),
        pytest.param(lambda raw: raw[: raw.index(b"\ntotal ") + 20], id="truncated-in-the-total-line"),
        pytest.param(lambda raw: raw[: raw.index(b"\ntotal ")] + b"\n", id="header-only"),
        pytest.param(lambda raw: raw[:-1], id="last-newline-missing"),
        pytest.param(lambda raw: raw.replace(b"citext", b"cit\xffext"), id="not-utf8-in-the-body"),
        pytest.param(lambda raw: raw.decode("utf-8").encode("utf-16"), id="utf16"),
        pytest.param(lambda raw: raw.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda raw: b"\x00" * 64, id="nul-bytes"),
    ],
)
def test_trusted_and_read_are_none_for_a_damaged_manifest(hashed: Path, damage) -> None:
    path = _manifest_path(hashed)
    path.write_bytes(damage(path.read_bytes()))
    assert manifest.trusted(hashed) is None
    assert manifest.read(hashed) is None


@pytest.mark.parametrize(
    "name",
    ["README.md", ".0001_a.up.sql.swp", ".0003_c.up.sql", "0001_a.up.sql.orig", "0003_c.up.sql~", ".DS_Store"],
)
def test_trusted_ignores_files_that_are_not_revisions(hashed: Path, name: str) -> None:
    # discover() skips hidden files and names not ending in .sql, so they change nothing it computes.
    (hashed / name).write_text("whatever\n", encoding="utf-8")
    got = manifest.trusted(hashed)
    assert got is not None
    assert got.head == _head(discover(hashed))


def test_trusted_ignores_a_subdirectory(hashed: Path) -> None:
    (hashed / "archive").mkdir()
    assert manifest.trusted(hashed) is not None


def test_trusted_does_not_notice_an_edited_revision_file_documented_blind_spot(hashed: Path) -> None:
    # By design (manifest.py docstring): at start-up only the file NAMES are compared with the
    # directory listing, so that a no-op boot reads no revision file. A file edited after `hash`
    # is therefore still trusted here, with the OLD head; `check` (CI), `status` and every run
    # that applies or undoes revisions read the files and catch it (see stale_files below).
    old_head = _head(discover(hashed))
    (hashed / "0001_a.up.sql").write_text("-- message: a\nCREATE TABLE a (id bigint);\n", encoding="utf-8")
    got = manifest.trusted(hashed)
    assert got is not None, "trusted() must not read revision files (only names are compared)"
    assert got.head == old_head
    assert got.head != _head(discover(hashed))
    assert manifest.stale_files(discover(hashed)) == ["0001_a.up.sql"]


# --- 3. stale_files(): what `check` refuses and `status` reports --------------------------------


def test_stale_files_is_none_without_a_manifest(revdir: Path) -> None:
    assert manifest.stale_files(discover(revdir)) is None


def test_stale_files_is_empty_when_fresh(hashed: Path) -> None:
    assert manifest.stale_files(discover(hashed)) == []


@pytest.mark.parametrize("name", FILES)
def test_stale_files_names_exactly_the_edited_file(hashed: Path, name: str) -> None:
    path = hashed / name
    path.write_text(path.read_text(encoding="utf-8").replace(";", "; -- edited"), encoding="utf-8")
    assert manifest.stale_files(discover(hashed)) == [name]


def test_stale_files_names_a_new_pair(hashed: Path) -> None:
    write_pair(hashed, "0003_c", "CREATE TABLE c (id int);\n", "DROP TABLE c;\n")
    assert manifest.stale_files(discover(hashed)) == ["0003_c.down.sql", "0003_c.up.sql"]


def test_stale_files_names_a_deleted_pair(hashed: Path) -> None:
    (hashed / "0002_b.up.sql").unlink()
    (hashed / "0002_b.down.sql").unlink()
    assert manifest.stale_files(discover(hashed)) == ["0002_b.down.sql", "0002_b.up.sql"]


def test_stale_files_names_the_toml_when_its_extensions_change(hashed: Path) -> None:
    (hashed / CONFIG_FILE).write_text('extensions = ["citext", "pgcrypto"]\n', encoding="utf-8")
    assert manifest.stale_files(discover(hashed)) == [CONFIG_FILE]


def test_stale_files_names_the_toml_when_it_is_removed_or_added(revdir: Path) -> None:
    _hash(revdir)
    (revdir / CONFIG_FILE).unlink()
    assert manifest.stale_files(discover(revdir)) == [CONFIG_FILE]
    _hash(revdir)
    (revdir / CONFIG_FILE).write_text(TOML, encoding="utf-8")
    assert manifest.stale_files(discover(revdir)) == [CONFIG_FILE]


def test_stale_files_is_empty_again_after_rehashing(hashed: Path) -> None:
    write_pair(hashed, "0003_c", "CREATE TABLE c (id int);\n", "DROP TABLE c;\n")
    assert manifest.stale_files(discover(hashed))
    _hash(hashed)
    assert manifest.stale_files(discover(hashed)) == []
    assert manifest.trusted(hashed) is not None


@pytest.mark.parametrize("prefix", ["0001_a.up.sql ", "head ", "total "])
def test_stale_files_is_not_empty_after_a_hand_edit_of_the_manifest(hashed: Path, prefix: str) -> None:
    line = _line(hashed, prefix)
    _replace_in_manifest(hashed, line, _flip_hex(line))
    stale = manifest.stale_files(discover(hashed))
    assert stale, "a manifest whose total does not verify must never pass as up to date"
    assert set(FILES) <= set(stale)


def test_stale_files_is_not_empty_for_a_hand_edit_that_keeps_every_checksum(hashed: Path) -> None:
    # The total covers every line: dropping the extensions alone still makes it stale.
    _replace_in_manifest(hashed, "\nextensions citext\n", "\nextensions\n")
    assert manifest.stale_files(discover(hashed))


def test_stale_files_is_not_empty_for_a_non_utf8_manifest(hashed: Path) -> None:
    _manifest_path(hashed).write_bytes(b"\xff\xfe garbage\n")
    assert manifest.stale_files(discover(hashed))


def test_stale_files_names_the_manifest_when_damaged_in_an_empty_directory(tmp_path: Path) -> None:
    _manifest_path(tmp_path).write_text("garbage\n", encoding="utf-8")
    assert manifest.stale_files(discover(tmp_path)) == [MANIFEST_FILE]


def test_stale_message_names_the_manifest_path_the_files_and_the_fix(hashed: Path) -> None:
    message = manifest.stale_message(hashed, ["0001_a.up.sql"])
    assert str(_manifest_path(hashed)) in message
    assert "0001_a.up.sql" in message
    assert "z4j-migrate hash" in message


def test_stale_message_shortens_a_long_list(hashed: Path) -> None:
    names = [f"{n:04d}_x.up.sql" for n in range(1, 9)]
    message = manifest.stale_message(hashed, names)
    assert "0005_x.up.sql" in message and "0006_x.up.sql" not in message
    assert "and 3 more" in message


# --- 4. CRLF / BOM: the checksum is of the normalised text ------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda raw: raw.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda raw: b"\xef\xbb\xbf" + raw, id="bom"),
        pytest.param(lambda raw: b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"), id="bom-crlf"),
        pytest.param(lambda raw: raw.replace(b"\n", b"\r"), id="cr"),
    ],
)
@pytest.mark.parametrize("name", ["0001_a.up.sql", "0002_b.down.sql"])
def test_line_endings_and_bom_do_not_change_the_manifest(hashed: Path, name: str, transform) -> None:
    before = _manifest_path(hashed).read_bytes()
    path = hashed / name
    path.write_bytes(transform(path.read_bytes()))
    revset = discover(hashed)
    assert manifest.stale_files(revset) == []
    assert manifest.for_revisions(revset).encode("utf-8") == before
    assert manifest.write(hashed, manifest.for_revisions(revset)) is False
    assert manifest.trusted(hashed) is not None


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_toml_line_endings_do_not_change_the_manifest(hashed: Path, newline: bytes) -> None:
    path = hashed / CONFIG_FILE
    path.write_bytes(b"# settings\n" + TOML.encode() + b"\n")  # several lines, so the endings matter
    _hash(hashed)
    before = _manifest_path(hashed).read_bytes()
    path.write_bytes(path.read_bytes().replace(b"\n", newline))
    revset = discover(hashed)
    assert revset.extensions == ("citext",)
    assert manifest.stale_files(revset) == []
    assert manifest.for_revisions(revset).encode("utf-8") == before
    assert manifest.trusted(hashed) is not None


def test_for_directory_normalises_line_endings_too(hashed: Path) -> None:
    path = hashed / "0001_a.up.sql"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert manifest.for_directory(hashed).encode("utf-8") == _manifest_path(hashed).read_bytes()


# --- 5. for_directory(): what `new` writes, without validating headers ------------------------


def test_for_directory_equals_for_revisions_on_a_valid_directory(revdir: Path) -> None:
    assert manifest.for_directory(revdir) == manifest.for_revisions(discover(revdir))


def test_for_directory_equals_for_revisions_without_a_toml(revdir: Path) -> None:
    (revdir / CONFIG_FILE).unlink()
    assert manifest.for_directory(revdir) == manifest.for_revisions(discover(revdir))


def test_for_directory_ignores_files_discover_ignores(revdir: Path) -> None:
    expected = manifest.for_directory(revdir)
    for name in ("README.md", ".0001_a.up.sql.swp", ".0003_c.up.sql", "notes.txt", MANIFEST_FILE):
        (revdir / name).write_text("x\n", encoding="utf-8")
    assert manifest.for_directory(revdir) == expected


def test_for_directory_works_on_a_freshly_scaffolded_pair(hashed: Path) -> None:
    up, down = new_revision(hashed, "add x")
    with pytest.raises(RevisionFileError):
        discover(hashed)  # the scaffold has no SQL yet
    text = manifest.for_directory(hashed)
    assert manifest.write(hashed, text) is True
    got = manifest.read(hashed)
    assert got is not None
    assert set(got.files) == {*FILES, up.name, down.name, CONFIG_FILE}
    assert got.files[up.name] == checksum(normalise(up.read_bytes(), up.name))
    assert got.extensions == ("citext",)
    # The names match the directory again, so the start-up check stays fast until the SQL is written.
    assert manifest.trusted(hashed) is not None


def test_for_directory_head_counts_only_complete_pairs(revdir: Path) -> None:
    with_pairs = manifest.for_directory(revdir)
    (revdir / "0003_c.up.sql").write_text("-- message: c\n", encoding="utf-8")
    text = manifest.for_directory(revdir)
    assert "0003_c.up.sql sha256:" in text
    head = next(ln for ln in text.split("\n") if ln.startswith("head "))
    assert head == next(ln for ln in with_pairs.split("\n") if ln.startswith("head "))


# --- 6. the bundled revisions -----------------------------------------------------------------


def test_bundled_manifest_is_up_to_date() -> None:
    stale = manifest.stale_files(discover(BUNDLED_DIR))
    assert stale == [], f"sql/{MANIFEST_FILE} is out of date for {stale}: run `make hash` and commit the result"


def test_bundled_manifest_is_trusted_at_start_up() -> None:
    got = manifest.trusted(BUNDLED_DIR)
    assert got is not None, f"sql/{MANIFEST_FILE} is not trusted: run `make hash` and commit the result"
    revset = discover(BUNDLED_DIR)
    assert got.head == _head(revset)
    assert got.extensions == revset.extensions


# --- 7. the CLI ---------------------------------------------------------------------------------


def test_cli_hash_writes_the_manifest_then_reports_up_to_date(revdir: Path) -> None:
    first = run_cli("hash", str(revdir))
    assert first.returncode == 0, first.stderr
    assert "wrote" in first.stdout and str(_manifest_path(revdir)) in first.stdout
    assert "2 revision(s)" in first.stdout
    assert _manifest_path(revdir).read_text(encoding="utf-8") == manifest.for_revisions(discover(revdir))
    second = run_cli("hash", str(revdir))
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout and "wrote" not in second.stdout


def test_cli_hash_uses_the_migrations_dir_from_the_environment(revdir: Path) -> None:
    result = run_cli("hash", env={"Z4J_MIGRATIONS_DIR": str(revdir)})
    assert result.returncode == 0, result.stderr
    assert manifest.stale_files(discover(revdir)) == []


def test_cli_hash_refuses_a_malformed_directory_and_writes_nothing(revdir: Path) -> None:
    (revdir / "0002_b.down.sql").unlink()
    result = run_cli("hash", str(revdir))
    assert result.returncode == 3
    assert "0002_b" in result.stderr
    assert not _manifest_path(revdir).exists()


def test_cli_hash_leaves_an_existing_manifest_alone_when_a_revision_is_malformed(hashed: Path) -> None:
    before = _manifest_path(hashed).read_bytes()
    (hashed / "0001_a.up.sql").write_text("CREATE TABLE a (id int);\n", encoding="utf-8")  # no message
    result = run_cli("hash", str(hashed))
    assert result.returncode == 3
    assert _manifest_path(hashed).read_bytes() == before


def test_cli_check_passes_with_a_fresh_manifest(hashed: Path) -> None:
    result = run_cli("check", "--no-lint", str(hashed))
    assert result.returncode == 0, result.stderr
    assert "ok: 2 revision(s)" in result.stdout
    assert "note: no" not in result.stdout


def test_cli_check_refuses_a_stale_manifest_naming_the_file(hashed: Path) -> None:
    (hashed / "0002_b.up.sql").write_text("-- message: b\nCREATE TABLE b (id bigint);\n", encoding="utf-8")
    result = run_cli("check", "--no-lint", str(hashed))
    assert result.returncode == 3
    assert "0002_b.up.sql" in result.stderr
    assert "0001_a" not in result.stderr
    assert "z4j-migrate hash" in result.stderr
    assert "ok:" not in result.stdout


def test_cli_check_without_a_manifest_passes_with_a_note(revdir: Path) -> None:
    result = run_cli("check", "--no-lint", str(revdir))
    assert result.returncode == 0, result.stderr
    assert any(line.startswith(f"note: no {MANIFEST_FILE}") for line in result.stdout.splitlines())
    assert not _manifest_path(revdir).exists(), "check must never write the manifest"


def test_cli_new_updates_an_existing_manifest(hashed: Path) -> None:
    result = run_cli("new", "add x", "--migrations-dir", str(hashed))
    assert result.returncode == 0, result.stderr
    assert "updated" in result.stdout and MANIFEST_FILE in result.stdout
    got = manifest.read(hashed)
    assert got is not None
    assert {"0003_add_x.up.sql", "0003_add_x.down.sql"} <= set(got.files)
    assert _manifest_path(hashed).read_text(encoding="utf-8") == manifest.for_directory(hashed)
    assert manifest.trusted(hashed) is not None


def test_cli_new_does_not_create_a_manifest(revdir: Path) -> None:
    result = run_cli("new", "add x", "--migrations-dir", str(revdir))
    assert result.returncode == 0, result.stderr
    assert (revdir / "0003_add_x.up.sql").exists()
    assert not _manifest_path(revdir).exists()
    assert "updated" not in result.stdout


# --- bugs found while writing these tests, fixed -------------------------------------------------


def test_write_repairs_a_manifest_whose_line_endings_became_crlf(hashed: Path) -> None:
    path = _manifest_path(hashed)
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))  # git core.autocrlf=true on Windows
    assert manifest.write(hashed, manifest.for_revisions(discover(hashed))) is True
    assert path.read_bytes() == text.encode("utf-8")
    assert manifest.stale_files(discover(hashed)) == []


def test_read_returns_none_for_a_non_hex_head_with_a_valid_total(tmp_path: Path) -> None:
    body = "head zz\nextensions\nfiles sha256:00\n"
    _manifest_path(tmp_path).write_text(f"# c\ntotal {manifest._total(body)}\n{body}", encoding="utf-8")
    assert manifest.trusted(tmp_path) is None
    assert manifest.read(tmp_path) is None


def test_trusted_and_discover_agree_on_a_toml_with_a_bom(hashed: Path) -> None:
    path = hashed / CONFIG_FILE
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    try:
        discover(hashed)
        readable = True
    except RevisionFileError:
        readable = False
    assert readable and manifest.trusted(hashed) is not None  # a BOM is dropped, as in revision files


def test_a_directory_named_like_the_manifest_is_not_trusted(tmp_path: Path) -> None:
    _manifest_path(tmp_path).mkdir()
    assert manifest.trusted(tmp_path) is None
    assert manifest.read(tmp_path) is None


def test_only_the_thorough_check_catches_a_forged_head_with_a_recomputed_total(hashed: Path) -> None:
    """A head line edited by hand, with the total made to match: entries still agree, so status and the
    runs (entry comparison) say fresh; `check` (thorough) compares with what hash would write."""
    path = _manifest_path(hashed)
    text = path.read_text(encoding="utf-8")
    marker = text.index("\ntotal ")
    end = text.index("\n", marker + 1)
    body = _flip_hex(text[end + 1 :].split("\n", 1)[0]) + "\n" + text[end + 1 :].split("\n", 1)[1]
    path.write_text(f"{text[: marker + 1]}total {manifest._total(body)}\n{body}", encoding="utf-8", newline="\n")
    assert manifest.read(hashed) is not None  # the total verifies
    assert manifest.stale_files(discover(hashed)) == []
    assert manifest.stale_files(discover(hashed), thorough=True) == [MANIFEST_FILE]
