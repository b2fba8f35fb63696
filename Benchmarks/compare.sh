#!/usr/bin/env bash
# Benchmarks/compare.sh — Arca against pg_dump / pg_restore and against the
# raw COPY limit, on databases it creates, timed in the same run, alternating,
# medians of several runs. Sets up what it needs like scripts/test.sh does:
# system packages, a throwaway PostgreSQL (unless PGHOST is set and
# ARCA_BENCH_USE_PGHOST=1), a release build of arca.
#
#   Benchmarks/compare.sh                       defaults: pgbench scale 20, 2M wide rows, 3 runs
#   Benchmarks/compare.sh --scale 1 --wide-rows 2000 --runs 1     (the CI smoke run)
#   Benchmarks/compare.sh --update-benchmarks-md                  write the table into BENCHMARKS.md
#
# All options are those of Benchmarks/compare.py (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd -P)
PORT=${ARCA_BENCH_PGPORT:-54331}
CLUSTER_DIR=$REPO_ROOT/.build-pg-bench

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  PATH=/opt/swift/usr/bin:$PATH
fi

scripts/setup.sh
swift build -c release --product arca
ARCA="$(swift build -c release --show-bin-path)/arca"

if [[ "${ARCA_BENCH_USE_PGHOST:-}" != 1 ]]; then
  trap 'scripts/pg-cluster.sh stop "$CLUSTER_DIR" "$PORT" >/dev/null 2>&1 || true' EXIT
  scripts/pg-cluster.sh start "$CLUSTER_DIR" "$PORT"
  unset PGHOSTADDR PGSERVICE PGDATABASE PGOPTIONS PGPASSWORD
  eval "$(scripts/pg-cluster.sh env "$CLUSTER_DIR" "$PORT")"
  export PGHOST PGPORT PGUSER
fi

python3 Benchmarks/compare.py --arca "$ARCA" --work "$REPO_ROOT/.build-bench" "$@"
