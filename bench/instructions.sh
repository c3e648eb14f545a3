#!/usr/bin/env bash
# Instructions per request, counted by callgrind: a figure that does not move with the
# machine's load, for comparing routes and builds where wall-clock rates are noisy.
#
#   bench/instructions.sh BINARY [BINARY...]      (REQUESTS=2000)
#
# For each binary: seeds a SQLite store with one v2 token, starts `nbtoken serve` under
# `valgrind --tool=callgrind` (one worker thread, so the count is the server's work alone, not
# idle spinning), sends REQUESTS and then 3×REQUESTS keep-alive requests to a route from one
# Python client, and reports (instructions after 3×REQUESTS − after REQUESTS) / (2×REQUESTS):
# start-up and the first requests' warm-up drop out. Routes: /livez (no authentication) and
# /api/status/ with a valid v2 token (authentication, row cached). Prints a markdown table.
# Needs valgrind and python3. Nothing fails on a number.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/instructions.sh BINARY [BINARY...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }
REQUESTS="${REQUESTS:-2000}"
. "$(dirname "$0")/common.sh"
bench_workdir

# Sends N requests on one keep-alive connection; fails on any status but 200.
send() { # PORT PATH N [HEADER]
  python3 - "$@" <<'PY'
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
headers = {}
if len(sys.argv) > 4:
    k, v = sys.argv[4].split(": ", 1)
    headers[k] = v
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{path}: HTTP {r.status}")
PY
}

# The instructions callgrind has counted so far, all threads (callgrind_control -e prints one
# line per thread: `Th N  1,234,567`).
counted() { callgrind_control -e "$SERVER_PID" 2>/dev/null | awk '$1 == "Th" { gsub(/,/, "", $3); n += $3 } END { print n }'; }

# Instructions per request of PATH on BINARY.
measure() { # BINARY PATH [HEADER]
  local bin="$1" path="$2"; shift 2
  local port
  port="$(free_port)"
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
    "$bin" serve --bind "127.0.0.1:$port" 2>"$WORK/err" >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$WORK/err" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  send "$port" "$path" "$REQUESTS" "$@"
  local first; first="$(counted)"
  send "$port" "$path" $((2 * REQUESTS)) "$@"
  local second; second="$(counted)"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  echo $(( (second - first) / (2 * REQUESTS) ))
}

echo "| binary | /livez instructions/request | /api/status/ instructions/request | /api/status/ − /livez | /livez as a share of /api/status/ |"
echo "|---|---:|---:|---:|---:|"
for bin in "$@"; do
  bin="$(realpath "$bin")"
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  NBTOKEN_PEPPER_1="$("$bin" pepper generate)"
  export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn NBTOKEN_DATA_DIR="$WORK/data"
  header="$(bench_header "$bin")"
  live="$(measure "$bin" /livez)"
  auth="$(measure "$bin" /api/status/ "$header")"
  echo "| $bin | $live | $auth | $((auth - live)) | $(python3 -c "print(f'{$live / $auth:.0%}')") |"
done
