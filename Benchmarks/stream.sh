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
scripts/setup.sh
source Benchmarks/cluster.sh stream 54361
# The report also stays in .build/stream-bench.txt (and .json) after the clean-up.
python3 Benchmarks/stream.py --arca "$ARCA" --work "$WORK" "$@" | tee .build/stream-bench.txt
cp "$WORK/report.json" .build/stream-bench.json
