#!/usr/bin/env bash
# Authenticated throughput through the real server, on SQLite and/or PostgreSQL, in one run.
#
#   bench/http.sh [sqlite|postgres|both]      (DURATION=10s CONNECTIONS=16 to change the load)
#
# Builds the profiling profile (release code, line tables), seeds a fresh store, starts `nbtoken serve`, and drives it with wrk
# (Debian package `wrk`) on loopback: /livez (no authentication, no database: the baseline),
# /healthz (no authentication, one database ping), /api/authentication-check/ with a valid
# v2 token (authentication, then the caller's user: from the cache, or one database read
# when it is not cached), /api/status/ with a valid v2 token (authentication and nothing
# else), and /api/status/ with a wrong secret and with a key no token has: as shipped
# (after 30 failures a minute the client gets 429) and again with the failure limiter off
# (every request looked up and verified).
# Prints markdown tables. Benchmarks are not tests: nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-both}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
PG_URL="${NBTOKEN_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --profile profiling -q -p nbtoken
BIN="$PWD/target/profiling/nbtoken"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

NBTOKEN_PEPPER_1="$("$BIN" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn

rps() { # url [header] -> requests per second
  local out
  if [ -n "${2:-}" ]; then
    out="$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "$2" "$1")"
  else
    out="$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$1")"
  fi
  local non2xx
  non2xx="$(printf '%s\n' "$out" | awk '/Non-2xx/ {print $5}')"
  printf '%s %s\n' "$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')" "${non2xx:-0}"
}

run_backend() { # name database-url
  local name="$1" db="$2" port
  export NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="$db"
  "$BIN" user create bench --superuser >/dev/null
  local json key secret
  json="$("$BIN" token create --user bench --json)"
  key="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
  secret="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$BIN" serve --bind "127.0.0.1:$port" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$WORK/$name.err" 2>/dev/null && break; sleep 0.1; done
  local base="http://127.0.0.1:$port"
  read -r live _ < <(rps "$base/livez")
  read -r health _ < <(rps "$base/healthz")
  read -r check check_bad < <(rps "$base/api/authentication-check/" "Authorization: Bearer nbt_$key.$secret")
  read -r valid valid_bad < <(rps "$base/api/status/" "Authorization: Bearer nbt_$key.$secret")
  local bad_secret="Authorization: Bearer nbt_$key.$(printf 'x%.0s' $(seq 1 40))"
  # A well-formed key that no token has: a cache miss and a store lookup every time.
  local unknown_key="Authorization: Bearer nbt_Zz9Unknown00.$secret"
  read -r wrong _ < <(rps "$base/api/status/" "$bad_secret")
  read -r unknown _ < <(rps "$base/api/status/" "$unknown_key")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  # The same with the failure limiter off: every request is looked up and verified.
  NBTOKEN_FAILURE_LIMIT_PER_IP=0 NBTOKEN_FAILURE_LIMIT_PER_KEY=0 \
    "$BIN" serve --bind "127.0.0.1:$port" >"$WORK/$name.out" 2>"$WORK/$name.err2" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$WORK/$name.err2" 2>/dev/null && break; sleep 0.1; done
  read -r wrong_off _ < <(rps "$base/api/status/" "$bad_secret")
  read -r unknown_off _ < <(rps "$base/api/status/" "$unknown_key")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  pct() { python3 -c "print(f'{$1/$2*100:.0f}%')"; }
  times() { python3 -c "print(f'{$1/$2:.2f}')"; }
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$live" "$health" "$check" "$(pct "$check" "$health")" \
    "$valid" "$(pct "$valid" "$live")" >> "$WORK/speed.md"
  printf '| %s | %s | %s (%s) | %s (%s) | %s (%s) | %s (%s) |\n' "$name" "$valid" \
    "$wrong" "$(times "$wrong" "$valid")" "$wrong_off" "$(times "$wrong_off" "$valid")" \
    "$unknown" "$(times "$unknown" "$valid")" "$unknown_off" "$(times "$unknown_off" "$valid")" >> "$WORK/bad.md"
  [ "$valid_bad" = "0" ] && [ "$check_bad" = "0" ] || echo "warning: non-2xx answers with the valid token" >&2
}

echo "| backend | /livez req/s | /healthz req/s | /api/authentication-check/ req/s | check / healthz | /api/status/ req/s | status / livez |" > "$WORK/speed.md"
echo "|---|---|---|---|---|---|---|" >> "$WORK/speed.md"
echo "| backend | valid token req/s | wrong secret req/s (× valid) | wrong secret, limiter off | unknown key | unknown key, limiter off |" > "$WORK/bad.md"
echo "|---|---|---|---|---|---|" >> "$WORK/bad.md"
if [ "$which" = sqlite ] || [ "$which" = both ]; then
  run_backend sqlite "sqlite://$WORK/sqlite/nbtoken.sqlite3"
fi
if [ "$which" = postgres ] || [ "$which" = both ]; then
  schema="nbtoken_bench_$$"
  psql "$PG_URL" -qc "CREATE SCHEMA $schema" >/dev/null
  run_backend postgres "$PG_URL?options[search_path]=$schema"
  psql "$PG_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
fi
echo "wrk -t1 -c$CONNECTIONS -d$DURATION on loopback; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Authenticated routes against unauthenticated ones (valid v2 token, row cached):"
echo
cat "$WORK/speed.md"
echo
echo "Bad tokens against valid ones (/api/status/; the failure limiter as shipped answers 429 after 30 failures a minute per client):"
echo
cat "$WORK/bad.md"
