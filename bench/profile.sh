#!/usr/bin/env bash
# Where the server's CPU goes on one request kind: starts the release server
# on a fresh PostgreSQL database with 200 patients, drives it with wrk
# (get-patient by default) while `perf record` samples the server, and prints
# the share of samples per library and the hottest functions.
#
#   bench/profile.sh                         # get-patient, 10 s
#   BENCH_SCRIPT=get_path.lua BENCH_PATH='/api/patients/?limit=20' bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
DURATION="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNECTIONS:-32}"
SCRIPT="${BENCH_SCRIPT:-get_patient.lua}"
PORT="${BENCH_PORT:-8299}"
PASSWORD="Velvet-Otter-Quarry-42"
OUT="$(mktemp -d)"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }

cargo build --release -q # the release binary keeps its symbol names: enough for self time

db="healthcare_profile_$(date +%s)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$OUT"
}
trap cleanup EXIT
psql "$PG/postgres" -qc "CREATE DATABASE $db"
DATABASE_URL="$PG/$db?sslmode=disable" BIND_ADDR="127.0.0.1:$PORT" RUST_LOG="${BENCH_RUST_LOG:-info}" ACCESS_TOKEN_TTL=3600 \
  AUTH_RATE_PER_MINUTE=1000000 LOGIN_ATTEMPTS_PER_HOUR=1000000 \
  ./target/release/healthcare serve 2>"$OUT/server.log" &
pid=$!
B="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -fs "$B/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs -H 'Content-Type: application/json' "$B/api/auth/register/" \
  -d "{\"username\":\"bench1\",\"email\":\"bench1@example.com\",\"password\":\"$PASSWORD\"}" >/dev/null
TOKEN=$(curl -fs -H 'Content-Type: application/json' "$B/api/auth/login/" \
  -d "{\"username\":\"bench1\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')
for n in $(seq 1 200); do
  curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    "$B/api/patients/" -d "{\"name\":\"Patient $n\",\"age\":$((n % 100)),\"gender\":\"Female\"}"
done
export TOKEN ID_LO=1 ID_HI=200
wrk -t2 -c"$CONNS" -d2s -s "bench/$SCRIPT" "$B" >/dev/null # warm-up
perf record -q -F 999 -p "$pid" -o "$OUT/perf.data" -- sleep "$DURATION" 2>/dev/null &
perf_pid=$!
wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "bench/$SCRIPT" "$B" | grep -E "Requests/sec|Latency"
wait "$perf_pid"
echo
echo "== share of the server's samples by library (kernel: [kernel.kallsyms])"
perf report -q -i "$OUT/perf.data" --no-children --sort dso >"$OUT/dso.txt" 2>/dev/null
sed -n '/%/p' "$OUT/dso.txt" | sed -n 1,8p
echo
echo "== hottest functions (self time)"
perf report -q -i "$OUT/perf.data" --no-children --sort symbol >"$OUT/symbols.txt" 2>/dev/null
sed -n '/%/p' "$OUT/symbols.txt" | cut -c1-150 | sed 's/ *$//' | sed -n 1,30p
