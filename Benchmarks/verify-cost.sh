#!/usr/bin/env bash
# Benchmarks/verify-cost.sh — what verifying each backup once it is
# published (ARCA_VERIFY_AFTER_BACKUP, `arca backup --verify`) costs, as a
# share of the backup's own time. On a throwaway PostgreSQL 15 (port 54391),
# a release build of arca, a pgbench database (scale 20 by default), it
# times `arca backup --jobs 2` and then `arca verify` of that backup (the
# read-back: every chunk decompressed and checked, MD5 and SHA-256 of every
# stream and of the file), N runs, and prints each run and the medians.
# Removes its files and stops the server when done.
#
#   Benchmarks/verify-cost.sh            scale 20, 5 runs
#   Benchmarks/verify-cost.sh 1          one run
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SCALE=${ARCA_BENCH_SCALE:-20}
source Benchmarks/cluster.sh verify 54391
psql -q -d postgres -c "DROP DATABASE IF EXISTS verify_bench" -c "CREATE DATABASE verify_bench"
pgbench -q -i -s "$SCALE" verify_bench
psql -q -d verify_bench -c "VACUUM ANALYZE"
URL="host=$PGHOST port=$PGPORT user=$PGUSER dbname=verify_bench"

python3 - "$ARCA" "$WORK/repo" "$URL" "$RUNS" <<'PY'
import json, statistics, subprocess, sys, time
arca, repo, url, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rows = []
for run in range(1, runs + 1):
    start = time.monotonic()
    out = subprocess.run([arca, "backup", "--repo", repo, "--database-url", url, "--jobs", "2", "--json"],
                         check=True, capture_output=True, text=True).stdout
    backup_s = time.monotonic() - start
    result = json.loads(out)
    start = time.monotonic()
    subprocess.run([arca, "verify", result["backupId"], "--repo", repo, "--json"], check=True, capture_output=True, text=True)
    verify_s = time.monotonic() - start
    rows.append((run, result["rawBytes"], result["bytes"], backup_s, verify_s, verify_s / backup_s))
print("| run | COPY text MB | archive MB | backup s | verify s | verify / backup |")
print("|---:|---:|---:|---:|---:|---:|")
for run, raw, stored, b, v, share in rows:
    print(f"| {run} | {raw / 1e6:.1f} | {stored / 1e6:.1f} | {b:.2f} | {v:.2f} | {share:.2f} |")
print()
print(f"Medians: backup {statistics.median(r[3] for r in rows):.2f} s, verify {statistics.median(r[4] for r in rows):.2f} s, "
      f"verify / backup (median of the runs' ratios) {statistics.median(r[5] for r in rows):.2f}")
PY
