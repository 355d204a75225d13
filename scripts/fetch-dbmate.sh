#!/usr/bin/env bash
# Fetch the dbmate binary for the adoption tests (tests/integration/test_adopt.py makes dbmate's own
# history table with dbmate itself), without Go or GitHub downloads.
#
# Why npm: only the npm registry, PyPI and Debian are reachable from dev/CI machines. dbmate's npm
# package pulls its binary through a per-platform optional dependency; we fetch that one directly.
#
# Usage: scripts/fetch-dbmate.sh          -> last stdout line is the path of the binary
# Env:   Z4J_DBMATE_DIR          cache dir (default: /var/cache/z4j-migrate/dbmate as root,
#                                <repo>/.cache/dbmate otherwise; same rule as tests/integration/test_adopt.py)
#        Z4J_DBMATE_NPM_VERSION  package version (default pinned below)
# Idempotent: an already unpacked binary of that version is reused without touching the network.
set -euo pipefail
umask 022

PKG="@dbmate/linux-x64"
VERSION="${Z4J_DBMATE_NPM_VERSION:-2.36.0}"

log() { printf 'fetch-dbmate: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${Z4J_DBMATE_DIR:-}" ]; then
    cache="$Z4J_DBMATE_DIR"
elif [ "$(id -u)" = 0 ]; then
    cache=/var/cache/z4j-migrate/dbmate
else
    cache="$repo/.cache/dbmate"
fi
mkdir -p "$cache"
cache="$(cd "$cache" && pwd -P)"
dest="$cache/$VERSION"
binary="$dest/bin/dbmate"

works() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "dbmate version $VERSION"; }

finish() {
    ln -sfn "$VERSION" "$cache/current"
    echo "$binary"
}

if works "$binary"; then
    log "dbmate already present ($VERSION)"
    finish
    exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "only linux-x64 is fetched here; install dbmate yourself"
command -v npm >/dev/null || die "npm is required (apt-get install -y npm)"

tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "downloading $PKG@$VERSION with npm pack"
(cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null) || die "npm pack $PKG@$VERSION failed"
tgz="$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n1)"
[ -n "$tgz" ] || die "npm pack produced no tarball"
tar -xzf "$tgz" -C "$tmp" --no-same-owner
chmod -R u+rwX,go+rX,go-w "$tmp/package"
works "$tmp/package/bin/dbmate" || die "the downloaded dbmate does not run"

rm -rf "$dest.old"
[ -e "$dest" ] && mv "$dest" "$dest.old"
mv -T "$tmp/package" "$dest" 2>/dev/null || works "$binary" || die "could not install into $dest"
rm -rf "$dest.old"
log "installed dbmate into $dest"
finish
