# Shared by the bench scripts that start `nbtoken serve` themselves: source it after `set -euo pipefail`.
#
#   bench_workdir            WORK (a temporary directory), SERVER_PID, and a trap that stops the
#                            server in SERVER_PID (if any) and removes WORK on exit
#   free_port                a free loopback TCP port
#   bench_header BINARY      creates the superuser `bench` and a v2 token for it in the store the
#                            environment names (NBTOKEN_DATA_DIR, NBTOKEN_PEPPER_1, …) and prints
#                            the token's `Authorization: Bearer …` header line

bench_workdir() {
  WORK="$(mktemp -d)"
  SERVER_PID=""
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_header() {
  "$1" user create bench --superuser >/dev/null
  "$1" token create --user bench --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("Authorization: Bearer nbt_" + d["key"] + "." + d["token"])'
}
