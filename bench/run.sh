#!/usr/bin/env bash
# Every nbtoken benchmark in one run, written as one markdown report.
#
#   bench/run.sh [REPORT]        (default: target/bench/report.md; also printed)
#
# 1. In process: `cargo bench -p nbtoken-core --bench verify` (criterion), reported as
#    medians and as ratios to one bare HMAC-SHA256 measured in the same run.
# 2. Through the server: bench/http.sh both (profiling build: release code with line tables, wrk on loopback, SQLite and
#    PostgreSQL).
# 3. Store size and last_used writes: bench/store.sh both (1,000 vs 1,000,000 tokens;
#    writes counted by a trigger under sustained load).
# 4. Memory: bench/memory.sh (resident set idle, under load, with LARGE tokens; SQLite).
# Needs wrk, sqlite3, psql and python3 (Debian packages wrk, sqlite3, postgresql-client,
# python3) and a PostgreSQL server (NBTOKEN_BENCH_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/test). The environment variables of http.sh and
# store.sh (DURATION, ROUNDS, LARGE, SUSTAIN, ...) pass through. Takes about 20 minutes.
# Benchmarks are not tests: nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT="${1:-target/bench/report.md}"
mkdir -p "$(dirname "$REPORT")"
for tool in wrk sqlite3 psql python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (see the top of bench/run.sh)" >&2; exit 1; }
done
PG_URL="${NBTOKEN_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
psql "$PG_URL" -qtAc "SELECT 1" >/dev/null || { echo "PostgreSQL is not reachable at $PG_URL" >&2; exit 1; }

core_table() {
  cargo bench -q -p nbtoken-core --bench verify -- --noplot >&2
  python3 - <<'EOF'
import json
names = ["bare_hmac_sha256_40B", "decide_v2_valid", "decide_v2_wrong_secret", "decide_v2_unknown_key",
         "parse_and_decide_v2_valid"]
m = {}
for n in names:
    with open(f"target/criterion/verify/{n}/new/estimates.json") as f:
        m[n] = json.load(f)["median"]["point_estimate"]
print("| function | median ns | ratio to bare HMAC-SHA256 |")
print("|---|---:|---:|")
for n in names:
    print(f"| `{n}` | {m[n]:.1f} | {m[n] / m['bare_hmac_sha256_40B']:.2f} |")
EOF
}

{
  echo "# nbtoken benchmark run, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- CPU: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores; $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "- kernel $(uname -r); $(rustc --version); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "- PostgreSQL: $(psql "$PG_URL" -qtAc 'SHOW server_version')"
  echo "- commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "## Verification in process"
  echo
  core_table
  echo
  echo "## Through the server"
  echo
  bench/http.sh both
  echo
  echo "## Store size and last_used writes"
  echo
  bench/store.sh both
  echo
  echo "## Memory"
  echo
  bench/memory.sh
} | tee "$REPORT"
echo >&2
echo "report written to $REPORT" >&2
