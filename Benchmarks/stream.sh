#!/usr/bin/env bash
# Benchmarks/stream.sh — the change stream (`arca stream`) and point-in-time
# restore: how fast the stream drains a backlog against pg_recvlogical
# (pgoutput, the same publication) from a slot made at the same point, its
# lag and memory while a workload runs at full speed, and `arca restore
# --target-time` (backup + replay) against a full restore of the same final
# state. On a throwaway PostgreSQL 15 with wal_level = logical (port 54361),
# a release build of arca, a deterministic medical-records workload
# (Benchmarks/stream_schema.sql), each measurement in the same run,
# alternating, medians of several runs. Removes its databases, slots and
# files, and stops the server, when done.
#
#   Benchmarks/stream.sh                                  3 runs of 200,000 transactions
#   Benchmarks/stream.sh --runs 1 --transactions 2000     a quick check
#   Benchmarks/stream.sh --only drain                     only the backlog drain
#
# All options are those of Benchmarks/stream.py (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd -P)
PORT=${ARCA_BENCH_PGPORT:-54361}
CLUSTER_DIR=$REPO_ROOT/.build-pg-stream
WORK=$REPO_ROOT/.build-bench-stream

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  PATH=/opt/swift/usr/bin:$PATH
fi

scripts/setup.sh
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
# The report also stays in .build/stream-bench.txt (and .json) after the clean-up.
python3 Benchmarks/stream.py --arca "$ARCA" --work "$WORK" "$@" | tee .build/stream-bench.txt
cp "$WORK/report.json" .build/stream-bench.json
