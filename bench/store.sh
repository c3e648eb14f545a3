#!/usr/bin/env bash
# Does store size matter, and are last_used writes bounded? One run, both backends.
#
#   bench/store.sh [sqlite|postgres|both]     (DURATION=10s SMALL=1000 LARGE=1000000 SUSTAIN=70s)
#
# 1. Seeds SMALL, then LARGE tokens (bulk SQL; one real token among them) and measures
#    authenticated req/s with the row cache off (NBTOKEN_CACHE_TTL=0), so every request
#    goes to the store: the lookup by key must not slow down with the table.
# 2. Runs sustained load on one token for SUSTAIN (default 70 s) with the normal cache and
#    counts the UPDATEs the store saw on users_token (PostgreSQL: pg_stat_user_tables;
#    SQLite: changes to last_used observed by polling). Expected: at most one per minute.
# Prints markdown tables. Benchmarks are not tests: nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-both}"
DURATION="${DURATION:-10s}"
SMALL="${SMALL:-1000}"
LARGE="${LARGE:-1000000}"
SUSTAIN="${SUSTAIN:-70s}"
PG_URL="${NBTOKEN_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p nbtoken
BIN="$PWD/target/release/nbtoken"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
NBTOKEN_PEPPER_1="$("$BIN" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn

start_server() { # -> sets SERVER_PID, BASE
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$BIN" serve --bind "127.0.0.1:$port" 2>"$WORK/err" >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$WORK/err" 2>/dev/null && break; sleep 0.1; done
  BASE="http://127.0.0.1:$port"
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
rps() { wrk -t1 -c16 -d"$1" -H "$2" "$3" | awk '/Requests\/sec/ {print $2}'; }

seed() { # backend count
  local n="$2"
  if [ "$1" = sqlite ]; then
    sqlite3 "$DB_FILE" "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $n)
      INSERT INTO users_token (version, key, pepper_id, hmac_digest, user_id, description, created, enabled, write_enabled)
      SELECT 2, printf('%012d', i + (SELECT COUNT(*) FROM users_token) * 7919), 1,
             lower(hex(randomblob(32))), 1, 'seed', '2026-01-01T00:00:00.000000Z', 1, 1 FROM s;"
  else
    psql "$PG_URL" -qc "SET search_path = $SCHEMA;
      INSERT INTO users_token (version, key, pepper_id, hmac_digest, user_id, description, created, enabled, write_enabled)
      SELECT 2, lpad((i + (SELECT COUNT(*) FROM users_token) * 7919)::text, 12, '0'), 1,
             md5(i::text) || md5((i * 31)::text), 1, 'seed', now(), true, true
      FROM generate_series(1, $n) AS i;" >/dev/null
  fi
}

count_tokens() {
  if [ "$1" = sqlite ]; then sqlite3 "$DB_FILE" "SELECT COUNT(*) FROM users_token"
  else psql "$PG_URL" -tAc "SELECT COUNT(*) FROM $SCHEMA.users_token"; fi
}

run_backend() {
  local name="$1"
  export NBTOKEN_DATA_DIR="$WORK/$name"
  if [ "$name" = sqlite ]; then
    DB_FILE="$WORK/$name/nbtoken.sqlite3"
    export NBTOKEN_DATABASE_URL="sqlite://$DB_FILE"
  else
    SCHEMA="nbtoken_bench_store_$$"
    psql "$PG_URL" -qc "CREATE SCHEMA $SCHEMA" >/dev/null
    export NBTOKEN_DATABASE_URL="$PG_URL?options[search_path]=$SCHEMA"
  fi
  "$BIN" user create bench --superuser >/dev/null
  local json header
  json="$("$BIN" token create --user bench --json)"
  header="Authorization: Bearer nbt_$(printf '%s' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["key"] + "." + d["token"])')"

  seed "$name" $((SMALL - 1))
  export NBTOKEN_CACHE_TTL=0
  start_server; local small_n small; small_n="$(count_tokens "$name")"; small="$(rps "$DURATION" "$header" "$BASE/api/status/")"; stop_server
  seed "$name" $((LARGE - small_n))
  start_server; local large_n large; large_n="$(count_tokens "$name")"; large="$(rps "$DURATION" "$header" "$BASE/api/status/")"; stop_server
  unset NBTOKEN_CACHE_TTL
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$small_n" "$small" "$large_n" "$large" \
    "$(python3 -c "print(f'{($large/$small - 1)*100:+.1f}%')")" >> "$WORK/size.md"

  # Sustained load on one token: count the writes.
  start_server
  local before after
  if [ "$name" = postgres ]; then
    before="$(psql "$PG_URL" -tAc "SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = '$SCHEMA' AND relname = 'users_token'")"
    rps "$SUSTAIN" "$header" "$BASE/api/status/" > "$WORK/sustain_rps"
    sleep 2
    after="$(psql "$PG_URL" -tAc "SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = '$SCHEMA' AND relname = 'users_token'")"
    local writes=$((after - before))
  else
    # SQLite keeps no statistics: poll last_used and count how often it changes.
    local writes=0 prev="" cur
    wrk -t1 -c16 -d"$SUSTAIN" -H "$header" "$BASE/api/status/" | awk '/Requests\/sec/ {print $2}' > "$WORK/sustain_rps" &
    local wrk_pid=$!
    while kill -0 "$wrk_pid" 2>/dev/null; do
      cur="$(sqlite3 "$DB_FILE" "SELECT last_used FROM users_token WHERE description <> 'seed' LIMIT 1" 2>/dev/null || true)"
      if [ -n "$cur" ] && [ "$cur" != "$prev" ]; then writes=$((writes + 1)); prev="$cur"; fi
      sleep 0.2
    done
  fi
  stop_server
  printf '| %s | %s | %s | %s |\n' "$name" "$SUSTAIN" "$(cat "$WORK/sustain_rps")" "$writes" >> "$WORK/writes.md"
  if [ "$name" = postgres ]; then psql "$PG_URL" -qc "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1; fi
}

echo "| backend | tokens | req/s (cache off) | tokens | req/s (cache off) | change |" > "$WORK/size.md"
echo "|---|---|---|---|---|---|" >> "$WORK/size.md"
echo "| backend | sustained load | req/s | last_used writes seen |" > "$WORK/writes.md"
echo "|---|---|---|---|" >> "$WORK/writes.md"
[ "$which" = postgres ] || run_backend sqlite
[ "$which" = sqlite ] || run_backend postgres
echo "wrk -t1 -c16 on loopback; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo; cat "$WORK/size.md"; echo; cat "$WORK/writes.md"
