#!/usr/bin/env bash
# Does store size matter, and are last_used writes bounded? One run, both backends.
#
#   bench/store.sh [sqlite|postgres|both]
#       DURATION=10s ROUNDS=3 SMALL=1000 LARGE=1000000 SUSTAIN=125s CONNECTIONS=16
#
# 1. Store size. Seeds two stores per backend, one with SMALL tokens and one with LARGE
#    (bulk SQL; one real token in each, the rest random digests under other keys), settles
#    them (SQLite: checkpoint and ANALYZE; PostgreSQL: VACUUM ANALYZE and CHECKPOINT), then
#    measures authenticated req/s on each in turn, ROUNDS times, alternating small and large
#    so that drift on a shared machine hits both alike, and reports the median of the rounds.
#    Twice: with the row cache as shipped, and with it off (NBTOKEN_CACHE_TTL=0), where every
#    request reads the token row from the store by its key.
# 2. Writes. Installs a trigger that logs every UPDATE of users_token.last_used with its time,
#    drives one instance with sustained load on one token for SUSTAIN (cache as shipped), and
#    reports the writes the store saw, the shortest gap between two of them, and the
#    instance's own count (nbtoken_last_used_writes_total on /metrics).
# Prints markdown tables. Benchmarks are not tests: nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-both}"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
SMALL="${SMALL:-1000}"
LARGE="${LARGE:-1000000}"
SUSTAIN="${SUSTAIN:-125s}"
CONNECTIONS="${CONNECTIONS:-16}"
PG_URL="${NBTOKEN_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
case "$which" in sqlite|postgres|both) ;; *) echo "usage: bench/store.sh [sqlite|postgres|both]" >&2; exit 2;; esac
for tool in wrk python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (Debian package: $tool)" >&2; exit 1; }
done
[ "$which" = postgres ] || command -v sqlite3 >/dev/null || { echo "sqlite3 is needed: apt-get install -y sqlite3" >&2; exit 1; }
[ "$which" = sqlite ] || command -v psql >/dev/null || { echo "psql is needed: apt-get install -y postgresql-client" >&2; exit 1; }

cargo build --profile profiling -q -p nbtoken
BIN="$PWD/target/profiling/nbtoken"
WORK="$(mktemp -d)"
SERVER_PID=""
SCHEMAS=()
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  for s in "${SCHEMAS[@]}"; do psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
NBTOKEN_PEPPER_1="$("$BIN" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn

# --- one store: $1 = backend, $2 = name; sets DB_URL (and DB_FILE or SCHEMA) ----------------
use_store() {
  if [ "$1" = sqlite ]; then
    DB_FILE="$WORK/$2/nbtoken.sqlite3"
    DB_URL="sqlite://$DB_FILE"
  else
    SCHEMA="nbtoken_bench_${2/-/_}_$$"
    DB_URL="$PG_URL?options[search_path]=$SCHEMA"
  fi
}
sql() { # backend statement...
  if [ "$1" = sqlite ]; then sqlite3 "$DB_FILE" "$2"
  else psql "$PG_URL" -qtAX -v ON_ERROR_STOP=1 -c "SET search_path = $SCHEMA" -c "$2"; fi
}

# Creates the store with a user, one real token (its header goes to $WORK/$name.header) and
# $count - 1 more tokens in bulk, then settles it.
make_store() { # backend name count
  local backend="$1" name="$2" count="$3"
  use_store "$backend" "$name"
  mkdir -p "$WORK/$name"
  if [ "$backend" = postgres ]; then
    psql "$PG_URL" -qc "CREATE SCHEMA $SCHEMA" >/dev/null
    SCHEMAS+=("$SCHEMA")
  fi
  NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="$DB_URL" "$BIN" user create bench --superuser >/dev/null
  NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="$DB_URL" "$BIN" token create --user bench --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("Authorization: Bearer nbt_" + d["key"] + "." + d["token"])' \
    > "$WORK/$name.header"
  local n=$((count - 1))
  if [ "$backend" = sqlite ]; then
    sql sqlite "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $n)
      INSERT INTO users_token (version, key, pepper_id, hmac_digest, user_id, description, created, enabled, write_enabled)
      SELECT 2, printf('seed%08d', i), 1, lower(hex(randomblob(32))), 1, 'seed', '2026-01-01T00:00:00.000000Z', 1, 1
      FROM s;" >/dev/null
    sql sqlite "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;" >/dev/null
  else
    sql postgres "INSERT INTO users_token (version, key, pepper_id, hmac_digest, user_id, description, created, enabled, write_enabled)
      SELECT 2, 'seed' || lpad(i::text, 8, '0'), 1, md5(i::text) || md5((i * 31)::text), 1, 'seed', now(), true, true
      FROM generate_series(1, $n) AS i;" >/dev/null
    sql postgres "VACUUM ANALYZE users_token" >/dev/null
    psql "$PG_URL" -qc "CHECKPOINT" >/dev/null
  fi
  sync
  sql "$backend" "SELECT COUNT(*) FROM users_token" > "$WORK/$name.count"
}

start_server() { # name [extra env...]
  local name="$1" port; shift
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  env "$@" NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="$DB_URL" \
    "$BIN" serve --bind "127.0.0.1:$port" 2>"$WORK/server.err" >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$WORK/server.err" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$WORK/server.err" || { cat "$WORK/server.err" >&2; exit 1; }
  BASE="http://127.0.0.1:$port"
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

# wrk against /api/status/ with the token in $WORK/<header>.header: prints "req/s requests non-2xx".
load() { # duration header
  local out
  out="$(wrk -t1 -c"$CONNECTIONS" -d"$1" -H "$(cat "$WORK/$2.header")" "$BASE/api/status/")"
  printf '%s %s %s\n' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '/requests in/ {print $1}' <<<"$out")" "$(awk '/Non-2xx/ {print $5}' <<<"$out" | grep . || echo 0)"
}
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.0f}")' "$@"; }

size_rows() { # backend
  local backend="$1" small="$1-small" large="$1-large"
  make_store "$backend" "$small" "$SMALL"
  make_store "$backend" "$large" "$LARGE"
  local mode ttl
  for mode in "cache as shipped" "cache off"; do
    ttl=(); [ "$mode" = "cache off" ] && ttl=(NBTOKEN_CACHE_TTL=0)
    local s_runs=() l_runs=() r rps _n bad
    for r in $(seq 1 "$ROUNDS"); do
      for which_store in "$small" "$large"; do
        use_store "$backend" "$which_store"
        start_server "$which_store" "${ttl[@]}"
        read -r rps _n bad < <(load "$DURATION" "$which_store")
        stop_server
        [ "$bad" = 0 ] || echo "warning: $bad non-2xx answers on $which_store" >&2
        if [ "$which_store" = "$small" ]; then s_runs+=("$rps"); else l_runs+=("$rps"); fi
      done
    done
    local sm lm
    sm="$(median "${s_runs[@]}")"; lm="$(median "${l_runs[@]}")"
    printf '| %s | %s | %s | %s (%s) | %s | %s (%s) | %s |\n' "$backend" "$mode" \
      "$(cat "$WORK/$small.count")" "$sm" "${s_runs[*]}" "$(cat "$WORK/$large.count")" "$lm" "${l_runs[*]}" \
      "$(python3 -c "print(f'{($lm/$sm - 1)*100:+.1f}%')")" >> "$WORK/size.md"
  done
}

write_rows() { # backend
  local backend="$1" name="$1-small"
  use_store "$backend" "$name"
  if [ "$backend" = sqlite ]; then
    sql sqlite "CREATE TABLE bench_writes (at REAL NOT NULL);
      CREATE TRIGGER bench_count_writes AFTER UPDATE OF last_used ON users_token
      BEGIN INSERT INTO bench_writes VALUES ((julianday('now') - 2440587.5) * 86400.0); END;"
  else
    sql postgres "CREATE TABLE bench_writes (at double precision NOT NULL);
      CREATE FUNCTION bench_count_write() RETURNS trigger LANGUAGE plpgsql AS \$\$
        BEGIN INSERT INTO bench_writes VALUES (extract(epoch FROM clock_timestamp())); RETURN NULL; END \$\$;
      CREATE TRIGGER bench_count_writes AFTER UPDATE OF last_used ON users_token
        FOR EACH ROW EXECUTE FUNCTION bench_count_write();" >/dev/null
  fi
  # A token never used before, so its first request is due a write.
  NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="$DB_URL" "$BIN" token create --user bench --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("Authorization: Bearer nbt_" + d["key"] + "." + d["token"])' \
    > "$WORK/$name-fresh.header"
  start_server "$name"
  local rps requests bad own
  read -r rps requests bad < <(load "$SUSTAIN" "$name-fresh")
  sleep 1 # the last batch is written within 0.5 s
  own="$(curl -fsS "$BASE/metrics" | awk '/^nbtoken_last_used_writes_total/ {print $2}')"
  stop_server
  local times
  times="$(sql "$backend" "SELECT at FROM bench_writes ORDER BY at" | tr '\n' ' ')"
  python3 - "$backend" "$SUSTAIN" "$rps" "$requests" "${own:-0}" $times >> "$WORK/writes.md" <<'EOF'
import sys
backend, sustain, rps, requests, own, *times = sys.argv[1:]
t = [float(x) for x in times]
gaps = [b - a for a, b in zip(t, t[1:])]
shortest = f"{min(gaps):.1f} s" if gaps else "n/a (fewer than two writes)"
print(f"| {backend} | {sustain} | {float(rps):.0f} | {int(requests)} | {len(t)} | {own} | {shortest} |")
EOF
}

echo "| backend | row cache | tokens | req/s median (rounds) | tokens | req/s median (rounds) | large vs small |" > "$WORK/size.md"
echo "|---|---|---|---|---|---|---|" >> "$WORK/size.md"
echo "| backend | sustained load | req/s | requests | last_used writes the store saw | writes the instance counted | shortest gap between writes |" > "$WORK/writes.md"
echo "|---|---|---|---|---|---|---|" >> "$WORK/writes.md"
for backend in sqlite postgres; do
  [ "$which" = both ] || [ "$which" = "$backend" ] || continue
  size_rows "$backend"
  write_rows "$backend"
done
echo "Store size: wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS alternating rounds; writes: one instance, wrk -t1 -c$CONNECTIONS -d$SUSTAIN; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
cat "$WORK/size.md"
echo
cat "$WORK/writes.md"
