#!/usr/bin/env bash
# Does key existence leak through timing? Existing key with a wrong secret against a key no token
# has, through the real server, with the failure limiter off, on SQLite and/or PostgreSQL.
#
#   bench/timing.sh [sqlite|postgres|both]     (SAMPLES=20000 per kind; NBTOKEN_BIN=path to time
#                                              another build, e.g. an older commit's, instead of
#                                              building this tree in release mode)
#
# One client on one keep-alive connection sends GET /api/status/ with the two kinds of bad token
# in a shuffled order (so drift in the machine hits both alike), after a warm-up, and times each
# request with a monotonic clock. The same key of each kind is sent every time: that is what an
# attacker probing one key does, and what a cache would favour. Reported: median and quantiles
# per kind, the difference of medians with a bootstrap 95 % interval, and a Mann-Whitney U test
# (two-sided p-value: a small p says the two kinds are told apart by timing). A valid token is
# timed too, for scale.
# Benchmarks are not tests: nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-both}"
SAMPLES="${SAMPLES:-20000}"
PG_URL="${NBTOKEN_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

if [ -n "${NBTOKEN_BIN:-}" ]; then
  BIN="$NBTOKEN_BIN"
else
  cargo build --release -q -p nbtoken
  BIN="$PWD/target/release/nbtoken"
fi
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

NBTOKEN_PEPPER_1="$("$BIN" pepper generate)"
export NBTOKEN_PEPPER_1 NBTOKEN_LOG=warn
# The limiter off: every bad token is looked up and verified, never answered 429.
export NBTOKEN_FAILURE_LIMIT_PER_IP=0 NBTOKEN_FAILURE_LIMIT_PER_KEY=0

run_backend() { # name database-url
  local name="$1" db="$2" port
  export NBTOKEN_DATA_DIR="$WORK/$name" NBTOKEN_DATABASE_URL="$db"
  "$BIN" user create bench --superuser >/dev/null
  local json
  json="$("$BIN" token create --user bench --json)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$BIN" serve --bind "127.0.0.1:$port" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$WORK/$name.err" 2>/dev/null && break; sleep 0.1; done
  TOKEN_JSON="$json" python3 - "$name" "$port" "$SAMPLES" <<'EOF'
import http.client, json, math, os, random, statistics, sys, time

name, port, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tok = json.loads(os.environ["TOKEN_JSON"])
key, secret = tok["key"], tok["token"]
kinds = {
    "existing key, wrong secret": f"Bearer nbt_{key}.{'x' * 40}",
    "unknown key": f"Bearer nbt_Zz9Unknown00.{'x' * 40}",
    "valid token (scale)": f"Bearer nbt_{key}.{secret}",
}
expect = {"existing key, wrong secret": 403, "unknown key": 403, "valid token (scale)": 200}
conn = http.client.HTTPConnection("127.0.0.1", port)

def once(header):
    t0 = time.perf_counter_ns()
    conn.request("GET", "/api/status/", headers={"Authorization": header})
    r = conn.getresponse()
    r.read()
    return (time.perf_counter_ns() - t0) / 1000.0, r.status

order = [k for k in kinds for _ in range(samples)]
random.seed(16)
for k in random.sample(order, min(len(order), 3000)):  # warm-up: connection, caches, allocator
    once(kinds[k])
random.shuffle(order)
times = {k: [] for k in kinds}
for k in order:
    us, status = once(kinds[k])
    assert status == expect[k], (k, status)
    times[k].append(us)

def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]

def mann_whitney(a, b):
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, tie-corrected)."""
    n1, n2 = len(a), len(b)
    allv = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks_a, i, ties = 0.0, 0, 0.0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1][0] == allv[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        ranks_a += r * sum(1 for k in range(i, j + 1) if allv[k][1] == 0)
        i = j + 1
    u = ranks_a - n1 * (n1 + 1) / 2
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (u - n1 * n2 / 2) / sigma
    return u / (n1 * n2), z, math.erfc(abs(z) / math.sqrt(2))

a, b = times["existing key, wrong secret"], times["unknown key"]
boot = []
rng = random.Random(7)
for _ in range(200):
    boot.append(statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b))))
boot.sort()
auc, z, p = mann_whitney(a, b)
print(f"**{name}**, {samples} requests of each kind, shuffled, limiter off:\n")
print("| kind | median µs | p10 | p90 | mean (trimmed 1 %) |")
print("|---|---:|---:|---:|---:|")
for k, xs in times.items():
    s = sorted(xs)
    cut = len(s) // 100
    print(f"| {k} | {statistics.median(xs):.1f} | {q(xs, .1):.1f} | {q(xs, .9):.1f} | {statistics.fmean(s[cut:len(s) - cut]):.1f} |")
print()
print(f"- median(existing) − median(unknown): {statistics.median(a) - statistics.median(b):+.1f} µs "
      f"(bootstrap 95 %: {boot[5]:+.1f} … {boot[194]:+.1f})")
print(f"- Mann-Whitney: P(existing slower than unknown) = {auc:.3f} (0.5: indistinguishable), z = {z:+.1f}, p = {p:.2g}")
print()
EOF
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

echo "nbtoken timing: $("$BIN" --version 2>/dev/null || echo "$BIN"); $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
if [ "$which" = sqlite ] || [ "$which" = both ]; then
  run_backend sqlite "sqlite://$WORK/sqlite/nbtoken.sqlite3"
fi
if [ "$which" = postgres ] || [ "$which" = both ]; then
  schema="nbtoken_timing_$$"
  psql "$PG_URL" -qc "CREATE SCHEMA $schema" >/dev/null
  run_backend postgres "$PG_URL?options[search_path]=$schema"
  psql "$PG_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
fi
