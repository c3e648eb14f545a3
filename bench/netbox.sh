#!/usr/bin/env bash
# nbtoken on NetBox's database against NetBox itself, side by side in one run (issue 15).
#
#   bench/netbox.sh   (DURATION=10s CONNECTIONS=16 NETBOX_WORKERS=2 NETBOX_THREADS=4 NBTOKEN_BENCH_PG=postgres://…)
#
# Starts a real NetBox the way crates/nbtoken/tests/common/netbox.rs does (scripts/netbox.sh
# prepare's virtualenv and configuration under NBTOKEN_TEST_NETBOX, default
# ~/.cache/nbtoken-test/netbox-4.7.3; a database copied from its migrated template; a private
# Redis; gunicorn on loopback), makes a superuser with a v2 token in NetBox, and starts
# `nbtoken serve` with NBTOKEN_STORE=netbox on that same database with NetBox's pepper. Then,
# with wrk on loopback and the same token:
#   - NetBox's own /api/authentication-check/ (gunicorn, Django, its own token check);
#   - nbtoken's /auth/forward (what nginx's auth_request asks) and /api/authentication-check/;
# throughput at $CONNECTIONS connections, and p99 latency at 32 connections (wrk --latency).
# wrk, gunicorn and nbtoken share the machine's cores. Prints a markdown table.
# Benchmarks are not tests: nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
NETBOX_WORKERS="${NETBOX_WORKERS:-2}"
NETBOX_THREADS="${NETBOX_THREADS:-4}"
ROOT="${NBTOKEN_TEST_NETBOX:-$HOME/.cache/nbtoken-test/netbox-4.7.3}"
# The PostgreSQL server, without a database name.
PG_BASE="${NBTOKEN_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is needed (scripts/netbox.sh prepare)" >&2; exit 1; }
[ -f "$ROOT/template" ] || { echo "no prepared NetBox in $ROOT: run scripts/netbox.sh prepare" >&2; exit 1; }
cargo build --profile profiling -q -p nbtoken
BIN="$PWD/target/profiling/nbtoken"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PEPPER="netbox-bench-pepper-0123456789-0123456789-0123456789-01234"
DB="nbtoken_netbox_bench_$$"
ADMIN_DB="$PG_BASE/postgres"
WORK="$(mktemp -d)"
REDIS_PORT="$(free_port)"
NETBOX_PORT="$(free_port)"
NBTOKEN_PORT="$(free_port)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export NETBOX_ROOT="$ROOT" NBT_NETBOX_DB="$DB" NBT_NETBOX_REDIS_PORT="$REDIS_PORT"
export NBT_NETBOX_PEPPERS="{\"1\": \"$PEPPER\"}"
psql "$ADMIN_DB" -qc "CREATE DATABASE $DB TEMPLATE $(cat "$ROOT/template")" >/dev/null
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >/dev/null 2>&1 &
PIDS+=($!)
"$ROOT/venv/bin/gunicorn" --bind "127.0.0.1:$NETBOX_PORT" --workers "$NETBOX_WORKERS" \
  --threads "$NETBOX_THREADS" --timeout 120 netbox.wsgi:application >"$WORK/gunicorn.log" 2>&1 &
PIDS+=($!)
NETBOX="http://127.0.0.1:$NETBOX_PORT"
for _ in $(seq 1 480); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "$NETBOX/api/status/" || true)"
  [ "$code" = 200 ] || [ "$code" = 403 ] && break
  sleep 0.25
done
TOKEN="$("$ROOT/venv/bin/netbox" shell --no-imports -c "
from users.models import User, Token
u = User.objects.create_superuser('bench', 'bench@example.invalid', 'Bench-Password-0123456789')
t = Token(user=u, version=2, description='bench')
t.save()
print('TOKEN', 'nbt_' + t.key + '.' + t.token)" 2>/dev/null | awk '/^TOKEN / {print $2}')"
[ -n "$TOKEN" ] || { echo "could not make NetBox's token" >&2; cat "$WORK/gunicorn.log" >&2; exit 1; }
AUTH="Authorization: Bearer $TOKEN"

NBTOKEN_STORE=netbox NBTOKEN_DATABASE_URL="$PG_BASE/$DB" NBTOKEN_PEPPER_1="$PEPPER" NBTOKEN_LOG=warn \
  NBTOKEN_DATA_DIR="$WORK/data" "$BIN" serve --bind "127.0.0.1:$NBTOKEN_PORT" >"$WORK/nbtoken.out" 2>"$WORK/nbtoken.err" &
PIDS+=($!)
NBTOKEN="http://127.0.0.1:$NBTOKEN_PORT"
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/nbtoken.err" 2>/dev/null && break; sleep 0.1; done

for url in "$NETBOX/api/authentication-check/" "$NBTOKEN/auth/forward" "$NBTOKEN/api/authentication-check/"; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$url")"
  [ "$code" = 200 ] || { echo "$url answered $code with the token" >&2; exit 1; }
done

rps() { # url -> requests/s and non-2xx count
  local out
  out="$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "$AUTH" "$1")"
  printf '%s %s\n' "$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(printf '%s\n' "$out" | awk '/Non-2xx/ {print $5}' | grep . || echo 0)"
}
p99() { # url -> p99 latency at 32 connections, in ms
  wrk -t1 -c32 -d"$DURATION" --latency -H "$AUTH" "$1" | awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.2f\n", v }'
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
# A warm-up for each, so that NetBox's workers and nbtoken's cache are past their first request.
for url in "$NETBOX/api/authentication-check/" "$NBTOKEN/auth/forward" "$NBTOKEN/api/authentication-check/"; do
  wrk -t1 -c4 -d2s -H "$AUTH" "$url" >/dev/null
done
read -r nb_rps nb_bad < <(rps "$NETBOX/api/authentication-check/")
read -r fw_rps fw_bad < <(rps "$NBTOKEN/auth/forward")
read -r ck_rps ck_bad < <(rps "$NBTOKEN/api/authentication-check/")
nb_p99="$(p99 "$NETBOX/api/authentication-check/")"
fw_p99="$(p99 "$NBTOKEN/auth/forward")"
ck_p99="$(p99 "$NBTOKEN/api/authentication-check/")"
[ "$nb_bad$fw_bad$ck_bad" = 000 ] || echo "warning: non-2xx answers: NetBox $nb_bad, forward $fw_bad, check $ck_bad" >&2

x() { python3 -c "print(f'{$1/$2:,.0f}x')"; }
echo "NetBox $("$ROOT/venv/bin/netbox" version 2>/dev/null) (gunicorn --workers $NETBOX_WORKERS --threads $NETBOX_THREADS) and nbtoken (NBTOKEN_STORE=netbox) on one database;"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION (throughput), wrk -t1 -c32 -d$DURATION --latency (p99); $(nproc) cores shared by all; load average before the runs: $LOAD_BEFORE; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| endpoint (same v2 token) | req/s | × NetBox | p99 at 32 connections | NetBox p99 / this p99 |"
echo "|---|---:|---:|---:|---:|"
printf '| NetBox `/api/authentication-check/` | %s | 1x | %s ms | 1x |\n' "$nb_rps" "$nb_p99"
printf '| nbtoken `/auth/forward` | %s | %s | %s ms | %s |\n' "$fw_rps" "$(x "$fw_rps" "$nb_rps")" "$fw_p99" "$(x "$nb_p99" "$fw_p99")"
printf '| nbtoken `/api/authentication-check/` | %s | %s | %s ms | %s |\n' "$ck_rps" "$(x "$ck_rps" "$nb_rps")" "$ck_p99" "$(x "$nb_p99" "$ck_p99")"
