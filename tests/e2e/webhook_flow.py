"""Webhooks end to end, verified by an independent implementation.

Usage: python webhook_flow.py BASE_URL

Runs a local receiver, registers a user, subscribes it (payload `full`) to
every event type, creates, updates and deletes a patient, a doctor and a
mapping, and sends a test message. Every request the receiver gets is
verified with the `standardwebhooks` package (the reference Python
implementation of the Standard Webhooks specification); deliveries are
deduplicated by `webhook-id`. Exits non-zero unless every expected event
arrived, each exactly once after deduplication, every signature verified,
and a message signed with another secret was refused.

The server must allow webhooks to reach this receiver
(WEBHOOK_ALLOW_HTTP=true, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true).
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

BASE = sys.argv[1].rstrip("/")
PASSWORD = "Velvet-Otter-Quarry-42"


def call(method: str, path: str, token: str | None = None, body: object | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def expect(status: int, method: str, path: str, token: str | None = None, body: object | None = None) -> object:
    got, payload = call(method, path, token, body)
    if got != status:
        sys.exit(f"{method} {path}: expected {status}, got {got}: {payload}")
    return payload


class Inbox:
    """What the receiver was sent, verified."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secret: str | None = None
        self.messages: dict[str, dict] = {}  # by webhook-id
        self.requests = 0
        self.failures: list[str] = []


INBOX = Inbox()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with INBOX.lock:
            INBOX.requests += 1
            try:
                payload = Webhook(INBOX.secret).verify(body, headers)
            except WebhookVerificationError as err:
                INBOX.failures.append(f"{headers.get('webhook-id')}: {err}")
                self.send_response(400)
                self.end_headers()
                return
            # At least once: a retry of a message already handled is dropped.
            INBOX.messages.setdefault(headers["webhook-id"], payload)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    user = f"e2e_hook_{secrets.token_hex(4)}"
    expect(201, "POST", "/api/auth/register/", body={"username": user, "email": f"{user}@example.com", "password": PASSWORD})
    token = expect(200, "POST", "/api/auth/login/", body={"username": user, "password": PASSWORD})["access"]

    every = [
        "patient.created", "patient.updated", "patient.deleted", "patient.restored",
        "doctor.created", "doctor.updated", "doctor.deleted", "doctor.restored",
        "mapping.created", "mapping.deleted",
    ]
    hook = expect(201, "POST", "/api/webhooks/", token, {"url": url, "events": every, "payload": "full"})
    INBOX.secret = hook["secret"]
    assert INBOX.secret.startswith("whsec_"), hook

    patient = expect(201, "POST", "/api/patients/", token, {"name": "Hook Patient", "age": 30, "gender": "Female"})["id"]
    expect(200, "PATCH", f"/api/patients/{patient}/", token, {"age": 31})
    doctor = expect(201, "POST", "/api/doctors/", token, {"name": "Hook Doctor", "specialization": "Cardiology"})["id"]
    expect(200, "PATCH", f"/api/doctors/{doctor}/", token, {"specialization": "Neurology"})
    mapping = expect(201, "POST", "/api/mappings/", token, {"patient": patient, "doctor": doctor})["id"]
    expect(204, "DELETE", f"/api/mappings/{mapping}/", token)
    expect(204, "DELETE", f"/api/doctors/{doctor}/", token)
    expect(204, "DELETE", f"/api/patients/{patient}/", token)
    expect(202, "POST", f"/api/webhooks/{hook['id']}/test/", token)
    wanted = [
        ("patient.created", patient), ("patient.updated", patient),
        ("doctor.created", doctor), ("doctor.updated", doctor),
        ("mapping.created", mapping), ("mapping.deleted", mapping),
        ("doctor.deleted", doctor), ("patient.deleted", patient),
    ]

    deadline = time.monotonic() + 60
    while True:
        with INBOX.lock:
            got = list(INBOX.messages.values())
        events = sorted(
            (m["type"], m["data"]["event"]["resource_id"]) for m in got if m["type"] != "webhook.test"
        )
        tests = [m for m in got if m["type"] == "webhook.test"]
        if events == sorted(wanted) and len(tests) == 1:
            break
        if time.monotonic() > deadline:
            sys.exit(f"timed out; verified so far: {events}, tests: {len(tests)}, failures: {INBOX.failures}")
        time.sleep(0.1)
    if INBOX.failures:
        sys.exit(f"signatures that did not verify: {INBOX.failures}")
    for m in got:
        if m["type"] == "patient.updated":
            assert m["data"]["record"]["age"] == 31, m

    # The same check refuses a message under another secret.
    body = json.dumps(got[0]).encode()
    other = Webhook("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = {"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time())), "webhook-signature": other.sign("msg_x", __import__("datetime").datetime.now(), body.decode())}
    try:
        Webhook(INBOX.secret).verify(body, headers)
        sys.exit("a message signed with another secret verified")
    except WebhookVerificationError:
        pass

    attempts = expect(200, "GET", f"/api/webhooks/{hook['id']}/deliveries/?limit=100", token)
    assert all(a["delivery_state"] == "delivered" for a in attempts if a.get("status_code") == 204), attempts
    print(f"webhooks: {len(got)} messages ({INBOX.requests} requests), every signature verified by standardwebhooks")
    server.shutdown()


main()
