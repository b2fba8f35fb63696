#!/usr/bin/env bash
# scripts/pg-cluster.sh — manage a throwaway PostgreSQL cluster for tests.
#
# Usage (PG_BIN=<folder of postgres, initdb, pg_ctl> chooses the server for
# `start`; default Debian's PostgreSQL 15, /usr/lib/postgresql/15/bin):
#   scripts/pg-cluster.sh start   DIR PORT   initdb (first time) + start; no-op if already running
#   scripts/pg-cluster.sh stop    DIR [PORT] fast shutdown; success if not running
#   scripts/pg-cluster.sh env     DIR PORT   print `export PGHOST=... PGPORT=... PGUSER=postgres`
#                                            (use: eval "$(scripts/pg-cluster.sh env DIR PORT)")
#   scripts/pg-cluster.sh status  DIR [PORT] exit 0 if running, 3 if not
#   scripts/pg-cluster.sh destroy DIR [PORT] stop, then delete the cluster's files
#
# Layout ("ROOT" is where the cluster actually lives):
#   ROOT/data        data directory (initdb -U postgres -E UTF8 --locale=C.UTF-8 -A trust)
#   ROOT/socket      private unix socket directory  -> PGHOST
#   ROOT/server.log  server log (pg_ctl -l)
#   ROOT/initdb.log  initdb output (only shown if initdb fails)
#   The server listens on 127.0.0.1:PORT and ROOT/socket only.
#
# Where ROOT is, and why:
#   * Normally ROOT = DIR (e.g. ./.build-pg).
#   * PostgreSQL refuses to run as root, so when this script runs as root the
#     server runs as the `postgres` OS user (via runuser). That user must be able
#     to traverse every parent of DIR. A checkout under /root (mode 0700) is the
#     typical case where it cannot, and loosening /root's permissions is not
#     acceptable. Also, a unix socket path must fit in ~107 bytes, which a deep
#     checkout path can exceed. In either case the cluster is placed in
#         /tmp/arca-pg-<PORT>
#     and DIR/cluster is a symlink to it, so `stop`/`env`/`destroy DIR` still
#     find it. The decision is re-made on every `start`, so it is automatic.
#     (Two checkouts that both fall back and use the same PORT share that
#     cluster; a port can only host one server anyway.)
#   * Run as a non-root user other than postgres, everything (initdb, pg_ctl)
#     runs directly as that user; ROOT = DIR unless the socket path is too long.
#
# Robustness against previous runs (CI kills, kill -9, reboots):
#   * "Running" means: DATA/postmaster.pid names a live process that is a
#     `postgres` binary whose cwd is DATA (the postmaster chdirs into its data
#     directory). A recycled PID therefore never counts as our server.
#   * Plain `pg_ctl start` is NOT enough after a kill -9 here: in containers
#     whose PID 1 does not reap orphans, the dead postmaster stays a zombie,
#     kill(pid, 0) still succeeds, and the server refuses to start because
#     "lock file postmaster.pid already exists" (seen on this machine). Hence:
#   * If not running, leftovers are cleaned before starting: orphaned backends
#     of a kill -9'd postmaster (same test: postgres binary with cwd == DATA;
#     they would keep the old shared memory segment attached and make the new
#     postmaster refuse to start), the stale postmaster.pid, and stale socket
#     and socket-lock files in our private socket directory.
#   * If running on a different port than requested, it is restarted.
#   * A data directory left half-initialised (initdb killed) is re-created.
#   * Concurrent invocations on the same DIR are serialised with flock.
#
# Server programs: PG_BIN, e.g. the PostgreSQL 18 programs of
# scripts/postgresql-18.sh. The major version is read from its postgres. The
# cluster remembers the folder in ROOT/bindir, so stop and destroy use the
# programs it was made with whatever PG_BIN says. Programs outside Debian's
# folders run with LD_LIBRARY_PATH=PG_BIN/../lib (the wheel's layout).
#
# Settings (DATA/arca.conf, rewritten on every start, included at the end of
# postgresql.conf so ALTER SYSTEM / postgresql.auto.conf still wins):
#   listen_addresses=127.0.0.1, port, unix_socket_directories, max_connections=100,
#   shared_buffers=128MB, synchronous_commit=off, wal_level=logical (the
#   change stream's tests). fsync stays ON on purpose:
#   the tests exercise fsync paths.
set -euo pipefail

DEFAULT_PG_BIN=/usr/lib/postgresql/15/bin
PG_BIN=${PG_BIN:-}
PG_MAJOR=                     # set by use_programs
PG_OS_USER=postgres           # OS user that owns/runs the cluster when we are root
FALLBACK_BASE=/tmp            # fallback ROOT is $FALLBACK_BASE/arca-pg-<PORT>
START_TIMEOUT=${PG_START_TIMEOUT:-60}

# All diagnostics go to stderr so that stdout of `env` stays eval-able.
log() { printf 'pg-cluster: %s\n' "$*" >&2; }
die() { printf 'pg-cluster: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Choose the server programs for the cluster in ROOT (see header): PG_BIN,
# else those the cluster was made with, else the default. Sets PG_BIN,
# PG_MAJOR and, for programs outside Debian's folders, LD_LIBRARY_PATH.
use_programs() {
  local root=$1 version
  if [[ -z "$PG_BIN" && -f "$root/bindir" ]]; then
    PG_BIN=$(<"$root/bindir")
  fi
  PG_BIN=${PG_BIN:-$DEFAULT_PG_BIN}
  [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] ||
    die "no PostgreSQL server programs in $PG_BIN (postgres, initdb, pg_ctl); run scripts/setup.sh"
  version=$("$PG_BIN/postgres" --version 2>/dev/null) || die "$PG_BIN/postgres does not run"
  # "postgres (PostgreSQL) 18.6" -> 18
  [[ "$version" =~ \(PostgreSQL\)\ ([0-9]+) ]] || die "cannot read the version of $PG_BIN/postgres: $version"
  PG_MAJOR=${BASH_REMATCH[1]}
  if [[ "$PG_BIN" != /usr/lib/postgresql/* && -d "$PG_BIN/../lib" ]]; then
    export LD_LIBRARY_PATH="$PG_BIN/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
}

# Run a PostgreSQL binary as the cluster owner. As root that is the postgres OS
# user (cwd / so it never trips over an unreadable current directory such as
# /root); otherwise it is the current user.
# `9>&-`: fd 9 is our flock on DIR (see main). Without closing it, the
# postmaster started by pg_ctl inherits it and holds the lock for its whole
# life, so every later start/stop would block on the lock.
as_pg() {
  if (( EUID == 0 )); then
    (cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
  else
    "$@" 9>&-
  fi
}

# Make a directory owned by the cluster owner. Refuses symlinks and directories
# owned by somebody else (matters for the shared /tmp fallback).
make_owned_dir() {
  local d=$1 mode=$2 owner
  if [[ -L "$d" ]]; then
    die "$d is a symlink; refusing to use it (remove it)"
  fi
  mkdir -p "$d"
  owner=$(stat -c %U "$d")
  if (( EUID == 0 )); then
    if [[ "$owner" != "$PG_OS_USER" && "$owner" != root ]]; then
      die "$d is owned by '$owner', expected $PG_OS_USER; remove it"
    fi
    chown "$PG_OS_USER": "$d"
  elif [[ "$owner" != "$(id -un)" ]]; then
    die "$d is owned by '$owner', not by $(id -un); remove it or choose another DIR/PORT"
  fi
  chmod "$mode" "$d"
}

check_port() {
  if ! [[ "$1" =~ ^[0-9]+$ ]] || (( $1 < 1024 || $1 > 65535 )); then
    die "PORT must be a number in 1024..65535, got '$1'"
  fi
}

# Decide where the cluster lives for `start` (see header). Prints ROOT.
choose_root() {
  local dir=$1 port=$2 sock_path
  sock_path="$dir/socket/.s.PGSQL.$port.lock"   # the longest socket-dir path the server creates
  if (( ${#sock_path} > 100 )); then
    log "socket path under $dir would be too long for a unix socket; using $FALLBACK_BASE/arca-pg-$port"
    printf '%s\n' "$FALLBACK_BASE/arca-pg-$port"
  elif (( EUID == 0 )) && ! (cd / && runuser -u "$PG_OS_USER" -- test -x "$(dirname "$dir")"); then
    log "user $PG_OS_USER cannot reach $dir (a parent directory is not traversable);" \
        "using $FALLBACK_BASE/arca-pg-$port"
    printf '%s\n' "$FALLBACK_BASE/arca-pg-$port"
  else
    printf '%s\n' "$dir"
  fi
}

# Find an existing cluster for DIR (stop/env/status/destroy). Prints ROOT or fails.
find_root() {
  local dir=$1 port=${2:-}
  if [[ -L "$dir/cluster" ]]; then
    readlink -f "$dir/cluster"
  elif [[ -d "$dir/data" ]]; then
    printf '%s\n' "$dir"
  elif [[ -n "$port" && -d "$FALLBACK_BASE/arca-pg-$port/data" ]]; then
    printf '%s\n' "$FALLBACK_BASE/arca-pg-$port"
  else
    return 1
  fi
}

# Is PATH (a /proc/PID/exe link) a postgres binary? The kernel appends
# " (deleted)" when the binary was removed under the running server.
is_postgres_binary() {
  local name=${1##*/}
  [[ "$name" == postgres || "$name" == "postgres (deleted)" ]]
}

# PIDs of postgres processes whose cwd is DATA: the postmaster and its children,
# including orphans of a postmaster that was kill -9'd.
cluster_pids() {
  local data=$1 p exe
  for p in /proc/[0-9]*; do
    [[ "$(readlink "$p/cwd" 2>/dev/null)" == "$data" ]] || continue
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    is_postgres_binary "$exe" || continue
    printf '%s\n' "${p#/proc/}"
  done
}

# Is the postmaster recorded in DATA/postmaster.pid really alive and ours?
is_running() {
  local data=$1 pid exe
  [[ -f "$data/postmaster.pid" ]] || return 1
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$data" ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  is_postgres_binary "$exe"
}

# Port of the running postmaster (line 4 of postmaster.pid).
running_port() { sed -n '4p' "$1/postmaster.pid" 2>/dev/null || true; }

# Remove what a dead cluster left behind so the next start is clean.
cleanup_stale() {
  local root=$1 data=$1/data pids i
  mapfile -t pids < <(cluster_pids "$data")
  if (( ${#pids[@]} )); then
    log "killing ${#pids[@]} orphaned postgres process(es) of a dead postmaster: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for (( i = 0; i < 100; i++ )); do
      mapfile -t pids < <(cluster_pids "$data")
      (( ${#pids[@]} == 0 )) && break
      sleep 0.1
    done
    (( ${#pids[@]} == 0 )) || die "could not get rid of old postgres processes: ${pids[*]}"
  fi
  if [[ -f "$data/postmaster.pid" ]]; then
    log "removing stale $data/postmaster.pid"
    rm -f "$data/postmaster.pid"
  fi
  # Our socket directory is private, so anything in it belongs to a dead server.
  rm -f "$root"/socket/.s.PGSQL.*
}

wait_ready() {
  local root=$1 port=$2 i
  for (( i = 0; i < START_TIMEOUT * 2; i++ )); do
    if "$PG_BIN/pg_isready" -q -h "$root/socket" -p "$port" -U postgres -d postgres -t 2 &&
       "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2; then
      return 0
    fi
    sleep 0.5
  done
  log "server did not become ready within ${START_TIMEOUT}s; tail of $root/server.log:"
  tail -n 30 "$root/server.log" >&2 || true
  return 1
}

stop_cluster() {
  local root=$1 data=$1/data
  if is_running "$data"; then
    # Programs deleted under a running cluster (a cleaned .cache) cannot
    # stop it: cleanup_stale below kills its processes instead.
    if ! (use_programs "$root") 2>/dev/null; then
      log "the programs of the cluster in $root are gone; killing its processes"
    else
      use_programs "$root"
      log "stopping cluster in $root"
      if ! as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t "$START_TIMEOUT" -s stop >&2; then
        log "fast shutdown failed; trying immediate shutdown"
        as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 -s stop >&2 || true
      fi
    fi
  fi
  # Whether it was running or died earlier, leave no stragglers or stale files.
  cleanup_stale "$root"
}

init_cluster() {
  local root=$1 data=$1/data
  if [[ -f "$data/PG_VERSION" ]]; then
    local v
    v=$(<"$data/PG_VERSION")
    [[ "$v" == "$PG_MAJOR" ]] ||
      die "$data holds a PostgreSQL $v cluster, expected $PG_MAJOR; run: $0 destroy DIR PORT"
    return 0
  fi
  if [[ -e "$data" ]]; then
    # No PG_VERSION: initdb was interrupted. Nothing worth keeping.
    log "removing half-initialised $data"
    rm -rf "$data"
  fi
  log "initdb into $data"
  if ! as_pg "$PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 -A trust \
         >"$root/initdb.log" 2>&1; then
    cat "$root/initdb.log" >&2
    die "initdb failed"
  fi
}

write_config() {
  local root=$1 port=$2 data=$1/data conf sockdir
  conf="$data/arca.conf"
  sockdir=${root//\'/\'\'}/socket          # escape ' for the config syntax
  cat >"$conf" <<CONF
# Written by scripts/pg-cluster.sh on every start; do not edit.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
max_connections = 100
shared_buffers = 128MB
synchronous_commit = off
# Logical decoding, for the change stream's tests (arca stream).
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
# fsync stays on: the test suite exercises fsync paths.
fsync = on
CONF
  (( EUID == 0 )) && chown "$PG_OS_USER": "$conf"
  chmod 0600 "$conf"
  if ! grep -q "^include_if_exists = 'arca.conf'" "$data/postgresql.conf"; then
    printf "\n# Arca test settings (scripts/pg-cluster.sh)\ninclude_if_exists = 'arca.conf'\n" \
      >>"$data/postgresql.conf"
  fi
}

cmd_start() {
  local dir=$1 port=$2 root data
  check_port "$port"
  if (( EUID == 0 )); then
    id "$PG_OS_USER" >/dev/null 2>&1 || die "OS user '$PG_OS_USER' does not exist (is postgresql-15 installed? run scripts/setup.sh)"
  fi

  root=$(choose_root "$dir" "$port")
  if [[ "$root" == "$dir" ]]; then
    make_owned_dir "$dir" 0755
    # Drop a pointer left by an earlier fallback run.
    [[ -L "$dir/cluster" ]] && rm -f "$dir/cluster"
  else
    make_owned_dir "$root" 0755
    ln -sfn "$root" "$dir/cluster"
  fi
  root=$(cd "$root" && pwd -P)
  data=$root/data
  make_owned_dir "$root/socket" 0755
  use_programs "$root"
  if [[ -f "$data/PG_VERSION" && "$(<"$data/PG_VERSION")" != "$PG_MAJOR" ]]; then
    die "$data holds a PostgreSQL $(<"$data/PG_VERSION") cluster, but $PG_BIN is PostgreSQL $PG_MAJOR; run: $0 destroy $dir $port"
  fi

  if is_running "$data"; then
    if [[ "$(running_port "$data")" == "$port" ]]; then
      wait_ready "$root" "$port" || die "cluster in $root is running but not ready"
      log "cluster in $root already running on port $port"
      return 0
    fi
    log "cluster in $root runs on port $(running_port "$data"), restarting on $port"
    stop_cluster "$root"
  else
    cleanup_stale "$root"
  fi

  # Someone else (another cluster, another checkout) on our port? Fail clearly
  # instead of letting the postmaster die with "could not bind".
  local rc=0
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2 || rc=$?
  if (( rc == 0 || rc == 1 )); then
    die "a PostgreSQL server that is not the one in $root already listens on 127.0.0.1:$port; stop it or use another port"
  fi

  init_cluster "$root"
  write_config "$root" "$port"
  printf '%s\n' "$PG_BIN" >"$root/bindir"

  log "starting PostgreSQL $PG_MAJOR in $root on 127.0.0.1:$port (log: $root/server.log)"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$root/server.log" -w -t "$START_TIMEOUT" -s start >&2; then
    log "pg_ctl start failed; tail of $root/server.log:"
    tail -n 30 "$root/server.log" >&2 || true
    die "could not start the cluster"
  fi
  wait_ready "$root" "$port" || die "cluster started but is not accepting connections"
  log "cluster ready (PGHOST=$root/socket PGPORT=$port)"
}

cmd_stop() {
  local dir=$1 port=${2:-} root
  if ! root=$(find_root "$dir" "$port"); then
    log "no cluster found for $dir; nothing to stop"
    return 0
  fi
  stop_cluster "$root"
}

cmd_status() {
  local dir=$1 port=${2:-} root
  if root=$(find_root "$dir" "$port") && is_running "$root/data"; then
    log "running: $root on port $(running_port "$root/data")"
    return 0
  fi
  log "not running"
  return 3
}

cmd_env() {
  local dir=$1 port=$2 root
  check_port "$port"
  root=$(find_root "$dir" "$port") ||
    die "no cluster for $dir; run: $0 start $dir $port"
  printf 'export PGHOST=%q PGPORT=%q PGUSER=postgres\n' "$root/socket" "$port"
}

cmd_destroy() {
  local dir=$1 port=${2:-} root
  if root=$(find_root "$dir" "$port"); then
    stop_cluster "$root"
    if [[ "$root" != "$dir" ]]; then
      log "deleting $root"
      rm -rf "$root"
    fi
  fi
  if [[ -d "$dir" ]]; then
    log "deleting cluster files in $dir"
    # Only remove what this script creates; DIR itself goes only if then empty.
    rm -rf "$dir/data" "$dir/socket" "$dir/server.log" "$dir/initdb.log" \
           "$dir/bindir" "$dir/cluster" "$dir/.pg-cluster.lock"
    rmdir "$dir" 2>/dev/null || true
  fi
}

main() {
  (( $# >= 2 )) || usage
  local cmd=$1 dir=$2
  shift 2

  # Absolute, symlink-free DIR: commands run as postgres from cwd /, and the
  # "is this our server" test compares against /proc/PID/cwd.
  if [[ "$cmd" == start ]]; then
    mkdir -p "$dir"
  fi
  if [[ -d "$dir" ]]; then
    dir=$(cd "$dir" && pwd -P)
  elif [[ "$dir" != /* ]]; then
    dir=$PWD/$dir
  fi

  # Serialise start/stop/destroy on the same DIR (e.g. two terminals, or a
  # trap-stop racing a new run).
  if [[ "$cmd" == start || ( -d "$dir" && ( "$cmd" == stop || "$cmd" == destroy ) ) ]]; then
    exec 9>"$dir/.pg-cluster.lock"
    flock -w 300 9 || die "timed out waiting for the lock on $dir"
  fi

  case "$cmd" in
    start)   (( $# == 1 )) || usage; cmd_start "$dir" "$1" ;;
    stop)    (( $# <= 1 )) || usage; cmd_stop "$dir" "${1:-}" ;;
    status)  (( $# <= 1 )) || usage; cmd_status "$dir" "${1:-}" ;;
    env)     (( $# == 1 )) || usage; cmd_env "$dir" "$1" ;;
    destroy) (( $# <= 1 )) || usage; cmd_destroy "$dir" "${1:-}" ;;
    *)       usage ;;
  esac
}

main "$@"
