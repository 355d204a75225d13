"""Property-based tests (Hypothesis): whatever the input, our parsers return a value or raise our typed error.

"Parses or raises our error" alone would hold for a parser that refuses everything, so each
such property draws from two sources: anything at all, and inputs built to be valid, which
must parse (and mean what they say). Derandomized so CI runs the same examples every time;
a failure prints the smallest input that breaks the property.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from z4j_migrate.config import parse_bool_env, parse_database_url, parse_seconds
from z4j_migrate.errors import ConfigError, RevisionFileError
from z4j_migrate.revisions import discover, parse_pair
from z4j_migrate.sqlcheck import check_file, split_statements

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
NAME = re.compile(r"^\d{4,}_[a-z0-9]+(?:_[a-z0-9]+)*\.(up|down)\.sql$")

# --------------------------------------------------------------------------- strategies


def tagged(valid: st.SearchStrategy, anything: st.SearchStrategy) -> st.SearchStrategy:
    """(value, True) for a value built to be valid, (value, False) for anything at all."""
    return st.one_of(valid.map(lambda v: (v, True)), anything.map(lambda v: (v, False)))


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
messages = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30).filter(
    lambda m: m.strip() and "\ufeff" not in m
)
valid_statements = st.sampled_from(
    [
        "SELECT 1;",
        "CREATE TABLE t (id int);",
        "/* c */ SELECT 1;",
        "CREATE INDEX CONCURRENTLY i ON t (c);",
        "COMMENT ON TABLE t IS 'a; b -- c';",
        "DO $x$ BEGIN PERFORM 1; END $x$;",
        "SELECT E'\\\\', '$$';",
    ]
)
valid_sql = st.lists(valid_statements, min_size=1, max_size=5)


@st.composite
def valid_pairs(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    """An up and a down file as the docs describe them, in any of the line endings, maybe with a BOM."""
    message = draw(messages)
    up = [f"-- message: {message}"]
    if draw(st.booleans()):
        up.append(f"-- transactional: {draw(st.sampled_from(['true', 'false', 'TRUE', 'False']))}")
    if draw(st.booleans()):
        up.append(f"-- statement-timeout: {draw(st.sampled_from(['30s', '500ms', '10min', '0', 'none', '2']))}")
    up += [""] * draw(st.integers(0, 1)) + draw(valid_sql)
    down_kind = draw(st.sampled_from(["sql", "irreversible", "preflight"]))
    if down_kind == "irreversible":
        down = [f"-- irreversible: {draw(messages)}"]
    else:
        down = ["-- preflight: SELECT NOT EXISTS (SELECT 1 FROM t)"] if down_kind == "preflight" else []
        down += draw(valid_sql)
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return (
        bom + (newline.join(up) + newline).encode(),
        (newline.join(down) + newline).encode(),
        message.strip(),
    )


file_bytes = st.one_of(
    st.binary(max_size=200),
    headers.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(headers, st.sampled_from(["\n", "\r\n", "\r"])).map(
        lambda h: h[0].replace("\n", h[1]).encode("utf-8", "surrogatepass")
    ),
)


# --------------------------------------------------------------------------- discovery and directives


slugs = st.from_regex(r"[a-z0-9]{1,6}(_[a-z0-9]{1,4})?", fullmatch=True)
any_directories = st.tuples(
    st.lists(file_names, min_size=1, max_size=6, unique=True), st.lists(file_bytes, min_size=6, max_size=6)
).map(lambda nc: (list(zip(*nc, strict=False)), None))


@st.composite
def valid_directories(draw: st.DrawFn) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """Well-formed pairs under distinct numbers (any padding), and files discovery ignores;
    with the (id, message) of each revision in order."""
    versions = draw(st.lists(st.integers(0, 99_999), min_size=1, max_size=5, unique=True))
    files, expected = [], []
    for version in sorted(versions):
        rev_id = f"{version:0{draw(st.integers(4, 6))}d}_{draw(slugs)}"
        up, down, message = draw(valid_pairs())
        files += [(f"{rev_id}.up.sql", up), (f"{rev_id}.down.sql", down)]
        expected.append((rev_id, message))
    files += [(name, b"anything") for name in draw(st.sets(st.sampled_from(["README.md", ".draft.sql", "x.sql~"])))]
    return files, expected


@SETTINGS
@given(directory=st.one_of(valid_directories(), any_directories))
@example(
    directory=([("0001_a.up.sql", b"-- message: m\nSELECT 1;"), ("0001_a.down.sql", b"SELECT 1;")], [("0001_a", "m")])
)
def test_discovery_of_any_file_names_parses_or_raises_our_error(directory):
    files, expected = directory  # expected: the revisions of a directory built to be valid, else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, content in files:
            assume(name not in (".", "..") and len(os.fsencode(name)) <= 255)
            try:
                (folder / name).write_bytes(content)
            except (OSError, UnicodeEncodeError):
                assume(False)
        try:
            revset = discover(folder)
        except (RevisionFileError, ConfigError) as exc:
            assert expected is None, f"a valid directory was refused: {exc}"
            assert str(exc).strip() and "\n" not in str(exc).strip()  # one paragraph
            return
        if expected is not None:
            assert [(r.id, r.message) for r in revset.revisions] == expected
        ids = [r.id for r in revset.revisions]
        assert len(set(ids)) == len(ids)
        assert [r.version for r in revset.revisions] == sorted({r.version for r in revset.revisions})
        for revision in revset.revisions:
            assert NAME.match(Path(revision.up.path).name) and NAME.match(Path(revision.down.path).name)
            assert revision.message and "\x00" not in revision.up.text + revision.down.text


@SETTINGS
@given(files=st.one_of(valid_pairs(), st.tuples(file_bytes, file_bytes, st.none())))
def test_any_header_text_parses_or_raises_our_error(files):
    up, down, message = files  # message: what a pair built to be valid says, else None
    try:
        revision = parse_pair(1, "0001_x", "0001_x.up.sql", up, "0001_x.down.sql", down)
    except RevisionFileError as exc:
        assert message is None, f"a valid pair was refused: {exc}"
        assert exc.path in ("0001_x.up.sql", "0001_x.down.sql")
        assert exc.line is None or exc.line >= 1
        return
    if message is not None:
        assert revision.message == message
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


valid_sql_texts = st.tuples(valid_sql, st.sampled_from(["\n", " ", "\n-- note\n", "\n\n/* c */\n"])).map(
    lambda s: (s[1].join(s[0]), len(s[0]))
)


@SETTINGS
@given(
    sql=tagged(valid_sql_texts, sql_texts.map(lambda t: (t, None))), transactional=st.booleans(), is_down=st.booleans()
)
def test_sql_checks_and_splitting_parse_or_raise_our_error(sql, transactional, is_down):
    from z4j_migrate.revisions import SqlFile, checksum

    (text, count), valid = sql  # count: the statements of a text built to be valid
    assume("\x00" not in text)  # refused at discovery, before the parser sees it
    sql_file = SqlFile("f.sql", text, checksum(text), transactional, True)
    try:
        check_file(sql_file, is_down=is_down)
        statements = split_statements(sql_file)
    except RevisionFileError as exc:
        # CREATE INDEX CONCURRENTLY is valid SQL but cannot run in a transaction: refused there (sqlcheck.settle)
        in_block = transactional and "CONCURRENTLY" in text and "cannot run inside a transaction" in exc.message
        assert not valid or in_block, f"valid SQL was refused: {exc}"
        assert exc.path == "f.sql" and (exc.line is None or 1 <= exc.line <= text.count("\n") + 1)
        return
    if valid:
        assert len(statements) == count
    assert all(1 <= s.line <= text.count("\n") + 1 for s in statements)
    assert [s.index for s in statements] == list(range(1, len(statements) + 1))


# --------------------------------------------------------------------------- settings from the outside world


names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
valid_urls = st.one_of(
    st.builds(
        "{}://{}@{}:{}/{}{}".format,
        st.sampled_from(["postgresql", "postgres", "postgresql+psycopg", "PostgreSQL"]),
        names,
        st.sampled_from(["localhost", "127.0.0.1", "db.example.com", "[::1]", "h1,h2"]),
        st.integers(1, 65535),
        names,
        st.sampled_from(["", "?sslmode=require", "?connect_timeout=5&application_name=x", "?target_session_attrs=any"]),
    ),
    st.builds(
        "host={} port={} dbname={} user={}".format,
        st.sampled_from(["localhost", "/var/run/postgresql", "h1,h2"]),
        st.integers(1, 65535),
        names,
        names,
    ),
)


@SETTINGS
@given(url=tagged(valid_urls, st.text(max_size=80)))
@example(url=("postgresql://u:p%zz@h/db", False))
@example(url=("host=h port=0", False))
def test_any_database_url_parses_or_raises_config_error(url):
    value, valid = url
    try:
        database = parse_database_url(value)
    except ConfigError as exc:
        assert not valid, f"a valid URL was refused: {exc}"
        assert str(exc).strip()
        return
    assert "://" in database.display


password_chars = st.characters(blacklist_characters="@/\x00", blacklist_categories=("Cs",))


@SETTINGS
@given(
    password=st.text(password_chars, min_size=1, max_size=12).map(lambda p: "Pw9" + p),
    tail=st.sampled_from(["h/db", "h:5432/db", "h:abc/db", "[h/db", "h/db?x=1", "h/db?sslmode=bogus", "h:99999/db"]),
    form=st.sampled_from(["url", "url-encoded", "kv"]),
)
@example(password="Pw9 spaced", tail="h/db", form="url")
@example(password="Pw9%zz", tail="h/db", form="url")
def test_a_password_never_reaches_a_config_error(password, tail, form):
    if form == "kv":
        assume("'" not in password and "\\" not in password)
        value = f"host=h port={tail.split(':')[-1].split('/')[0]} password='{password}' dbname=db"
    else:
        value = f"postgresql://user:{quote(password, safe='') if form == 'url-encoded' else password}@{tail}"
    # Valid by construction: a percent-encoded password, or a quoted one, beside a valid host and port.
    valid = tail in ("h/db", "h:5432/db") and form == "url-encoded" or (tail, form) == ("h:5432/db", "kv")
    try:
        database = parse_database_url(value)
    except ConfigError as exc:
        assert not valid, f"a valid URL was refused: {exc}"
        assert password not in str(exc)
        return
    assert password not in repr(database) and password not in database.display
    if valid:
        assert database.params["password"] == password


valid_seconds = st.one_of(st.floats(min_value=0, allow_infinity=False), st.integers(min_value=0, max_value=10**9))


@SETTINGS
@given(
    value=tagged(
        st.one_of(valid_seconds, valid_seconds.map(str), valid_seconds.map(lambda v: f" {v}\t")),
        st.one_of(st.text(max_size=20), st.floats(allow_nan=True), st.integers()),
    )
)
def test_seconds_parse_or_raise_config_error(value):
    value, valid = value
    try:
        seconds = parse_seconds(value, source="X")
    except ConfigError as exc:
        assert not valid, f"{value!r} was refused: {exc}"
        assert str(exc).startswith("X=")
        return
    assert 0 <= seconds < float("inf")
    if valid:
        assert seconds == float(value)


valid_booleans = st.tuples(
    st.sampled_from(["", " ", "true", "false", "TRUE", "False", "tRuE"]), st.sampled_from(["", " ", "\t", "\n"])
).map(lambda v: v[1] + v[0] + v[1])


@SETTINGS
@given(value=tagged(valid_booleans, st.text(max_size=12)))
def test_booleans_from_the_environment_are_true_false_or_an_error(value):
    value, valid = value
    try:
        result = parse_bool_env("Z4J_X", default=True, environ={"Z4J_X": value})
    except ConfigError as exc:
        assert not valid, f"{value!r} was refused: {exc}"
        assert "Z4J_X=" in str(exc)
        return
    assert result is (value.strip().lower() != "false")
