#!/usr/bin/env bash
# Install Debian's PostgreSQL 15 server + contrib for the local throwaway clusters.
#
# Why: z4j_migrate.localpg needs real server binaries (initdb, pg_ctl, postgres) and the
# contrib extensions pgcrypto, citext and pg_trgm.  Debian 12 ships exactly PostgreSQL 15.
# We only want the binaries: the Debian-managed "main" cluster is not created, and if one
# appears anyway it is stopped and set to manual start so it never squats on port 5432.
#
# Idempotent: does nothing when the binaries and extensions are already there.
# Needs root (or sudo) only when something must be installed.  Last stdout line: the bindir.
# Z4J_PG15_FORCE=1 runs the apt steps even when everything is present (for testing).
set -euo pipefail

BINDIR=/usr/lib/postgresql/15/bin
EXTENSIONS=(pgcrypto citext pg_trgm)

log() { printf 'install-pg15: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

extension_dir() {
    local share=""
    if [ -x "$BINDIR/pg_config" ]; then
        share="$("$BINDIR/pg_config" --sharedir 2>/dev/null || true)"
    fi
    echo "${share:-/usr/share/postgresql/15}/extension"
}

is_installed() {
    local exe e
    for exe in initdb pg_ctl postgres; do
        [ -x "$BINDIR/$exe" ] || return 1
    done
    for e in "${EXTENSIONS[@]}"; do
        [ -f "$(extension_dir)/$e.control" ] || return 1
    done
}

if is_installed && [ -z "${Z4J_PG15_FORCE:-}" ]; then
    log "PostgreSQL 15 server and contrib already installed"
    echo "$BINDIR"
    exit 0
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: run as root to install postgresql-15"
    SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

export DEBIAN_FRONTEND=noninteractive

# Clusters that exist before we start are someone else's business; remember them.
list_clusters() {
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}' | sort
    fi
}
before="$(list_clusters)"

# 1) Ask postgresql-common not to create a "main" cluster (its createcluster.conf includes
#    createcluster.d).  2) Forbid service starts during the install via policy-rc.d, unless
#    the machine already has one (Docker images usually do).  Both are undone on exit.
CC_DROPIN=/etc/postgresql-common/createcluster.d/zz-z4j-migrate-no-main.conf
POLICY=/usr/sbin/policy-rc.d
own_policy=0
cleanup() {
    as_root rm -f "$CC_DROPIN" || true
    if [ "$own_policy" = 1 ]; then as_root rm -f "$POLICY" || true; fi
}
trap cleanup EXIT
as_root mkdir -p "$(dirname "$CC_DROPIN")"
echo "create_main_cluster = false" | as_root tee "$CC_DROPIN" >/dev/null
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, from z4j-migrate scripts/install-pg15.sh\nexit 101\n' \
        | as_root tee "$POLICY" >/dev/null
    as_root chmod 755 "$POLICY"
    own_policy=1
fi

log "apt-get update"
as_root apt-get update -qq
# Since Debian 10 the contrib modules ship inside postgresql-NN (which Provides
# postgresql-contrib-NN); the postgresql-contrib meta package keeps older layouts working.
pkgs=(postgresql-15 postgresql-contrib)
apt-cache show postgresql-15 >/dev/null 2>&1 \
    || die "no postgresql-15 package in the apt sources (this script targets Debian 12)"
log "apt-get install ${pkgs[*]}"
as_root apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2

# Stop (and set to manual) any cluster the packages created despite the settings above.
after="$(list_clusters)"
for c in $(comm -13 <(echo "$before") <(echo "$after")); do
    ver="${c%%/*}" name="${c#*/}"
    log "stopping auto-created cluster $ver/$name and setting it to manual start"
    as_root pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    if [ -f "/etc/postgresql/$ver/$name/start.conf" ]; then
        echo manual | as_root tee "/etc/postgresql/$ver/$name/start.conf" >/dev/null
    fi
done

is_installed || die "installation finished but $BINDIR or the contrib extensions are missing"
log "installed PostgreSQL 15 into $BINDIR"
echo "$BINDIR"
