//! OAuth 2.0 for integrations (issue 11): service clients, the token
//! endpoint and its RFC 6749 errors, scopes on every operation, revocation
//! of clients' tokens, and the audit trail naming the client. Runs on
//! SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.

use base64::Engine;
use healthcare::entity::{audit_event, service_client};
use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, User, spawn_app, spawn_app_with};

const TOKEN: &str = "/api/auth/token";
const CLIENTS: &str = "/api/clients/";

/// A service client as created: its numbers and its secret.
pub(crate) struct Client {
    id: i64,
    client_id: String,
    secret: String,
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn form(params: &[(&str, &str)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

impl TestApp {
    /// A token request: form-encoded `params`, HTTP Basic when `client` is given.
    async fn token(&self, client: Option<(&str, &str)>, params: &[(&str, &str)]) -> Reply {
        let auth = client.map(|(id, secret)| basic(id, secret));
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        self.raw(Method::POST, TOKEN, None, &headers, form(params))
            .await
    }

    pub(crate) async fn new_client(&self, owner: &User, scopes: &str) -> Client {
        let reply = self
            .post(
                CLIENTS,
                Some(&owner.access),
                json!({"name": "Nightly sync", "scopes": scopes}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let body = reply.json();
        Client {
            id: body["id"].as_i64().unwrap(),
            client_id: body["client_id"].as_str().unwrap().to_string(),
            secret: body["client_secret"].as_str().unwrap().to_string(),
        }
    }

    /// An access token for `client` (client_credentials, HTTP Basic).
    pub(crate) async fn client_token(&self, client: &Client, scope: Option<&str>) -> String {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        let reply = self
            .token(Some((&client.client_id, &client.secret)), &params)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.str("access_token")
    }
}

/// Asserts an RFC 6749 error answer, and returns its body.
#[track_caller]
fn oauth_error(reply: &Reply, status: u16, error: &str) -> Value {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "not an OAuth error: {:?} {}",
        reply.header("content-type"),
        reply.text
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert!(body.get("access_token").is_none(), "{body}");
    if status == 401 {
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Basic")),
            "{:?}",
            reply.headers
        );
    }
    body
}

async fn client_row(app: &TestApp, id: i64) -> service_client::Model {
    service_client::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .expect("client row")
}

#[tokio::test]
async fn a_client_acts_for_its_owner_only_narrowed_by_its_scopes() {
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mine = app.create_patient(&alice.access, "Alice Patient").await;
    app.create_patient(&bob.access, "Bob Patient").await;
    let client = app.new_client(&alice, "patients:read").await;
    let row = client_row(&app, client.id).await;
    assert_eq!(row.owner_id, alice.id);
    assert_eq!(row.scopes, "patients:read");
    assert_ne!(row.secret_hash, client.secret, "only a hash is stored");
    assert!(!row.secret_hash.contains(&client.secret));

    let reply = app
        .token(
            Some((&client.client_id, &client.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "patients:read");
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("refresh_token").is_none(), "no refresh token");
    let token = body["access_token"].as_str().unwrap().to_string();

    // Alice's patients, never Bob's.
    let list = app.get("/api/patients/", &token).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let ids: Vec<i64> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![mine["id"].as_i64().unwrap()]);
    let bobs = app.patient_rows_of(bob.id).await[0].id;
    app.get(&format!("/api/patients/{bobs}/"), &token)
        .await
        .problem(404);

    // Nothing beyond its scope.
    let create = app
        .post(
            "/api/patients/",
            Some(&token),
            json!({"name": "X", "age": 3, "gender": "Other"}),
        )
        .await;
    create.problem(403);
    assert_eq!(
        create.header("www-authenticate"),
        Some("Bearer realm=\"healthcare\", error=\"insufficient_scope\", scope=\"patients:write\"")
    );

    // The audit trail names the client and the user it acts for.
    let event = client_event(&app, "list", client.id)
        .await
        .expect("the list is audited with the client");
    assert_eq!(event.actor_id, Some(alice.id));
    let issued = client_event(&app, "token_issued", client.id)
        .await
        .expect("the token's issue is audited");
    assert_eq!(issued.actor_id, Some(alice.id));
    let refused = client_event(&app, "forbidden", client.id).await;
    assert!(refused.is_some(), "the 403 is audited with the client");
}

/// The first audit event of `action` that names service client `client`.
async fn client_event(app: &TestApp, action: &str, client: i64) -> Option<audit_event::Model> {
    audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq(action))
        .filter(audit_event::Column::ClientId.eq(client))
        .one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_token_cannot_manage_clients_change_passwords_or_use_admin_routes() {
    let app = spawn_app().await;
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let client = app.new_client(&admin, "*:read *:write").await;
    let token = app.client_token(&client, None).await;
    for (method, path, body) in [
        (Method::GET, "/api/auth/me/", None),
        (
            Method::POST,
            "/api/auth/password/",
            Some(json!({"old_password": PASSWORD, "new_password": "Amber-Falcon-Ridge-77"})),
        ),
        (Method::GET, CLIENTS, None),
        (
            Method::POST,
            CLIENTS,
            Some(json!({"name": "x", "scopes": "patients:read"})),
        ),
        (Method::POST, "/api/clients/1/secret/", None),
        (Method::GET, "/api/users/", None),
        (Method::GET, "/api/audit/", None),
        (Method::POST, "/api/users/1/deactivate/", None),
    ] {
        let reply = app.request(method.clone(), path, Some(&token), body).await;
        let problem = reply.problem(403);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Service clients"),
            "{method} {path}: {problem}"
        );
    }
    // The password did not change.
    assert_eq!(app.login(&admin.username, PASSWORD).await.status, 200);
}

/// Every operation that declares a scope refuses a token holding every
/// scope but that one: 403, problem+json, and RFC 6750's challenge naming
/// it. The operations are read from the live spec, so a new one is covered
/// as soon as it exists.
#[tokio::test]
async fn every_operation_refuses_a_token_without_its_scope() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let client = app.new_client(&owner, "*:read *:write").await;
    let spec: Value =
        serde_json::from_str(app.get("/openapi.json", &owner.access).await.text.as_str()).unwrap();
    let all = [
        "patients:read",
        "patients:write",
        "doctors:read",
        "doctors:write",
        "mappings:read",
        "mappings:write",
    ];
    let full = app.client_token(&client, None).await;
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let scopes: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["OAuth2"].as_array())
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let [scope] = scopes.as_slice() else {
                assert!(scopes.is_empty(), "{method} {path}: {scopes:?}");
                continue;
            };
            let others: Vec<&str> = all.iter().copied().filter(|s| s != scope).collect();
            let token = app.client_token(&client, Some(&others.join(" "))).await;
            let url = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body =
                matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let reply = app.request(method.clone(), &url, Some(&token), body).await;
            reply.problem(403);
            assert_eq!(
                reply.header("www-authenticate"),
                Some(
                    format!(
                        "Bearer realm=\"healthcare\", error=\"insufficient_scope\", scope=\"{scope}\""
                    )
                    .as_str()
                ),
                "{method} {url}"
            );
            // A token with every scope gets past the check.
            let body =
                matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let reply = app.request(method.clone(), &url, Some(&full), body).await;
            assert!(
                !reply
                    .header("www-authenticate")
                    .is_some_and(|h| h.contains("insufficient_scope")),
                "{method} {url}: {}",
                reply.text
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations declare a scope");
}

#[tokio::test]
async fn rotating_the_secret_refuses_the_old_one_and_its_tokens() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let client = app.new_client(&owner, "patients:read").await;
    let old_token = app.client_token(&client, None).await;
    assert_eq!(app.get("/api/patients/", &old_token).await.status, 200);

    let reply = app
        .post(
            &format!("/api/clients/{}/secret/", client.id),
            Some(&owner.access),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let new_secret = reply.str("client_secret");
    assert_ne!(new_secret, client.secret);

    let old = app
        .token(
            Some((&client.client_id, &client.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    oauth_error(&old, 401, "invalid_client");
    app.get("/api/patients/", &old_token).await.problem(401);
    let rotated = Client {
        secret: new_secret,
        ..client
    };
    let token = app.client_token(&rotated, None).await;
    assert_eq!(app.get("/api/patients/", &token).await.status, 200);
    assert!(
        client_row(&app, rotated.id)
            .await
            .tokens_valid_after
            .is_some()
    );
}

#[tokio::test]
async fn disabling_or_deleting_a_client_stops_it_and_admins_may_disable_anyones() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let client = app.new_client(&owner, "patients:read").await;
    let token = app.client_token(&client, None).await;
    let path = format!("/api/clients/{}/", client.id);

    // Someone else's: invisible to a user, visible but not theirs to
    // rotate or delete for an administrator.
    app.get(&path, &other.access).await.problem(404);
    app.post(&format!("{path}disable/"), Some(&other.access), json!({}))
        .await
        .problem(404);
    assert_eq!(app.get(&path, &admin.access).await.status, 200);
    let listed = app.get(CLIENTS, &admin.access).await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == client.id)
    );
    assert!(
        app.get(CLIENTS, &other.access)
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.post(&format!("{path}secret/"), Some(&admin.access), json!({}))
        .await
        .problem(403);
    app.delete(&path, &admin.access).await.problem(403);

    // An administrator disables it: the secret and the token stop working.
    let reply = app
        .post(&format!("{path}disable/"), Some(&admin.access), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json()["disabled_at"].is_string());
    app.get("/api/patients/", &token).await.problem(401);
    let refused = app
        .token(
            Some((&client.client_id, &client.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    oauth_error(&refused, 401, "invalid_client");
    assert!(client_row(&app, client.id).await.disabled_at.is_some());

    // The owner deletes another: gone from lists, its secret refused.
    let second = app.new_client(&owner, "patients:read").await;
    let second_path = format!("/api/clients/{}/", second.id);
    assert_eq!(app.delete(&second_path, &owner.access).await.status, 204);
    app.get(&second_path, &owner.access).await.problem(404);
    let refused = app
        .token(
            Some((&second.client_id, &second.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    oauth_error(&refused, 401, "invalid_client");
    assert!(client_row(&app, second.id).await.deleted_at.is_some());
    let mine = app.get(CLIENTS, &owner.access).await.json();
    let ids: Vec<i64> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![client.id], "the deleted client is not listed");

    let actions: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::ResourceType.eq("client"))
        .order_by_asc(audit_event::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.resource_id == Some(client.id) || e.resource_id == Some(second.id))
        .map(|e| e.action)
        .collect();
    for action in ["create", "forbidden", "disable", "delete"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[tokio::test]
async fn deactivating_the_owner_stops_the_clients_tokens_and_secret() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let client = app.new_client(&owner, "patients:read").await;
    let token = app.client_token(&client, None).await;
    let reply = app
        .post(
            &format!("/api/users/{}/deactivate/", owner.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.get("/api/patients/", &token).await.problem(401);
    let refused = app
        .token(
            Some((&client.client_id, &client.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    oauth_error(&refused, 401, "invalid_client");
}

#[tokio::test]
async fn password_and_refresh_grants_work_for_people_and_for_clients() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;

    // A person, no client: every scope unless narrowed.
    let reply = app
        .token(
            None,
            &[
                ("grant_type", "password"),
                ("username", &user.username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        body["scope"],
        "patients:read patients:write doctors:read doctors:write mappings:read mappings:write"
    );
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let access = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/auth/me/", &access).await.status, 200);

    // Swagger UI's request: an empty Basic, an empty scope.
    let reply = app
        .token(
            Some(("", "")),
            &[
                ("grant_type", "password"),
                ("username", &user.username),
                ("password", PASSWORD),
                ("scope", ""),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // Refresh, narrowing the scope.
    let reply = app
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("scope", "patients:read"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["scope"], "patients:read");
    let narrowed = reply.str("access_token");
    app.post(
        "/api/patients/",
        Some(&narrowed),
        json!({"name": "X", "age": 3, "gender": "Other"}),
    )
    .await
    .problem(403);
    // The seed's refresh token works here too (a person's).
    let reply = app
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &user.refresh),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // Through a client: its scopes, its owner only, refreshed only by it.
    let client = app.new_client(&user, "patients:read").await;
    let creds = (client.client_id.as_str(), client.secret.as_str());
    let reply = app
        .token(
            Some(creds),
            &[
                ("grant_type", "password"),
                ("username", &user.username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["scope"], "patients:read");
    let client_refresh = reply.str("refresh_token");
    let reply = app
        .token(
            Some(creds),
            &[
                ("grant_type", "password"),
                ("username", &other.username),
                ("password", PASSWORD),
            ],
        )
        .await;
    oauth_error(&reply, 400, "unauthorized_client");
    let without_client = app
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &client_refresh),
            ],
        )
        .await;
    oauth_error(&without_client, 400, "invalid_grant");
    let reply = app
        .token(
            Some(creds),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &client_refresh),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let refreshed = reply.str("access_token");
    assert_eq!(app.get("/api/patients/", &refreshed).await.status, 200);
    // A person's refresh token is not the client's to refresh.
    let reply = app
        .token(
            Some(creds),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    oauth_error(&reply, 400, "invalid_grant");

    // client_secret_post, and a JSON body, work too.
    let reply = app
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", &client.secret),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .post(
            TOKEN,
            None,
            json!({"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.secret}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Every bad input of the issue gets its RFC 6749 error: never a 5xx, never
/// a token, never a problem document.
#[tokio::test]
async fn bad_token_requests_get_rfc_6749_errors() {
    let app = spawn_app().await;
    let user = app.user().await;
    let client = app.new_client(&user, "patients:read").await;
    let creds = Some((client.client_id.as_str(), client.secret.as_str()));
    let cc = ("grant_type", "client_credentials");

    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "unknown grant type",
            app.token(creds, &[("grant_type", "authorization_code")])
                .await,
            400,
            "unsupported_grant_type",
        ),
        (
            "no grant type",
            app.token(creds, &[("scope", "patients:read")]).await,
            400,
            "invalid_request",
        ),
        (
            "password grant without a password",
            app.token(
                None,
                &[("grant_type", "password"), ("username", &user.username)],
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "refresh grant without a token",
            app.token(None, &[("grant_type", "refresh_token")]).await,
            400,
            "invalid_request",
        ),
        (
            "client credentials without a client",
            app.token(None, &[cc]).await,
            401,
            "invalid_client",
        ),
        (
            "wrong secret",
            app.token(Some((&client.client_id, "hcs_wrong")), &[cc])
                .await,
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            app.token(Some(("999999", &client.secret)), &[cc]).await,
            401,
            "invalid_client",
        ),
        (
            "a client id that is not a number",
            app.token(Some(("-1", &client.secret)), &[cc]).await,
            401,
            "invalid_client",
        ),
        (
            "a refresh token as the client secret",
            app.token(Some((&client.client_id, &user.refresh)), &[cc])
                .await,
            401,
            "invalid_client",
        ),
        (
            "an access token as the refresh token",
            app.token(
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &user.access),
                ],
            )
            .await,
            400,
            "invalid_grant",
        ),
        (
            "garbage as the refresh token",
            app.token(
                None,
                &[("grant_type", "refresh_token"), ("refresh_token", "x.y.z")],
            )
            .await,
            400,
            "invalid_grant",
        ),
        (
            "scope not granted to the client",
            app.token(creds, &[cc, ("scope", "patients:write")]).await,
            400,
            "invalid_scope",
        ),
        (
            "unknown scope",
            app.token(creds, &[cc, ("scope", "patients:delete")]).await,
            400,
            "invalid_scope",
        ),
        (
            "wrong password",
            app.token(
                None,
                &[
                    ("grant_type", "password"),
                    ("username", &user.username),
                    ("password", "not-it"),
                ],
            )
            .await,
            400,
            "invalid_grant",
        ),
        (
            "duplicate parameter",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("authorization", &basic(&client.client_id, &client.secret)),
                ],
                b"grant_type=client_credentials&scope=patients%3Aread&scope=patients%3Aread"
                    .to_vec(),
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "duplicate grant type",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("authorization", &basic(&client.client_id, &client.secret)),
                ],
                b"grant_type=client_credentials&grant_type=password".to_vec(),
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "two client authentications",
            app.token(
                creds,
                &[
                    cc,
                    ("client_id", &client.client_id),
                    ("client_secret", &client.secret),
                ],
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "a secret without an id",
            app.token(None, &[cc, ("client_secret", &client.secret)])
                .await,
            400,
            "invalid_request",
        ),
        (
            "oversized form",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[("content-type", "application/x-www-form-urlencoded")],
                format!("grant_type=password&username={}", "a".repeat(70_000)).into_bytes(),
            )
            .await,
            413,
            "invalid_request",
        ),
        (
            "not a form",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[("content-type", "text/plain")],
                b"grant_type=client_credentials".to_vec(),
            )
            .await,
            415,
            "invalid_request",
        ),
        (
            "no content type",
            app.raw(Method::POST, TOKEN, None, &[], b"grant_type=x".to_vec())
                .await,
            415,
            "invalid_request",
        ),
        (
            "compressed",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-encoding", "gzip"),
                ],
                b"grant_type=client_credentials".to_vec(),
            )
            .await,
            415,
            "invalid_request",
        ),
        (
            "malformed JSON",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[("content-type", "application/json")],
                b"{\"grant_type\": ".to_vec(),
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "duplicate JSON key",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[("content-type", "application/json")],
                br#"{"grant_type": "password", "grant_type": "client_credentials"}"#.to_vec(),
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "a JSON number",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[("content-type", "application/json")],
                br#"{"grant_type": 1}"#.to_vec(),
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "a malformed Basic header",
            app.raw(
                Method::POST,
                TOKEN,
                None,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("authorization", "Basic !!!"),
                ],
                b"grant_type=client_credentials".to_vec(),
            )
            .await,
            401,
            "invalid_client",
        ),
        (
            "a method the endpoint does not have",
            app.request(Method::GET, TOKEN, None, None).await,
            405,
            "invalid_request",
        ),
    ];
    for (what, reply, status, error) in &cases {
        assert!(reply.status.as_u16() < 500, "{what}: {}", reply.text);
        let body = oauth_error(reply, *status, error);
        assert!(body.get("type").is_none(), "{what}: a problem document");
        if *status == 405 {
            assert_eq!(reply.header("allow"), Some("POST"), "{what}");
        }
    }

    // A disabled client.
    app.post(
        &format!("/api/clients/{}/disable/", client.id),
        Some(&user.access),
        json!({}),
    )
    .await;
    oauth_error(&app.token(creds, &[cc]).await, 401, "invalid_client");
}

/// The token endpoint spends the same per-address rate and the same
/// per-account budget as `/api/auth/login/`.
#[tokio::test]
async fn the_token_endpoint_shares_the_login_limits() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 1000;
        c.login_attempts_per_hour = 2;
    })
    .await;
    let user = app.user().await;
    // One failed password at the token endpoint spends the budget (half of
    // two is the burst)...
    let reply = app
        .token(
            None,
            &[
                ("grant_type", "password"),
                ("username", &user.username),
                ("password", "wrong-password"),
            ],
        )
        .await;
    oauth_error(&reply, 400, "invalid_grant");
    // ... so the next guess, at either endpoint, waits.
    let login = app.login(&user.username, "wrong-again").await;
    login.problem(429);
    let reply = app
        .token(
            None,
            &[
                ("grant_type", "password"),
                ("username", &user.username),
                ("password", "wrong-again"),
            ],
        )
        .await;
    oauth_error(&reply, 429, "slow_down");
    assert!(
        reply
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1))
    );
    // A password checked at the token endpoint is a login in the trail.
    let failures: Vec<(Option<i64>, i32)> = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("login_failure"))
        .order_by_asc(audit_event::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor_id, e.status))
        .collect();
    assert!(failures.contains(&(Some(user.id), 400)), "{failures:?}");
    if app.is_sqlite() {
        // A database of its own: exactly these three (the 429s name no one).
        assert_eq!(
            failures,
            vec![(Some(user.id), 400), (None, 429), (None, 429)]
        );
    }

    let app = spawn_app_with(|c| c.auth_rate_per_minute = 2).await;
    for _ in 0..2 {
        let reply = app
            .token(None, &[("grant_type", "client_credentials")])
            .await;
        oauth_error(&reply, 401, "invalid_client");
    }
    let reply = app
        .token(None, &[("grant_type", "client_credentials")])
        .await;
    oauth_error(&reply, 429, "slow_down");
    app.login("anyone", "anything").await.problem(429);
}

#[tokio::test]
async fn the_server_metadata_says_where_the_token_endpoint_is() {
    let app = spawn_app().await;
    let reply = app
        .request(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let meta = reply.json();
    let issuer = app.address.clone();
    assert_eq!(meta["issuer"], issuer.as_str());
    assert_eq!(meta["token_endpoint"], format!("{issuer}/api/auth/token"));
    assert_eq!(
        meta["grant_types_supported"],
        json!(["password", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(meta["scopes_supported"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn a_client_needs_a_name_and_known_scopes() {
    let app = spawn_app().await;
    let user = app.user().await;
    for (body, field) in [
        (json!({"name": "x", "scopes": ""}), "scopes"),
        (json!({"name": "x", "scopes": "patients:delete"}), "scopes"),
        (json!({"name": " ", "scopes": "patients:read"}), "name"),
        (json!({"scopes": "patients:read"}), "name"),
        (
            json!({"name": "x", "scopes": "patients:read", "owner": 1}),
            "owner",
        ),
    ] {
        app.post(CLIENTS, Some(&user.access), body)
            .await
            .field_error(field);
    }
    assert!(
        service_client::Entity::find()
            .filter(service_client::Column::OwnerId.eq(user.id))
            .all(&app.db)
            .await
            .unwrap()
            .is_empty()
    );
}
