//! No password, token, secret or patient field reaches the logs (docs/contract.md,
//! "Operations"), even with every target at TRACE, in text and in JSON.
//!
//! A test binary of its own: it installs the process-wide tracing
//! subscriber, which the `api` binary must not have.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::spawn_app;
use healthcare::entity::server_setting;
use reqwest::Method;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;
use tracing_subscriber::util::SubscriberInitExt;

const OLD_PASSWORD: &str = "Crimson-Walrus-Lantern-83";
const NEW_PASSWORD: &str = "Saffron-Pelican-Orbit-29";
const WRONG_PASSWORD: &str = "Wrong-Horse-Battery-61";
const PATIENT_NAME: &str = "Zebulon Quibbleworth";
const PATIENT_AGE: i64 = 117;

/// Everything written to it, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the global subscriber: every target at TRACE, once as text and
/// once as JSON (as `LOG_FORMAT=json` would), each into its own buffer.
fn capture_logs() -> (Captured, Captured) {
    let text = Captured::default();
    let json = Captured::default();
    let (text_writer, json_writer) = (text.clone(), json.clone());
    tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(move || text_writer.clone())
                .with_filter(LevelFilter::TRACE),
        )
        .with(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(move || json_writer.clone())
                .with_filter(LevelFilter::TRACE),
        )
        .try_init()
        .expect("no other global subscriber in this binary");
    (text, json)
}

// ------------------------------------------------------------------- test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_logs_requests_but_no_password_token_secret_or_patient_field() {
    let (text_log, json_log) = capture_logs();
    let app = spawn_app().await;
    let username = format!("logged{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut tokens: Vec<String> = Vec::new();
    let mut requests = 0;

    app.expect(
        201,
        Method::POST,
        "/api/auth/register/",
        None,
        Some(json!({"username": username, "email": format!("{username}@example.com"), "password": OLD_PASSWORD})),
    )
    .await;
    let login = app
        .expect(
            200,
            Method::POST,
            "/api/auth/login/",
            None,
            Some(json!({"username": username, "password": OLD_PASSWORD})),
        )
        .await;
    let (access, refresh) = (login.str("access"), login.str("refresh"));
    tokens.extend([access.clone(), refresh.clone()]);
    let refreshed = app
        .expect(
            200,
            Method::POST,
            "/api/auth/token/refresh/",
            None,
            Some(json!({"refresh": refresh})),
        )
        .await;
    let access = refreshed.str("access");
    tokens.push(access.clone());
    let token = Some(access.as_str());
    requests += 3;

    let patient = app
        .expect(
            201,
            Method::POST,
            "/api/patients/",
            token,
            Some(json!({"name": PATIENT_NAME, "age": PATIENT_AGE, "gender": "Male"})),
        )
        .await
        .json();
    let pid = patient["id"].as_i64().expect("id");
    let patient_path = format!("/api/patients/{pid}/");
    app.expect(
        200,
        Method::PUT,
        &patient_path,
        token,
        Some(
            json!({"name": format!("{PATIENT_NAME} Jr"), "age": PATIENT_AGE + 1, "gender": "Male"}),
        ),
    )
    .await;
    // Refused input that holds patient fields.
    app.expect(
        400,
        Method::PATCH,
        &patient_path,
        token,
        Some(json!({"name": PATIENT_NAME, "age": 1_000_117, "nickname": PATIENT_NAME})),
    )
    .await;
    let listed = app
        .expect(
            200,
            Method::GET,
            "/api/patients/?search=Quibbleworth&min_age=100",
            token,
            None,
        )
        .await;
    assert_eq!(listed.json().as_array().map(Vec::len), Some(1));
    app.expect(200, Method::GET, &patient_path, token, None)
        .await;
    requests += 5;

    let doctor = app
        .expect(
            201,
            Method::POST,
            "/api/doctors/",
            token,
            Some(json!({"name": "Dr. Ottoline Fizzwhistle", "specialization": "Cardiology"})),
        )
        .await
        .json();
    let did = doctor["id"].as_i64().expect("id");
    app.expect(
        201,
        Method::POST,
        "/api/mappings/",
        token,
        Some(json!({"patient": pid, "doctor": did})),
    )
    .await;
    app.expect(200, Method::GET, "/api/mappings/", token, None)
        .await;
    app.expect(
        200,
        Method::GET,
        &format!("/api/patients/{pid}/doctors/"),
        token,
        None,
    )
    .await;
    requests += 4;

    app.expect(
        401,
        Method::POST,
        "/api/auth/login/",
        None,
        Some(json!({"username": username, "password": WRONG_PASSWORD})),
    )
    .await;
    // A wrong old password in a password change.
    app.expect(
        400,
        Method::POST,
        "/api/auth/password/",
        token,
        Some(json!({"old_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    app.expect(
        204,
        Method::POST,
        "/api/auth/password/",
        token,
        Some(json!({"old_password": OLD_PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    // The refresh token died with the password change.
    app.expect(
        401,
        Method::POST,
        "/api/auth/token/refresh/",
        None,
        Some(json!({"refresh": refresh})),
    )
    .await;
    let login = app
        .expect(
            200,
            Method::POST,
            "/api/auth/login/",
            None,
            Some(json!({"username": username, "password": NEW_PASSWORD})),
        )
        .await;
    let (access2, refresh2) = (login.str("access"), login.str("refresh"));
    tokens.extend([access2.clone(), refresh2.clone()]);
    app.expect(
        204,
        Method::POST,
        "/api/auth/logout/",
        None,
        Some(json!({"refresh": refresh2})),
    )
    .await;
    app.expect(204, Method::DELETE, &patient_path, Some(&access2), None)
        .await;
    requests += 7;

    let secret = server_setting::Entity::find_by_id("jwt_secret".to_string())
        .one(&app.state.db)
        .await
        .expect("query server_settings")
        .expect("the generated secret is kept in the database")
        .value;

    let text = text_log.text();
    let json_text = json_log.text();
    assert!(!text.trim().is_empty(), "nothing was logged");
    assert!(!json_text.trim().is_empty(), "nothing was logged as JSON");

    // One line per request, with method, status and request id.
    let request_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request_id=") && l.contains("status="))
        .collect();
    assert!(
        request_lines.len() >= requests,
        "{} request lines for {requests} requests:\n{text}",
        request_lines.len()
    );
    for needle in ["method=POST", "method=GET", "status=201", "status=401"] {
        assert!(
            request_lines.iter().any(|l| l.contains(needle)),
            "no request line with {needle}:\n{}",
            request_lines.join("\n")
        );
    }
    assert!(
        request_lines.iter().any(|l| l.contains("/api/auth/login")),
        "no request line names the login route"
    );
    let json_lines: Vec<Value> = json_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        json_lines
            .iter()
            .filter(|l| l["status"].is_number() && l["message"] == "request")
            .count()
            >= requests,
        "too few JSON request lines:\n{json_text}"
    );

    // And nothing that must stay secret.
    let mut forbidden: Vec<(String, String)> = vec![
        ("the old password".into(), OLD_PASSWORD.into()),
        ("the new password".into(), NEW_PASSWORD.into()),
        ("the wrong password".into(), WRONG_PASSWORD.into()),
        ("the patient's name".into(), PATIENT_NAME.into()),
        ("the patient's surname".into(), "Quibbleworth".into()),
        ("the patient's age".into(), format!("age={PATIENT_AGE}")),
        ("the patient's age".into(), format!("\"age\":{PATIENT_AGE}")),
        ("the patient's age".into(), format!("age: {PATIENT_AGE}")),
        ("the JWT secret".into(), secret.clone()),
    ];
    for (i, token) in tokens.iter().enumerate() {
        forbidden.push((format!("token #{i}"), token.clone()));
        let signature = token.rsplit('.').next().expect("signature").to_string();
        forbidden.push((format!("the signature of token #{i}"), signature));
    }
    for (format, log) in [("text", &text), ("JSON", &json_text)] {
        let lower = log.to_lowercase();
        for (what, value) in &forbidden {
            assert!(!value.is_empty());
            if let Some(at) = log.find(value.as_str()) {
                let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
                panic!(
                    "{what} is in the {format} log:\n{}",
                    &log[line_start..line_end]
                );
            }
            assert!(
                !lower.contains(&value.to_lowercase()),
                "{what} is in the {format} log (in another case)"
            );
        }
    }
}
