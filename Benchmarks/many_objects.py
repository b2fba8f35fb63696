#!/usr/bin/env python3
"""Databases with many objects, at PostgreSQL's default settings (issue 18).

Run through Benchmarks/many-objects.sh, which starts a throwaway PostgreSQL
with default settings (max_locks_per_transaction = 64) and builds arca.

Databases (made once, kept between runs unless --recreate):
  tables       --tables N small tables (default 10,000): id int primary key, a text column, 3 rows
  partitions   one table of --partitions N partitions (default 2,000) with a primary key, 10 rows each
  largeobjects --large-objects N large objects (default 100,000) of about 60 bytes each

For each: arca backup --jobs 1 and --jobs 2 against pg_dump -Fc, and
arca restore --create (--jobs 1, --jobs 2) against pg_restore -j 2 from the
-Fc dump (createdb included in pg_restore's time, as CREATE DATABASE is in
arca's), alternating the order between runs, medians. Every arca restore is
checked equal to the source with `arca compare`. Peak RSS is of the largest
process of each command (/usr/bin/time), so pg_dump's own is not counted in
arca's own column; arca's schema capture and restore run pg_dump and
pg_restore as children, whose RSS the "largest process" column includes
(pg_dump's alone is in the `pg_dump --section=pre-data --section=post-data`
row).
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time


def log(message):
    print(message, file=sys.stderr, flush=True)


def sh(command, **kwargs):
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, **kwargs)


def psql(database, sql):
    return subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database],
        input=sql, check=True, capture_output=True, text=True).stdout.strip()


def descendants_named(root, name):
    """PIDs of the processes called `name` under process `root`."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/comm") as f:
                    parents[int(entry)] = (int(fields[1]), f.read().strip())
            except OSError:
                pass
    found = []
    for pid, (parent, comm) in parents.items():
        if comm != name:
            continue
        ancestor = parent
        while ancestor > 1 and ancestor != root:
            ancestor = parents.get(ancestor, (1, ""))[0]
        if ancestor == root:
            found.append(pid)
    return found


def timed(command):
    """(seconds, peak RSS in MiB of the largest process, peak RSS in MiB of
    arca itself: its children, pg_dump and pg_restore, left out) of a shell
    command. Arca's own is its VmHWM, sampled every 20 ms."""
    with tempfile.NamedTemporaryFile("r") as report:
        sh("psql -X -q -d postgres -c CHECKPOINT")
        start = time.monotonic()
        process = subprocess.Popen(
            ["bash", "-c", f"/usr/bin/time -f '%M' -o {report.name} bash -o pipefail -c {shlex.quote(command)}"],
            stdout=subprocess.DEVNULL)
        own = 0
        while process.poll() is None:
            for pid in descendants_named(process.pid, "arca"):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                own = max(own, int(line.split()[1]))
                except OSError:
                    pass
            time.sleep(0.02)
        seconds = time.monotonic() - start
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, command)
        lines = [line for line in report.read().split() if line.strip().isdigit()]
        return seconds, (int(lines[-1]) / 1024 if lines else 0), own / 1024


def exists(database):
    return psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'") == "1"


def drop(database):
    sh(f"dropdb --if-exists --force {database}")


def make_tables(database, count):
    log(f"creating {database}: {count} tables, 1,000 per transaction")
    sh(f"createdb {database}")
    for first in range(1, count + 1, 1000):
        statements = [f"CREATE TABLE t_{i} (id int PRIMARY KEY, v text); INSERT INTO t_{i} VALUES (1, 'a'), (2, 'b'), (3, 'c');"
                      for i in range(first, min(count, first + 999) + 1)]
        psql(database, "BEGIN;\n" + "\n".join(statements) + "\nCOMMIT;")


def make_partitions(database, count):
    log(f"creating {database}: one table of {count} partitions")
    sh(f"createdb {database}")
    psql(database, "CREATE TABLE events (id int PRIMARY KEY, note text) PARTITION BY RANGE (id);")
    for first in range(0, count, 500):
        statements = [f"CREATE TABLE events_{i} PARTITION OF events FOR VALUES FROM ({i * 10}) TO ({i * 10 + 10});"
                      for i in range(first, min(count, first + 500))]
        psql(database, "BEGIN;\n" + "\n".join(statements) + "\nCOMMIT;")
    psql(database, f"INSERT INTO events SELECT g, 'event ' || g FROM generate_series(0, {count * 10 - 1}) g; VACUUM ANALYZE;")


def make_large_objects(database, count):
    log(f"creating {database}: {count} large objects")
    sh(f"createdb {database}")
    psql(database, f"SELECT count(lo_from_bytea(0, convert_to('large object ' || g || ' ' || md5(g::text), 'UTF8'))) "
                   f"FROM generate_series(1, {count}) g;")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arca", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--tables", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=2_000)
    parser.add_argument("--large-objects", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["tables", "partitions", "largeobjects"], action="append")
    parser.add_argument("--recreate", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)

    settings = psql("postgres", "SELECT current_setting('server_version') || ', max_locks_per_transaction ' || "
                                "current_setting('max_locks_per_transaction') || ', max_connections ' || current_setting('max_connections')")
    log(f"PostgreSQL {settings}")
    databases = [
        ("tables", f"many_tables_{args.tables}", lambda d: make_tables(d, args.tables)),
        ("partitions", f"many_partitions_{args.partitions}", lambda d: make_partitions(d, args.partitions)),
        ("largeobjects", f"many_los_{args.large_objects}", lambda d: make_large_objects(d, args.large_objects)),
    ]
    report = {"settings": settings, "databases": {}}
    for kind, database, make in databases:
        if args.only and kind not in args.only:
            continue
        if args.recreate:
            drop(database)
        if not exists(database):
            make(database)
        repo = os.path.join(args.work, f"repo_{database}")
        dump = os.path.join(args.work, f"{database}.dump")
        target = f"{database}_restored"
        times = {}
        rss = {}
        own_rss = {}

        def measure(name, command, check=None):
            seconds, peak, own = timed(command)
            times.setdefault(name, []).append(seconds)
            rss[name] = max(rss.get(name, 0), peak)
            own_rss[name] = max(own_rss.get(name, 0), own)
            log(f"  {name}: {seconds:.2f} s, largest process {peak:.0f} MiB, arca {own:.0f} MiB")
            if check:
                check()

        def archive(jobs):
            with open(os.path.join(args.work, f"backup_{jobs}.json")) as f:
                return json.load(f)["path"]

        def compare():
            sh(f"{args.arca} compare dbname={database} dbname={target} > /dev/null")

        steps = [
            ("arca backup --jobs 1", lambda: f"rm -rf {repo}_1 && {args.arca} backup --database-url dbname={database} --repo {repo}_1 --jobs 1 --json > {args.work}/backup_1.json", None),
            ("arca backup --jobs 2", lambda: f"rm -rf {repo}_2 && {args.arca} backup --database-url dbname={database} --repo {repo}_2 --jobs 2 --json > {args.work}/backup_2.json", None),
            ("pg_dump -Fc", lambda: f"pg_dump -Fc -d {database} -f {dump}", None),
            ("pg_dump --section=pre-data --section=post-data (arca's schema capture)",
             lambda: f"pg_dump -Fc --compress=0 --section=pre-data --section=post-data -d {database} -f /dev/null --no-sync", None),
        ]
        restores = [
            ("arca restore --create --jobs 1", lambda: f"dropdb --if-exists {target} && {args.arca} restore {archive(1)} --target-url dbname={target} --create --confirm --jobs 1 2>/dev/null", compare),
            ("arca restore --create --jobs 2", lambda: f"dropdb --if-exists {target} && {args.arca} restore {archive(2)} --target-url dbname={target} --create --confirm --jobs 2 2>/dev/null", compare),
            ("pg_restore -j 2 (from -Fc, createdb included)", lambda: f"dropdb --if-exists {target} && createdb {target} && pg_restore -j 2 -d {target} {dump}", None),
        ]
        log(f"{database}:")
        for run in range(args.runs):
            # Rotate the order so no tool always goes first.
            for name, command, check in steps[run % len(steps):] + steps[:run % len(steps)]:
                measure(name, command(), check)
            for name, command, check in restores[run % len(restores):] + restores[:run % len(restores)]:
                measure(name, command(), check)
        drop(target)
        report["databases"][database] = {
            name: {"median": statistics.median(values), "runs": values, "rss_mib": rss[name], "arca_rss_mib": own_rss[name]}
            for name, values in times.items()}

    print(json.dumps(report, indent=2))
    print()
    for database, rows in report["databases"].items():
        print(f"**{database}**\n")
        print("| what | median s | runs (s) | peak RSS, largest process | peak RSS, arca itself |")
        print("|---|---:|---|---:|---:|")
        for name, row in rows.items():
            own = f"{row['arca_rss_mib']:.0f} MiB" if row["arca_rss_mib"] else "–"
            print(f"| {name} | {row['median']:.2f} | {' '.join(f'{v:.2f}' for v in row['runs'])} | {row['rss_mib']:.0f} MiB | {own} |")
        def ratio(a, b):
            return rows[a]["median"] / rows[b]["median"]
        print()
        print(f"arca backup --jobs 1 / pg_dump -Fc: {ratio('arca backup --jobs 1', 'pg_dump -Fc'):.2f}; "
              f"--jobs 2 / pg_dump -Fc: {ratio('arca backup --jobs 2', 'pg_dump -Fc'):.2f}; "
              f"arca restore --create --jobs 1 / pg_restore -j 2: {ratio('arca restore --create --jobs 1', 'pg_restore -j 2 (from -Fc, createdb included)'):.2f}; "
              f"--jobs 2 / pg_restore -j 2: {ratio('arca restore --create --jobs 2', 'pg_restore -j 2 (from -Fc, createdb included)'):.2f}\n")


if __name__ == "__main__":
    main()
