#!/usr/bin/env bash
# Benchmarks/throttle.sh — `arca backup --max-rate`: a throttled backup
# takes the time its rate implies, and the server's load falls with it.
# On a throwaway PostgreSQL 15 (port 54371), a release build of arca, a
# pgbench database (scale 20 by default: about 300 MB on disk, 2,000,000
# accounts), `--jobs 2` unthrottled, at 20MiB and at 40MiB, alternating,
# medians of 3 runs (Benchmarks/throttle.py says what is measured).
# Removes its files and stops the server when done.
#
#   Benchmarks/throttle.sh                 scale 20, 3 runs
#   Benchmarks/throttle.sh --runs 1        a quick check
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd -P)
PORT=${ARCA_BENCH_PGPORT:-54371}
SCALE=${ARCA_BENCH_SCALE:-20}
CLUSTER_DIR=$REPO_ROOT/.build-pg-throttle
WORK=$REPO_ROOT/.build-bench-throttle

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  PATH=/opt/swift/usr/bin:$PATH
fi

swift build -c release --product arca
ARCA="$(swift build -c release --show-bin-path)/arca"

cleanup() {
  scripts/pg-cluster.sh stop "$CLUSTER_DIR" "$PORT" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
scripts/pg-cluster.sh start "$CLUSTER_DIR" "$PORT"
unset PGHOSTADDR PGSERVICE PGDATABASE PGOPTIONS PGPASSWORD
eval "$(scripts/pg-cluster.sh env "$CLUSTER_DIR" "$PORT")"
export PGHOST PGPORT PGUSER

mkdir -p "$WORK"
psql -q -d postgres -c "DROP DATABASE IF EXISTS throttle_bench" -c "CREATE DATABASE throttle_bench"
pgbench -q -i -s "$SCALE" throttle_bench
psql -q -d throttle_bench -c "VACUUM ANALYZE"
ROOT=$CLUSTER_DIR
[[ -L "$CLUSTER_DIR/cluster" ]] && ROOT=$(readlink -f "$CLUSTER_DIR/cluster")
POSTMASTER=$(head -1 "$ROOT/data/postmaster.pid")
URL="host=$PGHOST port=$PGPORT user=$PGUSER dbname=throttle_bench"
python3 Benchmarks/throttle.py --arca "$ARCA" --repo "$WORK/repo" --url "$URL" --postmaster "$POSTMASTER" "$@" \
  | tee .build/throttle-bench.txt
