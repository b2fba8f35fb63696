#!/usr/bin/env python3
"""Benchmarks/throttle.py: `arca backup --jobs 2` unthrottled against
`--max-rate 20MiB` and `40MiB` (run by Benchmarks/throttle.sh).

Per backup: wall time; the time the rate implies (the COPY text and large
objects arca read, its `rawBytes`, divided by the rate); and the server's
load: CPU seconds (utime + stime from /proc/<pid>/stat) of every process of
the cluster (the postmaster's children: the backends serving arca and pg_dump,
and the background processes) over the backup, per second of wall time.
Backends are sampled every 50 ms while they live, so one that exits keeps
its last reading. Configurations alternate within each run."""
import argparse, json, os, statistics, subprocess, time

TICKS = os.sysconf("SC_CLK_TCK")


def children(postmaster):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    except OSError:
        return None


def run(arca, repo, url, rate, postmaster):
    before = {pid: cpu(pid) or 0.0 for pid in children(postmaster)}
    last = dict(before)
    command = [arca, "backup", "--jobs", "2", "--repo", repo, "--database-url", url, "--json"]
    if rate:
        command += ["--max-rate", rate]
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        for pid in children(postmaster):
            value = cpu(pid)
            if value is not None:
                last[pid] = value
        time.sleep(0.05)
    wall = time.monotonic() - start
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"arca backup failed: {err}")
    result = json.loads(out)
    server = sum(value - before.get(pid, 0.0) for pid, value in last.items())
    return {"rate": rate or "unlimited", "wall": wall, "rawBytes": result["rawBytes"], "serverCPU": server}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--arca", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--postmaster", type=int, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates = [None, "20MiB", "40MiB"]
    results = {r or "unlimited": [] for r in rates}
    for n in range(args.runs):
        for rate in rates:
            row = run(args.arca, args.repo, args.url, rate, args.postmaster)
            results[row["rate"]].append(row)
            print(f"run {n + 1} {row['rate']:>9}: {row['wall']:6.2f} s, {row['rawBytes'] / 2**20:7.1f} MiB read, "
                  f"server CPU {row['serverCPU']:5.2f} s", flush=True)
    print()
    print("| `--max-rate` | wall (median) | time the rate implies | wall / implied | read rate | server CPU s | server CPU per wall second |")
    print("|---|---|---|---|---|---|---|")
    for rate in rates:
        rows = results[rate or "unlimited"]
        wall = statistics.median(r["wall"] for r in rows)
        raw = statistics.median(r["rawBytes"] for r in rows)
        cpu_s = statistics.median(r["serverCPU"] for r in rows)
        load = statistics.median(r["serverCPU"] / r["wall"] for r in rows)
        if rate:
            per_second = int(rate[:-3]) << 20
            implied = raw / per_second
            ratio = f"{statistics.median(r['wall'] / (r['rawBytes'] / per_second) for r in rows):.2f}"
            implied_text = f"{implied:.2f} s"
        else:
            implied_text, ratio = "–", "–"
        print(f"| {rate or 'unlimited'} | {wall:.2f} s | {implied_text} | {ratio} | {raw / 2**20 / wall:.1f} MiB/s | "
              f"{cpu_s:.2f} | {load:.2f} |")


main()
