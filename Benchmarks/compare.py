#!/usr/bin/env python3
"""Arca against pg_dump/pg_restore and against the raw COPY limit.

Run through Benchmarks/compare.sh, which installs packages, starts a throwaway
PostgreSQL and builds arca. This script creates the databases, times every
tool in the same run, alternating the order between runs, and reports medians.

Databases:
  pgbench   `pgbench -i -s SCALE`: narrow rows, most of the data in one table.
  wide      one `medical_record` table of text, jsonb and bytea: text-heavy.

Tools, per database:
  arca backup --jobs J         one archive, MD5 + SHA-256 per table, zstd at --level (1, Arca's default),
                               --copy-format auto (the default: binary COPY where it is exact)
  ... , encrypted              the same with ARCA_ENCRYPTION_KEY (AES-256-GCM per chunk)
  ... --copy-format text       every table as COPY text (Arca before format 6)
  pg_dump -Fc                  pg_dump's default archive (zlib)
  pg_dump -Fd -j J             directory format, J jobs
  pg_dump | zstd -L -T J       plain SQL through a parallel zstd at the same level
  COPY limit (J streams)       raw COPY TO STDOUT to /dev/null, J at once
  COPY | zstd -L limit         the same, each stream through zstd at the same level
  ... binary                   the same in COPY's binary format
  arca restore --create        (of the auto and of the text archive) and pg_restore -j J from the -Fd dump
  load limit                   the raw COPY text loaded by J parallel COPY FROM,
                               then indexes and constraints by pg_restore -j J

With --load-scale N (the 10 GB load test: N = 700), also: a pgbench database
of that scale backed up and restored, the restore proven equal to the source
(`arca compare`, and ../shared/tools/compare.sh when present), wall time and
peak RSS, and the backup's peak RSS at scale 50 beside it.

With --cloud-gb N (or N,M,...: one run per size), also: an N GB table of random bytes backed up with upload
to a moto_server bucket on loopback, streamed with --upload-only, verified and
restored from the bucket: wall time and peak RSS of each.
"""

import argparse
import collections
import concurrent.futures
import datetime
import json
import shlex
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time



def log(message):
    print(message, file=sys.stderr, flush=True)


def sh(command, **kwargs):
    """Runs a shell command (pipefail), raising on failure."""
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, **kwargs)


def psql(database, sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
        check=True, capture_output=True, text=True)
    return out.stdout.strip()


def busy_cpu_seconds():
    """CPU time the whole machine has spent busy (every process: the tool, the
    PostgreSQL backends serving it, anything else), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait and steal.
    busy = sum(fields[:8]) - fields[3] - fields[4] - fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def timed(command):
    """(seconds, peak RSS in KiB of the largest process, busy CPU seconds of
    the machine) of a shell command."""
    with tempfile.NamedTemporaryFile("r") as report:
        start, cpu = time.monotonic(), busy_cpu_seconds()
        sh(f"/usr/bin/time -f '%M' -o {report.name} bash -o pipefail -c {shlex.quote(command)}",
           stdout=subprocess.DEVNULL)
        seconds, cpu = time.monotonic() - start, busy_cpu_seconds() - cpu
        lines = [line for line in report.read().split() if line.strip().isdigit()]
        return seconds, int(lines[-1]) if lines else 0, cpu


def timed_parallel(commands, jobs):
    """Like `timed` (no RSS) for shell commands run `jobs` at a time."""
    start, cpu = time.monotonic(), busy_cpu_seconds()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(sh, c, stdout=subprocess.DEVNULL) for c in commands]:
            future.result()
    return time.monotonic() - start, 0, busy_cpu_seconds() - cpu


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return os.path.getsize(path) if os.path.exists(path) else 0


def recreate(database):
    sh(f"dropdb --if-exists --force {database} && createdb {database}", stderr=subprocess.DEVNULL)


def make_pgbench(database, scale):
    log(f"creating {database}: pgbench -i -s {scale}")
    recreate(database)
    sh(f"pgbench -i -q -s {scale} {database}", stderr=subprocess.DEVNULL)
    psql(database, "VACUUM ANALYZE")


def make_wide(database, rows):
    log(f"creating {database}: {rows} rows of text, jsonb and bytea")
    recreate(database)
    psql(database, """
        CREATE TABLE medical_record (
            id bigint PRIMARY KEY, patient_id integer NOT NULL, recorded_at timestamptz NOT NULL,
            note text NOT NULL, data jsonb NOT NULL, scan bytea)""")
    batch = 500_000
    for first in range(1, rows + 1, batch):
        last = min(rows, first + batch - 1)
        psql(database, f"""
            INSERT INTO medical_record
            SELECT g, g % 50000, '2024-01-01'::timestamptz + g * interval '1 minute',
                   'Patient reports ' || (ARRAY['mild','moderate','severe'])[1 + g % 3] || ' symptoms; '
                     || repeat(md5(g::text) || ' ', 4) || 'follow-up in ' || (g % 30) || ' days.',
                   jsonb_build_object('visit', g, 'codes', jsonb_build_array('J' || (g % 99), 'K' || (g % 57)),
                                      'vitals', jsonb_build_object('bp', 110 + g % 40, 'hr', 60 + g % 30),
                                      'ref', md5((g * 7)::text)),
                   decode(md5((g * 13)::text) || md5((g * 17)::text), 'hex')
              FROM generate_series({first}, {last}) g""")
    psql(database, "VACUUM ANALYZE")


def copy_statements(database, jobs, binary=False):
    """(table, COPY … TO STDOUT) pairs covering every table, largest first;
    the largest split into `jobs` ctid ranges; in COPY's binary format with `binary`."""
    options = " (FORMAT binary)" if binary else ""
    rows = psql(database, """
        SELECT format('%I.%I', n.nspname, c.relname), c.relpages
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         ORDER BY c.relpages DESC""").splitlines()
    statements = []
    for index, row in enumerate(rows):
        name, pages = row.rsplit("|", 1)
        pages = int(pages)
        if index == 0 and jobs > 1 and pages >= jobs:
            bounds = [pages * i // jobs for i in range(jobs)] + [None]
            for a, b in zip(bounds, bounds[1:]):
                where = f"ctid >= '({a},0)'" + (f" AND ctid < '({b},0)'" if b is not None else "")
                statements.append((name, f"COPY (SELECT * FROM ONLY {name} WHERE {where}) TO STDOUT{options}"))
        else:
            statements.append((name, f"COPY {name} TO STDOUT{options}"))
    return statements


def copy_out_commands(database, jobs, binary=False):
    return [f"psql -X -q -d {database} -c {shlex.quote(sql)}" for _, sql in copy_statements(database, jobs, binary)]


Run = collections.namedtuple("Run", "seconds rss size cpu")


def benchmark(args, database):
    work = os.path.join(args.work, database)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # A repository per kind of archive, so each restore reads the kind it names
    # (unencrypted: a configured key makes arca refuse an unencrypted archive).
    repos = {"auto": os.path.join(work, "repo"), "text": os.path.join(work, "repo-text"), "encrypted": os.path.join(work, "repo-encrypted")}
    dump_dir = os.path.join(work, "dump.dir")
    j, level = args.jobs, args.level
    results = {}
    arca_raw = 0
    # One key for the run's encrypted backups.
    key = subprocess.run([args.arca, "keygen"], check=True, capture_output=True, text=True).stdout.strip()
    keyed = f"ARCA_ENCRYPTION_KEY={key}"

    def run(command, size_path=None):
        seconds, rss, cpu = timed(command)
        return Run(seconds, rss, size_of(size_path) if size_path else 0, cpu)

    def arca_backup(jobs, encrypted=False, copy_format="auto"):
        nonlocal arca_raw
        repo = repos["encrypted" if encrypted else copy_format]
        shutil.rmtree(repo, ignore_errors=True)
        out = os.path.join(work, "arca.json")
        result = run(f"{keyed if encrypted else ''} {args.arca} backup --database-url dbname={database} --repo {repo} --jobs {jobs} "
                     f"--level {level} --copy-format {copy_format} --json > {out}")
        report = json.load(open(out))
        if copy_format == "text":
            arca_raw = report["rawBytes"]  # the table headings count COPY text
        return result._replace(size=report["bytes"])

    def pg_dump_fd():
        shutil.rmtree(dump_dir, ignore_errors=True)
        return run(f"pg_dump -Fd -j {j} -f {dump_dir} {database}", dump_dir)

    def parallel(commands):
        seconds, rss, cpu = timed_parallel(commands, j)
        return Run(seconds, rss, 0, cpu)

    def arca_restore(jobs, copy_format="auto"):
        target = f"{database}_arca_restored"
        sh(f"dropdb --if-exists --force {target}", stderr=subprocess.DEVNULL)
        repo = repos[copy_format]
        archive = next(os.path.join(repo, "local", f) for f in os.listdir(os.path.join(repo, "local")) if f.endswith(".arca"))
        return run(f"{args.arca} restore {archive} --repo {repo} --target-url dbname={target} --create --confirm --jobs {jobs} 2>/dev/null")

    def pg_restore_j():
        # Timed from nothing, as Arca's --create is: the database is made too.
        target = f"{database}_pg_restored"
        sh(f"dropdb --if-exists --force {target}", stderr=subprocess.DEVNULL)
        return run(f"createdb {target} && pg_restore -j {j} -d {target} {dump_dir}")

    # The load limit: what PostgreSQL alone needs to take the rows back. The
    # schema as pg_restore creates it, then every table's raw COPY text (the
    # biggest in `jobs` parts, as Arca splits it) loaded by `jobs` parallel
    # `\copy … FROM` from files in the page cache, then the indexes and
    # constraints by `pg_restore -j`: no decompression, no checks, no tool
    # between the files and the server.
    copy_files = []

    def copy_text():
        """[(table, file of its COPY text)], written once, untimed."""
        if not copy_files:
            for index, (name, sql) in enumerate(copy_statements(database, j)):
                path = os.path.join(work, f"rows.{index}.copy")
                sh(f"psql -X -q -d {database} -c {shlex.quote(sql)} > {path}")
                copy_files.append((name, path))
        return copy_files

    def digests():
        # The work Arca does beyond `COPY | zstd`: both digests of every
        # byte, here by OpenSSL (which Arca uses) on one core.
        files = " ".join(path for _, path in copy_text())
        return run(f"openssl dgst -md5 {files} > /dev/null && openssl dgst -sha256 {files} > /dev/null")

    def load_limit():
        copy_text()
        target = f"{database}_load_limit"
        sh(f"dropdb --if-exists --force {target}", stderr=subprocess.DEVNULL)
        start, cpu = time.monotonic(), busy_cpu_seconds()
        sh(f"createdb {target} && pg_restore --section=pre-data -d {target} {dump_dir}")
        timed_parallel([f"psql -X -q -d {target} -c " + shlex.quote(f"\\copy {name} FROM '{path}'") for name, path in copy_files], j)
        sh(f"pg_restore -j {j} --section=post-data -d {target} {dump_dir}")
        return Run(time.monotonic() - start, 0, 0, busy_cpu_seconds() - cpu)

    backups = [
        ("arca backup --jobs 1", lambda: arca_backup(1)),
        (f"arca backup --jobs {j}", lambda: arca_backup(j)),
        (f"arca backup --jobs {j}, encrypted", lambda: arca_backup(j, encrypted=True)),
        (f"arca backup --jobs {j} --copy-format text", lambda: arca_backup(j, copy_format="text")),
        ("pg_dump -Fc", lambda: run(f"pg_dump -Fc -f {work}/dump.fc {database}", f"{work}/dump.fc")),
        (f"pg_dump -Fd -j {j}", pg_dump_fd),
        (f"pg_dump | zstd -{level} -T{j}", lambda: run(f"pg_dump {database} | zstd -{level} -T{j} -q -f -o {work}/dump.sql.zst", f"{work}/dump.sql.zst")),
        (f"COPY limit: {j} streams to /dev/null", lambda: parallel([c + " > /dev/null" for c in copy_out_commands(database, j)])),
        (f"COPY | zstd -{level} limit: {j} streams", lambda: parallel([c + f" | zstd -{level} -q -c > /dev/null" for c in copy_out_commands(database, j)])),
        (f"COPY binary | zstd -{level} limit: {j} streams",
         lambda: parallel([c + f" | zstd -{level} -q -c > /dev/null" for c in copy_out_commands(database, j, binary=True)])),
        ("MD5 + SHA-256 of the COPY text (openssl, one core)", digests),
    ]
    restores = [
        (f"arca restore --create --jobs {j}", lambda: arca_restore(j)),
        (f"arca restore --create --jobs {j}, text archive", lambda: arca_restore(j, copy_format="text")),
        ("arca restore --create (one transaction)", lambda: arca_restore(1)),
        (f"pg_restore -j {j} (from -Fd)", pg_restore_j),
        (f"load limit: {j} × COPY FROM, then pg_restore -j {j} post-data", load_limit),
    ]
    for number in range(args.runs):
        # Rotate the order so no tool always runs first (cold) or last.
        order = backups[number % len(backups):] + backups[:number % len(backups)]
        for name, function in order + (restores if number % 2 == 0 else restores[::-1]):
            log(f"  {database} run {number + 1}/{args.runs}: {name}")
            # Untimed: no command pays for the checkpoint the WAL of the one
            # before it would trigger (a 3-4 s lottery on restores otherwise),
            # nor for the kernel still writing its files back.
            psql("postgres", "CHECKPOINT")
            os.sync()
            results.setdefault(name, []).append(function())
    for suffix in ["_arca_restored", "_pg_restored", "_load_limit"]:
        sh(f"dropdb --if-exists --force {database}{suffix}", stderr=subprocess.DEVNULL)
    return results, arca_raw


def median(runs, field="seconds"):
    return statistics.median(getattr(r, field) for r in runs)


def table(database, results, raw_bytes, reference):
    ref = median(results[reference])
    lines = [
        f"**{database}** — {raw_bytes / 1e6:,.1f} MB of COPY text",
        "",
        "| what | median s | runs (s) | MB/s of COPY text | × pg_dump -Fc | output size | peak RSS | cores busy |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        seconds = median(runs)
        rss = max(r.rss for r in runs)
        size = runs[-1].size
        busy = statistics.median(r.cpu / r.seconds for r in runs)
        lines.append(
            f"| {name.replace('|', chr(92) + '|')} | {seconds:.2f} | {' '.join(f'{r.seconds:.2f}' for r in runs)} | {raw_bytes / 1e6 / seconds:,.0f} | "
            f"{seconds / ref:.2f} | {f'{size / 1e6:,.1f} MB' if size else '–'} | {f'{rss / 1024:.0f} MiB' if rss else '–'} | {busy:.2f} |")
    plain = [name for name in results if name.startswith("arca backup --jobs") and not name.endswith(("encrypted", "text"))]
    encrypted = [name for name in results if name.endswith(", encrypted")]
    if plain and encrypted:
        ratio = median(results[encrypted[0]]) / median(results[plain[-1]])
        lines += ["", f"Encrypted / unencrypted backup wall time (same run, medians): {ratio:.2f} ({(ratio - 1) * 100:+.0f} %)."]
    return "\n".join(lines)


def targets(args, results, rss_by_scale):
    """Issue 4's targets against the figures of this run, each with the
    machine's own bound measured in the same run."""
    j, level = args.jobs, args.level
    wide = results.get("bench_wide") or next(iter(results.values()))
    m = {name: median(runs) for name, runs in wide.items()}
    size = {name: runs[-1].size for name, runs in wide.items()}
    arca, one = m[f"arca backup --jobs {j}"], m["arca backup --jobs 1"]
    fc, zstd_limit = m["pg_dump -Fc"], m[f"COPY | zstd -{level} limit: {j} streams"]
    cores = os.cpu_count() or 1
    # Arca's backup does at least the limit's work plus the two digests; on
    # `cores` cores that cannot take less than their CPU seconds / cores.
    work = median(wide[f"COPY | zstd -{level} limit: {j} streams"], "cpu") + median(wide["MD5 + SHA-256 of the COPY text (openssl, one core)"], "cpu")
    restore, pg_restore, load = (m[f"arca restore --create --jobs {j}"], m[f"pg_restore -j {j} (from -Fd)"],
                                 m[f"load limit: {j} × COPY FROM, then pg_restore -j {j} post-data"])
    # If --jobs 2 did no more work than --jobs 1, it could at best spread the
    # CPU seconds --jobs 1 used over every core.
    cpu_one = median(wide["arca backup --jobs 1"], "cpu")
    speedup_bound = one / (cpu_one / cores)
    rss = max(r.rss for runs in results.values() for name, rs in runs.items() if name.startswith("arca backup") for r in rs) / 1024
    lines = [
        "| target | measured (medians, this run) | this machine's bound, same run |",
        "|---|---|---|",
        f"| backup ≤ 0.25 × `pg_dump -Fc` (text-heavy) | {arca / fc:.2f} × ({arca:.2f} s vs {fc:.2f} s) "
        f"| the two-stream `COPY \\| zstd -{level}` limit is {zstd_limit / fc:.2f} × |",
        f"| backup ≤ 1.1 × the two-stream `COPY \\| zstd -{level}` limit | {arca / zstd_limit:.2f} × "
        f"| that limit's CPU plus the two digests' is {work:.2f} CPU-s, about {work / cores:.2f} s on {cores} busy cores; Arca is {arca / (work / cores):.2f} × that |",
        f"| archive ≤ `pg_dump -Fc`'s | {size[f'arca backup --jobs {j}'] / 1e6:,.1f} MB vs {size['pg_dump -Fc'] / 1e6:,.1f} MB | – |",
        f"| restore ≤ 0.7 × `pg_restore -j {j}` | {restore / pg_restore:.2f} × ({restore:.2f} s vs {pg_restore:.2f} s) "
        f"| the load limit is {load / pg_restore:.2f} ×; Arca is {restore / load:.2f} × the limit |",
        f"| one big table: `--jobs {j}` ≥ 1.6 × `--jobs 1` | {one / arca:.2f} × ({one:.2f} s vs {arca:.2f} s) "
        f"| `--jobs 1` already kept {cpu_one / one:.2f} of {os.cpu_count()} cores busy: at most {speedup_bound:.2f} × |",
        f"| peak RSS ≤ 64 MiB at default settings, flat with size | {rss:.0f} MiB at most"
        + (f"; {', '.join(f'{v:.1f} MiB at scale {k}' for k, v in rss_by_scale.items())}" if rss_by_scale else "") + " | – |",
    ]
    return "\n".join(lines)


def copy_format_targets(args, results):
    """Issue 23's targets: binary COPY where it is exact (`--copy-format
    auto`, the default) against text, the COPY limits and pg_restore, all
    from this run."""
    j, level = args.jobs, args.level
    lines = ["| database | what | measured (medians, this run) | target |", "|---|---|---|---|"]
    for database, runs in results.items():
        m = {name: median(r) for name, r in runs.items()}
        size = {name: r[-1].size for name, r in runs.items()}
        auto, text = m[f"arca backup --jobs {j}"], m[f"arca backup --jobs {j} --copy-format text"]
        text_limit, binary_limit = m[f"COPY | zstd -{level} limit: {j} streams"], m[f"COPY binary | zstd -{level} limit: {j} streams"]
        restore, restore_text = m[f"arca restore --create --jobs {j}"], m[f"arca restore --create --jobs {j}, text archive"]
        pg_restore = m[f"pg_restore -j {j} (from -Fd)"]
        wide = database == "bench_wide"
        lines += [
            f"| {database} | backup (auto) / two-stream text `COPY \\| zstd -{level}` limit | {auto / text_limit:.2f} × ({auto:.2f} s vs {text_limit:.2f} s); "
            f"the binary limit is {binary_limit / text_limit:.2f} × | {'≤ 0.85 ×' if wide else '–'} |",
            f"| {database} | backup auto / text | {auto / text:.2f} × ({auto:.2f} s vs {text:.2f} s) | {'–' if wide else 'no regression (≤ 1 × within noise)'} |",
            f"| {database} | restore `--jobs {j}` (auto archive) / `pg_restore -j {j}` | {restore / pg_restore:.2f} × ({restore:.2f} s vs {pg_restore:.2f} s); "
            f"of the text archive {restore_text / pg_restore:.2f} × | {'≤ 0.55 ×' if wide else '–'} |",
            f"| {database} | restore auto / text archive | {restore / restore_text:.2f} × | {'–' if wide else 'no regression'} |",
            f"| {database} | archive auto / text | {size[f'arca backup --jobs {j}'] / 1e6:,.1f} MB vs {size[f'arca backup --jobs {j} --copy-format text'] / 1e6:,.1f} MB "
            f"({size[f'arca backup --jobs {j}'] / size[f'arca backup --jobs {j} --copy-format text']:.2f} ×) | – |",
        ]
    rss = max(r.rss for runs in results.values() for name, rs in runs.items() if name.startswith("arca ") for r in rs) / 1024
    lines.append(f"| all | peak RSS of every arca backup and restore above | {rss:.0f} MiB | ≤ 64 MiB |")
    return "\n".join(lines)


def memory_flatness(args, scales):
    """(a table, {scale: peak RSS in MiB}) of the same backup at several sizes."""
    lines = ["| pgbench scale | COPY text | arca backup peak RSS |", "|---:|---:|---:|"]
    peaks = {}
    for scale in scales:
        database = f"bench_rss_{scale}"
        make_pgbench(database, scale)
        repo = os.path.join(args.work, f"rss-{scale}")
        shutil.rmtree(repo, ignore_errors=True)
        out = os.path.join(args.work, f"rss-{scale}.json")
        # A low split threshold keeps every worker busy at both sizes, so the
        # comparison shows growth with size, not how many workers had work.
        _, rss, _ = timed(f"{args.arca} backup --database-url dbname={database} --repo {repo} --jobs {args.jobs} "
                          f"--split-threshold-mib 16 --json > {out}")
        peaks[scale] = rss / 1024
        raw = json.load(open(out))["rawBytes"]
        lines.append(f"| {scale} | {raw / 1e6:,.0f} MB | {rss / 1024:.1f} MiB |")
        sh(f"dropdb --if-exists --force {database}")
        shutil.rmtree(repo, ignore_errors=True)
    return "\n".join(lines), peaks


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_test(args, scale, reference_scale=50):
    database, target = f"bench_load_{scale}", f"bench_load_{scale}_restored"
    log(f"pgbench -i -s {scale} (this takes a while)")
    started = time.monotonic()
    make_pgbench(database, scale)
    created = time.monotonic() - started
    log(f"  created in {created:.0f} s")
    repo = os.path.join(args.work, "load")
    shutil.rmtree(repo, ignore_errors=True)
    out = os.path.join(args.work, "load.json")
    rows = []

    def step(what, command, measure_rss=True):
        seconds, rss, _ = timed(command)
        rows.append((what, seconds, rss if measure_rss else 0))
        log(f"  load: {what}: {seconds:.1f} s, peak RSS {rss / 1024:.0f} MiB")  # partial results survive an interrupted run

    # The same settings as the reference run below, so the RSS compares like for like.
    step(f"arca backup --jobs {args.jobs} --split-threshold-mib 16",
         f"{args.arca} backup --database-url dbname={database} --repo {repo} --jobs {args.jobs} --split-threshold-mib 16 --json > {out}")
    report = json.load(open(out))
    log(f"  load: {report['rawBytes'] / 1e9:.2f} GB of COPY text, {report['rows']} rows, archive {report['bytes'] / 1e9:.2f} GB")
    step("arca verify", f"{args.arca} verify {report['backupId']} --repo {repo} > /dev/null")
    sh(f"dropdb --if-exists --force {target}")
    step(f"arca restore --create --jobs {args.jobs}",
         f"{args.arca} restore {report['backupId']} --repo {repo} --target-url dbname={target} --create --confirm --jobs {args.jobs} 2> /dev/null")
    step("arca compare (source vs restored): equal", f"{args.arca} compare dbname={database} dbname={target} > /dev/null", measure_rss=False)
    shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools", "compare.sh")
    if os.path.exists(shared):
        step("shared/tools/compare.sh (fingerprints): equal", f"{shared} {database} {target} > /dev/null", measure_rss=False)
    shutil.rmtree(repo, ignore_errors=True)
    sh(f"dropdb --if-exists --force {target}")
    sh(f"dropdb --if-exists --force {database}")
    reference, _ = memory_flatness(args, [reference_scale])
    log(reference)
    lines = [f"**pgbench scale {scale}** — {report['rawBytes'] / 1e9:,.2f} GB of COPY text, {report['rows']:,} rows, "
             f"archive {report['bytes'] / 1e9:,.2f} GB (created in {created / 60:.0f} min)",
             "", "| what | s | MB/s of COPY text | peak RSS |", "|---|---:|---:|---:|"]
    for what, seconds, rss in rows:
        lines.append(f"| {what} | {seconds:.1f} | {report['rawBytes'] / 1e6 / seconds:,.0f} | {f'{rss / 1024:.0f} MiB' if rss else '–'} |")
    lines += ["", f"The same backup's peak RSS at scale {reference_scale} (`--split-threshold-mib 16`):", "", reference]
    return "\n".join(lines)


def cloud_memory(args, gigabytes):
    """Upload, streamed upload, verify and restore through a bucket: peak RSS
    must stay bounded whatever the archive's size."""
    database = "bench_cloud"
    recreate(database)
    rows = int(gigabytes * 1_000_000)
    log(f"creating {gigabytes} GB of random bytea in {database}")
    psql(database, "CREATE EXTENSION IF NOT EXISTS pgcrypto; CREATE TABLE scan (id int PRIMARY KEY, image bytea NOT NULL)")
    for start in range(0, rows, 250_000):
        psql(database, f"INSERT INTO scan SELECT g, gen_random_bytes(1000) FROM generate_series({start + 1}, {min(rows, start + 250_000)}) g")
    port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_S3_BUCKET": "bench"}
    prefix = " ".join(f"{k}={v}" for k, v in env.items())
    try:
        for _ in range(100):
            if subprocess.run(f"{prefix} aws s3 mb s3://bench", shell=True, capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        repo = os.path.join(args.work, "cloud")
        shutil.rmtree(repo, ignore_errors=True)
        out = os.path.join(args.work, "cloud.json")
        rows_out = []

        def run(what, command):
            log(f"  cloud: {what}")
            seconds, rss, _ = timed(f"{prefix} {command}")
            rows_out.append((what, seconds, rss))

        run(f"arca backup --jobs {args.jobs} (then upload)", f"{args.arca} backup --database-url dbname={database} --repo {repo} --jobs {args.jobs} --json > {out}")
        report = json.load(open(out))
        backup_id = report["backupId"]
        run(f"arca backup --jobs {args.jobs} --upload-only", f"{args.arca} backup --database-url dbname={database} --repo {repo} --jobs {args.jobs} --upload-only > /dev/null")
        run("arca verify --cloud", f"{args.arca} verify --cloud {backup_id} --repo {repo} > /dev/null")
        target = f"{database}_restored"
        sh(f"dropdb --if-exists --force {target}")
        run(f"arca restore --cloud --create --jobs {args.jobs}",
            f"{args.arca} restore --cloud {backup_id} --repo {repo} --target-url dbname={target} --create --confirm --jobs {args.jobs} 2> /dev/null")
        sh(f"dropdb --if-exists --force {target}")
        lines = [f"**{database}** — {report['rawBytes'] / 1e9:,.2f} GB of COPY text, archive {report['bytes'] / 1e9:,.2f} GB; moto_server on loopback",
                 "", "| what | s | MB/s of archive | peak RSS |", "|---|---:|---:|---:|"]
        for what, seconds, rss in rows_out:
            lines.append(f"| {what} | {seconds:.1f} | {report['bytes'] / 1e6 / seconds:,.0f} | {rss / 1024:.0f} MiB |")
        return "\n".join(lines)
    finally:
        moto.kill()
        sh(f"dropdb --if-exists --force {database}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arca", required=True, help="the arca binary")
    parser.add_argument("--work", required=True, help="scratch folder for dumps and archives")
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale (0 skips it)")
    parser.add_argument("--wide-rows", type=int, default=2_000_000, help="rows of the wide table (0 skips it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--level", type=int, default=1, help="zstd level of every compressed backup (default: Arca's default, 1)")
    parser.add_argument("--rss-scales", default="5,50", help="pgbench scales for the peak-RSS comparison ('' skips it)")
    parser.add_argument("--load-scale", type=int, default=0, help="pgbench scale of the load test (700 is about 10 GB; 0 skips it)")
    parser.add_argument("--cloud-gb", default="0", help="GB of random data for the cloud upload/restore run, or several, comma-separated (0.2,2); 0 skips it")
    parser.add_argument("--update-benchmarks-md", action="store_true", help="write the tables into BENCHMARKS.md")
    parser.add_argument("--block", default="", help="name of the marked block of BENCHMARKS.md to replace (default: the main one)")
    args = parser.parse_args()
    mark = f"compare.sh:{args.block}:" if args.block else "compare.sh:"
    mark_start, mark_end = f"<!-- {mark}start -->", f"<!-- {mark}end -->"
    os.makedirs(args.work, exist_ok=True)

    sections = []
    command = " ".join(["Benchmarks/compare.sh"] + sys.argv[sys.argv.index("--work") + 2:])
    machine = f"{os.cpu_count()} cores, {platform.machine()}, {platform.platform()}"
    version = psql("postgres", "SHOW server_version")
    sections.append(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine}; "
                    f"PostgreSQL {version}; `{command}`.")
    results_by_database = {}
    for database, enabled, make in [
        ("bench_pgbench", args.scale > 0, lambda d: make_pgbench(d, args.scale)),
        ("bench_wide", args.wide_rows > 0, lambda d: make_wide(d, args.wide_rows)),
    ]:
        if not enabled:
            continue
        make(database)
        results, raw = benchmark(args, database)
        results_by_database[database] = results
        sections.append(table(database, results, raw, "pg_dump -Fc"))
        sh(f"dropdb --if-exists --force {database}", stderr=subprocess.DEVNULL)
    scales = [int(s) for s in args.rss_scales.split(",") if s.strip()]
    peaks = {}
    if scales:
        flatness, peaks = memory_flatness(args, scales)
        sections.append(f"Peak RSS of `arca backup --jobs {args.jobs} --split-threshold-mib 16` by database size:\n\n{flatness}")
    if results_by_database:
        sections.append(f"Against the targets of issue 4 ({'bench_wide' if 'bench_wide' in results_by_database else 'bench_pgbench'}; "
                        f"RSS over every backup above):\n\n{targets(args, results_by_database, peaks)}")
    if results_by_database:
        sections.append(f"Against the targets of issue 23 (binary COPY where it is exact):\n\n{copy_format_targets(args, results_by_database)}")
    if args.load_scale > 0:
        sections.append(load_test(args, args.load_scale))
    for gigabytes in [float(g) for g in args.cloud_gb.split(",") if g.strip()]:
        if gigabytes > 0:
            sections.append(cloud_memory(args, gigabytes))
    shutil.rmtree(args.work, ignore_errors=True)

    report = "\n\n".join(sections)
    print(report)
    if args.update_benchmarks_md:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "BENCHMARKS.md")
        text = open(path).read()
        block = f"{mark_start}\n{report}\n{mark_end}"
        if mark_start in text:
            text = text[:text.index(mark_start)] + block + text[text.index(mark_end) + len(mark_end):]
        else:
            text += "\n" + block + "\n"
        open(path, "w").write(text)
        log(f"updated {path}")


if __name__ == "__main__":
    main()
