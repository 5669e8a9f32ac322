//! Request ids and structured (JSON) request logs.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::support::{PASSWORD, Server, TestDatabase};

/// The first value under `key` anywhere in `value` (fields may sit at the
/// top level or inside `span` / `spans` / `fields`).
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| field(v, key))),
        Value::Array(items) => items.iter().find_map(|v| field(v, key)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_and_json_logs_carry_them_with_method_route_status_and_latency() {
    let db = TestDatabase::new();
    let mut server = Server::start(&db.url, &[("LOG_FORMAT", "json")]).await;
    let user = server.user().await;

    let reply = server
        .call(
            Method::GET,
            "/api/patients/",
            Some(&user.access),
            None,
            &[("X-Request-Id", "test-req-123")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("x-request-id"), Some("test-req-123"));

    // Without one, or with one that is not sane, the server makes its own.
    let generated = server.get("/healthz", None).await;
    let id = generated
        .header("x-request-id")
        .expect("generated request id");
    assert!(id.len() >= 16 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let insane = "<script>alert(1)</script> and a space";
    let replaced = server
        .call(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("X-Request-Id", insane)],
        )
        .await;
    let id = replaced
        .header("x-request-id")
        .expect("replacement request id");
    assert_ne!(id, insane);
    assert!(
        id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "{id}"
    );
    // Errors carry it too.
    let missing = server
        .call(
            Method::GET,
            "/nowhere",
            None,
            None,
            &[("X-Request-Id", "test-req-404")],
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-request-id"), Some("test-req-404"));

    server.stop(Duration::from_secs(20)).await;
    let log = server.log();

    // One JSON object per line, nothing else.
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect();
    assert!(!lines.is_empty(), "no log lines");

    let tagged: Vec<&Value> = lines
        .iter()
        .filter(|l| field(l, "request_id").and_then(Value::as_str) == Some("test-req-123"))
        .collect();
    let requests: Vec<&&Value> = tagged
        .iter()
        .filter(|l| field(l, "message").and_then(Value::as_str) == Some("request"))
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "request lines for test-req-123: {tagged:#?}"
    );
    let line = requests[0];
    assert_eq!(
        field(line, "method").and_then(Value::as_str),
        Some("GET"),
        "{line}"
    );
    assert_eq!(
        field(line, "route").and_then(Value::as_str),
        Some("/api/patients"),
        "{line}"
    );
    assert_eq!(
        field(line, "status").and_then(Value::as_f64),
        Some(200.0),
        "{line}"
    );
    let latency = field(line, "latency_ms").and_then(Value::as_f64);
    assert!(
        latency.is_some_and(|ms| (0.0..30_000.0).contains(&ms)),
        "latency_ms is not a number of milliseconds: {line}"
    );
    assert_eq!(
        field(line, "user_id").and_then(Value::as_f64),
        Some(user.id as f64),
        "user id: {line}"
    );

    let not_found = lines
        .iter()
        .find(|l| field(l, "request_id").and_then(Value::as_str) == Some("test-req-404"))
        .expect("a log line for the 404");
    let not_found = lines
        .iter()
        .filter(|l| field(l, "request_id") == field(not_found, "request_id"))
        .find(|l| field(l, "message").and_then(Value::as_str) == Some("request"))
        .expect("a request line for the 404");
    assert_eq!(
        field(not_found, "status").and_then(Value::as_f64),
        Some(404.0)
    );

    // Never secrets: no password, no token.
    assert!(!log.contains(PASSWORD), "the log holds a password");
    assert!(!log.contains(&user.access), "the log holds an access token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_written_to_a_file_are_plain_lines_with_the_request_id() {
    let db = TestDatabase::new();
    let mut server = Server::start(&db.url, &[]).await;
    let user = server.user().await;
    let reply = server
        .call(
            Method::GET,
            "/api/patients/",
            Some(&user.access),
            None,
            &[("X-Request-Id", "test-req-text")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.stop(Duration::from_secs(20)).await;
    let log = server.log();

    // stderr is a file here, not a terminal: no colour escape codes.
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log file:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("test-req-text") && l.contains("status=200"))
        .unwrap_or_else(|| panic!("no request line for test-req-text:\n{log}"));
    for part in [
        "GET",
        "/api/patients",
        "latency_ms=",
        &format!("user_id={}", user.id),
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    assert!(!log.contains(PASSWORD), "the log holds a password");
    assert!(!log.contains(&user.access), "the log holds an access token");
}
