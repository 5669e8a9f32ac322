#!/usr/bin/env python3
"""Mixed traffic through the load balancer for bench/cluster.sh (standard
library only).

Usage: cluster_load.py setup BASE_URL DIR WORKERS
       cluster_load.py BASE_URL DIR/RUN STOP_FILE [WORKERS]

Each worker logs in as its own user (registered by `setup`) and, until
STOP_FILE exists, sends on one keep-alive connection: reads of its patients
(50 %), a page of its list (20 %) and creates with an Idempotency-Key
(30 %). Every request carries its own X-Request-Id. It writes to OUT_DIR:

- acked.tsv: one line per acknowledged request that discloses or changes
  patient data (kind, request id, patient id), for the checks in SQL;
- failures.txt: one line per request that failed (status or error);
- summary.json: requests sent, answered 2xx, failed.
"""

import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
import uuid

PASSWORD = "Velvet-Otter-Quarry-42"


def connect(base):
    url = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def call(conn, method, path, token=None, body=None, headers=None):
    """(status, parsed body or None). Raises on a transport error."""
    h = {"Accept": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return resp.status, parsed


def setup(base, workers, out_dir):
    """Registers one user per worker (with one patient each) and writes
    their tokens to OUT_DIR/users.json."""
    conn = connect(base)
    users = []
    for i in range(workers):
        name = "cluster%s%d" % (uuid.uuid4().hex[:8], i)
        status, body = call(conn, "POST", "/api/auth/register/", body={
            "username": name, "email": name + "@example.com", "password": PASSWORD})
        assert status == 201, (status, body)
        status, body = call(conn, "POST", "/api/auth/login/", body={
            "username": name, "password": PASSWORD})
        assert status == 200, (status, body)
        token = body["access"]
        status, body = call(conn, "POST", "/api/patients/", token, {
            "name": "Cluster Patient", "age": 40, "gender": "Female"})
        assert status == 201, (status, body)
        users.append({"token": token, "patients": [body["id"]]})
    with open(os.path.join(out_dir, "users.json"), "w") as f:
        json.dump(users, f)


class Worker(threading.Thread):
    def __init__(self, base, user, stop_file, lock, acked, failures):
        super().__init__(daemon=True)
        self.base, self.user, self.stop_file = base, user, stop_file
        self.lock, self.acked, self.failures = lock, acked, failures
        self.sent = self.ok = self.failed = 0

    def run(self):
        conn = connect(self.base)
        token = self.user["token"]
        patients = list(self.user["patients"])
        rng = random.Random()
        while not os.path.exists(self.stop_file):
            rid = uuid.uuid4().hex
            roll = rng.random()
            headers = {"X-Request-Id": rid}
            if roll < 0.5:
                kind, method, path, body = "read", "GET", "/api/patients/%d/" % rng.choice(patients), None
            elif roll < 0.7:
                kind, method, path, body = "list", "GET", "/api/patients/?limit=5", None
            else:
                kind, method, path = "create", "POST", "/api/patients/"
                body = {"name": "Cluster Patient", "age": rng.randint(1, 99), "gender": "Male"}
                headers["Idempotency-Key"] = rid
            self.sent += 1
            try:
                status, parsed = call(conn, method, path, token, body, headers)
            except (OSError, http.client.HTTPException) as e:
                self.failed += 1
                with self.lock:
                    self.failures.append("%s %s %s: %r" % (rid, method, path, e))
                conn.close()
                conn = connect(self.base)
                continue
            if 200 <= status < 300:
                self.ok += 1
                pid = ""
                if kind == "create":
                    pid = parsed["id"]
                    patients.append(pid)
                elif kind == "read":
                    pid = parsed["id"]
                with self.lock:
                    self.acked.append((kind, rid, pid))
            else:
                self.failed += 1
                with self.lock:
                    self.failures.append("%s %s %s: %d %s" % (rid, method, path, status, parsed))


def run(base, out_dir, stop_file, workers):
    # Written by `setup` into the directory above each run's.
    with open(os.path.join(out_dir, os.pardir, "users.json")) as f:
        users = json.load(f)[:workers]
    lock, acked, failures = threading.Lock(), [], []
    threads = [Worker(base, u, stop_file, lock, acked, failures) for u in users]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - started
    with open(os.path.join(out_dir, "acked.tsv"), "w") as f:
        for kind, rid, pid in acked:
            f.write("%s\t%s\t%s\n" % (kind, rid, pid if pid != "" else "\\N"))
    with open(os.path.join(out_dir, "failures.txt"), "w") as f:
        f.write("".join(line + "\n" for line in failures))
    summary = {
        "sent": sum(t.sent for t in threads),
        "ok": sum(t.ok for t in threads),
        "failed": sum(t.failed for t in threads),
        "seconds": round(elapsed, 1),
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2], int(sys.argv[4]), sys.argv[3])
    else:
        run(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 8)
