#!/usr/bin/env bash
# Where does a request's time go? Samples `nbtoken serve` under wrk load with perf.
#
#   bench/profile.sh [ROUTE]        (default /api/status/ with a valid v2 token; DURATION=10s;
#                                    NBTOKEN_BIN to profile another build)
#
# Builds the profiling profile (release code with line tables), seeds a SQLite store with one token, starts the server under
# `perf record -e cpu-clock` (a software clock, so it works in VMs without hardware
# counters), drives it with wrk, then prints the share of samples per binary (server,
# kernel, libc) and the top symbols. The raw profile stays in target/bench/perf.data
# for `perf report -i target/bench/perf.data`. Needs wrk and perf (Debian: wrk, linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTE="${1:-/api/status/}"
DURATION="${DURATION:-10s}"
for tool in wrk perf python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (Debian packages wrk, linux-perf, python3)" >&2; exit 1; }
done
# NBTOKEN_BIN=/path/to/nbtoken profiles that build instead (e.g. one with another allocator).
if [ -n "${NBTOKEN_BIN:-}" ]; then BIN="$(realpath "$NBTOKEN_BIN")"; else
  cargo build --profile profiling -q -p nbtoken
  BIN="$PWD/target/profiling/nbtoken"
fi
mkdir -p target/bench
DATA="$PWD/target/bench/perf.data"
WORK="$(mktemp -d)"
PERF_PID=""
cleanup() {
  if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID" 2>/dev/null || true; wait "$PERF_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
NBTOKEN_PEPPER_1="$("$BIN" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn NBTOKEN_DATA_DIR="$WORK"
. bench/common.sh
header="$(bench_header "$BIN")"
port="$(free_port)"
perf record -q -e cpu-clock -F 2000 -o "$DATA" "$BIN" serve --bind "127.0.0.1:$port" 2>"$WORK/err" >/dev/null &
PERF_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/err" 2>/dev/null && break; sleep 0.1; done
wrk -t1 -c16 -d"$DURATION" -H "$header" "http://127.0.0.1:$port$ROUTE" | grep -E "Requests/sec|Non-2xx" || true
# perf forwards SIGINT to the server, which shuts down gracefully; perf then writes the profile.
kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
echo
echo "Samples per binary:"
perf report -i "$DATA" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -6
echo
echo "Top symbols:"
perf report -i "$DATA" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' \
  | sed -E 's/ {2,}/ /g' | cut -c1-150 | head -"${TOP:-40}"
