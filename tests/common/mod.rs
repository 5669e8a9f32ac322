//! The one test harness, shared by every test binary (`#[path]`-included):
//! the real application on a real socket and a real database — an SQLite
//! file per test, or the PostgreSQL database named by `TEST_DATABASE_URL`
//! (created fresh and dropped by `.ci/run`) — plus replies, users and
//! databases made for one test.
#![allow(dead_code)]

pub mod receiver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use healthcare::app::{AppState, run_until};
use healthcare::config::Config;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};

pub const PASSWORD: &str = "Velvet-Otter-Quarry-42";

/// A unique name, so tests sharing a PostgreSQL database never collide.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The `id` of a JSON object.
#[track_caller]
pub fn id_of(value: &Value) -> i64 {
    value["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {value}"))
}

/// The PostgreSQL database of this run, when there is one.
pub fn pg_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The PostgreSQL database of this run, for tests that need one. They are
/// `#[ignore = "needs TEST_DATABASE_URL"]`; CI's PostgreSQL pass runs them
/// with `--include-ignored`. Run without it, they fail loudly instead of
/// passing without testing anything.
#[track_caller]
pub fn require_pg() -> String {
    pg_url().unwrap_or_else(|| {
        panic!("this test needs PostgreSQL: set TEST_DATABASE_URL (as .ci/run does)")
    })
}

/// A response, read whole, and how long it took.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub elapsed: Duration,
}

impl Reply {
    pub async fn read(resp: reqwest::Response, started: Instant) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        Self {
            status,
            headers,
            text,
            elapsed: started.elapsed(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `id` of a successful reply's JSON object.
    #[track_caller]
    pub fn id(&self) -> i64 {
        assert!(self.status.is_success(), "{}", self.text);
        id_of(&self.json())
    }

    /// A string field of the JSON body.
    #[track_caller]
    pub fn str(&self, field: &str) -> String {
        self.json()[field]
            .as_str()
            .unwrap_or_else(|| panic!("no `{field}`: {}", self.text))
            .to_string()
    }

    /// Asserts this is an RFC 9457 problem with `status`, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not a problem document: {}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{body}");
        for field in ["type", "title", "detail"] {
            assert!(
                body[field].as_str().is_some_and(|t| !t.is_empty()),
                "problem without `{field}`: {body}"
            );
        }
        body
    }

    /// Asserts a 400 problem whose `errors` names `field`.
    #[track_caller]
    pub fn field_error(&self, field: &str) -> Value {
        let body = self.problem(400);
        assert!(
            body["errors"][field]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "no error for `{field}`: {body}"
        );
        body
    }

    /// Asserts the 503 problem of an outage: `Retry-After` in seconds.
    #[track_caller]
    pub fn unavailable(&self) {
        self.problem(503);
        let retry = self.header("retry-after").unwrap_or_else(|| {
            panic!("503 without Retry-After: {:?}", self.headers);
        });
        assert!(
            retry.parse::<u64>().is_ok_and(|s| s >= 1),
            "Retry-After is not a number of seconds: {retry}"
        );
    }
}

/// The database a test uses: the run's PostgreSQL one, or a fresh SQLite
/// file (removed on drop).
pub struct TestDatabase {
    pub url: String,
    sqlite_file: Option<PathBuf>,
}

impl TestDatabase {
    pub fn new() -> Self {
        match pg_url() {
            Some(url) => Self {
                url,
                sqlite_file: None,
            },
            None => Self::sqlite(),
        }
    }

    /// A fresh SQLite file, whatever the run's database.
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("{}.sqlite3", unique("healthcare-test-")));
        Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            sqlite_file: Some(path),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite_file.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// `url` with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("database URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// `url` pointing at another host and port (a proxy).
pub fn with_address(url: &str, addr: std::net::SocketAddr) -> String {
    let mut url = reqwest::Url::parse(url).expect("database URL");
    url.set_host(Some(&addr.ip().to_string())).expect("host");
    url.set_port(Some(addr.port())).expect("port");
    url.to_string()
}

/// `host:port` of a PostgreSQL URL.
pub fn address_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).expect("database URL");
    format!(
        "{}:{}",
        url.host_str().expect("database host"),
        url.port().unwrap_or(5432)
    )
}

/// A direct connection, for checking what is really stored.
pub async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(2)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await.expect("direct connection")
}

/// A PostgreSQL database created for one test, dropped on drop (also when
/// the test fails).
pub struct FreshPg {
    pub url: String,
    admin_url: String,
    name: String,
}

impl FreshPg {
    pub async fn create(base_url: &str) -> Self {
        let name = unique("hc_test_");
        let admin_url = with_database(base_url, "postgres");
        let admin = connect(&admin_url).await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database");
        let _ = admin.close().await;
        Self {
            url: with_database(base_url, &name),
            admin_url,
            name,
        }
    }
}

impl Drop for FreshPg {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop cannot await; a thread with its own runtime can.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let admin = connect(&admin_url).await;
                let result = admin.execute_unprepared(&sql).await;
                let _ = admin.close().await;
                result
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Settings for an in-process app: the defaults, a small pool, a generated
/// signing secret kept in the database.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::for_database(database_url);
    config.jwt_secret = None;
    config.db_max_connections = 5;
    config.password_hash_concurrency = 2;
    // On PostgreSQL the rate limits live in the database every test shares:
    // each app gets budgets of its own, as a separate deployment would.
    config.limit_scope = Some(unique("test-"));
    config.shutdown_drain = 0;
    config
}

/// An app with a database of its own: on PostgreSQL a fresh database,
/// dropped after the test (keep the second value alive until the end), for
/// tests that must see no other test's records or background work (every
/// instance on a database delivers its webhooks, with its own settings).
pub async fn spawn_isolated_app(configure: impl FnOnce(&mut Config)) -> (TestApp, Option<FreshPg>) {
    let fresh = match pg_url() {
        Some(url) => Some(FreshPg::create(&url).await),
        None => None,
    };
    let url = fresh.as_ref().map(|f| f.url.clone());
    let app = spawn_app_with(move |c| {
        if let Some(url) = url {
            c.database_url = url;
        }
        configure(c);
    })
    .await;
    (app, fresh)
}

/// The real application, served on a local socket.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    pub state: AppState,
    database: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::new();
    let mut config = test_config(&database.url);
    configure(&mut config);
    let state = AppState::connect(config).await.expect("app state");
    serve_app(state, database).await
}

/// The real application, with `prepare` applied to its database connection
/// before anything uses it (a metric callback that sees every statement).
pub async fn spawn_app_on(prepare: impl FnOnce(&mut DatabaseConnection)) -> TestApp {
    let database = TestDatabase::new();
    let config = test_config(&database.url);
    let mut db = healthcare::store::connect(
        &config.database_url,
        config.db_max_connections,
        Duration::from_secs(config.db_acquire_timeout),
    )
    .await
    .expect("connect");
    healthcare::store::migrate(&db).await.expect("migrate");
    prepare(&mut db);
    let state = AppState::with_db(config, db).await.expect("app state");
    serve_app(state, database).await
}

async fn serve_app(state: AppState, database: TestDatabase) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("socket address").port();
    // The server the binary runs, with its connection limits.
    tokio::spawn(run_until(state.clone(), listener, std::future::pending()));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        db: state.db.clone(),
        state,
        database,
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let started = Instant::now();
        Reply::read(req.send().await.expect("request"), started).await
    }

    /// A request with a raw body and headers, for malformed input.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address))
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let started = Instant::now();
        Reply::read(req.send().await.expect("request"), started).await
    }

    /// A request that must answer `status`.
    pub async fn expect(
        &self,
        status: u16,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let reply = self.request(method.clone(), path, token, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        reply
    }

    /// Whether this app has a database file of its own (SQLite), which no
    /// other test writes to.
    pub fn is_sqlite(&self) -> bool {
        self.database.is_sqlite()
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// A JSON POST with extra request headers.
    pub async fn post_with_headers(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.raw(
            Method::POST,
            path,
            token,
            &all,
            body.to_string().into_bytes(),
        )
        .await
    }

    /// A login that a trusted proxy says came from `forwarded_for`.
    pub async fn login_from(&self, forwarded_for: &str, username: &str, password: &str) -> Reply {
        self.post_with_headers(
            "/api/auth/login/",
            None,
            &[("x-forwarded-for", forwarded_for)],
            json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn register(&self, username: &str) -> Reply {
        self.post(
            "/api/auth/register/",
            None,
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.post(
            "/api/auth/login/",
            None,
            json!({"username": username, "password": password}),
        )
        .await
    }
}

/// A registered, logged-in user.
pub struct User {
    pub id: i64,
    pub username: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// Registers and logs in a new user with a unique name.
    pub async fn user(&self) -> User {
        let username = unique("user");
        let reg = self.register(&username).await;
        assert_eq!(reg.status, 201, "{}", reg.text);
        let id = reg.json()["id"].as_i64().expect("id");
        let login = self.login(&username, PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.text);
        let tokens = login.json();
        User {
            id,
            username,
            access: tokens["access"].as_str().expect("access").to_string(),
            refresh: tokens["refresh"].as_str().expect("refresh").to_string(),
        }
    }

    /// Makes an existing user an administrator and logs them in again.
    pub async fn make_admin(&self, user: &User) -> User {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        healthcare::entity::user::Entity::update_many()
            .col_expr(healthcare::entity::user::Column::IsStaff, Expr::value(true))
            .filter(healthcare::entity::user::Column::Id.eq(user.id))
            .exec(&self.db)
            .await
            .expect("make admin");
        let tokens = self.login(&user.username, PASSWORD).await.json();
        User {
            id: user.id,
            username: user.username.clone(),
            access: tokens["access"].as_str().expect("access").to_string(),
            refresh: tokens["refresh"].as_str().expect("refresh").to_string(),
        }
    }

    pub async fn create_patient(&self, token: &str, name: &str) -> Value {
        let reply = self
            .post(
                "/api/patients/",
                Some(token),
                json!({"name": name, "age": 30, "gender": "Female"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json()
    }

    pub async fn create_doctor(&self, token: &str, name: &str) -> Value {
        let reply = self
            .post(
                "/api/doctors/",
                Some(token),
                json!({"name": name, "specialization": "Cardiology"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json()
    }

    pub async fn patient_row(&self, id: i64) -> Option<healthcare::entity::patient::Model> {
        use sea_orm::EntityTrait;
        healthcare::entity::patient::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query patient")
    }

    pub async fn doctor_row(&self, id: i64) -> Option<healthcare::entity::doctor::Model> {
        use sea_orm::EntityTrait;
        healthcare::entity::doctor::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query doctor")
    }

    /// Whether the patient's row is kept but deleted (hidden).
    pub async fn patient_deleted(&self, id: i64) -> bool {
        self.patient_row(id)
            .await
            .is_some_and(|row| row.deleted_at.is_some())
    }

    /// Whether the doctor's row is kept but deleted (hidden).
    pub async fn doctor_deleted(&self, id: i64) -> bool {
        self.doctor_row(id)
            .await
            .is_some_and(|row| row.deleted_at.is_some())
    }

    /// The mappings of one patient that are visible (neither it, its
    /// patient nor its doctor deleted), straight from the database.
    pub async fn mapping_rows(&self, patient_id: i64) -> Vec<healthcare::entity::mapping::Model> {
        use healthcare::entity::{doctor, mapping, patient};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let live_patient = patient::Entity::find_by_id(patient_id)
            .one(&self.db)
            .await
            .expect("query patient")
            .is_some_and(|p| p.deleted_at.is_none());
        if !live_patient {
            return Vec::new();
        }
        let rows = mapping::Entity::find()
            .filter(mapping::Column::PatientId.eq(patient_id))
            .filter(mapping::Column::DeletedAt.is_null())
            .find_also_related(doctor::Entity)
            .all(&self.db)
            .await
            .expect("query mappings");
        rows.into_iter()
            .filter(|(_, d)| d.as_ref().is_some_and(|d| d.deleted_at.is_none()))
            .map(|(m, _)| m)
            .collect()
    }

    /// The live patients owned by a user, straight from the database.
    pub async fn patient_rows_of(&self, user_id: i64) -> Vec<healthcare::entity::patient::Model> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        healthcare::entity::patient::Entity::find()
            .filter(healthcare::entity::patient::Column::CreatedBy.eq(user_id))
            .filter(healthcare::entity::patient::Column::DeletedAt.is_null())
            .all(&self.db)
            .await
            .expect("query patients")
    }
}
