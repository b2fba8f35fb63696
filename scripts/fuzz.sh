#!/bin/sh
# The long fuzzing run of the archive reader, outside CI (the test suite runs
# a fixed, seeded 1,500 cases of the same mutations: ArchiveFuzzTests).
#
#   scripts/fuzz.sh [libFuzzer options]      e.g. scripts/fuzz.sh -max_total_time=1800
#
# Builds ArcaFormat, the test suite's archive builder and structure-aware
# mutator (Tests/ArcaFormatTests/Support.swift, ArchiveMutator.swift) and
# Fuzz/ArchiveFuzzer.swift into one libFuzzer binary (swiftc
# -sanitize=fuzzer,address), then runs it with a corpus in .build/fuzz/corpus.
# Without options it runs for 10 minutes on all cores but one. A crash
# leaves its input as .build/fuzz/crash-<hash>: rerun the binary with that
# file as its argument to reproduce it. Leak detection is off: Swift keeps
# class references in enum payloads with tag bits set, which LeakSanitizer
# reports as leaks of objects that live as long as the process.
set -eu
cd "$(dirname "$0")/.."
out=.build/fuzz
mkdir -p "$out/corpus"
echo "building $out/archive-fuzzer" >&2
swiftc -sanitize=fuzzer,address -parse-as-library -Onone -g \
    -module-name ArcaFormat \
    -I Sources/CZstd -I Sources/COpenSSL \
    Sources/ArcaFormat/*.swift \
    Tests/ArcaFormatTests/Support.swift Tests/ArcaFormatTests/ArchiveMutator.swift \
    Fuzz/ArchiveFuzzer.swift \
    -o "$out/archive-fuzzer" 2>&1 | grep -v "is part of module 'ArcaFormat'; ignoring import" >&2 || true
test -x "$out/archive-fuzzer"
if [ "$#" -eq 0 ]; then
    jobs=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))
    set -- -max_total_time=600 -jobs="$jobs" -workers="$jobs" -print_final_stats=1
fi
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" exec "$out/archive-fuzzer" "$out/corpus" -artifact_prefix="$out/" -detect_leaks=0 -rss_limit_mb=2048 -max_len=4096 "$@"
