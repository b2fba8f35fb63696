#!/usr/bin/env bash
# Benchmarks/many-objects.sh — databases with many objects (10,000 tables, a
# table of 2,000 partitions, 100,000 large objects) backed up and restored by
# arca and by pg_dump -Fc / pg_restore -j 2, on a throwaway PostgreSQL 15 with
# default settings (max_locks_per_transaction = 64), timed in the same run.
# A scale test, too heavy for the unit suite (ManyObjectsTests is its
# scaled-down form there).
#
#   Benchmarks/many-objects.sh                     all three databases, 3 runs
#   Benchmarks/many-objects.sh --only tables --runs 1
#
# All options are those of Benchmarks/many_objects.py (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd -P)
PORT=${ARCA_BENCH_PGPORT:-54333}
CLUSTER_DIR=$REPO_ROOT/.build-pg-many

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  PATH=/opt/swift/usr/bin:$PATH
fi

scripts/setup.sh
swift build -c release --product arca
ARCA="$(swift build -c release --show-bin-path)/arca"

trap 'scripts/pg-cluster.sh stop "$CLUSTER_DIR" "$PORT" >/dev/null 2>&1 || true' EXIT
scripts/pg-cluster.sh start "$CLUSTER_DIR" "$PORT"
unset PGHOSTADDR PGSERVICE PGDATABASE PGOPTIONS PGPASSWORD
eval "$(scripts/pg-cluster.sh env "$CLUSTER_DIR" "$PORT")"
export PGHOST PGPORT PGUSER

python3 Benchmarks/many_objects.py --arca "$ARCA" --work "$REPO_ROOT/.build-bench-many" "$@"
