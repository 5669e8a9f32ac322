//! Spawns the real application on a real socket, on a fresh database:
//! an SQLite file per test, or the PostgreSQL database named by
//! `TEST_DATABASE_URL` (created fresh and dropped by `.ci/run`).

use std::path::PathBuf;

use healthcare::app::{AppState, build_app};
use healthcare::config::Config;
use poem::listener::{Acceptor, Listener, TcpListener};
use reqwest::{Method, StatusCode};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

pub const PASSWORD: &str = "Velvet-Otter-Quarry-42";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    pub state: AppState,
    sqlite_file: Option<PathBuf>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
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
        assert!(
            body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert!(
            body["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
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
}

pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::for_database(database_url);
    config.jwt_secret = None;
    config.db_max_connections = 5;
    config.password_hash_concurrency = 2;
    config
}

/// A unique name, so tests sharing a PostgreSQL database never collide.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let (url, sqlite_file) = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let path = std::env::temp_dir().join(format!(
                "healthcare-test-{}.sqlite3",
                uuid::Uuid::new_v4().simple()
            ));
            (format!("sqlite://{}?mode=rwc", path.display()), Some(path))
        }
    };
    let mut config = test_config(&url);
    configure(&mut config);
    let state = AppState::connect(config).await.expect("app state");
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let port = acceptor.local_addr()[0]
        .as_socket_addr()
        .expect("socket address")
        .port();
    let app = build_app(&state);
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        db: state.db.clone(),
        state,
        sqlite_file,
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
        let resp = req.send().await.expect("request");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.expect("body"),
        }
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
        let resp = req.send().await.expect("request");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.expect("body"),
        }
    }

    /// Whether this app has a database file of its own (SQLite), which no
    /// other test writes to.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite_file.is_some()
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
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
