//! The audit trail (docs/contract.md, "Audit trail"): every access to patient data and every
//! security event is recorded with who, what, which record, outcome, IP and
//! request id; administrators read it with filters and pagination; nothing
//! changes or deletes it; a clean shutdown loses nothing.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use healthcare::entity::audit_event;
use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, spawn_app, test_config, unique};

const AUDIT: &str = "/api/audit/";

// ---------------------------------------------------------------- helpers

/// A bare HTTP client for a server that is not a `TestApp`.
struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn of(app: &TestApp) -> Self {
        Self {
            base: app.address.clone(),
            http: app.client.clone(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let started = std::time::Instant::now();
        Reply::read(req.send().await.expect("request"), started).await
    }
}

/// One audit event, as the API shows it and as the table holds it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    actor: Option<i64>,
    action: String,
    resource_type: String,
    resource_id: Option<i64>,
    status: i64,
    ip: Option<String>,
    request_id: String,
}

impl Seen {
    fn from_json(event: &Value) -> Self {
        Self {
            actor: event["actor"].as_i64(),
            action: event["action"].as_str().expect("action").to_string(),
            resource_type: event["resource_type"]
                .as_str()
                .expect("resource_type")
                .to_string(),
            resource_id: event["resource_id"].as_i64(),
            status: event["status"].as_i64().expect("status"),
            ip: event["ip"].as_str().map(str::to_string),
            request_id: event["request_id"]
                .as_str()
                .expect("request_id")
                .to_string(),
        }
        .normalised()
    }

    fn from_row(row: &audit_event::Model) -> Self {
        Self {
            actor: row.actor_id,
            action: row.action.clone(),
            resource_type: row.resource_type.clone(),
            resource_id: row.resource_id,
            status: i64::from(row.status),
            ip: row.ip.clone(),
            request_id: row.request_id.clone(),
        }
        .normalised()
    }

    /// A login or revocation may name the user as its record or name none;
    /// both say the same.
    fn normalised(mut self) -> Self {
        if self.resource_type == "user" && self.resource_id == self.actor {
            self.resource_id = None;
        }
        self
    }
}

/// The event a response should have left, from its `X-Request-Id`.
#[track_caller]
fn expect(
    reply: &Reply,
    actor: i64,
    action: &str,
    resource_type: &str,
    resource_id: Option<i64>,
) -> Seen {
    Seen {
        actor: Some(actor),
        action: action.to_string(),
        resource_type: resource_type.to_string(),
        resource_id,
        status: i64::from(reply.status.as_u16()),
        ip: Some("127.0.0.1".to_string()),
        request_id: reply
            .header("x-request-id")
            .expect("X-Request-Id on every response")
            .to_string(),
    }
    .normalised()
}

/// One page of the trail as an administrator reads it.
async fn trail(app: &TestApp, admin: &str, query: &str) -> (Vec<Value>, Reply) {
    let reply = app.get(&format!("{AUDIT}?{query}"), admin).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    let events = reply.json().as_array().expect("a JSON array").clone();
    (events, reply)
}

async fn seen(app: &TestApp, admin: &str, query: &str) -> Vec<Seen> {
    trail(app, admin, query)
        .await
        .0
        .iter()
        .map(Seen::from_json)
        .collect()
}

fn total(reply: &Reply) -> u64 {
    reply
        .header("x-total-count")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no X-Total-Count: {:?}", reply.headers))
}

fn at(event: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(event["at"].as_str().expect("at"))
        .expect("RFC 3339 `at`")
        .with_timezone(&Utc)
}

/// A timestamp for a query string (`+` would read as a space).
fn query_time(time: &str) -> String {
    time.replace('+', "%2B")
}

async fn admin_token(app: &TestApp) -> String {
    app.make_admin(&app.user().await).await.access
}

/// What the patient-lifecycle requests did, and the events they must have
/// left, newest first.
struct Lifecycle {
    user_id: i64,
    expected: Vec<Seen>,
}

/// As a new user: register, log in, create a patient, read it, change it,
/// delete it, then try to log in with a wrong password.
async fn patient_lifecycle(client: &Client) -> Lifecycle {
    let username = unique("audited");
    let reg = client
        .send(
            Method::POST,
            "/api/auth/register/",
            None,
            Some(json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD})),
        )
        .await;
    assert_eq!(reg.status, 201, "{}", reg.text);
    let a = reg.id();
    let login_body = json!({"username": username, "password": PASSWORD});
    let login = client
        .send(Method::POST, "/api/auth/login/", None, Some(login_body))
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let access = login.json()["access"].as_str().expect("access").to_string();
    let mut expected = vec![
        expect(&reg, a, "register", "user", Some(a)),
        expect(&login, a, "login_success", "user", None),
    ];

    let created = client
        .send(
            Method::POST,
            "/api/patients/",
            Some(&access),
            Some(json!({"name": "Audrey Trail", "age": 52, "gender": "Female"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let pid = created.id();
    expected.push(expect(&created, a, "create", "patient", Some(pid)));

    let path = format!("/api/patients/{pid}/");
    let read = client.send(Method::GET, &path, Some(&access), None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    expected.push(expect(&read, a, "read", "patient", Some(pid)));

    let updated = client
        .send(
            Method::PUT,
            &path,
            Some(&access),
            Some(json!({"name": "Audrey Trail-Smith", "age": 53, "gender": "Female"})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    expected.push(expect(&updated, a, "update", "patient", Some(pid)));

    let deleted = client
        .send(Method::DELETE, &path, Some(&access), None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    expected.push(expect(&deleted, a, "delete", "patient", Some(pid)));

    let wrong = client
        .send(
            Method::POST,
            "/api/auth/login/",
            None,
            Some(json!({"username": username, "password": "Not-The-Password-99"})),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    expected.push(expect(&wrong, a, "login_failure", "user", None));

    expected.reverse();
    Lifecycle {
        user_id: a,
        expected,
    }
}

/// A database of its own for a server this file starts itself: the
/// PostgreSQL database of `TEST_DATABASE_URL`, or an SQLite file removed on drop.
struct Database {
    url: String,
    sqlite_file: Option<PathBuf>,
}

impl Database {
    fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Self {
                url,
                sqlite_file: None,
            },
            _ => {
                let path = std::env::temp_dir().join(format!(
                    "healthcare-audit-{}.sqlite3",
                    uuid::Uuid::new_v4().simple()
                ));
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    sqlite_file: Some(path),
                }
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn reading_changing_deleting_a_patient_and_a_wrong_login_are_in_the_trail() {
    let app = spawn_app().await;
    let lifecycle = patient_lifecycle(&Client::of(&app)).await;
    let admin = admin_token(&app).await;

    let (events, reply) = trail(&app, &admin, &format!("actor={}", lifecycle.user_id)).await;

    let got: Vec<Seen> = events.iter().map(Seen::from_json).collect();
    assert_eq!(got, lifecycle.expected);
    assert_eq!(total(&reply), lifecycle.expected.len() as u64);
    // Newest first, with distinct ids.
    for pair in events.windows(2) {
        assert!(at(&pair[0]) >= at(&pair[1]), "{pair:?}");
        assert!(pair[0]["id"].as_i64() > pair[1]["id"].as_i64(), "{pair:?}");
    }
    let now = Utc::now();
    for event in &events {
        assert!((now - at(event)).num_seconds().abs() < 120, "{event}");
    }
}

#[tokio::test]
async fn every_event_is_in_the_table_after_a_clean_shutdown_right_after_the_requests() {
    let database = Database::new();
    let state = healthcare::app::AppState::connect(test_config(&database.url))
        .await
        .expect("app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("socket address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(healthcare::app::run_until(state, listener, async {
        let _ = stopped.await;
    }));
    let client = Client {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };

    let lifecycle = patient_lifecycle(&client).await;
    stop.send(()).expect("the server is still running");
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops within 30 s")
        .expect("the server task did not panic")
        .expect("the server stopped cleanly");

    let db = healthcare::store::connect(&database.url, 1, Duration::from_secs(5))
        .await
        .expect("a new connection");
    let rows = audit_event::Entity::find()
        .filter(audit_event::Column::ActorId.eq(lifecycle.user_id))
        .order_by_desc(audit_event::Column::Id)
        .all(&db)
        .await
        .expect("query audit_events");
    db.close().await.expect("close");
    let got: Vec<Seen> = rows.iter().map(Seen::from_row).collect();
    assert_eq!(got, lifecycle.expected);
}

#[tokio::test]
async fn another_users_404_attempts_on_a_patient_are_recorded_with_the_attacker_as_actor() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let attacker = app.user().await;
    let patient = app.create_patient(&owner.access, "Private Person").await;
    let pid = patient["id"].as_i64().expect("id");
    let path = format!("/api/patients/{pid}/");

    let read = app.get(&path, &attacker.access).await;
    read.problem(404);
    let update = app
        .put(
            &path,
            &attacker.access,
            json!({"name": "Taken Over", "age": 1, "gender": "Male"}),
        )
        .await;
    update.problem(404);
    let delete = app.delete(&path, &attacker.access).await;
    delete.problem(404);
    let row = app
        .patient_row(pid)
        .await
        .expect("the patient is still there");
    assert_eq!(row.name, "Private Person");

    let admin = admin_token(&app).await;
    let got = seen(
        &app,
        &admin,
        &format!("actor={}&resource_type=patient", attacker.id),
    )
    .await;
    assert_eq!(
        got,
        vec![
            expect(&delete, attacker.id, "delete", "patient", Some(pid)),
            expect(&update, attacker.id, "update", "patient", Some(pid)),
            expect(&read, attacker.id, "read", "patient", Some(pid)),
        ]
    );

    // The patient's own history shows both users.
    let history = seen(
        &app,
        &admin,
        &format!("resource_type=patient&resource_id={pid}"),
    )
    .await;
    let actors: Vec<(Option<i64>, &str, i64)> = history
        .iter()
        .map(|e| (e.actor, e.action.as_str(), e.status))
        .collect();
    assert_eq!(
        actors,
        vec![
            (Some(attacker.id), "delete", 404),
            (Some(attacker.id), "update", 404),
            (Some(attacker.id), "read", 404),
            (Some(owner.id), "create", 201),
        ]
    );
}

#[tokio::test]
async fn the_trail_filters_by_resource_and_time_and_paginates() {
    let app = spawn_app().await;
    let user = app.user().await;
    let p1 = app.create_patient(&user.access, "First Filter").await["id"]
        .as_i64()
        .expect("id");
    let p2 = app.create_patient(&user.access, "Second Filter").await["id"]
        .as_i64()
        .expect("id");
    for path in [
        format!("/api/patients/{p1}/"),
        format!("/api/patients/{p1}/"),
        format!("/api/patients/{p2}/"),
        "/api/patients/".to_string(),
    ] {
        let reply = app.get(&path, &user.access).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let admin = admin_token(&app).await;
    let actor = format!("actor={}", user.id);

    // Everything by the user: the registration, a login, two creates,
    // three reads, a list.
    let (all, reply) = trail(&app, &admin, &actor).await;
    assert_eq!(all.len(), 8, "{all:?}");
    assert_eq!(total(&reply), 8);
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "list",
            "read",
            "read",
            "read",
            "create",
            "create",
            "login_success",
            "register"
        ]
    );

    // By resource.
    let (patients, reply) = trail(&app, &admin, &format!("{actor}&resource_type=patient")).await;
    assert_eq!(patients.len(), 6);
    assert_eq!(total(&reply), 6);
    assert!(patients.iter().all(|e| e["resource_type"] == "patient"));
    let one = seen(
        &app,
        &admin,
        &format!("resource_type=patient&resource_id={p1}"),
    )
    .await;
    let summary: Vec<(&str, Option<i64>)> = one
        .iter()
        .map(|e| (e.action.as_str(), e.resource_id))
        .collect();
    assert_eq!(
        summary,
        [("read", Some(p1)), ("read", Some(p1)), ("create", Some(p1))]
    );
    let users = seen(&app, &admin, &format!("{actor}&resource_type=user")).await;
    assert_eq!(users.len(), 2, "{users:?}");
    assert_eq!(users[0].action, "login_success");
    assert_eq!(users[1].action, "register");
    let (mappings, reply) = trail(&app, &admin, &format!("{actor}&resource_type=mapping")).await;
    assert!(mappings.is_empty(), "{mappings:?}");
    assert_eq!(total(&reply), 0);

    // By time: `since` includes its instant, `until` excludes it.
    let pivot = &all[3]; // the read of p1 right after the creates
    let pivot_at = query_time(pivot["at"].as_str().expect("at"));
    let (since, _) = trail(&app, &admin, &format!("{actor}&since={pivot_at}")).await;
    let expected_since: Vec<&Value> = all.iter().filter(|e| at(e) >= at(pivot)).collect();
    assert_eq!(since.iter().collect::<Vec<_>>(), expected_since);
    assert!(since.contains(pivot));
    let (until, _) = trail(&app, &admin, &format!("{actor}&until={pivot_at}")).await;
    let expected_until: Vec<&Value> = all.iter().filter(|e| at(e) < at(pivot)).collect();
    assert_eq!(until.iter().collect::<Vec<_>>(), expected_until);
    assert!(!until.contains(pivot));
    assert_eq!(since.len() + until.len(), all.len());
    let first_at = query_time(all.last().unwrap()["at"].as_str().unwrap());
    let (window, _) = trail(
        &app,
        &admin,
        &format!("{actor}&since={first_at}&until={pivot_at}"),
    )
    .await;
    assert_eq!(window.iter().collect::<Vec<_>>(), expected_until);
    let future = query_time(&(Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let (later, reply) = trail(&app, &admin, &format!("{actor}&since={future}")).await;
    assert!(later.is_empty());
    assert_eq!(total(&reply), 0);
    app.get(&format!("{AUDIT}?since=yesterday"), &admin)
        .await
        .problem(400);

    // Pages of 2 put together are the whole list.
    let mut paged = Vec::new();
    for offset in (0..8).step_by(2) {
        let (page, reply) = trail(&app, &admin, &format!("{actor}&limit=2&offset={offset}")).await;
        assert_eq!(total(&reply), 8);
        let link = reply.header("link").unwrap_or_default().to_string();
        if offset + 2 < 8 {
            assert_eq!(page.len(), 2);
            assert!(link.contains(r#"rel="next""#), "offset {offset}: {link:?}");
        } else {
            assert!(!link.contains(r#"rel="next""#), "offset {offset}: {link:?}");
        }
        if offset > 0 {
            assert!(link.contains(r#"rel="prev""#), "offset {offset}: {link:?}");
        }
        paged.extend(page);
    }
    assert_eq!(paged, all);
    // The next page keeps every filter.
    let (_, reply) = trail(
        &app,
        &admin,
        &format!("{actor}&resource_type=patient&limit=1"),
    )
    .await;
    assert_eq!(
        reply.header("link"),
        Some(
            format!(
                "</api/audit/?actor={}&resource_type=patient&limit=1&offset=1>; rel=\"next\"",
                user.id
            )
            .as_str()
        )
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "actor=abc",
        "resource_type=%00",
    ] {
        app.get(&format!("{AUDIT}?{bad}"), &admin)
            .await
            .problem(400);
    }
}

#[tokio::test]
async fn no_route_changes_or_deletes_the_trail() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = app.create_patient(&user.access, "Kept Record").await["id"]
        .as_i64()
        .expect("id");
    assert_eq!(
        app.get(&format!("/api/patients/{pid}/"), &user.access)
            .await
            .status,
        200
    );
    let admin = admin_token(&app).await;
    let (events, _) = trail(&app, &admin, &format!("actor={}", user.id)).await;
    // register, login, create, read
    assert_eq!(events.len(), 4, "{events:?}");
    let event_id = events[0]["id"].as_i64().expect("id");
    let rows_of_user = || async {
        audit_event::Entity::find()
            .filter(audit_event::Column::ActorId.eq(user.id))
            .order_by_asc(audit_event::Column::Id)
            .all(&app.db)
            .await
            .expect("query audit_events")
    };
    let before = rows_of_user().await;
    assert_eq!(before.len(), 4);
    let first_before = audit_event::Entity::find_by_id(1)
        .one(&app.db)
        .await
        .expect("query audit_events");

    let forged = json!({"action": "read", "actor": 1, "resource_type": "patient", "status": 200});
    for token in [&admin, &user.access] {
        for path in [
            AUDIT.to_string(),
            "/api/audit".to_string(),
            format!("{AUDIT}{event_id}/"),
            format!("{AUDIT}{event_id}"),
            format!("{AUDIT}1/"),
        ] {
            for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::POST] {
                let body = (method != Method::DELETE).then(|| forged.clone());
                let reply = app.request(method.clone(), &path, Some(token), body).await;
                let status = reply.status.as_u16();
                assert!(
                    status == 404 || status == 405,
                    "{method} {path}: {status} {}",
                    reply.text
                );
                reply.problem(status);
                if status == 405 {
                    let allow = reply.header("allow").unwrap_or_default().to_uppercase();
                    assert!(!allow.contains(method.as_str()), "{method} {path}: {allow}");
                }
            }
        }
    }

    assert_eq!(rows_of_user().await, before);
    let first_after = audit_event::Entity::find_by_id(1)
        .one(&app.db)
        .await
        .expect("query audit_events");
    assert_eq!(first_after, first_before);
    let (after, _) = trail(&app, &admin, &format!("actor={}", user.id)).await;
    assert_eq!(after, events);
}

#[tokio::test]
async fn mapping_create_list_and_delete_are_recorded() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = app.create_patient(&user.access, "Mapped Patient").await["id"]
        .as_i64()
        .expect("id");
    let did = app.create_doctor(&user.access, "Dr. Audit").await["id"]
        .as_i64()
        .expect("id");

    let created = app
        .post(
            "/api/mappings/",
            Some(&user.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let mid = created.id();
    let listed = app.get("/api/mappings/", &user.access).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let of_patient = app
        .get(&format!("/api/mappings/{pid}/"), &user.access)
        .await;
    assert_eq!(of_patient.status, 200, "{}", of_patient.text);
    let deleted = app
        .delete(&format!("/api/mappings/{mid}/"), &user.access)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(
        app.mapping_rows(pid).await.is_empty(),
        "hidden from every read"
    );

    let admin = admin_token(&app).await;
    let mapping_events = seen(
        &app,
        &admin,
        &format!("actor={}&resource_type=mapping", user.id),
    )
    .await;
    assert_eq!(
        mapping_events,
        vec![
            expect(&deleted, user.id, "delete", "mapping", Some(mid)),
            expect(&listed, user.id, "list", "mapping", None),
            expect(&created, user.id, "create", "mapping", Some(mid)),
        ]
    );
    // Reading a patient's mappings is a read of that patient's data.
    let patient_events = seen(
        &app,
        &admin,
        &format!("actor={}&resource_type=patient", user.id),
    )
    .await;
    assert_eq!(patient_events.len(), 2, "{patient_events:?}");
    assert_eq!(
        patient_events[0],
        expect(&of_patient, user.id, "read", "patient", Some(pid))
    );
    assert_eq!(patient_events[1].action, "create");
    // Reading the doctor directory is not reading patient data (changing it
    // is recorded, as every change is).
    assert!(
        seen(&app, &admin, &format!("actor={}", user.id))
            .await
            .iter()
            .all(|e| e.resource_type != "doctor" || e.action == "create")
    );
}

#[tokio::test]
async fn logout_and_password_change_are_recorded_each_as_its_own_action() {
    let app = spawn_app().await;
    let user = app.user().await;

    let logout = app
        .post("/api/auth/logout/", None, json!({"refresh": user.refresh}))
        .await;
    assert_eq!(logout.status, 204, "{}", logout.text);
    let login = app.login(&user.username, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let access = login.json()["access"].as_str().expect("access").to_string();
    let change = app
        .post(
            "/api/auth/password/",
            Some(&access),
            json!({"old_password": PASSWORD, "new_password": "Amber-Falcon-Ridge-77"}),
        )
        .await;
    assert_eq!(change.status, 204, "{}", change.text);

    let admin = admin_token(&app).await;
    let got = seen(
        &app,
        &admin,
        &format!("actor={}&resource_type=user", user.id),
    )
    .await;
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        got[..3],
        [
            expect(&change, user.id, "password_change", "user", None),
            expect(&login, user.id, "login_success", "user", None),
            expect(&logout, user.id, "logout", "user", None),
        ]
    );
    assert_eq!(got[3].action, "login_success");
    assert_eq!(got[4].action, "register");
}

#[tokio::test]
async fn an_administrators_revocations_are_recorded_with_the_target() {
    let app = spawn_app().await;
    let admin = app.make_admin(&app.user().await).await;
    let target = app.user().await;

    let revoke = app
        .post(
            &format!("/api/users/{}/revoke-tokens/", target.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(revoke.status, 204, "{}", revoke.text);
    let deactivate = app
        .post(
            &format!("/api/users/{}/deactivate/", target.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(deactivate.status, 200, "{}", deactivate.text);

    let got = seen(
        &app,
        &admin.access,
        &format!(
            "actor={}&resource_type=user&resource_id={}",
            admin.id, target.id
        ),
    )
    .await;
    assert_eq!(
        got,
        vec![
            expect(&deactivate, admin.id, "deactivate", "user", Some(target.id)),
            expect(&revoke, admin.id, "revoke_tokens", "user", Some(target.id)),
        ]
    );
}

#[tokio::test]
async fn head_requests_on_patient_data_are_recorded_like_gets() {
    // HEAD answers with the GET's headers (ETag, X-Total-Count of a search),
    // so it discloses patient data and is a read like any other.
    let app = spawn_app().await;
    let user = app.user().await;
    let attacker = app.user().await;
    let pid = app.create_patient(&user.access, "Headed Patient").await["id"]
        .as_i64()
        .expect("id");
    let path = format!("/api/patients/{pid}/");

    let head = app
        .request(Method::HEAD, &path, Some(&user.access), None)
        .await;
    assert_eq!(head.status, 200);
    let search = app
        .request(
            Method::HEAD,
            "/api/patients/?search=Headed",
            Some(&user.access),
            None,
        )
        .await;
    assert_eq!(search.status, 200);
    assert_eq!(search.header("x-total-count"), Some("1"));
    let probe = app
        .request(Method::HEAD, &path, Some(&attacker.access), None)
        .await;
    assert_eq!(probe.status, 404);

    let admin = admin_token(&app).await;
    let mine = seen(
        &app,
        &admin,
        &format!("actor={}&resource_type=patient", user.id),
    )
    .await;
    assert_eq!(
        mine.len(),
        3,
        "HEAD requests missing from the trail: {mine:?}"
    );
    assert_eq!(
        mine[..2],
        [
            expect(&search, user.id, "list", "patient", None),
            expect(&head, user.id, "read", "patient", Some(pid)),
        ],
        "HEAD requests missing from the trail: {mine:?}"
    );
    let theirs = seen(
        &app,
        &admin,
        &format!("actor={}&resource_type=patient", attacker.id),
    )
    .await;
    assert_eq!(
        theirs,
        [expect(&probe, attacker.id, "read", "patient", Some(pid))]
    );
}

#[tokio::test]
async fn a_percent_encoded_id_is_recorded_with_the_record_it_reached() {
    // `/api/patients/%31/` is patient 1 to the router, so it must be
    // patient 1 in the trail too.
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = app.create_patient(&user.access, "Encoded Patient").await["id"]
        .as_i64()
        .expect("id");
    let encoded: String = pid
        .to_string()
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let path = format!("/api/patients/{encoded}/");

    let read = app.get(&path, &user.access).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json()["id"], pid);
    let updated = app
        .put(
            &path,
            &user.access,
            json!({"name": "Encoded Patient", "age": 31, "gender": "Female"}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);

    let admin = admin_token(&app).await;
    let got = seen(
        &app,
        &admin,
        &format!("actor={}&resource_type=patient", user.id),
    )
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[..2],
        [
            expect(&updated, user.id, "update", "patient", Some(pid)),
            expect(&read, user.id, "read", "patient", Some(pid)),
        ]
    );
}
