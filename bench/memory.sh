#!/usr/bin/env bash
# How much memory does `nbtoken serve` hold? Resident set size idle, under load, and with a
# large store, for one or more builds in one run.
#
#   bench/memory.sh [BINARY...]     (default: the profiling build, built here)
#       LARGE=1000000 DURATION=10s CONNECTIONS=32
#
# Two SQLite stores: one with a single token, one with LARGE tokens (the same bulk seeding
# as bench/store.sh: one real token, the rest random digests under other keys; settled with
# a checkpoint and ANALYZE). For each store and each binary, in turn: start the server, wait
# 2 s and read VmRSS from /proc (idle); drive /api/status/ with a valid v2 token with wrk
# for DURATION at CONNECTIONS, sampling VmRSS every 0.2 s (under load: the largest sample;
# peak: VmHWM, the high-water mark since start, which the kernel updates lazily and can read
# a little below the largest sample); wait 2 s after the load and read VmRSS
# again (after load). Prints a markdown table in MiB. Nothing fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
LARGE="${LARGE:-1000000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
for tool in wrk python3 sqlite3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (Debian package: $tool)" >&2; exit 1; }
done
if [ $# -eq 0 ]; then
  cargo build --profile profiling -q -p nbtoken
  set -- "$PWD/target/profiling/nbtoken"
fi
BINS=()
for b in "$@"; do
  [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
  BINS+=("$(realpath "$b")")
done
WORK="$(mktemp -d)"
SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
BIN="${BINS[0]}"
NBTOKEN_PEPPER_1="$("$BIN" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn

make_store() { # name count
  local name="$1" count="$2" db="$WORK/$1/nbtoken.sqlite3"
  mkdir -p "$WORK/$name"
  NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="sqlite://$db" "$BIN" user create bench --superuser >/dev/null
  NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="sqlite://$db" "$BIN" token create --user bench --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("Authorization: Bearer nbt_" + d["key"] + "." + d["token"])' \
    > "$WORK/$name.header"
  local n=$((count - 1))
  if [ "$n" -gt 0 ]; then
    sqlite3 "$db" "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $n)
      INSERT INTO users_token (version, key, pepper_id, hmac_digest, user_id, description, created, enabled, write_enabled)
      SELECT 2, printf('seed%08d', i), 1, lower(hex(randomblob(32))), 1, 'seed', '2026-01-01T00:00:00.000000Z', 1, 1
      FROM s;" >/dev/null
  fi
  sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;" >/dev/null
  sync
  sqlite3 "$db" "SELECT COUNT(*) FROM users_token" > "$WORK/$name.count"
  printf '%s\n' "$(du -m "$db" | cut -f1)" > "$WORK/$name.size"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }

measure() { # binary store-name -> appends a table row
  local bin="$1" name="$2" port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="sqlite://$WORK/$name/nbtoken.sqlite3" \
    "$bin" serve --bind "127.0.0.1:$port" 2>"$WORK/server.err" >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$WORK/server.err" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$WORK/server.err" || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 2
  local idle; idle="$(rss_kib "$SERVER_PID")"
  : > "$WORK/samples"
  ( while kill -0 "$SERVER_PID" 2>/dev/null; do rss_kib "$SERVER_PID" >> "$WORK/samples"; sleep 0.2; done ) &
  SAMPLER_PID=$!
  local out rps
  out="$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "$(cat "$WORK/$name.header")" "http://127.0.0.1:$port/api/status/")"
  kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
  rps="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
  if grep -q Non-2xx <<<"$out"; then echo "warning: non-2xx answers under load ($name)" >&2; fi
  local loaded peak; loaded="$(sort -n "$WORK/samples" | tail -1)"; peak="$(hwm_kib "$SERVER_PID")"
  sleep 2
  local after; after="$(rss_kib "$SERVER_PID")"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  printf '| %s | %s tokens (%s MB file) | %s | %s | %s | %s | %s |\n' "$(basename "$bin")" "$(cat "$WORK/$name.count")" \
    "$(cat "$WORK/$name.size")" "$(mib "$idle")" "$(mib "$loaded")" "$(mib "$peak")" "$(mib "$after")" "$rps" >> "$WORK/table.md"
}

make_store small 1
make_store large "$LARGE"
for name in small large; do
  for bin in "${BINS[@]}"; do measure "$bin" "$name"; done
done
echo "nbtoken serve on SQLite, RSS in MiB; load: wrk -t1 -c$CONNECTIONS -d$DURATION on /api/status/ (valid v2 token); $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| binary | store | idle | under load (largest sample) | peak (VmHWM) | 2 s after load | req/s |"
echo "|---|---|---:|---:|---:|---:|---:|"
cat "$WORK/table.md"
