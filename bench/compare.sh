#!/usr/bin/env bash
# Two builds of nbtoken, side by side in one run: did a change make the hot path faster?
#
#   bench/compare.sh OLD_BINARY NEW_BINARY      (ROUNDS=3 DURATION=8s CONNECTIONS=16 LATENCY_CONNECTIONS=32)
#
# e.g.  git stash; cargo build --profile profiling -p nbtoken; cp target/profiling/nbtoken /tmp/nbtoken-old
#       git stash pop; cargo build --profile profiling -p nbtoken
#       bench/compare.sh /tmp/nbtoken-old target/profiling/nbtoken
#
# Both binaries serve the same SQLite store (created by OLD_BINARY; so NEW_BINARY must not add
# SQLite migrations, or OLD_BINARY cannot open the store again) in turn, ROUNDS times,
# alternating, so drift on a shared machine hits both alike. Each round measures /livez
# (no authentication) and /api/status/ with a valid v2 token (authentication, row cached):
# throughput at CONNECTIONS, then the 99th-percentile latency at LATENCY_CONNECTIONS (wrk
# --latency, on the same cores as the server). Prints every round and the medians as
# markdown tables. Nothing fails on a number.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/compare.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
OLD="$(realpath "$1")"; NEW="$(realpath "$2")"
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }; done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-8s}"; CONNECTIONS="${CONNECTIONS:-16}"
LATENCY_CONNECTIONS="${LATENCY_CONNECTIONS:-32}"
. "$(dirname "$0")/common.sh"
bench_workdir
NBTOKEN_PEPPER_1="$("$OLD" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn NBTOKEN_DATA_DIR="$WORK"
header="$(bench_header "$OLD")"
rps() { wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" | awk '/Requests\/sec/ {print $2}'; }
# The 99th percentile of wrk --latency, in milliseconds (wrk prints us, ms or s).
p99() {
  wrk -t1 -c"$LATENCY_CONNECTIONS" -d"$DURATION" --latency "$@" | awk '
    $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                  if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.2f\n", v }'
}

declare -A runs
for r in $(seq 1 "$ROUNDS"); do
  for which in old new; do
    bin="$OLD"; [ "$which" = new ] && bin="$NEW"
    port="$(free_port)"
    "$bin" serve --bind "127.0.0.1:$port" 2>"$WORK/err" >/dev/null &
    SERVER_PID=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$WORK/err" 2>/dev/null && break; sleep 0.1; done
    live="$(rps "http://127.0.0.1:$port/livez")"
    auth="$(rps -H "$header" "http://127.0.0.1:$port/api/status/")"
    live99="$(p99 "http://127.0.0.1:$port/livez")"
    auth99="$(p99 -H "$header" "http://127.0.0.1:$port/api/status/")"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    echo "round $r $which: /livez $live req/s, /api/status/ $auth req/s;" \
      "p99 at $LATENCY_CONNECTIONS connections /livez $live99 ms, /api/status/ $auth99 ms" >&2
    runs[$which-live]+="$live "; runs[$which-auth]+="$auth "
    runs[$which-share]+="$(python3 -c "print($auth / $live)") "
    runs[$which-live99]+="$live99 "; runs[$which-auth99]+="$auth99 "
  done
done
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.0f}")' "$@"; }
median2() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' "$@"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
pct() { python3 -c "print(f'{$1/$2*100:.0f} %')"; }
# The median of the rounds' own shares: each round measures both routes within seconds, so
# a machine that runs faster or slower between rounds moves both alike.
share() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:])*100:.0f} %")' "$@"; }
ol="$(median ${runs[old-live]})"; nl="$(median ${runs[new-live]})"
oa="$(median ${runs[old-auth]})"; na="$(median ${runs[new-auth]})"
ol99="$(median2 ${runs[old-live99]})"; nl99="$(median2 ${runs[new-live99]})"
oa99="$(median2 ${runs[old-auth99]})"; na99="$(median2 ${runs[new-auth99]})"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION (throughput) and -c$LATENCY_CONNECTIONS --latency (p99), $ROUNDS alternating rounds, medians; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| route | old req/s | new req/s | new / old | old p99 ms | new p99 ms |"
echo "|---|---|---|---|---|---|"
echo "| /livez | $ol | $nl | $(ratio "$nl" "$ol") | $ol99 | $nl99 |"
echo "| /api/status/ (valid v2 token) | $oa | $na | $(ratio "$na" "$oa") | $oa99 | $na99 |"
echo "| /api/status/ as a share of /livez (of the medians) | $(pct "$oa" "$ol") | $(pct "$na" "$nl") | | | |"
echo "| /api/status/ as a share of /livez (median of the rounds' shares) | $(share ${runs[old-share]}) | $(share ${runs[new-share]}) | | | |"
