"""Property-based tests (Hypothesis): whatever the input, our parsers return a value or raise our typed error.

Derandomized so CI runs the same examples every time; a failure prints the
smallest input that breaks the property.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from z4j_migrate.config import parse_bool_env, parse_database_url, parse_seconds
from z4j_migrate.errors import ConfigError, RevisionFileError
from z4j_migrate.revisions import discover, parse_pair
from z4j_migrate.sqlcheck import check_file, split_statements

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
NAME = re.compile(r"^\d{4,}_[a-z0-9]+(?:_[a-z0-9]+)*\.(up|down)\.sql$")

# --------------------------------------------------------------------------- strategies

file_names = st.one_of(
    # anything a file system accepts
    st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40),
    # near misses of NNNN_slug.up.sql
    st.from_regex(r"\A\d{1,6}_[a-zA-Z0-9_\-. ]{0,12}\.(up|down|UP|sql)?\.?sql\Z"),
    # valid names, so that pairing and numbering rules get exercised too
    st.from_regex(r"\A\d{4,5}_[a-z0-9]{1,6}(_[a-z0-9]{1,4})?\.(up|down)\.sql\Z"),
)

directive_lines = st.one_of(
    st.builds(
        lambda key, sep, value: f"--{sep}{key}:{value}",
        st.sampled_from(
            ["message", "transactional", "irreversible", "preflight", "Message", "TRANSACTIONAL", "author", "x-y"]
        ),
        st.sampled_from(["", " ", "  ", "\t"]),
        st.one_of(
            st.sampled_from([" true", " false", " True", "", " maybe", " m", " SELECT true", " 1"]),
            st.text(max_size=20),
        ),
    ),
    st.sampled_from(["", "-- plain comment", "--", "/* block */", "SELECT 1;", "CREATE TABLE t (id int);"]),
    st.text(max_size=30),
)
headers = st.lists(directive_lines, max_size=8).map("\n".join)
file_bytes = st.one_of(
    st.binary(max_size=200),
    headers.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(headers, st.sampled_from(["\n", "\r\n", "\r"])).map(
        lambda h: h[0].replace("\n", h[1]).encode("utf-8", "surrogatepass")
    ),
)


# --------------------------------------------------------------------------- discovery and directives


@SETTINGS
@given(
    names=st.lists(file_names, min_size=1, max_size=6, unique=True),
    contents=st.lists(file_bytes, min_size=6, max_size=6),
)
@example(names=["0001_a.up.sql", "0001_a.down.sql"], contents=[b"-- message: m\nSELECT 1;"] + [b"SELECT 1;"] * 5)
def test_discovery_of_any_file_names_parses_or_raises_our_error(names, contents):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, content in zip(names, contents, strict=False):
            assume(name not in (".", "..") and len(os.fsencode(name)) <= 255)
            try:
                (folder / name).write_bytes(content)
            except (OSError, UnicodeEncodeError):
                assume(False)
        try:
            revset = discover(folder)
        except (RevisionFileError, ConfigError) as exc:
            assert str(exc).strip() and "\n" not in str(exc).strip()  # one paragraph
            return
        ids = [r.id for r in revset.revisions]
        assert len(set(ids)) == len(ids)
        assert [r.version for r in revset.revisions] == sorted({r.version for r in revset.revisions})
        for revision in revset.revisions:
            assert NAME.match(Path(revision.up.path).name) and NAME.match(Path(revision.down.path).name)
            assert revision.message and "\x00" not in revision.up.text + revision.down.text


@SETTINGS
@given(up=file_bytes, down=file_bytes)
def test_any_header_text_parses_or_raises_our_error(up, down):
    try:
        revision = parse_pair(1, "0001_x", "0001_x.up.sql", up, "0001_x.down.sql", down)
    except RevisionFileError as exc:
        assert exc.path in ("0001_x.up.sql", "0001_x.down.sql")
        assert exc.line is None or exc.line >= 1
        return
    assert revision.message == revision.message.strip() and revision.message
    assert "\r" not in revision.up.text and "\r" not in revision.down.text
    assert revision.up.checksum.startswith("sha256:")
    assert (revision.irreversible is None) == revision.down.has_sql


@SETTINGS
@given(
    message=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30),
    transactional=st.sampled_from([None, "true", "false", "TRUE", "False"]),
    gap=st.booleans(),
    sql=st.sampled_from(["SELECT 1;", "CREATE TABLE t (id int);", "/* c */ SELECT 1;"]),
)
def test_well_formed_headers_mean_what_they_say(message, transactional, gap, sql):
    assume(message.strip() and "\ufeff" not in message)
    lines = [f"-- message: {message}"]
    if transactional is not None:
        lines.append(f"-- transactional: {transactional}")
    text = "\n".join(lines) + ("\n\n" if gap else "\n") + sql + "\n"
    revision = parse_pair(1, "0001_x", "u", text.encode(), "d", b"SELECT 1;")
    assert revision.message == message.strip()
    assert revision.up.transactional is (transactional is None or transactional.lower() == "true")
    assert revision.down.transactional is revision.up.transactional


# --------------------------------------------------------------------------- SQL checks (pglast)

sql_texts = st.one_of(
    st.text(max_size=120),
    st.lists(
        st.sampled_from(
            [
                "SELECT 1;",
                "COMMIT;",
                "BEGIN;",
                "DROP EXTENSION x;",
                "$$",
                "'",
                '"',
                "/*",
                "*/",
                "--",
                "\n",
                ";",
                "CREATE INDEX CONCURRENTLY i ON t (c);",
                "DO $x$ BEGIN END $x$;",
                "E'\\\\'",
                "\u00e9",
            ]
        ),
        max_size=12,
    ).map("".join),
)


@SETTINGS
@given(text=sql_texts, transactional=st.booleans(), is_down=st.booleans())
def test_sql_checks_and_splitting_parse_or_raise_our_error(text, transactional, is_down):
    from z4j_migrate.revisions import SqlFile, checksum

    assume("\x00" not in text)  # refused at discovery, before the parser sees it
    sql_file = SqlFile("f.sql", text, checksum(text), transactional, True)
    try:
        check_file(sql_file, is_down=is_down)
        statements = split_statements(sql_file)
    except RevisionFileError as exc:
        assert exc.path == "f.sql" and (exc.line is None or 1 <= exc.line <= text.count("\n") + 1)
        return
    assert all(1 <= s.line <= text.count("\n") + 1 for s in statements)
    assert [s.index for s in statements] == list(range(1, len(statements) + 1))


# --------------------------------------------------------------------------- settings from the outside world


@SETTINGS
@given(value=st.text(max_size=80))
@example(value="postgresql://u:p%zz@h/db")
@example(value="host=h port=0")
def test_any_database_url_parses_or_raises_config_error(value):
    try:
        database = parse_database_url(value)
    except ConfigError as exc:
        assert str(exc).strip()
        return
    assert "://" in database.display


password_chars = st.characters(blacklist_characters="@/\x00", blacklist_categories=("Cs",))


@SETTINGS
@given(
    password=st.text(password_chars, min_size=1, max_size=12).map(lambda p: "Pw9" + p),
    tail=st.sampled_from(["h/db", "h:5432/db", "h:abc/db", "[h/db", "h/db?x=1", "h/db?sslmode=bogus", "h:99999/db"]),
    form=st.sampled_from(["url", "kv"]),
)
@example(password="Pw9 spaced", tail="h/db", form="url")
@example(password="Pw9%zz", tail="h/db", form="url")
def test_a_password_never_reaches_a_config_error(password, tail, form):
    if form == "url":
        value = f"postgresql://user:{password}@{tail}"
    else:
        assume("'" not in password and "\\" not in password)
        value = f"host=h port={tail.split(':')[-1].split('/')[0]} password='{password}' dbname=db"
    try:
        database = parse_database_url(value)
    except ConfigError as exc:
        assert password not in str(exc)
        return
    assert password not in repr(database) and password not in database.display


@SETTINGS
@given(value=st.one_of(st.text(max_size=20), st.floats(allow_nan=True), st.integers()))
def test_seconds_parse_or_raise_config_error(value):
    try:
        seconds = parse_seconds(value, source="X")
    except ConfigError as exc:
        assert str(exc).startswith("X=")
        return
    assert 0 <= seconds < float("inf")


@SETTINGS
@given(value=st.text(max_size=12))
def test_booleans_from_the_environment_are_true_false_or_an_error(value):
    try:
        result = parse_bool_env("Z4J_X", default=True, environ={"Z4J_X": value})
    except ConfigError as exc:
        assert "Z4J_X=" in str(exc)
        return
    assert result is (value.strip().lower() != "false")
