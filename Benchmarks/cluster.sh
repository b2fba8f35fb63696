# Benchmarks/cluster.sh — sourced by the single-purpose benchmarks
# (stream.sh, throttle.sh, verify-cost.sh, binary-limits.sh), after they
# `cd` to the repository root:
#
#   source Benchmarks/cluster.sh NAME DEFAULT_PORT
#
# builds arca in release mode ($ARCA), starts a throwaway PostgreSQL 15 in
# .build-pg-NAME on $ARCA_BENCH_PGPORT (default DEFAULT_PORT) with PGHOST,
# PGPORT and PGUSER exported, and makes $WORK (.build-bench-NAME); both are
# removed, and the server stopped, when the script exits.
REPO_ROOT=$(pwd -P)
PORT=${ARCA_BENCH_PGPORT:-$2}
CLUSTER_DIR=$REPO_ROOT/.build-pg-$1
WORK=$REPO_ROOT/.build-bench-$1

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
