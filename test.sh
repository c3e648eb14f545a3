#!/usr/bin/env bash
# nbtoken's whole test suite, with everything it needs set up first:
#   ./test.sh                 # install what is missing, start services, prepare NetBox, run every test
#   ./test.sh -p nbtoken-core # extra arguments go to `cargo test` (the set-up still runs)
#   ./test.sh --setup-only    # only the set-up
#
# Safe to run again and again: it installs only what is missing (Debian packages, the NetBox
# virtualenv and its migrated template database are reused), and every step prints what it does.
# Environment:
#   NBTOKEN_TEST_DATABASE_URL  PostgreSQL for the PostgreSQL variants (default postgres://postgres@127.0.0.1:5432/test)
#   NBTOKEN_TEST_CACHE         where NetBox is installed once (default ~/.cache/nbtoken-test)
#   NBTOKEN_TEST_SKIP_NETBOX=1 do not prepare NetBox (its tests then print a skip, or fail under CI=1)
#   NBTOKEN_TEST_TIME_LIMIT    how long `cargo test` may run, build included, before it is stopped (default 45m)
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\ntest.sh: error: %s\n' "$*" >&2; exit 1; }
SECONDS=0
setup_only=
if [ "${1:-}" = --setup-only ]; then setup_only=1; shift; fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    die "need root (or sudo) to run: $*"
  fi
}

step "system packages (Debian)"
# command → package. Each is what a suite runs for real: curl and nginx (forward-auth, TLS),
# Caddy and HAProxy (forward-auth), psql and redis-server (NetBox), openssl (certificates),
# python3-venv (pynetbox and NetBox virtualenvs), systemd-analyze and groff (the packaged unit
# and the man page), chromium and chromedriver (the web UI's browser tests, with a font so
# their screenshots have text).
declare -A want=(
  [curl]=curl [nginx]=nginx-light [caddy]=caddy [haproxy]=haproxy [psql]=postgresql-client
  [redis-server]=redis-server [openssl]=openssl
  [systemd-analyze]=systemd [groff]=groff-base [chromium]=chromium [chromedriver]=chromium-driver
)
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${want[$cmd]}")
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
[ -d /usr/share/fonts/truetype/liberation ] || missing+=(fonts-liberation)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  as_root apt-get update -qq || die "apt-get update failed (are Debian's package mirrors reachable?)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  # Debian starts some of these as services; the tests run their own on free ports.
  for svc in nginx caddy haproxy; do
    command -v systemctl >/dev/null 2>&1 && as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
    pkill -x "$svc" >/dev/null 2>&1 || true
  done
else
  echo "all present" >&2
fi

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing the PostgreSQL server" >&2
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
      || die "cannot install PostgreSQL"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || die "PostgreSQL did not come up on 127.0.0.1:5432"
psql -h 127.0.0.1 -U postgres -tAc 'SELECT 1' >/dev/null 2>&1 \
  || die "cannot connect to PostgreSQL as postgres on 127.0.0.1:5432 (the tests expect trust auth there)"
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || createdb -h 127.0.0.1 -U postgres test || die "cannot create the database 'test'"
export NBTOKEN_TEST_DATABASE_URL="${NBTOKEN_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
echo "ok: $NBTOKEN_TEST_DATABASE_URL" >&2

step "Redis on 127.0.0.1:6379"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null \
    || die "cannot start redis-server on 127.0.0.1:6379"
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || die "Redis did not come up on 127.0.0.1:6379"
export NBTOKEN_TEST_REDIS_URL="${NBTOKEN_TEST_REDIS_URL:-redis://127.0.0.1:6379/}"
echo "ok" >&2

if [ "${NBTOKEN_TEST_SKIP_NETBOX:-}" != 1 ]; then
  step "NetBox (installed and migrated once per machine, reused after)"
  NBTOKEN_TEST_NETBOX="$(scripts/netbox.sh prepare)" || die "NetBox could not be prepared (see above)"
  export NBTOKEN_TEST_NETBOX
fi

if [ -n "$setup_only" ]; then echo "test.sh: set-up done in ${SECONDS}s" >&2; exit 0; fi

step "cargo test --workspace $*"
# The whole suite takes minutes; a test that hangs must fail the run, not hold CI to its limit.
limit="${NBTOKEN_TEST_TIME_LIMIT:-45m}"
status=0
timeout --signal=TERM --kill-after=30s "$limit" cargo test --workspace "$@" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  die "cargo test ran past $limit: a test hangs (cargo printed 'has been running for over 60 seconds' for it above)"
fi
[ "$status" -eq 0 ] || exit "$status"
echo "test.sh: all suites passed in ${SECONDS}s" >&2
