#!/usr/bin/env bash
# scripts/test.sh — THE test command for Arca (CI runs it via .ci/run).
#
#   scripts/test.sh                    build + run the whole suite
#   scripts/test.sh --filter Manifest  extra arguments go to `swift test`
#
# What it does, in order:
#   1. scripts/setup.sh: make sure the system packages are installed and
#      the PostgreSQL 18 programs unpacked (fast no-op when they already are).
#   2. Start a throwaway PostgreSQL 15 cluster (scripts/pg-cluster.sh) in
#      ./.build-pg on 127.0.0.1:$ARCA_TEST_PGPORT (default 54329). When this
#      checkout is somewhere the postgres OS user cannot enter (e.g. under
#      /root), pg-cluster.sh puts it in /tmp/arca-pg-<port> instead.
#      And a PostgreSQL 18 cluster in ./.build-pg18 on $ARCA_TEST_PG18_PORT
#      (default: the 15 cluster's port + 1), for the round trips 15 -> 18
#      and 18 -> 18. Either failing to start fails the run: the 18 tests
#      skip only where nobody provides the server, never in this script.
#   3. Export PGHOST (the 15 cluster's unix socket dir), PGPORT,
#      PGUSER=postgres and ARCA_TEST_PG=1 (tells the test suite the
#      live-PostgreSQL tests may run); ARCA_TEST_PG18_HOST (socket dir),
#      ARCA_TEST_PG18_PORT and ARCA_TEST_PG18_BINDIR for the 18 cluster, and
#      that bin folder appended to PATH: psql, pg_dump and pgbench stay
#      15's, and Arca has to find the 18 pg_dump by itself.
#   4. swift build --build-tests; without arguments, a short run of the
#      benchmarks (micro benchmarks and Benchmarks/compare.sh at a tiny
#      scale); then swift test "$@" (default runner, no --parallel); without
#      arguments, ArcaServerTests first on their own, then the rest.
#   5. On exit — success, failure or Ctrl-C — stop the cluster. This is done
#      silently so that the last line of the log is swift test's own summary
#      (CI reads it), and the script's exit code is swift test's.
#
# Environment knobs:
#   ARCA_TEST_PGPORT   port of the test cluster (default 54329)
#   ARCA_TEST_PGDIR    cluster directory (default <repo>/.build-pg)
#   ARCA_TEST_PG18_PORT port of the PostgreSQL 18 cluster (default ARCA_TEST_PGPORT + 1)
#   ARCA_TEST_PG18_DIR  its directory (default <repo>/.build-pg18)
#   ARCA_PG18_CACHE    where scripts/postgresql-18.sh keeps the 18 programs
#                      (default <repo>/.cache)
#   ARCA_TEST_PG_FRESH 1 = delete the clusters first so every run starts from
#                      empty ones; 0 = reuse them. Default: 1 when CI=true, else 0.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd -P)

PG_TEST_PORT=${ARCA_TEST_PGPORT:-54329}
PG_TEST_DIR=${ARCA_TEST_PGDIR:-$REPO/.build-pg}
PG18_TEST_PORT=${ARCA_TEST_PG18_PORT:-$(( PG_TEST_PORT + 1 ))}
PG18_TEST_DIR=${ARCA_TEST_PG18_DIR:-$REPO/.build-pg18}
PG15_BIN=/usr/lib/postgresql/15/bin
if [[ "${CI:-}" == true ]]; then
  PG_TEST_FRESH=${ARCA_TEST_PG_FRESH:-1}
else
  PG_TEST_FRESH=${ARCA_TEST_PG_FRESH:-0}
fi

section() { printf '\n==== %s ====\n' "$*"; }

# CI runs with the machine's environment, which may lack the toolchain on PATH
# in a non-login shell; the toolchain lives in /opt/swift on these machines.
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  PATH=/opt/swift/usr/bin:$PATH
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "test.sh: swift not found on PATH (expected a Swift 6 toolchain, e.g. /opt/swift/usr/bin)" >&2
  exit 1
fi

section "System packages (scripts/setup.sh)"
scripts/setup.sh

section "PostgreSQL test clusters (15 on port $PG_TEST_PORT, 18 on port $PG18_TEST_PORT)"
# Installed before the start so that a half-started cluster is stopped too.
# Quiet on purpose: nothing may be printed after swift test's summary line,
# except a warning if stopping fails.
# shellcheck disable=SC2317  # invoked via trap
stop_cluster() {
  if ! scripts/pg-cluster.sh stop "$1" "$2" >/dev/null 2>&1; then
    echo "test.sh: warning: could not stop the test cluster in $1" >&2
  fi
}
# shellcheck disable=SC2317  # invoked via trap
stop_clusters() {
  stop_cluster "$PG_TEST_DIR" "$PG_TEST_PORT"
  stop_cluster "$PG18_TEST_DIR" "$PG18_TEST_PORT"
}
trap stop_clusters EXIT

# Signals: bash runs a trap only after the foreground command finishes, so a
# SIGTERM during a 10-minute `swift test` would wait for it. Long commands are
# therefore run in the background and waited for (`wait` is interrupted by a
# trapped signal at once); on INT/TERM the child gets SIGTERM and we exit, which
# runs the EXIT trap above. (A background child of a non-interactive shell
# ignores SIGINT, hence TERM for both.)
child=
# shellcheck disable=SC2317  # invoked via trap
on_signal() {
  if [[ -n "$child" ]]; then
    kill -TERM "$child" 2>/dev/null || true
  fi
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# run CMD...: run in the background, wait, return its exit status.
run() {
  local rc=0
  "$@" &
  child=$!
  wait "$child" || rc=$?
  child=
  return "$rc"
}

PG18_BIN=$(scripts/postgresql-18.sh bindir) || {
  echo "test.sh: the PostgreSQL 18 programs are missing although scripts/setup.sh ran" >&2
  exit 1
}
if [[ "$PG_TEST_FRESH" == 1 ]]; then
  scripts/pg-cluster.sh destroy "$PG_TEST_DIR" "$PG_TEST_PORT"
  scripts/pg-cluster.sh destroy "$PG18_TEST_DIR" "$PG18_TEST_PORT"
fi
PG_BIN=$PG15_BIN scripts/pg-cluster.sh start "$PG_TEST_DIR" "$PG_TEST_PORT"
PG_BIN=$PG18_BIN scripts/pg-cluster.sh start "$PG18_TEST_DIR" "$PG18_TEST_PORT"

# Connection settings for the tests (and anything they spawn: psql, pg_dump).
# Drop libpq variables from the caller's environment that would override or
# redirect them (a PGHOSTADDR wins over PGHOST, a PGSERVICE adds settings...).
unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGDATABASE PGOPTIONS PGSSLMODE PGPASSWORD PGPASSFILE
eval "$(scripts/pg-cluster.sh env "$PG_TEST_DIR" "$PG_TEST_PORT")"
export PGHOST PGPORT PGUSER
export ARCA_TEST_PG=1
echo "PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER ARCA_TEST_PG=$ARCA_TEST_PG"
psql -X -q -A -t -d postgres -c 'select version()'
ARCA_TEST_PG18_HOST=$(eval "$(scripts/pg-cluster.sh env "$PG18_TEST_DIR" "$PG18_TEST_PORT")"; printf '%s' "$PGHOST")
ARCA_TEST_PG18_PORT=$PG18_TEST_PORT
ARCA_TEST_PG18_BINDIR=$PG18_BIN
export ARCA_TEST_PG18_HOST ARCA_TEST_PG18_PORT ARCA_TEST_PG18_BINDIR
PATH=$PATH:$PG18_BIN
echo "ARCA_TEST_PG18_HOST=$ARCA_TEST_PG18_HOST ARCA_TEST_PG18_PORT=$ARCA_TEST_PG18_PORT ARCA_TEST_PG18_BINDIR=$ARCA_TEST_PG18_BINDIR"
psql -X -q -A -t -h "$ARCA_TEST_PG18_HOST" -p "$ARCA_TEST_PG18_PORT" -d postgres -c 'select version()'

section "swift build --build-tests"
run swift build --build-tests

if [[ $# -eq 0 ]]; then
  # The benchmarks must always build and run: a short pass of the micro
  # benchmarks and a tiny end-to-end comparison against pg_dump, on the
  # same test cluster. (Skipped when arguments select particular tests.)
  section "Micro benchmarks, short mode (Benchmarks/)"
  run env ARCA_BENCH_SHORT=1 swift package --package-path Benchmarks --allow-writing-to-package-directory \
    benchmark --no-progress --format markdown --path stdout
  section "API against openapi.yaml (schemathesis)"
  run scripts/api-conformance.sh
  section "End-to-end comparison, smoke scale (Benchmarks/compare.sh)"
  run env ARCA_BENCH_USE_PGHOST=1 Benchmarks/compare.sh --scale 1 --wide-rows 2000 --runs 1 --rss-scales ''
fi

rc=0
if [[ $# -eq 0 ]]; then
  # The HTTP server's tests first, on their own: the server's handlers run
  # on Swift's cooperative pool (two threads on two cores), and the engine
  # and CLI tests that block it for seconds at a time made the servers'
  # real-time limits (1 s header timeouts, a 15 s metrics cache) fail under
  # load. The rest then runs without them.
  section "swift test --filter ArcaServerTests"
  run swift test --skip-build --filter ArcaServerTests || rc=$?
  set -- --skip ArcaServerTests
fi
section "swift test${*:+ $*}"
# Not piped anywhere: its output goes to the log unchanged and in full, and
# it is the last thing printed.
run swift test "$@" || rc=$?
exit "$rc"
