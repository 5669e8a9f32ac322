#!/usr/bin/env bash
# Benchmark: builds the release server and the reference server
# (bench/ceiling: the same two read routes with nothing but a JWT check, one
# prepared statement and serde), runs them on a fresh PostgreSQL database,
# bulk-loads realistic data (1,000 users, 1,000,000 patients, 10,000 doctors,
# 2,000,000 mappings), drives them with wrk and prints a table: requests/s,
# p50 and p99, server and PostgreSQL CPU per request for each scenario,
# get-patient and list-patients against the reference in interleaved rounds
# (ours, reference, ours, reference, ...), the same two on SQLite, memory at
# 32 and at 1,000 connections, and `pgbench -S` on the same PostgreSQL.
#
#   bench/run.sh                                  # defaults below
#   BENCH_DURATION=30 BENCH_ROUNDS=5 bench/run.sh # longer runs, more rounds
#   BENCH_OUT=/tmp/bench bench/run.sh             # keep the raw outputs there
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
# The database is on loopback: no TLS, for the servers and pgbench (as with a
# Unix socket). Set BENCH_DB_OPTIONS= to measure with TLS negotiated (the
# reference server speaks no TLS: it then needs sslmode=prefer or disable).
DB_OPTIONS="${BENCH_DB_OPTIONS-?sslmode=disable}"
DURATION="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNECTIONS:-32}"
MANY="${BENCH_MANY_CONNECTIONS:-1000}"
ROUNDS="${BENCH_ROUNDS:-3}"
PORT="${BENCH_PORT:-8099}"
REF_PORT="${BENCH_REF_PORT:-$((PORT + 1))}"
POOL="${BENCH_POOL:-16}"
PATIENTS="${BENCH_PATIENTS:-1000000}"
SQLITE_PATIENTS="${BENCH_SQLITE_PATIENTS:-$((PATIENTS < 100000 ? PATIENTS : 100000))}"
USERS=1000
DOCTORS=10000
PASSWORD="Velvet-Otter-Quarry-42"
SECRET="bench-secret-bench-secret-bench-secret-0123"
if [ -n "${BENCH_OUT:-}" ]; then
  OUT="$(mkdir -p "$BENCH_OUT" && cd "$BENCH_OUT" && pwd)"
  rm -f "$OUT"/*.txt "$OUT"/*.tsv "$OUT"/*.log "$OUT"/parity-* "$OUT"/meta "$OUT"/bench.sqlite3*
else
  OUT="$(mktemp -d)"
fi
[ "$ROUNDS" -ge 1 ] && [ "$SQLITE_PATIENTS" -ge 1000 ] && [ "$PATIENTS" -ge 10000 ] ||
  { echo "need BENCH_ROUNDS >= 1, BENCH_PATIENTS >= 10000, BENCH_SQLITE_PATIENTS >= 1000" >&2; exit 2; }

need() { # command, Debian package
  command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }
}
need wrk wrk
need pgbench postgresql-client
need psql postgresql-client
need sqlite3 sqlite3
need curl curl

# The script's own sessions are named, so that the CPU figures leave them out
# (not exported: the main server's driver would take the name too).
psql() { PGAPPNAME=bench-script command psql "$@"; }

# 1,000 connections need 1,000 descriptors in wrk and in the server (they
# inherit this limit), plus the server's own.
nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
ulimit -n "$nofile"
if [ "$nofile" -lt $((MANY + 100)) ]; then
  echo "warning: ulimit -n is at most $nofile: $MANY connections will see socket errors" >&2
fi

started=$SECONDS
echo "== building the release server and the reference server (bench/ceiling)"
cargo build --release -q
cargo build --release -q --locked --manifest-path bench/ceiling/Cargo.toml

db="healthcare_bench_$(date +%s)"
pgb="${db}_pgbench"
ours_pid="" ref_pid=""
stop() { # pid: stops a server this script started and waits for it
  [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null || true
}
cleanup() {
  stop "$ours_pid"
  stop "$ref_pid"
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $pgb WITH (FORCE)" >/dev/null 2>&1 || true
  [ -n "${BENCH_OUT:-}" ] || rm -rf "$OUT"
}
trap cleanup EXIT
psql "$PG/postgres" -qc "CREATE DATABASE $db"
sql() { psql "$PG/$db" -v ON_ERROR_STOP=1 -qAtc "$1"; }

start_ours() { # database URL, log file: starts the release server on $PORT
  DATABASE_URL="$1" BIND_ADDR="127.0.0.1:$PORT" RUST_LOG="${BENCH_RUST_LOG:-info}" \
    JWT_SECRET="$SECRET" ACCESS_TOKEN_TTL=3600 \
    AUTH_RATE_PER_MINUTE=1000000 LOGIN_ATTEMPTS_PER_HOUR=1000000 DB_MAX_CONNECTIONS="$POOL" \
    ./target/release/healthcare serve 2>"$2" &
  ours_pid=$!
  for _ in $(seq 1 100); do curl -fs "$B/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$B/healthz" >/dev/null
}
login() { # registers bench1 (id 1 on a fresh database) and prints an access token
  curl -fs "$B/api/auth/register/" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench1\",\"email\":\"bench1@example.com\",\"password\":\"$PASSWORD\"}" >/dev/null
  curl -fs "$B/api/auth/login/" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench1\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])'
}

B="http://127.0.0.1:$PORT"
R="http://127.0.0.1:$REF_PORT"
echo "== starting the server on a fresh database ($db)"
start_ours "$PG/$db$DB_OPTIONS" "$OUT/server.log"
TOKEN=$(login)
export TOKEN BENCH_USER=bench1 BENCH_PASSWORD="$PASSWORD" ID_LO=1 ID_HI=1000

# The reference connects lazily, so it can start once the server has migrated.
DATABASE_URL="$PG/$db$DB_OPTIONS" BIND_ADDR="127.0.0.1:$REF_PORT" JWT_SECRET="$SECRET" \
  DB_MAX_CONNECTIONS="$POOL" bench/ceiling/target/release/ceiling 2>"$OUT/ceiling.log" &
ref_pid=$!

load_patients() { # $1..$2: patient ids; user k owns ids (k-1)*1000+1 .. k*1000
  sql "INSERT INTO patients (name, name_key, age, gender, created_by, created_at, updated_at, version)
       SELECT 'Patient ' || g, 'patient ' || g, g % 100, (ARRAY['Male','Female','Other','Unknown'])[g % 4 + 1],
              (g - 1) / 1000 + 1, now(), now(), 1
       FROM generate_series($1, $2) AS g;
       INSERT INTO mappings (patient_id, doctor_id, created_at)
       SELECT p, d, now() FROM generate_series($1, $2) AS p,
              LATERAL (VALUES (p % $DOCTORS + 1), ((p + $DOCTORS / 2) % $DOCTORS + 1)) AS x(d);"
  # What autovacuum would have done by the time a real table got this big.
  for table in patients mappings doctors; do sql "VACUUM ANALYZE $table"; done
}

echo "== loading $USERS users, $DOCTORS doctors, 10,000 patients, 20,000 mappings"
t0=$(date +%s)
sql "INSERT INTO users (username, username_key, email, email_key, password_hash, is_staff, is_active, date_joined)
     SELECT 'bench' || g, 'bench' || g, 'bench' || g || '@example.com', 'bench' || g || '@example.com',
            (SELECT password_hash FROM users WHERE id = 1), false, true, now()
     FROM generate_series(2, $USERS) AS g;
     INSERT INTO doctors (name, name_key, specialization, specialization_key, created_by, created_at, updated_at, version)
     SELECT 'Dr. ' || g, 'dr. ' || g, s, lower(s),
            g % $USERS + 1, now(), now(), 1
     FROM generate_series(1, $DOCTORS) AS g,
          LATERAL (SELECT (ARRAY['Cardiology','Neurology','Oncology','Pediatrics','Radiology'])[g % 5 + 1]) AS x(s);"
load_patients 1 10000

# --- measuring -------------------------------------------------------------
TCK=$(getconf CLK_TCK)
ticks() { # utime+stime of a process in clock ticks (nothing when it is gone)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  s=${s##*) } # the fields after "pid (comm) ": state is 1st, utime 12th, stime 13th
  # shellcheck disable=SC2086
  set -- $s
  echo $((${12} + ${13}))
}
rss() { # resident KiB of a process (0 when it is gone)
  local key value rest
  while read -r key value rest; do
    if [ "$key" = VmRSS: ]; then echo "$value"; return; fi
  done 2>/dev/null <"/proc/$1/status"
  echo 0
}
pg_ticks() { # "pid ticks" of each client backend of the servers connected to database $1
  local pid
  for pid in $(psql "$PG/postgres" -qAtc "SELECT pid FROM pg_stat_activity WHERE datname = '$1'
      AND backend_type = 'client backend' AND application_name IS DISTINCT FROM 'bench-script'"); do
    echo "$pid $(ticks "$pid")"
  done
}

audit_rows() { # the last audit event's id in database $1 ("-": the SQLite file)
  if [ "$1" = - ]; then
    sqlite3 "$sqlite_file" "SELECT coalesce(max(id), 0) FROM audit_events"
  else
    psql "$PG/$1" -qAtc "SELECT coalesce(max(id), 0) FROM audit_events"
  fi
}

# measure NAME SERVER_PID BASE_URL DATABASE CONNECTIONS SCRIPT [wrk args...]
# Runs wrk once against one server and appends to runs.tsv: the server's CPU
# ticks over the run, the PostgreSQL backends' (the sum of each backend's
# delta; a backend that appeared during the run counts whole), the other
# servers' (which should be idle: both stay up), the server's largest RSS
# sampled every 0.2 s, and the audit events written meanwhile (the main
# server records every read of patient data; the reference does not).
# DATABASE is "-" for SQLite.
IDLE_PIDS=()
measure() {
  local name=$1 pid=$2 url=$3 dbname=$4 conns=$5 script=$6
  shift 6
  local other idle0=0 idle1=0 s0 s1 pg0="" pg1="" max=0 r wrk_pid audit0 audit1
  audit0=$(audit_rows "$dbname")
  for other in "${IDLE_PIDS[@]}"; do if [ "$other" != "$pid" ]; then idle0=$((idle0 + $(ticks "$other"))); fi; done
  [ "$dbname" = - ] || pg0=$(pg_ticks "$dbname")
  s0=$(ticks "$pid")
  wrk -t2 -c"$conns" -d"${DURATION}s" --latency -s "bench/$script" "$@" "$url" >"$OUT/$name.txt" 2>&1 &
  wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    r=$(rss "$pid")
    if [ "$r" -gt "$max" ]; then max=$r; fi
    sleep 0.2
  done
  wait "$wrk_pid"
  # The main server writes audit events in the background (in batches, 50 ms
  # after the first): wait until none is written for 0.2 s (5 s at most), so
  # that the CPU they cost falls in this run.
  audit1=$audit0
  for _ in $(seq 1 25); do
    sleep 0.2
    r=$(audit_rows "$dbname")
    if [ "$r" = "$audit1" ]; then break; fi
    audit1=$r
  done
  s1=$(ticks "$pid")
  [ "$dbname" = - ] || pg1=$(pg_ticks "$dbname")
  for other in "${IDLE_PIDS[@]}"; do if [ "$other" != "$pid" ]; then idle1=$((idle1 + $(ticks "$other"))); fi; done
  local pg
  pg=$(python3 - "$pg0" "$pg1" <<'EOF'
import sys
parse = lambda text: dict(map(int, line.split()) for line in text.splitlines() if len(line.split()) == 2)
before, after = parse(sys.argv[1]), parse(sys.argv[2])
print(sum(t - before.get(p, 0) for p, t in after.items()), len(after), len(set(before) - set(after)))
EOF
  )
  local pg_sum pg_n pg_gone
  read -r pg_sum pg_n pg_gone <<<"$pg"
  # name, server ticks, PG ticks, PG backends, backends gone meanwhile, idle servers' ticks,
  # max RSS KiB, audit events written
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$((s1 - s0))" "$pg_sum" "$pg_n" "$pg_gone" \
    "$((idle1 - idle0))" "$max" "$((audit1 - audit0))" >>"$OUT/runs.tsv"
  printf '   %-28s %s\n' "$name" "$(awk '/Requests\/sec/ {printf "%s req/s", $2}' "$OUT/$name.txt"), RSS ${max} KiB"
}
: >"$OUT/runs.tsv"
IDLE_PIDS=("$ours_pid" "$ref_pid")

echo "== list-patients with 10,000 patients in the table"
BENCH_PATH="/api/patients/?limit=20" measure list-10k "$ours_pid" "$B" "$db" "$CONNS" get_path.lua

echo "== loading up to $PATIENTS patients and $((PATIENTS * 2)) mappings"
load_patients 10001 "$PATIENTS"
echo "   loaded in $(($(date +%s) - t0))s: $(sql 'SELECT count(*) FROM patients') patients, $(sql 'SELECT count(*) FROM mappings') mappings"

echo "== do both servers answer the same? (status, body, Content-Type, ETag, X-Total-Count, Link)"
parity() { # path...: one request to each server per path, compared
  local path i=0
  for path in "$@"; do
    i=$((i + 1))
    curl -s -D "$OUT/parity-$i-ours.h" -o "$OUT/parity-$i-ours.b" -H "Authorization: Bearer $TOKEN" "$B$path"
    curl -s -D "$OUT/parity-$i-ref.h" -o "$OUT/parity-$i-ref.b" -H "Authorization: Bearer $TOKEN" "$R$path"
    echo "$path"
  done >"$OUT/parity-paths.txt"
  python3 - "$OUT" <<'EOF' | tee "$OUT/parity.txt"
import json, os, sys
out = sys.argv[1]
paths = open(os.path.join(out, "parity-paths.txt")).read().split()
compared = ("content-type", "etag", "x-total-count", "link")
def read(i, who):
    lines = open(os.path.join(out, f"parity-{i}-{who}.h"), encoding="latin-1").read().splitlines()
    status = lines[0].split()[1]
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (l.partition(":") for l in lines[1:] if ":" in l))
    return status, headers, open(os.path.join(out, f"parity-{i}-{who}.b"), "rb").read()
differ = 0
for i, path in enumerate(paths, 1):
    (s1, h1, b1), (s2, h2, b2) = read(i, "ours"), read(i, "ref")
    problems = []
    if s1 != s2:
        problems.append(f"status {s1} vs {s2}")
    if s1.startswith("2"):
        problems += [f"{k}: {h1.get(k)!r} vs {h2.get(k)!r}" for k in compared if h1.get(k) != h2.get(k)]
        if b1 != b2:
            try:
                j1, j2 = json.loads(b1), json.loads(b2)
                problems.append("body: same JSON, other bytes" if j1 == j2 else f"body: {b1[:300]!r} vs {b2[:300]!r}")
            except ValueError:
                problems.append(f"body: {b1[:300]!r} vs {b2[:300]!r}")
    only = sorted(set(h1) - set(h2) - {"date"}), sorted(set(h2) - set(h1) - {"date"})
    note = f"   (headers only ours sends: {', '.join(only[0]) or '-'}; only the reference: {', '.join(only[1]) or '-'})"
    differ += bool(problems)
    same = f"same ({len(b1)} bytes)" if s1.startswith("2") else "same status (error bodies not compared)"
    print(f"   {path}: {s1}, " + ("; ".join(problems) if problems else same) + (note if s1.startswith("2") else ""))
print(f"   {differ} of {len(paths)} requests differ")
EOF
}
parity "/api/patients/1/" "/api/patients/1" "/api/patients/999/" "/api/patients/?limit=20&offset=0" \
  "/api/patients/?limit=20&offset=40" "/api/patients/?limit=5&offset=998" "/api/patients/1001/" \
  "/api/patients/?limit=20&offset=5000" "/api/patients/?limit=0"

echo "== get-patient and list-patients, ours and the reference interleaved, $ROUNDS rounds, $CONNS connections, ${DURATION}s each"
# One unrecorded second each first: pools filled, statements prepared.
for url in "$B" "$R"; do
  wrk -t2 -c"$CONNS" -d1s -s bench/get_patient.lua "$url" >/dev/null 2>&1
  BENCH_PATH="/api/patients/?limit=20" wrk -t2 -c"$CONNS" -d1s -s bench/get_path.lua "$url" >/dev/null 2>&1
done
for round in $(seq 1 "$ROUNDS"); do
  measure "get-ours-$round" "$ours_pid" "$B" "$db" "$CONNS" get_patient.lua
  measure "get-ref-$round" "$ref_pid" "$R" "$db" "$CONNS" get_patient.lua
done
for round in $(seq 1 "$ROUNDS"); do
  BENCH_PATH="/api/patients/?limit=20&offset=0" measure "list-ours-$round" "$ours_pid" "$B" "$db" "$CONNS" get_path.lua
  BENCH_PATH="/api/patients/?limit=20&offset=0" measure "list-ref-$round" "$ref_pid" "$R" "$db" "$CONNS" get_path.lua
done

echo "== the other scenarios (ours only) at $CONNS connections, ${DURATION}s each"
BENCH_PATH="/api/patients/?gender=Female&min_age=30&max_age=60&ordering=-age&limit=20" \
  measure list-filtered "$ours_pid" "$B" "$db" "$CONNS" get_path.lua
measure create-patient "$ours_pid" "$B" "$db" "$CONNS" create_patient.lua
measure patient-doctors "$ours_pid" "$B" "$db" "$CONNS" patient_doctors.lua
measure login "$ours_pid" "$B" "$db" "$CONNS" login.lua
echo "== get-patient while logins run alongside"
wrk -t1 -c8 -d"$((DURATION + 2))s" -s bench/login.lua "$B" >"$OUT/login-bg.txt" 2>&1 &
bg=$!
sleep 1
measure get-patient-under-login "$ours_pid" "$B" "$db" "$CONNS" get_patient.lua
wait "$bg"

echo "== get-patient at $MANY connections (ulimit -n $(ulimit -n)), ours then the reference"
measure "get-many-ours" "$ours_pid" "$B" "$db" "$MANY" get_patient.lua
measure "get-many-ref" "$ref_pid" "$R" "$db" "$MANY" get_patient.lua
hwm_ours=$(awk '/VmHWM/ {print $2}' "/proc/$ours_pid/status")
hwm_ref=$(awk '/VmHWM/ {print $2}' "/proc/$ref_pid/status")

echo "== pgbench -S on the same PostgreSQL"
psql "$PG/postgres" -qc "CREATE DATABASE $pgb"
pgbench -q -i -s 10 "$PG/$pgb" >/dev/null 2>&1
pgbench -S -c "$CONNS" -j 2 -T "$DURATION" "$PG/$pgb$DB_OPTIONS" >"$OUT/pgbench.txt" 2>&1
stop "$ours_pid"
stop "$ref_pid"
ours_pid="" ref_pid=""

echo "== SQLite: the server alone on a fresh file, $SQLITE_PATIENTS patients loaded with sqlite3"
sqlite_file="$OUT/bench.sqlite3"
rm -f "$sqlite_file"*
start_ours "sqlite://$sqlite_file?mode=rwc" "$OUT/server-sqlite.log"
TOKEN=$(login)
# Patient 1 through the API: its timestamps are copied, in the server's own format.
curl -fs "$B/api/patients/" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"Patient 1","age":1,"gender":"Female"}' >/dev/null
sqlite3 "$sqlite_file" <<EOF
.timeout 10000
BEGIN;
WITH RECURSIVE g(x) AS (SELECT 2 UNION ALL SELECT x + 1 FROM g WHERE x < $USERS)
INSERT INTO users (username, username_key, email, email_key, password_hash, is_staff, is_active, date_joined)
SELECT 'bench' || x, 'bench' || x, 'bench' || x || '@example.com', 'bench' || x || '@example.com',
       u.password_hash, u.is_staff, u.is_active, u.date_joined
FROM g, (SELECT * FROM users WHERE id = 1) AS u;
WITH RECURSIVE g(x) AS (SELECT 2 UNION ALL SELECT x + 1 FROM g WHERE x < $SQLITE_PATIENTS)
INSERT INTO patients (id, name, name_key, age, gender, created_by, created_at, updated_at, version)
SELECT x, 'Patient ' || x, 'patient ' || x, x % 100,
       CASE x % 4 WHEN 0 THEN 'Male' WHEN 1 THEN 'Female' WHEN 2 THEN 'Other' ELSE 'Unknown' END,
       (x - 1) / 1000 + 1, p.created_at, p.updated_at, 1
FROM g, (SELECT created_at, updated_at FROM patients WHERE id = 1) AS p;
COMMIT;
ANALYZE;
EOF
echo "   $(sqlite3 "$sqlite_file" 'SELECT count(*) FROM patients') patients"
IDLE_PIDS=("$ours_pid")
wrk -t2 -c"$CONNS" -d1s -s bench/get_patient.lua "$B" >/dev/null 2>&1
for round in $(seq 1 "$ROUNDS"); do
  measure "sqlite-get-$round" "$ours_pid" "$B" - "$CONNS" get_patient.lua
  BENCH_PATH="/api/patients/?limit=20&offset=0" measure "sqlite-list-$round" "$ours_pid" "$B" - "$CONNS" get_path.lua
  measure "sqlite-create-$round" "$ours_pid" "$B" - "$CONNS" create_patient.lua
done
stop "$ours_pid"
ours_pid=""

cat >"$OUT/meta" <<EOF
tck=$TCK
conns=$CONNS
many=$MANY
duration=$DURATION
rounds=$ROUNDS
pool=$POOL
patients=$PATIENTS
sqlite_patients=$SQLITE_PATIENTS
hwm_ours=$hwm_ours
hwm_ref=$hwm_ref
EOF
python3 bench/report.py "$OUT"
elapsed=$((SECONDS - started))
echo "whole run (builds included): $((elapsed / 60))m $((elapsed % 60))s"
