#!/usr/bin/env bash
# scripts/demo.sh — the main job, on a fresh machine, in one command:
# install what is needed, build arca, back up a database, verify the archive,
# restore it into a new database and prove the two are equal.
#
#   scripts/demo.sh                        a throwaway local PostgreSQL with a sample database
#   DATABASE_URL=postgresql://... scripts/demo.sh
#                                          back up and verify that database instead
#                                          (nothing is restored into your server)
#
# Environment knobs:
#   ARCA_REPO          the backup repository (default ./backups)
#   ARCA_DEMO_SCALE    pgbench scale of the sample database (default 10, ~150 MB of rows)
#   ARCA_DEMO_PGPORT   port of the throwaway cluster (default 54330)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd -P)
export ARCA_REPO=${ARCA_REPO:-$REPO_ROOT/backups}
SCALE=${ARCA_DEMO_SCALE:-10}
PORT=${ARCA_DEMO_PGPORT:-54330}
CLUSTER_DIR=$REPO_ROOT/.build-pg-demo

section() { printf '\n==== %s ====\n' "$*"; }

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  PATH=/opt/swift/usr/bin:$PATH
fi

section "System packages"
scripts/setup.sh

section "Build (release)"
swift build -c release --product arca
ARCA="$(swift build -c release --show-bin-path)/arca"
"$ARCA" --version

if [[ -n "${DATABASE_URL:-}" ]]; then
  section "Backup of \$DATABASE_URL"
  "$ARCA" backup
  ID=$("$ARCA" list --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["backups"][0]["id"])')
  section "Verify $ID"
  "$ARCA" verify "$ID"
  "$ARCA" inspect "$ID"
  echo
  echo "Restore it into a new database with:"
  echo "  $ARCA restore $ID --target-url postgresql://.../new_database --create --confirm"
  exit 0
fi

section "Throwaway PostgreSQL on port $PORT"
trap 'scripts/pg-cluster.sh stop "$CLUSTER_DIR" "$PORT" >/dev/null 2>&1 || true' EXIT
scripts/pg-cluster.sh start "$CLUSTER_DIR" "$PORT"
unset PGHOSTADDR PGSERVICE PGDATABASE PGOPTIONS PGPASSWORD
eval "$(scripts/pg-cluster.sh env "$CLUSTER_DIR" "$PORT")"
export PGHOST PGPORT PGUSER

SOURCE=arca_demo
TARGET=arca_demo_restored
dropdb --if-exists --force "$SOURCE"
dropdb --if-exists --force "$TARGET"
createdb "$SOURCE"
echo "Sample database $SOURCE: pgbench scale $SCALE plus tables of every type family"
pgbench -i -q -s "$SCALE" "$SOURCE" 2>&1 | tail -n 1
psql -X -q -v ON_ERROR_STOP=1 -d "$SOURCE" -f Tests/Fixtures/type_families.sql >/dev/null
psql -X -q -d "$SOURCE" -c 'VACUUM ANALYZE'

section "Backup"
"$ARCA" backup --database-url "dbname=$SOURCE"
ID=$("$ARCA" list --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["backups"][0]["id"])')

section "Verify $ID"
"$ARCA" verify "$ID"

section "Restore into a new database $TARGET"
"$ARCA" restore "$ID" --target-url "dbname=$TARGET" --create --confirm

section "Compare $SOURCE with $TARGET"
"$ARCA" compare "dbname=$SOURCE" "dbname=$TARGET"

echo
echo "Done: $ID is in $ARCA_REPO/local, verified, and restores to an equal database."
