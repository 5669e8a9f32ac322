//! The reference ("ceiling") server of bench/run.sh: the main server's two read routes with
//! nothing but what they need (a JWT check, one prepared statement on a pooled connection,
//! serde), on the same database and tokens, answering the same bodies and headers (security
//! headers and a request id included). No audit trail, no user-status check, no logs, no
//! metrics, no problem+json errors: it is the floor the main server's cost is compared with.
//!
//! Env: DATABASE_URL, BIND_ADDR, JWT_SECRET, DB_MAX_CONNECTIONS (16), JWT_ISSUER, JWT_AUDIENCE.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware::map_response, routing::get};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio_postgres::{Row, types::ToSql};

// Soft-deleted patients are neither shown nor counted (the trigger keeps `patient_counts` to live ones).
const GET: &str = "SELECT id, name, age, gender, created_by, created_at, updated_at, version \
    FROM patients WHERE id = $1 AND created_by = $2 AND deleted_at IS NULL";
const LIST: &str = "SELECT id, name, age, gender, created_by, created_at, updated_at, version, \
    (SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM patient_counts WHERE owner_id = $1) AS total \
    FROM patients WHERE created_by = $1 AND deleted_at IS NULL ORDER BY id LIMIT $2 OFFSET $3";
const COUNT: &str = "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM patient_counts WHERE owner_id = $1";
const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
/// What the main server adds to every response (src/telemetry.rs), besides `x-request-id`.
const EVERY_RESPONSE: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
];

struct App {
    pool: Pool,
    key: DecodingKey,
    validation: Validation,
}
type Answer = Result<Response, StatusCode>;

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    token_type: String,
}

#[derive(serde::Deserialize)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(serde::Serialize)]
struct Patient {
    id: i64,
    name: String,
    age: i32,
    gender: String,
    created_by: i64,
    created_at: String,
    updated_at: String,
}

fn patient(row: &Row) -> Patient {
    let at = |i| row.get::<_, DateTime<Utc>>(i).to_rfc3339();
    let (id, name, age, gender, created_by) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    Patient { id, name, age, gender, created_by, created_at: at(5), updated_at: at(6) }
}

fn e500<E>(_: E) -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

/// The caller's user id, from `Authorization: Bearer <access token>`.
fn caller(app: &App, headers: &HeaderMap) -> Result<i64, StatusCode> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "));
    let claims = token.and_then(|t| jsonwebtoken::decode::<Claims>(t, &app.key, &app.validation).ok());
    match claims.map(|data| data.claims) {
        Some(c) if c.token_type == "access" => c.sub.parse().map_err(|_| StatusCode::UNAUTHORIZED),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

/// One prepared statement (prepared once per connection) on a pooled connection.
async fn query(app: &App, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StatusCode> {
    let db = app.pool.get().await.map_err(e500)?;
    let statement = db.prepare_cached(sql).await.map_err(e500)?;
    db.query(&statement, params).await.map_err(e500)
}

async fn get_patient(State(app): State<Arc<App>>, Path(id): Path<i64>, headers: HeaderMap) -> Answer {
    let owner = caller(&app, &headers)?;
    let row = query(&app, GET, &[&id, &owner]).await?.pop().ok_or(StatusCode::NOT_FOUND)?;
    let tag = HeaderValue::try_from(format!("\"patient-{id}-v{}\"", row.get::<_, i64>(7))).map_err(e500)?;
    let body = serde_json::to_vec(&patient(&row)).map_err(e500)?;
    Ok(([(header::CONTENT_TYPE, JSON), (header::ETAG, tag)], body).into_response())
}

async fn list_patients(State(app): State<Arc<App>>, Query(page): Query<Page>, headers: HeaderMap) -> Answer {
    let owner = caller(&app, &headers)?;
    let (limit, offset) = (page.limit.unwrap_or(100), page.offset.unwrap_or(0));
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(StatusCode::BAD_REQUEST);
    }
    let rows = query(&app, LIST, &[&owner, &limit, &offset]).await?;
    let total: i64 = match rows.first() {
        Some(row) => row.get(8),
        None => query(&app, COUNT, &[&owner]).await?.first().map_or(0, |row| row.get(0)),
    };
    let body = serde_json::to_vec(&rows.iter().map(patient).collect::<Vec<_>>()).map_err(e500)?;
    let mut response = ([(header::CONTENT_TYPE, JSON)], body).into_response();
    response.headers_mut().insert("x-total-count", total.into());
    let link = |offset: i64, rel| format!("</api/patients/?limit={limit}&offset={offset}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if offset.saturating_add(limit) < total {
        links.push(link(offset + limit, "next"));
    }
    if offset > 0 {
        links.push(link((offset - limit).max(0), "prev"));
    }
    if !links.is_empty() {
        response.headers_mut().insert(header::LINK, HeaderValue::try_from(links.join(", ")).map_err(e500)?);
    }
    Ok(response)
}

async fn every_response(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let id = uuid::Uuid::new_v4().simple().to_string();
    headers.insert("x-request-id", HeaderValue::try_from(id).expect("hex"));
    for (name, value) in EVERY_RESPONSE {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let mut config: tokio_postgres::Config = env("DATABASE_URL", "").parse().expect("DATABASE_URL");
    config.options("-c plan_cache_mode=force_generic_plan"); // as the main server's connections
    let recycling_method = RecyclingMethod::Fast;
    let manager = Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method });
    let size = env("DB_MAX_CONNECTIONS", "16").parse().expect("DB_MAX_CONNECTIONS");
    let pool = Pool::builder(manager).max_size(size).build().expect("pool");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[env("JWT_ISSUER", "healthcare")]);
    validation.set_audience(&[env("JWT_AUDIENCE", "healthcare-api")]);
    validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
    validation.leeway = 10;
    let secret = std::env::var("JWT_SECRET").expect("JWT_SECRET");
    let app = Arc::new(App { pool, key: DecodingKey::from_secret(secret.as_bytes()), validation });
    let routes = Router::new()
        .route("/api/patients", get(list_patients))
        .route("/api/patients/", get(list_patients))
        .route("/api/patients/{id}", get(get_patient))
        .route("/api/patients/{id}/", get(get_patient))
        .layer(map_response(every_response))
        .with_state(app);
    let listener =
        tokio::net::TcpListener::bind(env("BIND_ADDR", "127.0.0.1:8100")).await.expect("BIND_ADDR");
    axum::serve(listener, routes).await.expect("serve");
}
