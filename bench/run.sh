#!/usr/bin/env bash
# Benchmark: builds the release server, runs it on a fresh PostgreSQL
# database, bulk-loads realistic data (1,000 users, 1,000,000 patients,
# 10,000 doctors, 2,000,000 mappings), drives it with wrk and prints a table:
# requests/s, p50 and p99 per scenario, the server's peak RSS, and each
# figure next to `pgbench -S` on the same PostgreSQL.
#
#   bench/run.sh                      # defaults below
#   BENCH_DURATION=30 bench/run.sh    # longer runs
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
# The database is on loopback: no TLS, for the server and pgbench alike (as
# with a Unix socket). Set BENCH_DB_OPTIONS= to measure with TLS negotiated.
DB_OPTIONS="${BENCH_DB_OPTIONS-?sslmode=disable}"
DURATION="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNECTIONS:-32}"
PORT="${BENCH_PORT:-8099}"
PATIENTS="${BENCH_PATIENTS:-1000000}"
USERS=1000
DOCTORS=10000
PASSWORD="Velvet-Otter-Quarry-42"
OUT="$(mktemp -d)"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client >/dev/null; }

echo "== building the release server"
cargo build --release -q

db="healthcare_bench_$(date +%s)"
pgb="${db}_pgbench"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $pgb WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$OUT"
}
trap cleanup EXIT
psql "$PG/postgres" -qc "CREATE DATABASE $db"
sql() { psql "$PG/$db" -v ON_ERROR_STOP=1 -qAtc "$1"; }

echo "== starting the server on a fresh database ($db)"
DATABASE_URL="$PG/$db$DB_OPTIONS" BIND_ADDR="127.0.0.1:$PORT" RUST_LOG=warn \
  JWT_SECRET="bench-secret-bench-secret-bench-secret-0123" ACCESS_TOKEN_TTL=3600 \
  AUTH_RATE_PER_MINUTE=1000000 LOGIN_ATTEMPTS_PER_HOUR=1000000 DB_MAX_CONNECTIONS="${BENCH_POOL:-16}" \
  ./target/release/healthcare serve 2>"$OUT/server.log" &
server_pid=$!
B="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -fs "$B/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$B/healthz" >/dev/null

curl -fs "$B/api/auth/register/" -H 'Content-Type: application/json' \
  -d "{\"username\":\"bench1\",\"email\":\"bench1@example.com\",\"password\":\"$PASSWORD\"}" >/dev/null
TOKEN=$(curl -fs "$B/api/auth/login/" -H 'Content-Type: application/json' \
  -d "{\"username\":\"bench1\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')
export TOKEN BENCH_USER=bench1 BENCH_PASSWORD="$PASSWORD" ID_LO=1 ID_HI=1000

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

bench() { # name, threads, lua script, extra wrk args...
  local name=$1 threads=$2 script=$3; shift 3
  wrk -t"$threads" -c"$CONNS" -d"${DURATION}s" --latency -s "bench/$script" "$@" "$B" >"$OUT/$name.txt" 2>&1
  echo "   $name: server RSS $(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status") KiB, peak $(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status") KiB"
}

echo "== list-patients with 10,000 patients in the table"
BENCH_PATH="/api/patients/?limit=20" bench list-10k 2 get_path.lua

echo "== loading up to $PATIENTS patients and $((PATIENTS * 2)) mappings"
load_patients 10001 "$PATIENTS"
echo "   loaded in $(( $(date +%s) - t0 ))s: $(sql 'SELECT count(*) FROM patients') patients, $(sql 'SELECT count(*) FROM mappings') mappings"

echo "== scenarios at $CONNS connections, ${DURATION}s each"
bench get-patient 2 get_patient.lua
BENCH_PATH="/api/patients/?limit=20" bench list-patients 2 get_path.lua
BENCH_PATH="/api/patients/?gender=Female&min_age=30&max_age=60&ordering=-age&limit=20" bench list-filtered 2 get_path.lua
bench create-patient 2 create_patient.lua
bench patient-doctors 2 patient_doctors.lua
bench login 2 login.lua
echo "== get-patient while logins run alongside"
wrk -t1 -c8 -d"$((DURATION + 2))s" -s bench/login.lua "$B" >"$OUT/login-bg.txt" 2>&1 &
bg=$!
sleep 1
bench get-patient-under-login 2 get_patient.lua
wait "$bg"
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")

echo "== pgbench -S on the same PostgreSQL"
psql "$PG/postgres" -qc "CREATE DATABASE $pgb"
pgbench -q -i -s 10 "$PG/$pgb" >/dev/null 2>&1
pgbench -S -c "$CONNS" -j 2 -T "$DURATION" "$PG/$pgb$DB_OPTIONS" >"$OUT/pgbench.txt" 2>&1

python3 bench/report.py "$OUT" "$rss_kib" "$CONNS" "$DURATION"
