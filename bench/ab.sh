#!/usr/bin/env bash
# What one change buys: builds two revisions of the server (release), starts
# both at once, each on its own fresh PostgreSQL database with the same data
# (and each on its own SQLite file), and drives them with wrk in interleaved
# rounds (A, B, A, B, ...) so that the machine's drift falls on both alike.
# Prints, per scenario, each side's median req/s, p99 and CPU per request
# (the server's, and its PostgreSQL backends'), and the ratio B/A.
#
#   bench/ab.sh e5e502c HEAD                # A = e5e502c, B = HEAD
#   BENCH_ROUNDS=5 BENCH_DURATION=10 bench/ab.sh main~3 main
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/ab.sh REV_A REV_B" >&2; exit 2; }

PG="${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
DURATION="${BENCH_DURATION:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-32}"
PASSWORD="Velvet-Otter-Quarry-42"
SECRET="bench-secret-bench-secret-bench-secret-0123"
OUT="$(mktemp -d)"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

# Both revisions build in one target directory (dependencies compiled once).
export CARGO_TARGET_DIR="$PWD/target/ab"
for side in a b; do
  rev=$([ $side = a ] && echo "$1" || echo "$2")
  git worktree add -q --detach "$OUT/src-$side" "$rev"
  echo "== building $side = $rev ($(git rev-parse --short "$rev"))"
  cargo build --release -q --manifest-path "$OUT/src-$side/Cargo.toml"
  cp "$CARGO_TARGET_DIR/release/healthcare" "$OUT/healthcare-$side"
  git worktree remove --force "$OUT/src-$side"
done

declare -A PID URL
dbs=()
cleanup() {
  for side in a b; do [ -n "${PID[$side]:-}" ] && kill "${PID[$side]}" 2>/dev/null; done
  wait 2>/dev/null || true
  for db in "${dbs[@]}"; do psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; done
  rm -rf "$OUT"
}
trap cleanup EXIT

start() { # side, database URL, port
  DATABASE_URL="$2" BIND_ADDR="127.0.0.1:$3" RUST_LOG="${BENCH_RUST_LOG:-info}" JWT_SECRET="$SECRET" ACCESS_TOKEN_TTL=3600 \
    AUTH_RATE_PER_MINUTE=1000000 LOGIN_ATTEMPTS_PER_HOUR=1000000 DB_MAX_CONNECTIONS=16 \
    "$OUT/healthcare-$1" serve 2>>"$OUT/server-$1.log" &
  PID[$1]=$!
  URL[$1]="http://127.0.0.1:$3"
  for _ in $(seq 1 100); do curl -fs "${URL[$1]}/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs -H 'Content-Type: application/json' "${URL[$1]}/api/auth/register/" \
    -d "{\"username\":\"bench1\",\"email\":\"bench1@example.com\",\"password\":\"$PASSWORD\"}" >/dev/null
  curl -fs -H 'Content-Type: application/json' "${URL[$1]}/api/auth/login/" \
    -d "{\"username\":\"bench1\",\"password\":\"$PASSWORD\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])' >"$OUT/token-$1"
  for n in $(seq 1 200); do
    curl -fs -o /dev/null -H "Authorization: Bearer $(cat "$OUT/token-$1")" -H 'Content-Type: application/json' \
      "${URL[$1]}/api/patients/" -d "{\"name\":\"Patient $n\",\"age\":$((n % 100)),\"gender\":\"Female\"}"
  done
}
stop_all() {
  for side in a b; do kill "${PID[$side]}" 2>/dev/null; wait "${PID[$side]}" 2>/dev/null || true; PID[$side]=""; done
}
ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }; s=${s##*) }; set -- $s; echo $((${12} + ${13})); }
pg_ticks() { # summed CPU ticks of the client backends on database $1 (0 for SQLite)
  [ "$1" = - ] && { echo 0; return; }
  local sum=0 pid
  for pid in $(psql "$PG/postgres" -qAtc "SELECT pid FROM pg_stat_activity WHERE datname = '$1' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"); do
    sum=$((sum + $(ticks "$pid")))
  done
  echo "$sum"
}
DB_OF=()
run() { # scenario, side, database name or -, wrk script
  local t0 p0
  t0=$(ticks "${PID[$2]}"); p0=$(pg_ticks "$3")
  TOKEN=$(cat "$OUT/token-$2") ID_LO=1 ID_HI=200 \
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "bench/$4" "${URL[$2]}" >"$OUT/wrk.txt" 2>&1
  sleep 0.3 # the audit writer's last batch
  python3 - "$1" "$2" "$(($(ticks "${PID[$2]}") - t0))" "$(($(pg_ticks "$3") - p0))" "$(getconf CLK_TCK)" \
    "$OUT/wrk.txt" >>"$OUT/runs.tsv" <<'EOF'
import re, sys
scenario, side, srv, pg, tck, path = sys.argv[1:]
text = open(path).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
def ms(v, unit): return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups())
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
per = 1e6 / int(tck) / max(total, 1)
print(f"{scenario}\t{side}\t{rps}\t{p99}\t{int(srv) * per}\t{int(pg) * per}\t{bad.group(1) if bad else 0}")
EOF
  printf '   %-16s %s\n' "$1 $2" "$(awk '/Requests\/sec/ {print $2 " req/s"}' "$OUT/wrk.txt")"
}

echo "== PostgreSQL: A and B side by side, each on its own fresh database"
for side in a b; do
  db="healthcare_ab_$(date +%s)_$side"; dbs+=("$db")
  psql "$PG/postgres" -qc "CREATE DATABASE $db"
  start $side "$PG/$db?sslmode=disable" $([ $side = a ] && echo 8201 || echo 8202)
  DB_OF+=("$db")
done
for round in $(seq 1 "$ROUNDS"); do
  for scenario in get-patient:get_patient.lua create-patient:create_patient.lua; do
    for side in a b; do
      db=${DB_OF[$([ $side = a ] && echo 0 || echo 1)]}
      run "pg-${scenario%%:*}" $side "$db" "${scenario#*:}"
    done
  done
done
stop_all

echo "== SQLite: A and B side by side, each on its own file"
for side in a b; do start $side "sqlite://$OUT/ab-$side.sqlite3?mode=rwc" $([ $side = a ] && echo 8201 || echo 8202); done
for round in $(seq 1 "$ROUNDS"); do
  for scenario in get-patient:get_patient.lua create-patient:create_patient.lua; do
    for side in a b; do run "sqlite-${scenario%%:*}" $side - "${scenario#*:}"; done
  done
done
stop_all

python3 - "$OUT/runs.tsv" "$1" "$2" "$ROUNDS" <<'EOF'
import collections, statistics, sys
path, rev_a, rev_b, rounds = sys.argv[1:]
runs = collections.defaultdict(list)
for line in open(path):
    scenario, side, rps, p99, srv, pg, bad = line.split("\t")
    runs[scenario, side].append((float(rps), float(p99), float(srv), float(pg), int(bad)))
print()
print(f"A = {rev_a}, B = {rev_b}; median of {rounds} interleaved rounds; B/A: ratio of each round's req/s, median")
print(f"{'scenario':22} {'A req/s':>9} {'B req/s':>9} {'B/A':>6} {'A p99':>8} {'B p99':>8} "
      f"{'A srv us':>9} {'B srv us':>9} {'A PG us':>8} {'B PG us':>8} {'bad':>4}")
for scenario in dict.fromkeys(s for s, _ in runs):
    a, b = runs[scenario, "a"], runs[scenario, "b"]
    med = lambda rs, i: statistics.median(r[i] for r in rs)
    ratio = statistics.median(y[0] / x[0] for x, y in zip(a, b))
    print(f"{scenario:22} {med(a,0):9,.0f} {med(b,0):9,.0f} {ratio:6.2f} {med(a,1):6.1f}ms {med(b,1):6.1f}ms "
          f"{med(a,2):9.0f} {med(b,2):9.0f} {med(a,3):8.0f} {med(b,3):8.0f} {sum(r[4] for r in a + b):4d}")
EOF
