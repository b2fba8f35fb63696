#!/usr/bin/env python3
"""Arca against pg_dump/pg_restore and against the raw COPY limit.

Run through Benchmarks/compare.sh, which installs packages, starts a throwaway
PostgreSQL and builds arca. This script creates the databases, times every
tool in the same run, alternating the order between runs, and reports medians.

Databases:
  pgbench   `pgbench -i -s SCALE`: narrow rows, most of the data in one table.
  wide      one `medical_record` table of text, jsonb and bytea: text-heavy.

Tools, per database:
  arca backup --jobs J         one archive, MD5 + SHA-256 per table, zstd -3
  ... , encrypted              the same with ARCA_ENCRYPTION_KEY (AES-256-GCM per chunk)
  pg_dump -Fc                  pg_dump's default archive (zlib)
  pg_dump -Fd -j J             directory format, J jobs
  pg_dump | zstd -3 -T J       plain SQL through a parallel zstd
  COPY limit (J streams)       raw COPY TO STDOUT to /dev/null, J at once
  COPY | zstd limit            the same, each stream through zstd -3
  arca restore --create        and pg_restore -j J from the -Fd dump

With --load-scale N (the 10 GB load test: N = 700), also: a pgbench database
of that scale backed up and restored, the restore proven equal to the source
(`arca compare`, and ../shared/tools/compare.sh when present), wall time and
peak RSS, and the backup's peak RSS at scale 50 beside it.

With --cloud-gb N, also: an N GB table of random bytes backed up with upload
to a moto_server bucket on loopback, streamed with --upload-only, verified and
restored from the bucket: wall time and peak RSS of each.
"""

import argparse
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


def timed(command):
    """(seconds, peak RSS in KiB of the largest process) of a shell command."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.monotonic()
        sh(f"/usr/bin/time -f '%M' -o {report.name} bash -o pipefail -c {shlex.quote(command)}",
           stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - start
        lines = [line for line in report.read().split() if line.strip().isdigit()]
        return seconds, int(lines[-1]) if lines else 0


def timed_parallel(commands, jobs):
    """Wall time of running shell commands `jobs` at a time."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(sh, c, stdout=subprocess.DEVNULL) for c in commands]:
            future.result()
    return time.monotonic() - start, 0


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


def copy_statements(database, jobs):
    """COPY statements covering every table; the largest split into `jobs` ctid ranges."""
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
                statements.append(f"COPY (SELECT * FROM ONLY {name} WHERE {where}) TO STDOUT")
        else:
            statements.append(f"COPY {name} TO STDOUT")
    return [f"psql -X -q -d {database} -c {shlex.quote(s)}" for s in statements]


def benchmark(args, database):
    work = os.path.join(args.work, database)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    repo = os.path.join(work, "repo")
    j = args.jobs
    results = {}
    arca_raw = 0
    # One key for the run; restores always get it (an unencrypted archive ignores it).
    key = subprocess.run([args.arca, "keygen"], check=True, capture_output=True, text=True).stdout.strip()
    keyed = f"ARCA_ENCRYPTION_KEY={key}"

    def arca_backup(jobs, encrypted=False):
        nonlocal arca_raw
        shutil.rmtree(repo, ignore_errors=True)
        out = os.path.join(work, "arca.json")
        seconds, rss = timed(f"{keyed if encrypted else ''} {args.arca} backup --database-url dbname={database} --repo {repo} --jobs {jobs} --json > {out}")
        report = json.load(open(out))
        arca_raw = report["rawBytes"]
        return seconds, rss, report["bytes"]

    def pg_dump_fc():
        path = os.path.join(work, "dump.fc")
        seconds, rss = timed(f"pg_dump -Fc -f {path} {database}")
        return seconds, rss, size_of(path)

    def pg_dump_fd():
        path = os.path.join(work, "dump.dir")
        shutil.rmtree(path, ignore_errors=True)
        seconds, rss = timed(f"pg_dump -Fd -j {j} -f {path} {database}")
        return seconds, rss, size_of(path)

    def pg_dump_zstd():
        path = os.path.join(work, "dump.sql.zst")
        seconds, rss = timed(f"pg_dump {database} | zstd -3 -T{j} -q -f -o {path}")
        return seconds, rss, size_of(path)

    def copy_limit():
        seconds, _ = timed_parallel([c + " > /dev/null" for c in copy_statements(database, j)], j)
        return seconds, 0, 0

    def copy_zstd_limit():
        seconds, _ = timed_parallel([c + " | zstd -3 -q -c > /dev/null" for c in copy_statements(database, j)], j)
        return seconds, 0, 0

    def arca_restore(jobs):
        target = f"{database}_arca_restored"
        sh(f"dropdb --if-exists --force {target}", stderr=subprocess.DEVNULL)
        archive = next(os.path.join(repo, "local", f) for f in os.listdir(os.path.join(repo, "local")) if f.endswith(".arca"))
        seconds, rss = timed(
            f"{keyed} {args.arca} restore {archive} --repo {repo} --target-url dbname={target} --create --confirm --jobs {jobs} 2>/dev/null")
        return seconds, rss, 0

    def pg_restore_j():
        target = f"{database}_pg_restored"
        recreate(target)
        seconds, rss = timed(f"pg_restore -j {j} -d {target} {os.path.join(work, 'dump.dir')}")
        return seconds, rss, 0

    backups = [
        ("arca backup --jobs 1", lambda: arca_backup(1)),
        (f"arca backup --jobs {j}", lambda: arca_backup(j)),
        (f"arca backup --jobs {j}, encrypted", lambda: arca_backup(j, encrypted=True)),
        ("pg_dump -Fc", pg_dump_fc),
        (f"pg_dump -Fd -j {j}", pg_dump_fd),
        (f"pg_dump | zstd -3 -T{j}", pg_dump_zstd),
        (f"COPY limit: {j} streams to /dev/null", copy_limit),
        (f"COPY | zstd -3 limit: {j} streams", copy_zstd_limit),
    ]
    restores = [
        (f"arca restore --create --jobs {j}", lambda: arca_restore(j)),
        ("arca restore --create (one transaction)", lambda: arca_restore(1)),
        (f"pg_restore -j {j} (from -Fd)", pg_restore_j),
    ]
    for run in range(args.runs):
        # Rotate the order so no tool always runs first (cold) or last.
        order = backups[run % len(backups):] + backups[:run % len(backups)]
        for name, function in order + (restores if run % 2 == 0 else restores[::-1]):
            log(f"  {database} run {run + 1}/{args.runs}: {name}")
            results.setdefault(name, []).append(function())
    return results, arca_raw


def table(database, results, raw_bytes, reference):
    ref = statistics.median(r[0] for r in results[reference])
    lines = [
        f"**{database}** — {raw_bytes / 1e6:,.1f} MB of COPY text",
        "",
        "| what | median s | runs (s) | MB/s of COPY text | × pg_dump -Fc | output size | peak RSS |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        size = runs[-1][2]
        lines.append(
            f"| {name.replace('|', chr(92) + '|')} | {seconds:.2f} | {' '.join(f'{r[0]:.2f}' for r in runs)} | {raw_bytes / 1e6 / seconds:,.0f} | "
            f"{seconds / ref:.2f} | {f'{size / 1e6:,.1f} MB' if size else '–'} | {f'{rss / 1024:.0f} MiB' if rss else '–'} |")
    plain = [name for name in results if name.startswith("arca backup --jobs") and not name.endswith("encrypted")]
    encrypted = [name for name in results if name.endswith(", encrypted")]
    if plain and encrypted:
        ratio = statistics.median(r[0] for r in results[encrypted[0]]) / statistics.median(r[0] for r in results[plain[-1]])
        lines += ["", f"Encrypted / unencrypted backup wall time (same run, medians): {ratio:.2f} ({(ratio - 1) * 100:+.0f} %)."]
    return "\n".join(lines)


def memory_flatness(args, scales):
    lines = ["| pgbench scale | COPY text | arca backup peak RSS |", "|---:|---:|---:|"]
    for scale in scales:
        database = f"bench_rss_{scale}"
        make_pgbench(database, scale)
        repo = os.path.join(args.work, f"rss-{scale}")
        shutil.rmtree(repo, ignore_errors=True)
        out = os.path.join(args.work, f"rss-{scale}.json")
        # A low split threshold keeps every worker busy at both sizes, so the
        # comparison shows growth with size, not how many workers had work.
        _, rss = timed(f"{args.arca} backup --database-url dbname={database} --repo {repo} --jobs {args.jobs} "
                       f"--split-threshold-mib 16 --json > {out}")
        raw = json.load(open(out))["rawBytes"]
        lines.append(f"| {scale} | {raw / 1e6:,.0f} MB | {rss / 1024:.1f} MiB |")
        sh(f"dropdb --if-exists --force {database}")
        shutil.rmtree(repo, ignore_errors=True)
    return "\n".join(lines)


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
        seconds, rss = timed(command)
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
    reference = memory_flatness(args, [reference_scale])
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
    rows = gigabytes * 1_000_000
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
            seconds, rss = timed(f"{prefix} {command}")
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
    parser.add_argument("--rss-scales", default="5,50", help="pgbench scales for the peak-RSS comparison ('' skips it)")
    parser.add_argument("--load-scale", type=int, default=0, help="pgbench scale of the load test (700 is about 10 GB; 0 skips it)")
    parser.add_argument("--cloud-gb", type=int, default=0, help="GB of random data for the cloud upload/restore run (0 skips it)")
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
    for database, enabled, make in [
        ("bench_pgbench", args.scale > 0, lambda d: make_pgbench(d, args.scale)),
        ("bench_wide", args.wide_rows > 0, lambda d: make_wide(d, args.wide_rows)),
    ]:
        if not enabled:
            continue
        make(database)
        results, raw = benchmark(args, database)
        sections.append(table(database, results, raw, "pg_dump -Fc"))
        for suffix in ["", "_arca_restored", "_pg_restored"]:
            sh(f"dropdb --if-exists --force {database}{suffix}", stderr=subprocess.DEVNULL)
    scales = [int(s) for s in args.rss_scales.split(",") if s.strip()]
    if scales:
        sections.append("Peak RSS of `arca backup --jobs %d --split-threshold-mib 16` by database size:\n\n%s"
                        % (args.jobs, memory_flatness(args, scales)))
    if args.load_scale > 0:
        sections.append(load_test(args, args.load_scale))
    if args.cloud_gb > 0:
        sections.append(cloud_memory(args, args.cloud_gb))
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
