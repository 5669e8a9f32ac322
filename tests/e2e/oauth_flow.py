"""OAuth 2.0 with a standard client library (authlib), against a live server.

Usage: python3 oauth_flow.py BASE_URL

Setup through the plain JSON API: a user registers, logs in and creates a
service client (client management needs a person's own session). Then only
authlib speaks to the token endpoint, found through the RFC 8414 metadata:

1. client_credentials (client_secret_basic), narrowed to `patients:read`:
   lists the owner's patients; creating one is a 403 insufficient_scope.
2. password (client_secret_post) through the same client: creates a patient.
3. refresh_token: a new access token that works, and authlib's own
   OAuthError for a refresh token it never got.
Exits non-zero on the first thing that is not as it should be.
"""

import os
import secrets
import sys

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

# The server under test is plain HTTP on 127.0.0.1; authlib refuses
# non-HTTPS token endpoints unless told this is on purpose.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

base = sys.argv[1].rstrip("/")
password = "Velvet-Otter-Quarry-42"


def check(condition, message):
    if not condition:
        sys.exit(f"oauth: FAILED: {message}")


# ---- setup: a user, a patient of theirs, a service client ----------------
username = f"e2e_oauth_{secrets.token_hex(4)}"
r = requests.post(
    f"{base}/api/auth/register/",
    json={"username": username, "email": f"{username}@example.com", "password": password},
    timeout=10,
)
check(r.status_code == 201, f"register: {r.status_code} {r.text}")
access = requests.post(
    f"{base}/api/auth/login/", json={"username": username, "password": password}, timeout=10
).json()["access"]
person = {"Authorization": f"Bearer {access}"}
r = requests.post(
    f"{base}/api/clients/",
    json={"name": "e2e sync", "scopes": "patients:read patients:write"},
    headers=person,
    timeout=10,
)
check(r.status_code == 201, f"create client: {r.status_code} {r.text}")
client = r.json()
client_id, client_secret = client["client_id"], client["client_secret"]

meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
token_url = meta["token_endpoint"]
check(token_url == f"{base}/api/auth/token", f"token_endpoint {token_url}")
check("client_credentials" in meta["grant_types_supported"], f"metadata: {meta}")

# ---- 1. client_credentials, client_secret_basic, narrowed scope -----------
service = OAuth2Session(
    client_id,
    client_secret,
    scope="patients:read",
    token_endpoint_auth_method="client_secret_basic",
)
token = service.fetch_token(token_url, grant_type="client_credentials")
check(token["token_type"] == "Bearer", f"token_type {token}")
check(token["scope"] == "patients:read", f"scope {token['scope']}")
check("refresh_token" not in token, "client_credentials must not get a refresh token")
r = service.get(f"{base}/api/patients/", timeout=10)
check(r.status_code == 200, f"list with the client's token: {r.status_code} {r.text}")
r = service.post(
    f"{base}/api/patients/", json={"name": "Nope", "age": 1, "gender": "Other"}, timeout=10
)
check(r.status_code == 403, f"write without patients:write: {r.status_code} {r.text}")
check(
    'error="insufficient_scope"' in r.headers.get("WWW-Authenticate", ""),
    f"no insufficient_scope challenge: {r.headers}",
)
print(f"oauth: client_credentials -> {token['scope']}; GET 200, POST 403 insufficient_scope")

# ---- 2. password, client_secret_post --------------------------------------
app = OAuth2Session(client_id, client_secret, token_endpoint_auth_method="client_secret_post")
token = app.fetch_token(token_url, username=username, password=password)
check(token.get("refresh_token"), f"password grant without a refresh token: {token}")
check(token["scope"] == "patients:read patients:write", f"scope {token['scope']}")
r = app.post(
    f"{base}/api/patients/",
    json={"name": "OAuth Patient", "age": 33, "gender": "Female"},
    timeout=10,
)
check(r.status_code == 201, f"create with the password grant's token: {r.status_code} {r.text}")
patient_id = r.json()["id"]
print(f"oauth: password grant -> created patient {patient_id}")

# ---- 3. refresh_token ------------------------------------------------------
old_access = token["access_token"]
refreshed = app.refresh_token(token_url, refresh_token=token["refresh_token"])
check(refreshed["access_token"] != old_access, "refresh gave the same access token")
r = app.get(f"{base}/api/patients/{patient_id}/", timeout=10)
check(r.status_code == 200, f"read with the refreshed token: {r.status_code} {r.text}")
r = service.get(f"{base}/api/patients/", timeout=10)
names = [p["name"] for p in r.json()]
check(names == ["OAuth Patient"], f"the client sees exactly its owner's patients: {names}")
try:
    app.refresh_token(token_url, refresh_token="not.a.token")
    check(False, "a bogus refresh token was accepted")
except OAuthError as err:
    check(err.error == "invalid_grant", f"bogus refresh token: {err.error}")
print("oauth: refresh_token -> new access token works; a bogus one is invalid_grant")
print("oauth: PASS")
