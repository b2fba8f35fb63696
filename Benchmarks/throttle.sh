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
SCALE=${ARCA_BENCH_SCALE:-20}
source Benchmarks/cluster.sh throttle 54371
psql -q -d postgres -c "DROP DATABASE IF EXISTS throttle_bench" -c "CREATE DATABASE throttle_bench"
pgbench -q -i -s "$SCALE" throttle_bench
psql -q -d throttle_bench -c "VACUUM ANALYZE"
ROOT=$CLUSTER_DIR
[[ -L "$CLUSTER_DIR/cluster" ]] && ROOT=$(readlink -f "$CLUSTER_DIR/cluster")
POSTMASTER=$(head -1 "$ROOT/data/postmaster.pid")
URL="host=$PGHOST port=$PGPORT user=$PGUSER dbname=throttle_bench"
python3 Benchmarks/throttle.py --arca "$ARCA" --repo "$WORK/repo" --url "$URL" --postmaster "$POSTMASTER" "$@" \
  | tee .build/throttle-bench.txt
