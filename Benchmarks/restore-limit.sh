#!/usr/bin/env bash
# Benchmarks/restore-limit.sh — how close a restore can get to pg_restore's
# time on this machine. Times, in the same run, three runs each:
#   pg_restore -j 2 from a directory dump,
#   arca restore --create --jobs 2 (decompression, CRC and MD5 checks included),
#   the load limit: the table's COPY text loaded by two parallel `\copy ... FROM`
#   into a bare table, then its primary key built — PostgreSQL alone, no tool.
# Needs a running server in PGHOST/PGPORT/PGUSER (e.g. from
# `scripts/pg-cluster.sh env`) and builds arca in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
swift build -c release --product arca > /dev/null
ARCA="$(swift build -c release --show-bin-path)/arca"
WORK=$(pwd -P)/.build-bench/restore-limit
rm -rf "$WORK" && mkdir -p "$WORK"
python3 -c "import sys; sys.path.insert(0, 'Benchmarks'); import compare; compare.make_wide('rl_src', $ROWS)"
psql -qX rl_src -c "\copy medical_record to '$WORK/rows.copy'"
split -n l/2 -d "$WORK/rows.copy" "$WORK/part."
pg_dump -Fd -j 2 -f "$WORK/dump.dir" rl_src
"$ARCA" backup --database-url dbname=rl_src --repo "$WORK/repo" --jobs 2 > /dev/null
seconds() { local start=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $start" | bc; }
arca_restore() {
  "$ARCA" restore "$(ls "$WORK"/repo/local/*.arca)" --repo "$WORK/repo" --target-url dbname=rl_arca --create --confirm --jobs 2 > /dev/null 2>&1
}
load_limit() {
  psql -qX rl_lim -c "\copy medical_record from '$WORK/part.00'" & psql -qX rl_lim -c "\copy medical_record from '$WORK/part.01'" & wait
  psql -qX rl_lim -c "ALTER TABLE medical_record ADD PRIMARY KEY (id)"
}
for run in 1 2 3; do
  dropdb --if-exists --force rl_pg && createdb rl_pg
  echo "run $run: pg_restore -j 2: $(seconds pg_restore -j 2 -d rl_pg "$WORK/dump.dir") s"
  dropdb --if-exists --force rl_arca
  echo "run $run: arca restore --create --jobs 2: $(seconds arca_restore) s"
  dropdb --if-exists --force rl_lim && createdb rl_lim
  psql -qX rl_lim -c "CREATE TABLE medical_record (id bigint, patient_id integer NOT NULL, recorded_at timestamptz NOT NULL,
    note text NOT NULL, data jsonb NOT NULL, scan bytea)"
  echo "run $run: load limit (2 x COPY FROM + primary key): $(seconds load_limit) s"
done
for database in rl_src rl_pg rl_arca rl_lim; do dropdb --if-exists --force "$database"; done
rm -rf "$WORK"
