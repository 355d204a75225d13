#!/usr/bin/env bash
# Install Debian's PgBouncer (1.18 on Debian 12) for the topology fixtures in tests/topology.py.
#
# Why: the integration tests prove the engine against a real transaction pooler.  They start
# their own pgbouncer (own ini, free port, unprivileged user), so all we want is the binary.
# The package also ships a service on port 6432; in a container without systemd it usually
# does not start, but if it runs we stop it and disable it so it never squats on the port.
#
# Idempotent: apt runs only when /usr/sbin/pgbouncer is missing, and `apt-get update` only
# when the package lists do not know pgbouncer yet.  Needs root (or sudo) only to install or
# to stop the service.  Z4J_PGBOUNCER_FORCE=1 runs the apt steps anyway (for testing).
set -euo pipefail

BIN=/usr/sbin/pgbouncer
# Debian's service runs `pgbouncer [-d] /etc/pgbouncer/pgbouncer.ini`; ours never use that file.
SERVICE_PATTERN='^(/usr/sbin/)?pgbouncer( -d)? /etc/pgbouncer/pgbouncer\.ini'

log() { printf 'install-pgbouncer: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
    SUDO=(sudo)
fi
as_root() {
    if [ ${#SUDO[@]} -gt 0 ] && ! command -v sudo >/dev/null; then
        die "not root and no sudo: run as root to $*"
    fi
    "${SUDO[@]}" "$@"
}

if [ -x "$BIN" ] && [ -z "${Z4J_PGBOUNCER_FORCE:-}" ]; then
    log "pgbouncer already installed: $("$BIN" --version | head -n 1)"
else
    export DEBIAN_FRONTEND=noninteractive
    # Forbid service starts during the install unless the machine already has a policy
    # (Docker images usually do); undone on exit.
    POLICY=/usr/sbin/policy-rc.d
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\n# temporary, from z4j-migrate scripts/install-pgbouncer.sh\nexit 101\n' \
            | as_root tee "$POLICY" >/dev/null
        as_root chmod 755 "$POLICY"
        trap 'as_root rm -f "$POLICY" || true' EXIT
    fi
    if ! apt-cache show pgbouncer >/dev/null 2>&1; then
        log "apt-get update"
        as_root apt-get update -qq
    fi
    log "apt-get install pgbouncer"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >&2
    [ -x "$BIN" ] || die "installation finished but $BIN is missing"
fi

if pgrep -f "$SERVICE_PATTERN" >/dev/null; then
    log "stopping Debian's pgbouncer service (it holds port 6432) and disabling it"
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        as_root systemctl disable --now pgbouncer >&2 || true
    else
        as_root /etc/init.d/pgbouncer stop >&2 || true
        as_root update-rc.d pgbouncer disable >/dev/null 2>&1 || true
    fi
    # Still there (no init system that knows it)?  SIGTERM is pgbouncer's immediate shutdown.
    for _ in $(seq 50); do
        pids="$(pgrep -f "$SERVICE_PATTERN" || true)"
        [ -n "$pids" ] || break
        # shellcheck disable=SC2086
        as_root kill $pids 2>/dev/null || true
        sleep 0.1
    done
    ! pgrep -f "$SERVICE_PATTERN" >/dev/null || die "Debian's pgbouncer service is still running"
fi
log "ready: $BIN"
echo "$BIN"
