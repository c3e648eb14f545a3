#!/usr/bin/env bash
# Prepares a real NetBox for nbtoken's tests, once per machine, and reuses it afterwards:
#   a virtualenv with NetBox (from PyPI) and gunicorn, a configuration that reads each
#   instance's database, Redis port and peppers from the environment, and a PostgreSQL
#   template database migrated once. Each test run copies the template (createdb -T).
#
#   scripts/netbox.sh prepare    # idempotent; prints the directory to export as NBTOKEN_TEST_NETBOX
#   scripts/netbox.sh reset      # drops the template and the virtualenv, so the next prepare rebuilds them
#
# Environment: NBTOKEN_TEST_CACHE (default ~/.cache/nbtoken-test), NBTOKEN_TEST_NETBOX_TEMPLATE
# (the template database's name), NBTOKEN_TEST_PG_URL
# (default postgres://postgres@127.0.0.1:5432/postgres). Progress goes to stderr, the
# directory alone to stdout.
set -euo pipefail

NETBOX_VERSION="${NBTOKEN_TEST_NETBOX_VERSION:-4.7.3}"
CACHE="${NBTOKEN_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nbtoken-test}"
ROOT="$CACHE/netbox-$NETBOX_VERSION"
PG_URL="${NBTOKEN_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
TEMPLATE="${NBTOKEN_TEST_NETBOX_TEMPLATE:-nbtoken_netbox_tpl_${NETBOX_VERSION//./_}}"

say() { printf 'netbox: %s\n' "$*" >&2; }
die() { printf 'netbox: error: %s\n' "$*" >&2; exit 1; }

# A Python >= 3.12 (NetBox's floor): PATH first, then pyenv's installed versions.
find_python() {
  local c v
  for c in python3.14 python3.13 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.[0-9]+)?$' | sort -V -r); do
      c="$(pyenv root)/versions/$v/bin/python3"
      if [ -x "$c" ] && "$c" -c 'import venv, ensurepip' 2>/dev/null; then echo "$c"; return 0; fi
    done
  fi
  return 1
}

psql_q() { PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL" -v ON_ERROR_STOP=1 -tAq "$@"; }

write_configuration() {
  mkdir -p "$ROOT/conf"
  : > "$ROOT/conf/__init__.py"
  cat > "$ROOT/conf/configuration.py" <<'PY'
# Written by nbtoken's scripts/netbox.sh: one configuration for every test instance;
# each instance gets its database, Redis and peppers from the environment.
import json
import os

ALLOWED_HOSTS = ['*']
DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.postgresql',
        'NAME': os.environ['NBT_NETBOX_DB'],
        'USER': os.environ.get('NBT_NETBOX_DB_USER', 'postgres'),
        'PASSWORD': '',
        'HOST': os.environ.get('NBT_NETBOX_DB_HOST', '127.0.0.1'),
        'PORT': os.environ.get('NBT_NETBOX_DB_PORT', '5432'),
        'CONN_MAX_AGE': 300,
    }
}
_redis = {
    'HOST': '127.0.0.1',
    'PORT': int(os.environ.get('NBT_NETBOX_REDIS_PORT', '6379')),
    'USERNAME': '',
    'PASSWORD': '',
    'SSL': False,
}
REDIS = {
    'tasks': dict(_redis, DATABASE=int(os.environ.get('NBT_NETBOX_REDIS_DB', '0'))),
    'caching': dict(_redis, DATABASE=int(os.environ.get('NBT_NETBOX_REDIS_DB', '0')) + 1),
}
SECRET_KEY = os.environ.get('NBT_NETBOX_SECRET_KEY', 'nbtoken-test-secret-key-' + 'x' * 40)
API_TOKEN_PEPPERS = {int(k): v for k, v in json.loads(os.environ.get('NBT_NETBOX_PEPPERS', '{}')).items()}
# Tests talk to loopback only: nothing phones home.
CENSUS_REPORTING_ENABLED = False
ISOLATED_DEPLOYMENT = True
RELEASE_CHECK_URL = None
TIME_ZONE = 'UTC'
PY
}

prepare() {
  mkdir -p "$CACHE"
  command -v psql >/dev/null 2>&1 || die "psql is missing (apt-get install postgresql-client)"
  psql_q -c 'SELECT 1' >/dev/null 2>&1 || die "PostgreSQL is not reachable at $PG_URL"

  local venv="$ROOT/venv"
  if ! "$venv/bin/python" -c 'import netbox, gunicorn' >/dev/null 2>&1 \
     || [ "$("$venv/bin/netbox" version 2>/dev/null)" != "$NETBOX_VERSION" ]; then
    local py
    py="$(find_python)" || die "no Python >= 3.12 with venv found (PATH or pyenv); NetBox $NETBOX_VERSION needs one"
    say "installing NetBox $NETBOX_VERSION into $venv with $($py --version 2>&1) (a few minutes, once)"
    rm -rf "$venv"
    "$py" -m venv "$venv" || die "cannot create a virtualenv with $py"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "netbox==$NETBOX_VERSION" gunicorn \
      || die "pip install netbox==$NETBOX_VERSION gunicorn failed"
  else
    say "NetBox $NETBOX_VERSION already installed in $venv"
  fi
  write_configuration

  # The template is complete only once its marker comment is set, after migrate finished.
  local done
  done="$(psql_q -c "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$TEMPLATE'" || true)"
  if [ "$done" != "migrated netbox $NETBOX_VERSION" ]; then
    say "migrating a template database $TEMPLATE (about 5-10 minutes on 2 cores, once per machine)"
    psql_q -c "DROP DATABASE IF EXISTS $TEMPLATE" >/dev/null
    psql_q -c "CREATE DATABASE $TEMPLATE" >/dev/null
    local redis_port log="$ROOT/migrate.log"
    if ! NETBOX_ROOT="$ROOT" NBT_NETBOX_DB="$TEMPLATE" NBT_NETBOX_PEPPERS='{}' \
        "$venv/bin/netbox" migrate --no-input >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      die "netbox migrate failed (full log: $log)"
    fi
    psql_q -c "COMMENT ON DATABASE $TEMPLATE IS 'migrated netbox $NETBOX_VERSION'" >/dev/null
    say "template $TEMPLATE ready"
  else
    say "template database $TEMPLATE already migrated"
  fi
  printf '%s\n' "$TEMPLATE" > "$ROOT/template"
  printf '%s\n' "$ROOT"
}

reset() {
  psql_q -c "DROP DATABASE IF EXISTS $TEMPLATE" >/dev/null || true
  rm -rf "$ROOT"
  say "removed $ROOT and $TEMPLATE"
}

case "${1:-}" in
  prepare) prepare ;;
  reset) reset ;;
  *) echo "usage: $0 prepare|reset" >&2; exit 2 ;;
esac
