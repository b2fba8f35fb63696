#!/usr/bin/env bash
# scripts/install.sh — install Arca as a systemd service (or upgrade it, or
# remove it).
#
#   scripts/install.sh                        build (release) and install
#   scripts/install.sh --binary PATH          install this arca binary instead
#   scripts/install.sh --uninstall            stop and remove binary and unit
#   scripts/install.sh --uninstall --purge    ... and settings, repository, user
#
# What an install does, as root:
#   1. the binary          -> $PREFIX/bin/arca (0755; PREFIX default /usr/local),
#                             replaced atomically (rename), so an upgrade never
#                             leaves a half-written binary behind
#   2. the user            -> system user and group `arca` (no login shell,
#                             home /var/lib/arca), created once
#   3. the repository      -> /var/lib/arca (arca:arca, 0700)
#   4. the settings        -> /etc/arca (root:arca, 0750) and
#                             /etc/arca/arca.env (root:root, 0600) from
#                             deploy/arca.env.example, ONLY if it does not
#                             exist: an operator's settings and secrets are
#                             never overwritten. systemd reads the file as root
#                             before it starts arca, so arca needs no access
#                             to it and nobody but root can read it.
#   5. the unit            -> /etc/systemd/system/arca.service (0644) from
#                             deploy/arca.service, ExecStart pointing at the
#                             installed binary; checked with
#                             `systemd-analyze verify` when that exists
#   6. systemd             -> when systemd runs this machine: daemon-reload,
#                             and a restart if the service was running (an
#                             upgrade is running this script again). A first
#                             install does not start anything: DATABASE_URL
#                             has to be set first. Without systemd (a
#                             container) it says what to run on a systemd host.
#
# Options:
#   --binary PATH   the arca binary to install (default: `swift build -c release
#                   --product arca` in this checkout, and its result)
#   --prefix DIR    installation prefix of the binary (default /usr/local)
#   --root DIR      stage everything under DIR instead of / (like DESTDIR, for
#                   packaging and tests): no user is created, no ownership is
#                   changed (files belong to whoever runs the script), systemd
#                   is not touched, and root is not required. The unit still
#                   names the final paths ($PREFIX/bin/arca, not DIR/...).
#   --uninstall     stop and disable the service, remove the binary and the
#                   unit; keep /etc/arca and /var/lib/arca (the backups!)
#   --purge         with --uninstall: also remove /etc/arca, /var/lib/arca
#                   (every local backup and the audit log) and the arca user
#   -h, --help      this text
#
# Idempotent: running it twice installs the same thing twice.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd -P)
UNIT_TEMPLATE=$REPO_ROOT/deploy/arca.service
ENV_TEMPLATE=$REPO_ROOT/deploy/arca.env.example

SERVICE_USER=arca
STATE_DIR=/var/lib/arca
CONFIG_DIR=/etc/arca
ENV_FILE=$CONFIG_DIR/arca.env
UNIT_DIR=/etc/systemd/system
UNIT_NAME=arca.service
# The path deploy/arca.service names; replaced by the real one at install.
UNIT_BINARY=/usr/local/bin/arca

log() { printf 'install: %s\n' "$*"; }
fail() {
  printf 'install: error: %s\n' "$1" >&2
  shift
  local hint
  for hint in "$@"; do printf 'install:   %s\n' "$hint" >&2; done
  exit 1
}
usage_error() {
  printf 'install: %s\n' "$1" >&2
  printf 'install: run %s --help for the options\n' "$0" >&2
  exit 2
}

ARGUMENTS="$*"
BINARY=
PREFIX=/usr/local
ROOT=
UNINSTALL=0
PURGE=0

# Takes the value of an option that needs one.
need_value() {
  [[ $# -ge 2 && -n "$2" ]] || usage_error "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) need_value "$@"; BINARY=$2; shift 2 ;;
    --binary=*) BINARY=${1#*=}; shift ;;
    --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --root) need_value "$@"; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#*=}; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

if (( PURGE && ! UNINSTALL )); then
  usage_error "--purge only goes with --uninstall (it removes settings and backups)"
fi
if (( UNINSTALL )) && [[ -n "$BINARY" ]]; then
  usage_error "--binary makes no sense with --uninstall"
fi

# The prefix ends up in the unit's ExecStart=, where spaces, quotes, `%`,
# `$` and `\` mean something: allow plain absolute paths only.
PREFIX=${PREFIX%/}
[[ -n "$PREFIX" ]] || PREFIX=/
if [[ "$PREFIX" != /* || ! "$PREFIX" =~ ^[A-Za-z0-9/._+-]+$ || "$PREFIX" =~ (^|/)\.\.?(/|$) ]]; then
  fail "--prefix must be an absolute path of letters, digits and / . _ + - (got '$PREFIX')" \
    "e.g. --prefix /usr/local (the default) or --prefix /opt/arca"
fi
INSTALLED_BINARY=${PREFIX%/}/bin/arca

if [[ -n "$ROOT" ]]; then
  [[ -d "$ROOT" ]] || fail "--root $ROOT is not a directory" "create it first, e.g. mkdir -p '$ROOT'"
  ROOT=$(cd "$ROOT" && pwd -P)
  # It is written into sed expressions and a unit file below: plain paths only.
  [[ "$ROOT" =~ ^[A-Za-z0-9/._+-]+$ ]] ||
    fail "--root must be a path of letters, digits and / . _ + - (got '$ROOT')"
  [[ "$ROOT" != / ]] || ROOT=
fi
STAGED=$([[ -n "$ROOT" ]] && echo 1 || echo 0)

if (( ! STAGED && EUID != 0 )); then
  fail "this must run as root: it writes $PREFIX/bin, $CONFIG_DIR, $STATE_DIR and $UNIT_DIR and creates the '$SERVICE_USER' user" \
    "run: sudo $0${ARGUMENTS:+ $ARGUMENTS}" \
    "or stage the files somewhere else without root: $0 --root DIR"
fi

# Is this machine run by systemd (sd_booted(3): /run/systemd/system exists)?
# Never under --root: the staged files are not this machine's.
systemd_running() {
  (( ! STAGED )) && [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1
}

# ---------------------------------------------------------------- uninstall
if (( UNINSTALL )); then
  if systemd_running; then
    if systemctl cat "$UNIT_NAME" >/dev/null 2>&1; then
      log "stopping and disabling $UNIT_NAME (a running backup is cancelled cleanly)"
      systemctl disable --now "$UNIT_NAME"
    fi
  elif (( ! STAGED )); then
    log "systemd is not running here: nothing to stop"
  fi
  for file in "$ROOT$INSTALLED_BINARY" "$ROOT$UNIT_DIR/$UNIT_NAME"; do
    if [[ -e "$file" || -L "$file" ]]; then
      rm -f -- "$file"
      log "removed $file"
    fi
  done
  if [[ -d "$ROOT$UNIT_DIR/$UNIT_NAME.d" ]]; then
    log "kept your drop-ins in $ROOT$UNIT_DIR/$UNIT_NAME.d (remove them by hand if you no longer want them)"
  fi
  if systemd_running; then
    systemctl daemon-reload
    systemctl reset-failed "$UNIT_NAME" >/dev/null 2>&1 || true
  fi
  if (( PURGE )); then
    rm -rf -- "$ROOT$CONFIG_DIR" "$ROOT$STATE_DIR"
    log "purged $ROOT$CONFIG_DIR (settings) and $ROOT$STATE_DIR (repository: local backups, audit log)"
    if (( ! STAGED )) && getent passwd "$SERVICE_USER" >/dev/null; then
      userdel "$SERVICE_USER"
      log "removed the user $SERVICE_USER"
    fi
    if (( ! STAGED )) && getent group "$SERVICE_USER" >/dev/null; then
      groupdel "$SERVICE_USER"
    fi
  else
    log "kept $ROOT$CONFIG_DIR (settings, secrets) and $ROOT$STATE_DIR (local backups, audit log)" \
      "and the '$SERVICE_USER' user; '$0 --uninstall --purge' removes them too"
  fi
  log "uninstalled"
  exit 0
fi

# ------------------------------------------------------------------ install
for template in "$UNIT_TEMPLATE" "$ENV_TEMPLATE"; do
  [[ -f "$template" ]] || fail "$template is missing" "run this script from a complete Arca checkout"
done
grep -q "^ExecStart=$UNIT_BINARY start " "$UNIT_TEMPLATE" ||
  fail "$UNIT_TEMPLATE has no 'ExecStart=$UNIT_BINARY start ...' line to point at the installed binary"

# The binary: the one given, or a release build of this checkout.
if [[ -z "$BINARY" ]]; then
  if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    PATH=/opt/swift/usr/bin:$PATH
  fi
  command -v swift >/dev/null 2>&1 ||
    fail "no --binary given and swift is not on PATH to build one" \
      "build elsewhere with 'swift build -c release --product arca' and pass --binary PATH"
  log "building arca (swift build -c release --product arca; minutes the first time)"
  (cd "$REPO_ROOT" && swift build -c release --product arca) ||
    fail "the release build failed (see above)" "fix it, or pass an already built binary with --binary PATH"
  BINARY=$(cd "$REPO_ROOT" && swift build -c release --show-bin-path)/arca
fi
[[ -f "$BINARY" && -x "$BINARY" ]] || fail "$BINARY is not an executable file" "pass the arca binary with --binary PATH"
# It must be arca and run on this machine (the right architecture, its
# libraries present): `arca --version` prints a version and nothing else.
VERSION=$("$BINARY" --version 2>/dev/null </dev/null) || VERSION=
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][A-Za-z0-9.+-]*)?$ ]] ||
  fail "$BINARY --version did not print a version: is it the arca binary, built for this machine?" \
    "check with: $BINARY --version (missing libraries: ldd $BINARY)"

# The user and group, once. A system user without a login shell; its home
# is the repository, which is also where libpq looks for .pgpass.
if (( STAGED )); then
  log "--root: not creating the '$SERVICE_USER' user and not changing ownership (files belong to $(id -un))"
elif ! getent passwd "$SERVICE_USER" >/dev/null; then
  getent group "$SERVICE_USER" >/dev/null || groupadd --system "$SERVICE_USER"
  useradd --system --gid "$SERVICE_USER" --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "Arca PostgreSQL backups" "$SERVICE_USER"
  log "created the system user $SERVICE_USER"
fi

# install_file MODE OWNER:GROUP SOURCE TARGET: copies SOURCE next to TARGET,
# then renames it over TARGET (atomic: a running binary keeps its old inode).
install_file() {
  local mode=$1 owner=$2 source=$3 target=$4 temporary
  mkdir -p -- "$(dirname "$target")"
  temporary=$(mktemp "$(dirname "$target")/.$(basename "$target").XXXXXX")
  if ! cp -- "$source" "$temporary" || ! chmod "$mode" "$temporary" ||
    { (( ! STAGED )) && ! chown "$owner" "$temporary"; } || ! mv -f -- "$temporary" "$target"; then
    rm -f -- "$temporary"
    fail "could not write $target"
  fi
}

# Who can read the settings, for the messages.
ENV_ACCESS=$( (( STAGED )) && echo "0600" || echo "0600, root only")

# make_dir MODE OWNER:GROUP DIR: creates DIR or corrects its mode and owner.
make_dir() {
  local mode=$1 owner=$2 directory=$3
  # chmod and chown follow a symbolic link: make sure there is none.
  [[ ! -L "$directory" ]] || fail "$directory is a symbolic link" "make it a plain directory (or move it away) and run this again"
  mkdir -p -- "$directory"
  chmod "$mode" "$directory"
  (( STAGED )) || chown "$owner" "$directory"
}

# 1. the binary
install_file 0755 root:root "$BINARY" "$ROOT$INSTALLED_BINARY"
log "installed arca $VERSION as $ROOT$INSTALLED_BINARY"

# 3. the repository. Not recursive: an existing repository's files keep
# their owner (arca's own files stay arca's).
make_dir 0700 "$SERVICE_USER:$SERVICE_USER" "$ROOT$STATE_DIR"
log "repository $ROOT$STATE_DIR ($( (( STAGED )) || printf '%s, ' "$SERVICE_USER:$SERVICE_USER")0700)"

# 4. the settings. /etc/arca is group arca so that a key file kept there
# (ARCA_KEY_FILE, owned by arca, 0600) can be reached by the service.
make_dir 0750 "root:$SERVICE_USER" "$ROOT$CONFIG_DIR"
if [[ -e "$ROOT$ENV_FILE" || -L "$ROOT$ENV_FILE" ]]; then
  [[ -f "$ROOT$ENV_FILE" && ! -L "$ROOT$ENV_FILE" ]] ||
    fail "$ROOT$ENV_FILE exists but is not a regular file" "move it away and run this again"
  # Never rewritten, but never left readable by others either.
  chmod 0600 "$ROOT$ENV_FILE"
  (( STAGED )) || chown root:root "$ROOT$ENV_FILE"
  log "kept your settings in $ROOT$ENV_FILE ($ENV_ACCESS)"
  FIRST_INSTALL=0
else
  (umask 077 && install_file 0600 root:root "$ENV_TEMPLATE" "$ROOT$ENV_FILE")
  log "wrote $ROOT$ENV_FILE from deploy/arca.env.example ($ENV_ACCESS): set DATABASE_URL there"
  FIRST_INSTALL=1
fi

# 5. the unit, pointing at the installed binary.
WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT
sed "s#^ExecStart=$UNIT_BINARY #ExecStart=$INSTALLED_BINARY #" "$UNIT_TEMPLATE" >"$WORK/$UNIT_NAME"
install_file 0644 root:root "$WORK/$UNIT_NAME" "$ROOT$UNIT_DIR/$UNIT_NAME"
log "installed the unit $ROOT$UNIT_DIR/$UNIT_NAME (ExecStart=$INSTALLED_BINARY start)"

# `systemd-analyze verify` checks the unit's syntax and that ExecStart's
# program exists: under --root, on a copy naming the staged binary.
if command -v systemd-analyze >/dev/null 2>&1; then
  if (( STAGED )); then
    mkdir "$WORK/check"
    sed "s#^ExecStart=$INSTALLED_BINARY #ExecStart=$ROOT$INSTALLED_BINARY #" "$ROOT$UNIT_DIR/$UNIT_NAME" >"$WORK/check/$UNIT_NAME"
    UNIT_TO_CHECK=$WORK/check/$UNIT_NAME
  else
    UNIT_TO_CHECK=$UNIT_DIR/$UNIT_NAME
  fi
  # It also loads the units this one refers to (network-online.target,
  # postgresql.service, ...): what it says about those is shown, not fatal.
  VERIFY_STATUS=0
  VERIFY_OUTPUT=$(systemd-analyze verify "$UNIT_TO_CHECK" 2>&1) || VERIFY_STATUS=$?
  if (( VERIFY_STATUS != 0 )) || grep -qF "$UNIT_NAME" <<<"$VERIFY_OUTPUT"; then
    printf '%s\n' "$VERIFY_OUTPUT" >&2
    fail "systemd-analyze verify found problems in $ROOT$UNIT_DIR/$UNIT_NAME (above)" \
      "a drop-in (systemctl edit arca) may be at fault; deploy/arca.service itself is checked by the test suite"
  fi
  if [[ -n "$VERIFY_OUTPUT" ]]; then
    printf '%s\n' "$VERIFY_OUTPUT" | sed 's/^/install: systemd-analyze verify (other units, not fatal): /' >&2
  fi
  log "systemd-analyze verify: the unit is valid"
else
  log "systemd-analyze not found: the unit was not verified"
fi

# 6. systemd
if systemd_running; then
  systemctl daemon-reload
  if systemctl is-active --quiet "$UNIT_NAME"; then
    log "restarting $UNIT_NAME to run the new binary (a running backup is cancelled cleanly and runs again at start-up)"
    systemctl restart "$UNIT_NAME"
  elif (( FIRST_INSTALL )); then
    log "next: set DATABASE_URL (and the rest) in $ENV_FILE, then: systemctl enable --now arca"
  else
    log "$UNIT_NAME is not running; start it with: systemctl enable --now arca"
  fi
elif (( STAGED )); then
  log "staged under $ROOT; on the target host: systemctl daemon-reload && systemctl enable --now arca"
else
  log "systemd is not running on this machine (not PID 1): the files are installed, nothing was started."
  log "on a systemd host, after setting DATABASE_URL in $ENV_FILE, run: systemctl daemon-reload && systemctl enable --now arca"
fi
log "logs: journalctl -u arca"
