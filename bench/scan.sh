#!/usr/bin/env bash
# Scan speed: `nbtoken scan` against ripgrep searching the same tree, in one run.
#
#   bench/scan.sh [FILES]          (default 20000 files; RUNS=10 to change the sample)
#
# Generates a synthetic source tree under /tmp (Python, Go, JS, YAML, Markdown, .env;
# about 1 file in 100 holds a v2 token, 1 in 100 a v1 `Token` header), builds the profiling
# profile, and times with hyperfine (Debian package `hyperfine`; falls back to `time`):
#   1. rg with the main v2 regex (the same pattern as rule nbtoken-v2-token),
#   2. rg with all five rules' patterns (taken from `nbtoken scan --export-gitleaks`),
#   3. nbtoken scan (all five rules, positions, redaction, fingerprints, text output).
# rg is run with --hidden so that both read the same files (.env files are hidden).
# The page cache is warm (warm-up runs). Benchmarks are not tests: nothing here fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES="${1:-20000}"
RUNS="${RUNS:-10}"
command -v rg >/dev/null || { echo "ripgrep is needed: apt-get install -y ripgrep" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed to generate the tree" >&2; exit 1; }
cargo build --profile profiling -q -p nbtoken
BIN="$PWD/target/profiling/nbtoken"
TREE="$(mktemp -d /tmp/nbtoken-scan-bench.XXXXXX)"
trap 'rm -rf "$TREE"' EXIT

python3 - "$TREE" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
def rand(k): return "".join(rng.choice(alnum) for _ in range(k))
# Assembled here so that no full token sits in this script.
def v2(): return "nbt" + "_" + rand(12) + "." + rand(40)
words = ("device site rack interface vlan prefix address token request response client "
         "session config value result error status update create delete list filter").split()
def line(ext):
    w = rng.sample(words, 4)
    if ext == "py": return f"    {w[0]}_{w[1]} = get_{w[2]}({w[3]}, timeout=30)  # {w[1]} {w[2]}"
    if ext == "go": return f"\t{w[0]}{w[1].title()} := client.{w[2].title()}(ctx, {w[3]})"
    if ext == "js": return f"  const {w[0]}{w[1].title()} = await api.{w[2]}({w[3]});"
    if ext == "yml": return f"    {w[0]}_{w[1]}: \"{{{{ {w[2]}_{w[3]} }}}}\""
    if ext == "md": return f"The {w[0]} {w[1]} is updated when the {w[2]} {w[3]} changes."
    return f"{w[0].upper()}_{w[1].upper()}={w[2]}-{w[3]}"
leaks = {"py": lambda: f'TOKEN = "{v2()}"',
         "go": lambda: '\treq.Header.Set("Authorization", "Token "+token)',
         "js": lambda: "  headers: { Authorization: `Token ${token}` },",
         "yml": lambda: f'    netbox_token: "{v2()}"',
         "md": lambda: f"Use `{v2()}` for the demo.",
         "env": lambda: f"NETBOX_TOKEN={rand(40)}"}
exts = ["py", "go", "js", "yml", "md", "env"]
for i in range(n):
    ext = exts[i % len(exts)]
    d = os.path.join(root, f"pkg{i % 200:03d}", f"mod{i % 7}")
    name = f"file{i}.{ext}"
    if ext == "env" and i % 12 == 5:
        d, name = os.path.join(d, f"svc{i}"), ".env"
    os.makedirs(d, exist_ok=True)
    lines = [line(ext) for _ in range(rng.randint(40, 160))]
    if rng.random() < 0.02:
        lines.insert(rng.randrange(len(lines)), leaks[ext]())
    with open(os.path.join(d, name), "w") as f:
        f.write("\n".join(lines) + "\n")
PY

files=$(find "$TREE" -type f | wc -l)
bytes=$(du -sb "$TREE" | cut -f1)
V2_REGEX='(nbt_[A-Za-z0-9]{12}\.[A-Za-z0-9]{40})\b'
mapfile -t ALL < <("$BIN" scan --export-gitleaks | sed -n "s/^regex = '''\(.*\)'''$/\1/p")
rg_all=(rg --hidden --no-messages -c)
for p in "${ALL[@]}"; do rg_all+=(-e "$p"); done
printf -v rg_all_cmd '%q ' "${rg_all[@]}"

echo "tree: $files files, $((bytes / 1024 / 1024)) MiB in $TREE; $(nproc) CPUs; $(rg --version | head -n1)"
echo "nbtoken scan: $("$BIN" scan --fail-on never "$TREE" | tail -n1)"
echo "rg, v2 regex: $(rg --hidden --no-messages -c "$V2_REGEX" "$TREE" | awk -F: '{s+=$NF} END {print s+0}') matching lines"
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 2 --runs "$RUNS" --ignore-failure --export-markdown "$TREE.md" \
    -n "rg (v2 regex)" "rg --hidden --no-messages -c '$V2_REGEX' $TREE" \
    -n "rg (all 5 rule regexes)" "$rg_all_cmd $TREE" \
    -n "nbtoken scan" "$BIN scan --fail-on never $TREE"
  cat "$TREE.md"
  rm -f "$TREE.md"
else
  echo "hyperfine not found (apt-get install -y hyperfine); one timed run each:"
  time rg --hidden --no-messages -c "$V2_REGEX" "$TREE" >/dev/null || true
  time "${rg_all[@]}" "$TREE" >/dev/null || true
  time "$BIN" scan --fail-on never "$TREE" >/dev/null
fi
