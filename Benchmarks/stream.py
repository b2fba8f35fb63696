#!/usr/bin/env python3
"""The change stream (`arca stream`) and point-in-time restore, measured.

Run through Benchmarks/stream.sh (which starts the server and builds arca).
Each run uses fresh copies of one template database (Benchmarks/
stream_schema.sql) and the same deterministic workload
(`CALL bench_workload(N)`: N transactions, one per iteration):

1. Drain: `arca stream` starts (slot, publication, triggers), stops; a
   pg_recvlogical slot (pgoutput, the same publication) is created; the
   workload runs with nothing reading either slot; then each drains the
   backlog alone, in alternating order: arca (`--segment-seconds 1`) until
   a segment ends past the workload's last commit, pg_recvlogical
   (`--start --endpos`) until it exits.
2. Lag: in another copy `arca stream --segment-seconds 1` runs, an
   anchored `arca backup` is taken, the workload runs at full speed, and
   every second the slot's lag is sampled.
3. Restore: into new databases, `arca restore --target-time` (the backup
   before the workload + the stream's replay) against `arca restore` of a
   backup taken after the workload, in alternating order.
"""
import argparse
import atexit
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNING = []  # arca stream processes, stopped if the script fails


@atexit.register
def stop_running():
    for proc in RUNNING:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def psql(db, sql):
    return sh(["psql", "-X", "-Atq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]).strip()


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def fmt_lsn(value):
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def median(values):
    values = [v for v in values if v == v]  # without NaN (no segment yet)
    return statistics.median(values) if values else float("nan")


def maximum(values):
    values = [v for v in values if v == v]
    return max(values) if values else float("nan")


def changes_counted(db):
    """Rows inserted, updated, deleted in the benchmark's tables (the decoded changes)."""
    psql(db, "SELECT pg_stat_force_next_flush()")
    row = psql(db, "SELECT pg_stat_clear_snapshot(); SELECT sum(n_tup_ins), sum(n_tup_upd), sum(n_tup_del) FROM pg_stat_user_tables "
                   "WHERE relname IN ('patients','consultations','records')").splitlines()[-1]
    return [int(x) for x in row.split("|")]


class Streamer:
    """`arca stream` in the background, its peak RSS sampled from /proc."""

    def __init__(self, arca, db, repo, seconds, log):
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [arca, "stream", "--database-url", f"dbname={db}", "--repo", repo, "--segment-seconds", str(seconds)],
            stdout=self.log, stderr=subprocess.STDOUT)
        RUNNING.append(self.proc)
        self.logpath = log
        self.hwm_kib = 0
        self.cpu_s = 0.0  # user + system, sampled with the RSS
        self.stopping = False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while not self.stopping and self.proc.poll() is None:
            try:
                with open(f"/proc/{self.proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
                with open(f"/proc/{self.proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                    self.cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
            time.sleep(0.1)

    def wait_started(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            with open(self.logpath) as f:
                if "streaming slot" in f.read():
                    return
            if self.proc.poll() is not None:
                raise SystemExit(f"arca stream exited: {open(self.logpath).read()}")
            time.sleep(0.05)
        raise SystemExit("arca stream did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=120)
        finally:
            self.stopping = True
            self.thread.join()
            self.log.close()
        if rc not in (0, 130, 143, -15):
            raise SystemExit(f"arca stream exited with {rc}: {open(self.logpath).read()}")


def segment_ends(repo, slot):
    folder = os.path.join(repo, "changes", slot)
    ends = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        m = re.fullmatch(r"changes_([0-9A-F]{16})_([0-9A-F]{16})\.arca", name)
        if m:
            ends.append((int(m.group(2), 16), os.path.join(folder, name)))
    return sorted(ends)


def run_workload(db, n):
    """The workload, then a marker transaction: every workload commit ends
    at or before `before_marker`, the marker's after it."""
    t0 = time.time()
    psql(db, f"CALL bench_workload({n})")
    seconds = time.time() - t0
    before_marker = lsn(psql(db, "SELECT pg_current_wal_insert_lsn()"))
    psql(db, "SELECT pg_logical_emit_message(true, 'streambench', 'end')")
    after = lsn(psql(db, "SELECT pg_current_wal_insert_lsn()"))
    return seconds, before_marker, after


def fresh_db(name):
    psql("postgres", f"DROP DATABASE IF EXISTS {name}")
    psql("postgres", f"CREATE DATABASE {name} TEMPLATE streambench_base")


def drop_db(args, name, repo=None):
    if repo is not None:
        sh([args.arca, "stream", "drop", "--database-url", f"dbname={name}", "--repo", repo, "--confirm"])
    psql("postgres", f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'")
    psql("postgres", f"DROP DATABASE IF EXISTS {name}")


def checksum(db):
    return psql(db, "SELECT (SELECT count(*) || ':' || sum(hashtext(t::text)) FROM patients t) || ' ' || "
                    "(SELECT count(*) || ':' || sum(hashtext(t::text)) FROM consultations t) || ' ' || "
                    "(SELECT count(*) || ':' || sum(hashtext(t::text)) FROM records t)")


def drain_run(args, run):
    db = f"sbdrain_{run}"
    slot = f"arca_{db}"
    recv_slot = f"recv_{db}"
    repo = os.path.join(args.work, f"drain_{run}")
    shutil.rmtree(repo, ignore_errors=True)
    fresh_db(db)
    s = Streamer(args.arca, db, repo, 1, os.path.join(args.work, f"drain_{run}_setup.log"))
    s.wait_started()
    s.stop()
    sh([args.recvlogical, "-d", db, "--slot", recv_slot, "--create-slot", "--plugin=pgoutput"])
    slots = dict(line.split("|") for line in psql(db, "SELECT slot_name, confirmed_flush_lsn FROM pg_replication_slots").splitlines())
    counted0 = changes_counted(db)
    workload_s, before_marker, after = run_workload(db, args.transactions)
    counted = [b - a for a, b in zip(counted0, changes_counted(db))]
    result = {
        "run": run, "workload_s": workload_s, "changes": sum(counted), "inserts": counted[0], "updates": counted[1],
        "deletes": counted[2], "wal_bytes_arca_slot": before_marker - lsn(slots[slot]),
        "wal_bytes_recv_slot": before_marker - lsn(slots[recv_slot]), "end_lsn": fmt_lsn(before_marker)}

    def arca():
        t0 = time.time()
        s = Streamer(args.arca, db, repo, 1, os.path.join(args.work, f"drain_{run}_arca.log"))
        while True:
            ends = segment_ends(repo, slot)
            if ends and ends[-1][0] > before_marker:
                break
            if s.proc.poll() is not None:
                raise SystemExit(f"arca stream exited: {open(s.logpath).read()}")
            time.sleep(0.05)
        result["arca_s"] = time.time() - t0
        s.stop()
        result["arca_hwm_mib"] = s.hwm_kib / 1024
        result["arca_cpu_s"] = s.cpu_s
        result["arca_stored_bytes"] = sum(os.path.getsize(p) for _, p in segment_ends(repo, slot))

    def recv():
        out = os.path.join(args.work, f"drain_{run}.pgoutput")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        before_usage = usage.ru_utime + usage.ru_stime
        t0 = time.time()
        proc = subprocess.run(
            [args.recvlogical, "-d", db, "--slot", recv_slot, "--start", "-f", out, "--endpos", fmt_lsn(before_marker),
             "--plugin=pgoutput", "-o", "proto_version=1", "-o", "publication_names=arca_changes"], check=True)
        result["recv_s"] = time.time() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["recv_cpu_s"] = usage.ru_utime + usage.ru_stime - before_usage
        result["recv_file_bytes"] = os.path.getsize(out)
        os.remove(out)

    order = [arca, recv] if run % 2 == 1 else [recv, arca]
    result["order"] = "arca first" if run % 2 == 1 else "pg_recvlogical first"
    for step in order:
        psql(db, "CHECKPOINT")
        step()
    drop_db(args, db, repo)
    shutil.rmtree(repo, ignore_errors=True)
    return result


def live_run(args, run):
    db = f"sblive_{run}"
    slot = f"arca_{db}"
    repo = os.path.join(args.work, f"live_{run}")
    shutil.rmtree(repo, ignore_errors=True)
    fresh_db(db)
    s = Streamer(args.arca, db, repo, 1, os.path.join(args.work, f"live_{run}_stream.log"))
    s.wait_started()
    before = json.loads(sh([args.arca, "backup", "--database-url", f"dbname={db}", "--repo", repo, "--json"]))
    samples = []  # (t, lag bytes, lag seconds, newest segment file age)
    history = []  # (t, insert lsn)
    done = threading.Event()

    def sample():
        while not done.is_set():
            t = time.time()
            row = psql(db, f"SELECT pg_current_wal_insert_lsn(), confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'")
            current, confirmed = (lsn(x) for x in row.split("|"))
            history.append((t, current))
            # The age of the newest confirmed change: now minus the last
            # sample time at which the server had not yet written past it.
            older = [h for h in history if h[1] <= confirmed]
            age = t - older[-1][0] if older else t - history[0][0]
            ends = segment_ends(repo, slot)
            mtime_age = max(0.0, t - os.path.getmtime(ends[-1][1])) if ends else float("nan")
            samples.append((t, current - confirmed, age, mtime_age))
            done.wait(max(0, 1 - (time.time() - t)))

    sampler = threading.Thread(target=sample, daemon=True)
    # A baseline sample before the load starts, then one a second.
    sampler.start()
    time.sleep(1.0)
    load_start = time.time()
    workload_s, before_marker, after = run_workload(db, args.transactions)
    load_end = time.time()
    target = datetime.now(timezone.utc)
    # Until the segment with the last workload transaction is written.
    while not (ends := segment_ends(repo, slot)) or ends[-1][0] <= before_marker:
        time.sleep(0.05)
    caught_up_s = time.time() - load_end
    done.set()
    sampler.join()
    # The target must be inside the recorded window: wait for a heartbeat after it.
    now_lsn = lsn(psql(db, "SELECT pg_current_wal_insert_lsn()"))
    time.sleep(1.2)
    while not (ends := segment_ends(repo, slot)) or ends[-1][0] <= now_lsn:
        time.sleep(0.1)
    after_backup = json.loads(sh([args.arca, "backup", "--database-url", f"dbname={db}", "--repo", repo, "--json"]))
    s.stop()
    source_sum = checksum(db)
    under_load = [x for x in samples if load_start <= x[0] <= load_end]
    result = {
        "run": run, "workload_s": workload_s, "caught_up_after_s": caught_up_s,
        "lag_bytes": [x[1] for x in under_load], "lag_s": [x[2] for x in under_load],
        "segment_age_s": [x[3] for x in under_load], "hwm_mib": s.hwm_kib / 1024,
        "segments": len(segment_ends(repo, slot)), "target": target.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "backup_before": before["backupId"], "backup_after": after_backup["backupId"]}

    def restore(kind):
        name = f"sb{kind}_{run}"
        psql("postgres", f"DROP DATABASE IF EXISTS {name}")
        psql("postgres", "CHECKPOINT")
        command = [args.arca, "restore"] + (["--target-time", result["target"]] if kind == "pitr" else [result["backup_after"]]) + [
            "--repo", repo, "--target-url", f"dbname={name}", "--create", "--confirm", "--json"]
        # --progress json: one object a report on stderr, each with its
        # phase; the replay's time is from its phase to the next one.
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu0 = usage.ru_utime + usage.ru_stime
        t0 = time.time()
        proc = subprocess.Popen(command + ["--progress", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        phases = []
        for line in proc.stderr:
            try:
                phase = json.loads(line).get("phase")
            except ValueError:
                continue
            if phase and (not phases or phases[-1][1] != phase):
                phases.append((time.time() - t0, phase))
        stdout = proc.stdout.read()
        if proc.wait() != 0:
            raise SystemExit(f"{' '.join(command)} failed: {stdout}")
        out = json.loads(stdout)
        result[f"{kind}_s"] = time.time() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        result[f"{kind}_cpu_s"] = usage.ru_utime + usage.ru_stime - cpu0
        result[f"{kind}_phases"] = phases
        if kind == "pitr":
            starts = [i for i, (_, name) in enumerate(phases) if name.startswith("replaying")]
            if starts:
                i = starts[0]
                end = phases[i + 1][0] if i + 1 < len(phases) else result[f"{kind}_s"]
                result["replay_s"] = end - phases[i][0]
        result[f"{kind}_json"] = {k: out.get(k) for k in ("backupId", "durationSeconds", "replayedTransactions", "replayedChanges", "restoredTo", "rows")}
        result[f"{kind}_matches_source"] = checksum(name) == source_sum
        psql("postgres", f"DROP DATABASE {name}")

    for kind in (["pitr", "full"] if run % 2 == 1 else ["full", "pitr"]):
        restore(kind)
    if result["pitr_json"]["backupId"] != result["backup_before"]:
        raise SystemExit(f"the point-in-time restore started from {result['pitr_json']['backupId']}, not the backup before the workload")
    drop_db(args, db, repo)
    shutil.rmtree(repo, ignore_errors=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arca", required=True)
    parser.add_argument("--recvlogical", default="/usr/lib/postgresql/15/bin/pg_recvlogical")
    parser.add_argument("--work", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--transactions", type=int, default=200000, help="workload transactions per run")
    parser.add_argument("--only", choices=["drain", "live"], help="only one of the two parts")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)

    psql("postgres", "DROP DATABASE IF EXISTS streambench_base")
    psql("postgres", "CREATE DATABASE streambench_base")
    sh(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "streambench_base", "-f", os.path.join(HERE, "stream_schema.sql")])
    psql("postgres", "CHECKPOINT")
    server = psql("postgres", "SELECT version()")
    print(f"{server}; {os.cpu_count()} cores; {args.transactions} transactions a run; {args.runs} runs", flush=True)

    drains, lives = [], []
    for run in range(1, args.runs + 1):
        if args.only in (None, "drain"):
            drains.append(drain_run(args, run))
            print(json.dumps(drains[-1]), flush=True)
        if args.only in (None, "live"):
            lives.append(live_run(args, run))
            r = lives[-1]
            print(json.dumps({k: v for k, v in r.items() if not isinstance(v, list)}), flush=True)
    psql("postgres", "DROP DATABASE IF EXISTS streambench_base")
    with open(os.path.join(args.work, "report.json"), "w") as f:
        json.dump({"drain": drains, "live": lives}, f, indent=1)
    report(args, drains, lives)


def report(args, drains, lives):
    mb = 1e6
    if drains:
        print("\n**Draining a backlog** (`arca stream --segment-seconds 1` against `pg_recvlogical --plugin=pgoutput`)\n")
        print("| run | order | workload s | WAL MB | changes | arca s | pg_recvlogical s | arca / pg_recvlogical | arca changes/s | arca WAL MB/s | pg_recvlogical changes/s | pg_recvlogical WAL MB/s | arca CPU s | pg_recvlogical CPU s | arca segments MB | pg_recvlogical file MB | arca peak RSS |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for d in drains:
            wal = d["wal_bytes_arca_slot"]
            print(f"| {d['run']} | {d['order']} | {d['workload_s']:.1f} | {wal / mb:.0f} | {d['changes']} | {d['arca_s']:.2f} | {d['recv_s']:.2f} | "
                  f"{d['arca_s'] / d['recv_s']:.2f} | {d['changes'] / d['arca_s']:.0f} | {wal / mb / d['arca_s']:.1f} | "
                  f"{d['changes'] / d['recv_s']:.0f} | {d['wal_bytes_recv_slot'] / mb / d['recv_s']:.1f} | "
                  f"{d['arca_cpu_s']:.1f} | {d['recv_cpu_s']:.1f} | {d['arca_stored_bytes'] / mb:.1f} | {d['recv_file_bytes'] / mb:.1f} | {d['arca_hwm_mib']:.0f} MiB |")
        a = median([d["arca_s"] for d in drains])
        r = median([d["recv_s"] for d in drains])
        ch = median([d["changes"] for d in drains])
        wal = median([d["wal_bytes_arca_slot"] for d in drains])
        print(f"\nMedians: arca {a:.2f} s ({ch / a:.0f} changes/s, {wal / mb / a:.1f} MB/s of WAL), "
              f"pg_recvlogical {r:.2f} s ({ch / r:.0f} changes/s, {wal / mb / r:.1f} MB/s of WAL); "
              f"arca / pg_recvlogical: median of the runs' ratios {median([d['arca_s'] / d['recv_s'] for d in drains]):.2f}.")
    if lives:
        print("\n**Under load** (`arca stream --segment-seconds 1` while the workload runs; a sample a second)\n")
        print("| run | workload s | samples | lag MB median | lag MB max | lag s median | lag s max | newest segment file age s median / max | caught up after the load | segments | arca stream peak RSS |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for l in lives:
            print(f"| {l['run']} | {l['workload_s']:.1f} | {len(l['lag_bytes'])} | {median(l['lag_bytes']) / mb:.1f} | {max(l['lag_bytes']) / mb:.1f} | "
                  f"{median(l['lag_s']):.1f} | {max(l['lag_s']):.1f} | {median(l['segment_age_s']):.1f} / {maximum(l['segment_age_s']):.1f} | "
                  f"{l['caught_up_after_s']:.1f} s | {l['segments']} | {l['hwm_mib']:.0f} MiB |")
        all_b = [x for l in lives for x in l["lag_bytes"]]
        all_s = [x for l in lives for x in l["lag_s"]]
        print(f"\nAll samples: lag median {median(all_b) / mb:.1f} MB, max {max(all_b) / mb:.1f} MB; "
              f"median {median(all_s):.1f} s, max {max(all_s):.1f} s; peak RSS of arca stream at most "
              f"{max(l['hwm_mib'] for l in lives):.0f} MiB.")
        print("\n**Point-in-time restore against a full restore** (both `--create`, one connection)\n")
        print("| run | order | --target-time: backup + replay s | of which replay s | replayed transactions | replayed changes | replay tx/s | replay changes/s | arca CPU s, point-in-time | full restore of the final state s | arca CPU s, full | point-in-time / full | all equal the source |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for l in lives:
            p, f, pj, rs = l["pitr_s"], l["full_s"], l["pitr_json"], l.get("replay_s", float("nan"))
            print(f"| {l['run']} | {'PITR first' if l['run'] % 2 == 1 else 'full first'} | {p:.2f} | {rs:.2f} | {pj['replayedTransactions']} | {pj['replayedChanges']} | "
                  f"{pj['replayedTransactions'] / rs:.0f} | {pj['replayedChanges'] / rs:.0f} | {l['pitr_cpu_s']:.1f} | {f:.2f} | {l['full_cpu_s']:.1f} | {p / f:.2f} | "
                  f"{'yes' if l['pitr_matches_source'] and l['full_matches_source'] else 'NO'} |")
        p = median([l["pitr_s"] for l in lives])
        f = median([l["full_s"] for l in lives])
        rs = median([l.get("replay_s", float("nan")) for l in lives])
        print(f"\nMedians: point-in-time {p:.2f} s (replay {rs:.2f} s), full {f:.2f} s; point-in-time / full, median of the runs' ratios "
              f"{median([l['pitr_s'] / l['full_s'] for l in lives]):.2f}; replay "
              f"{median([l['pitr_json']['replayedChanges'] / l['replay_s'] for l in lives]):.0f} changes/s, "
              f"{median([l['pitr_json']['replayedTransactions'] / l['replay_s'] for l in lives]):.0f} transactions/s.")

if __name__ == "__main__":
    main()
