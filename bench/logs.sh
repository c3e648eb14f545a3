#!/usr/bin/env bash
# What the access log costs: /api/status/ with a valid v2 token under wrk, with logs off
# (NBTOKEN_LOG=off), as shipped (info level, NBTOKEN_ACCESS_LOG off: refusals, errors and
# v1 uses only) and with NBTOKEN_ACCESS_LOG=on (a line per request, the old default), the
# three interleaved over ROUNDS rounds on one SQLite store; also the bytes of log written.
#
#   bench/logs.sh            (DURATION=10s CONNECTIONS=16 ROUNDS=3; NBTOKEN_BIN=path to skip the build)
#
# Builds the profiling profile (release code with line tables) unless NBTOKEN_BIN is set.
# Needs wrk (Debian package `wrk`). Prints a markdown table; nothing fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
ROUNDS="${ROUNDS:-3}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
if [ -n "${NBTOKEN_BIN:-}" ]; then
  BIN="$NBTOKEN_BIN"
else
  cargo build --profile profiling -q -p nbtoken
  BIN="$PWD/target/profiling/nbtoken"
fi
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

for v in $(env | grep -o '^NBTOKEN_[A-Z0-9_]*' || true); do
  [ "$v" = NBTOKEN_BIN ] || unset "$v"
done
NBTOKEN_PEPPER_1="$("$BIN" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_DATA_DIR="$WORK/data"
"$BIN" user create bench --superuser >/dev/null
json="$("$BIN" token create --user bench --json)"
key="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
secret="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

run() { # name, then env assignments -> "rps bytes"
  local name="$1"; shift
  env "$@" "$BIN" serve --bind "127.0.0.1:$port" >/dev/null 2>"$WORK/$name.log" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/livez" && break
    sleep 0.1
  done
  local out
  out="$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer nbt_$key.$secret" "http://127.0.0.1:$port/api/status/")"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  printf '%s %s\n' "$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')" "$(wc -c <"$WORK/$name.log")"
}

declare -A sum bytes
names=(off default on)
for name in "${names[@]}"; do sum[$name]=0; bytes[$name]=0; done
for r in $(seq 1 "$ROUNDS"); do
  read -r rps b < <(run off NBTOKEN_LOG=off);                    sum[off]="$(python3 -c "print(${sum[off]}+$rps)")"; bytes[off]=$((bytes[off]+b))
  read -r rps b < <(run default NBTOKEN_LOG=info);               sum[default]="$(python3 -c "print(${sum[default]}+$rps)")"; bytes[default]=$((bytes[default]+b))
  read -r rps b < <(run on NBTOKEN_LOG=info NBTOKEN_ACCESS_LOG=on); sum[on]="$(python3 -c "print(${sum[on]}+$rps)")"; bytes[on]=$((bytes[on]+b))
  echo "round $r done" >&2
done
off="$(python3 -c "print(${sum[off]}/$ROUNDS)")"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION on /api/status/ (valid v2 token), $ROUNDS interleaved rounds; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| logging | requests/s (mean) | vs logs off | log written per round |"
echo "|---|---:|---:|---:|"
for name in "${names[@]}"; do
  mean="$(python3 -c "print(${sum[$name]}/$ROUNDS)")"
  label="$(case $name in off) echo 'NBTOKEN_LOG=off';; default) echo 'default (info, access log off)';; on) echo 'NBTOKEN_ACCESS_LOG=on';; esac)"
  python3 -c "print(f'| $label | {$mean:,.0f} | {($mean/$off-1)*100:+.1f} % | {${bytes[$name]}/$ROUNDS/1e6:.1f} MB |')"
done
