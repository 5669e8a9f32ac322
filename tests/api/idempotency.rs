//! `Idempotency-Key`: a retried POST or PATCH never repeats its change.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::helpers::*;

async fn send_with_key(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    key: &str,
    body: Value,
) -> Reply {
    let req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body);
    Reply::read(
        req.send().await.expect("request"),
        std::time::Instant::now(),
    )
    .await
}

#[tokio::test]
async fn concurrent_posts_with_one_key_make_one_patient_and_a_retry_replays_it() {
    const RACERS: usize = 24;
    let app = spawn_app().await;
    let user = app.user().await;
    let key = unique("key-");
    let body = json!({"name": "Once Only", "age": 33, "gender": "Other"});
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let req = app
                .client
                .post(format!("{}/api/patients/", app.address))
                .bearer_auth(&user.access)
                .header("idempotency-key", &key)
                .json(&body);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let started = std::time::Instant::now();
                Reply::read(req.send().await.expect("request"), started).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    for reply in &replies {
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::CONFLICT,
            "{}: {}",
            reply.status,
            reply.text
        );
        if reply.status == StatusCode::CONFLICT {
            reply.problem(409);
        }
    }
    assert!(replies.iter().any(|r| r.status == StatusCode::CREATED));
    assert_eq!(
        app.patient_rows_of(user.id).await.len(),
        1,
        "one patient, whatever the race"
    );

    // The first response, again: same status, body, Location and ETag.
    let first = replies
        .iter()
        .find(|r| r.status == StatusCode::CREATED && r.header("idempotent-replayed").is_none())
        .expect("the request that ran");
    let replay = send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/patients/",
        &user.access,
        &key,
        body,
    )
    .await;
    assert_eq!(replay.status, 201, "{}", replay.text);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json(), first.json());
    assert_eq!(replay.header("location"), first.header("location"));
    assert_eq!(replay.header("etag"), first.header("etag"));
    assert_eq!(app.patient_rows_of(user.id).await.len(), 1);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_a_422_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    let key = unique("key-");
    let first = send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/patients/",
        &user.access,
        &key,
        json!({"name": "First Body", "age": 1, "gender": "Male"}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/patients/",
        &user.access,
        &key,
        json!({"name": "Second Body", "age": 2, "gender": "Male"}),
    )
    .await
    .problem(422);
    assert_eq!(app.patient_rows_of(user.id).await.len(), 1);
    // Keys belong to their sender: another user's same key is theirs alone.
    let other = app.user().await;
    let theirs = send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/patients/",
        &other.access,
        &key,
        json!({"name": "Second Body", "age": 2, "gender": "Male"}),
    )
    .await;
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    assert!(theirs.header("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_failed_request_releases_its_key() {
    let app = spawn_app().await;
    let user = app.user().await;
    let key = unique("key-");
    let pid = id_of(&app.create_patient(&user.access, "Assigned").await);
    // No such doctor: nothing is created, the key may be used again.
    send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/mappings/",
        &user.access,
        &key,
        json!({"patient": pid, "doctor": 999_999_999}),
    )
    .await
    .field_error("doctor");
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let body = json!({"patient": pid, "doctor": did});
    let made = send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/mappings/",
        &user.access,
        &key,
        body.clone(),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let replay = send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/mappings/",
        &user.access,
        &key,
        body,
    )
    .await;
    assert_eq!(replay.status, 201, "{}", replay.text);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json(), made.json());
    assert_eq!(app.mapping_rows(pid).await.len(), 1);
}

#[tokio::test]
async fn a_replayed_patch_answers_with_the_version_it_made_even_after_later_changes() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, "Patched Once").await);
    let path = format!("/api/patients/{pid}/");
    let key = unique("key-");
    let first = send_with_key(
        &app,
        reqwest::Method::PATCH,
        &path,
        &user.access,
        &key,
        json!({"age": 50}),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let later = app.patch(&path, &user.access, json!({"age": 60})).await;
    assert_eq!(later.status, 200, "{}", later.text);
    let replay = send_with_key(
        &app,
        reqwest::Method::PATCH,
        &path,
        &user.access,
        &key,
        json!({"age": 50}),
    )
    .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json(), first.json());
    assert_eq!(replay.header("etag"), first.header("etag"));
    // The replay changed nothing: the later change stands.
    assert_eq!(app.patient_row(pid).await.expect("row").age, 60);
    // The same key on another patient is another request: 422.
    let other = id_of(&app.create_patient(&user.access, "Other Patched").await);
    send_with_key(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/patients/{other}/"),
        &user.access,
        &key,
        json!({"age": 50}),
    )
    .await
    .problem(422);
}

#[tokio::test]
async fn malformed_keys_are_a_400_naming_the_header() {
    let app = spawn_app().await;
    let user = app.user().await;
    let body = json!({"name": "Never Made", "age": 1, "gender": "Male"});
    for key in ["x".repeat(256), "a\tb".to_string(), "\"\"".to_string()] {
        send_with_key(
            &app,
            reqwest::Method::POST,
            "/api/patients/",
            &user.access,
            &key,
            body.clone(),
        )
        .await
        .field_error("Idempotency-Key");
    }
    assert!(app.patient_rows_of(user.id).await.is_empty());
    // 255 characters, quoted or not, are fine.
    let ok = send_with_key(
        &app,
        reqwest::Method::POST,
        "/api/patients/",
        &user.access,
        &format!("\"{}\"", "k".repeat(255)),
        body,
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
}
