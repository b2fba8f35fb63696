#!/usr/bin/env bash
# Benchmarks/binary-limits.sh — the bounds under issue 23's two targets on
# the wide table (Benchmarks/compare.py's bench_wide, 2,000,000 rows of
# text, jsonb and bytea), measured in one run on a throwaway PostgreSQL 15
# (port 54393), a release build of arca, medians of N runs:
#
#   backup   the two-stream text `COPY | zstd -1` limit (the target is
#            0.85 × it); the same in COPY's binary format; binary COPY to
#            /dev/null (the server's part); MD5 + SHA-256 of the binary
#            stream by openssl (the digests the format requires); and
#            `arca backup --jobs 2` (auto: binary). The bound of a backup
#            that keeps both digests on C cores is (binary | zstd CPU +
#            digests CPU) / C.
#   restore  `pg_restore -j 2` (the target is 0.55 × it); the load limits:
#            the schema, the rows loaded by two parallel COPY FROM files
#            (text, and binary), the keys by `pg_restore -j 2
#            --section=post-data`; and `arca restore --create --jobs 2`.
#   load     half the rows loaded by one COPY FROM file into a fresh table
#            without keys, text and binary: the formats alone.
#
# "cpu" is the machine's busy CPU-seconds (every process) during the step.
#
#   Benchmarks/binary-limits.sh          3 runs
#   Benchmarks/binary-limits.sh 1        one run
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
ROWS=${ARCA_BENCH_WIDE_ROWS:-2000000}
source Benchmarks/cluster.sh limits 54393
chmod 0777 "$WORK"   # the server's COPY … TO files are written by psql, but keep it simple for both

DB=bench_wide
python3 -c "import sys; sys.path.insert(0, 'Benchmarks'); import compare; compare.make_wide('$DB', $ROWS)"
HALF=$(psql -XAtc "SELECT relpages / 2 FROM pg_class WHERE relname = 'medical_record'" $DB)
LOW="SELECT * FROM medical_record WHERE ctid < '($HALF,0)'::tid"
HIGH="SELECT * FROM medical_record WHERE ctid >= '($HALF,0)'::tid"
pg_dump -Fd -j 2 -f "$WORK/dump" $DB
for part in LOW HIGH; do
  psql -XAtc "\\copy (${!part}) TO '$WORK/$part.txt'" $DB
  psql -XAtc "\\copy (${!part}) TO '$WORK/$part.bin' (FORMAT binary)" $DB
done
"$ARCA" backup --database-url "dbname=$DB" --repo "$WORK/archive" --jobs 2 --json >"$WORK/backup.json"
ID=$(python3 -c "import json; print(json.load(open('$WORK/backup.json'))['backupId'])")

busy() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
declare -A WALL CPU
measure() {  # name, shell command; untimed CHECKPOINT and sync first, so no step pays for the last one's writes
  psql -Xq -d postgres -c CHECKPOINT
  sync
  local start cpu
  start=$(date +%s.%N); cpu=$(busy)
  bash -c "$2" >/dev/null 2>&1
  WALL[$1]+="$(python3 -c "print(round($(date +%s.%N) - $start, 2))") "
  CPU[$1]+="$(python3 -c "print(round(($(busy) - $cpu) / 100, 2))") "
}
stream() { echo "psql -XAtc \"COPY ($1) TO STDOUT$2\" $DB"; }
load() {  # database, file suffix, COPY options
  echo "createdb $1 && pg_restore --section=pre-data -d $1 $WORK/dump \
    && (psql -Xq -d $1 -c \"\\\\copy medical_record FROM '$WORK/LOW.$2'$3\" & psql -Xq -d $1 -c \"\\\\copy medical_record FROM '$WORK/HIGH.$2'$3\"; wait) \
    && pg_restore -j 2 --section=post-data -d $1 $WORK/dump"
}
for run in $(seq "$RUNS"); do
  echo "run $run of $RUNS" >&2
  measure "backup: text COPY | zstd -1, 2 streams" "$(stream "$LOW" "") | zstd -1 -q >/dev/null & $(stream "$HIGH" "") | zstd -1 -q >/dev/null; wait"
  measure "backup: binary COPY | zstd -1, 2 streams" "$(stream "$LOW" " (FORMAT binary)") | zstd -1 -q >/dev/null & $(stream "$HIGH" " (FORMAT binary)") | zstd -1 -q >/dev/null; wait"
  measure "backup: binary COPY to /dev/null, 2 streams" "$(stream "$LOW" " (FORMAT binary)") >/dev/null & $(stream "$HIGH" " (FORMAT binary)") >/dev/null; wait"
  measure "backup: MD5 + SHA-256 of the binary stream" "openssl dgst -md5 $WORK/LOW.bin $WORK/HIGH.bin && openssl dgst -sha256 $WORK/LOW.bin $WORK/HIGH.bin"
  measure "backup: arca backup --jobs 2 (auto)" "rm -rf $WORK/timed && $ARCA backup --database-url dbname=$DB --repo $WORK/timed --jobs 2"
  restores=(
    "restore: pg_restore -j 2|createdb r_pg && pg_restore -j 2 -d r_pg $WORK/dump"
    "restore: text load limit|$(load r_text txt "")"
    "restore: binary load limit|$(load r_binary bin " (FORMAT binary)")"
    "restore: arca restore --create --jobs 2 (auto archive)|$ARCA restore $ID --repo $WORK/archive --target-url dbname=r_arca --create --jobs 2 --confirm"
  )
  for target in r_pg r_text r_binary r_arca; do dropdb --if-exists --force $target >/dev/null 2>&1; done
  # A different order each run: a step may still be slowed by the one before.
  for step in $(seq 0 3); do
    entry=${restores[$(( (step + run) % 4 ))]}
    measure "${entry%%|*}" "${entry#*|}"
  done
  for format in txt bin; do
    options=""; [[ $format == bin ]] && options=" (FORMAT binary)"
    psql -Xq -d $DB -c "DROP TABLE IF EXISTS one_stream" -c "CREATE TABLE one_stream (LIKE medical_record)"
    measure "load: half the rows, one stream, $format" "psql -Xq -d $DB -c \"\\\\copy one_stream FROM '$WORK/LOW.$format'$options\""
  done
  # Not a table of the database the next run backs up.
  psql -Xq -d $DB -c "DROP TABLE one_stream"
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
echo "| step | median s | runs (s) | median CPU-s |"
echo "|---|---:|---|---:|"
for name in "backup: text COPY | zstd -1, 2 streams" "backup: binary COPY | zstd -1, 2 streams" "backup: binary COPY to /dev/null, 2 streams" \
            "backup: MD5 + SHA-256 of the binary stream" "backup: arca backup --jobs 2 (auto)" \
            "restore: pg_restore -j 2" "restore: text load limit" "restore: binary load limit" "restore: arca restore --create --jobs 2 (auto archive)" \
            "load: half the rows, one stream, txt" "load: half the rows, one stream, bin"; do
  echo "| ${name//|/\\|} | $(echo "${WALL[$name]}" | median) | ${WALL[$name]% } | $(echo "${CPU[$name]}" | median) |"
done
