#!/usr/bin/env bash
# Three instances on one fresh PostgreSQL database behind HAProxy
# (deploy/haproxy.cfg), under mixed traffic (bench/cluster_load.py):
#   (a) one instance is killed with SIGKILL under load, then started again;
#   (b) a rolling restart of all three with SIGTERM.
# For each, prints the requests sent, failed, and retried by HAProxy, and
# checks in the database that no acknowledged write is lost and that every
# acknowledged response disclosing patient data has its audit event. Exits
# non-zero when a check fails or the rolling restart fails any request.
#
# Needs PostgreSQL (PG_URL_BASE), cargo, python3, curl, psql; installs
# Debian's haproxy with apt-get when it is missing (as root, or with sudo).
# Settings: CLUSTER_PROFILE (release), CLUSTER_WORKERS (8 clients),
# CLUSTER_LOAD_SECONDS (6), CLUSTER_DRAIN (SHUTDOWN_DRAIN, 2 s),
# CLUSTER_PORT_BASE (18100: HAProxy; +1..+3 the instances; +9 its statistics).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL_BASE="${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
PORT_BASE="${CLUSTER_PORT_BASE:-18100}"
WORKERS="${CLUSTER_WORKERS:-8}"
LOAD_SECONDS="${CLUSTER_LOAD_SECONDS:-6}"
DRAIN="${CLUSTER_DRAIN:-2}"
TARGET="${CARGO_TARGET_DIR:-target}"
# release (the default) or debug (what CI has built already).
PROFILE="${CLUSTER_PROFILE:-release}"
BIN="$TARGET/$PROFILE/healthcare"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/healthcare-cluster.XXXXXX")"
db="healthcare_cluster_$(date +%s)_$$"
DB_URL="$PG_URL_BASE/$db"
LB="127.0.0.1:$PORT_BASE"
STATS="127.0.0.1:$((PORT_BASE + 9))"
declare -a PIDS=("" "" "" "")
HAPROXY_PID=""

cleanup() {
    exec 2>/dev/null # bash reports every killed job; nothing to see here
    for i in 1 2 3; do
        [[ -n "${PIDS[$i]}" ]] && kill -9 "${PIDS[$i]}" 2>/dev/null || true
    done
    [[ -n "$HAPROXY_PID" ]] && kill "$HAPROXY_PID" 2>/dev/null || true
    psql "$PG_URL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    if [[ "${KEEP_CLUSTER_LOGS:-}" ]]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if ! command -v haproxy >/dev/null; then
    echo "== installing haproxy (Debian package)"
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y -q haproxy >/dev/null
    else sudo apt-get install -y -q haproxy >/dev/null; fi
fi

echo "== building the $PROFILE binary"
if [[ "$PROFILE" == release ]]; then cargo build --release -q; else cargo build -q; fi

psql "$PG_URL_BASE/postgres" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $db"
"$BIN" migrate --database-url "$DB_URL" >"$WORK/migrate.log" 2>&1

start_instance() {
    local i=$1
    DATABASE_URL="$DB_URL" BIND_ADDR="127.0.0.1:$((PORT_BASE + i))" \
        JWT_SECRET="cluster-benchmark-secret-of-at-least-32-bytes" \
        ACCESS_TOKEN_TTL=3600 AUTH_RATE_PER_MINUTE=100000 AUTO_MIGRATE=false \
        TRUSTED_PROXIES=127.0.0.1 SHUTDOWN_DRAIN="$DRAIN" DB_MAX_CONNECTIONS=8 \
        PASSWORD_HASH_CONCURRENCY=1 RUST_LOG=warn \
        "$BIN" serve >>"$WORK/app$i.log" 2>&1 &
    PIDS[$i]=$!
    for _ in $(seq 200); do
        curl -fso /dev/null "http://127.0.0.1:$((PORT_BASE + i))/readyz" && return 0
        sleep 0.05
    done
    echo "instance $i did not come up:"; tail -20 "$WORK/app$i.log"; exit 1
}

# HAProxy's view of one server (UP, DOWN, ...), and the backend's retry and
# redispatch counters, from its CSV statistics.
server_status() {
    curl -fs "http://$STATS/stats;csv" | awk -F, -v s="app$1" '$1=="instances" && $2==s {print $18}'
}
retried() {
    curl -fs "http://$STATS/stats;csv" | awk -F, '$1=="instances" && $2=="BACKEND" {print $16 + $17}'
}
wait_status() {
    for _ in $(seq 200); do
        kill -0 "$HAPROXY_PID" 2>/dev/null || { echo "haproxy exited:"; cat "$WORK/haproxy.log"; exit 1; }
        [[ "$(server_status "$1")" == "$2"* ]] && return 0
        sleep 0.05
    done
    echo "HAProxy never saw app$1 $2"; exit 1
}

for i in 1 2 3; do start_instance "$i"; done
HC_LB_ADDR="$LB" HC_STATS_ADDR="$STATS" HC_APP1="127.0.0.1:$((PORT_BASE + 1))" \
    HC_APP2="127.0.0.1:$((PORT_BASE + 2))" HC_APP3="127.0.0.1:$((PORT_BASE + 3))" \
    haproxy -f deploy/haproxy.cfg -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
for i in 1 2 3; do wait_status "$i" UP; done
python3 bench/cluster_load.py setup "http://$LB" "$WORK" "$WORKERS"

# Runs the load while "$@" happens; prints the figures and checks them.
scenario() {
    local name=$1 expect_no_failures=$2
    shift 2
    local out="$WORK/$name" before after
    mkdir -p "$out"
    before=$(retried)
    python3 bench/cluster_load.py "http://$LB" "$out" "$out/stop" "$WORKERS" &
    local load=$!
    sleep 1
    "$@"
    sleep 1
    touch "$out/stop"
    wait "$load"
    after=$(retried)
    local lost unaudited
    read -r lost unaudited < <(psql "$DB_URL" -qtA -F' ' -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE acked (kind TEXT, request_id TEXT, patient_id BIGINT);
\copy acked FROM '$out/acked.tsv'
SELECT
  (SELECT COUNT(*) FROM acked a WHERE a.kind = 'create'
     AND NOT EXISTS (SELECT 1 FROM patients p WHERE p.id = a.patient_id AND p.deleted_at IS NULL)),
  (SELECT COUNT(*) FROM acked a
     WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.request_id = a.request_id));
SQL
)
    python3 - "$out/summary.json" "$name" "$((after - before))" "$lost" "$unaudited" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("%-16s sent %6d  ok %6d  failed %3d  retried %3d  acknowledged writes lost %s  PHI responses without audit event %s  (%.1f s, %d req/s)" % (
    sys.argv[2], s["sent"], s["ok"], s["failed"], int(sys.argv[3]), sys.argv[4], sys.argv[5],
    s["seconds"], s["sent"] / max(s["seconds"], 0.1)))
PY
    if [[ -s "$out/failures.txt" ]]; then sed 's/^/    failed: /' "$out/failures.txt" | head -10; fi
    local failed
    failed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failed"])' "$out/summary.json")
    [[ "$lost" -eq 0 && "$unaudited" -eq 0 ]] || { echo "FAIL: $name lost writes or audit events"; exit 1; }
    if [[ "$expect_no_failures" == yes && "$failed" -ne 0 ]]; then
        echo "FAIL: $name failed $failed requests"; exit 1
    fi
    # At most the requests in flight on the killed instance: one per client.
    if [[ "$failed" -gt "$WORKERS" ]]; then
        echo "FAIL: $name failed $failed requests, more than were in flight"; exit 1
    fi
}

steady() { sleep "$LOAD_SECONDS"; }

kill_one() {
    sleep $((LOAD_SECONDS / 2))
    kill -9 "${PIDS[2]}"
    wait "${PIDS[2]}" 2>/dev/null || true
    wait_status 2 DOWN
    sleep $((LOAD_SECONDS / 2))
    start_instance 2
    wait_status 2 UP
}

rolling_restart() {
    for i in 1 2 3; do
        kill -TERM "${PIDS[$i]}"
        wait "${PIDS[$i]}" || { echo "instance $i exited with $?"; exit 1; }
        start_instance "$i"
        wait_status "$i" UP
    done
}

echo "== $WORKERS clients through HAProxy to 3 instances"
scenario steady yes steady
scenario kill-9 no kill_one
scenario rolling-restart yes rolling_restart
echo "== cluster checks passed"
