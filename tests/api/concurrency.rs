//! Requests racing each other: the database, not luck, decides the winner.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::helpers::{Reply, TestApp, id_of, spawn_app, unique};

const RACERS: usize = 16;

/// Sends `RACERS` requests at once (released together by a barrier) and
/// returns every reply. `body_for(i)` gives the i-th request's JSON body.
async fn race(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body_for: impl Fn(usize) -> Option<Value>,
) -> Vec<Reply> {
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        let token = token.to_string();
        let if_match = if_match.map(str::to_string);
        let body = body_for(i);
        let method = method.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = client.request(method, url).bearer_auth(token);
            if let Some(tag) = if_match {
                req = req.header("if-match", tag);
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            barrier.wait().await;
            let started = std::time::Instant::now();
            Reply::read(req.send().await.expect("request"), started).await
        }));
    }
    let mut replies = Vec::with_capacity(RACERS);
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    replies
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status.as_u16()).collect()
}

/// Asserts exactly one reply has `winner` and every other is a `loser`
/// problem; returns the winning reply.
#[track_caller]
fn one_winner(replies: &[Reply], winner: StatusCode, loser: u16) -> &Reply {
    let all = statuses(replies);
    let won: Vec<&Reply> = replies.iter().filter(|r| r.status == winner).collect();
    assert_eq!(
        won.len(),
        1,
        "exactly one request must get {winner}; got {all:?}"
    );
    for reply in replies.iter().filter(|r| r.status != winner) {
        assert_eq!(
            reply.status.as_u16(),
            loser,
            "every other request must get {loser}; got {all:?}; this body: {}",
            reply.text
        );
        reply.problem(loser);
    }
    won[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_assignments_create_exactly_one_mapping() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Raced ")).await);
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);

    let replies = race(
        &app,
        Method::POST,
        "/api/mappings/",
        &user.access,
        None,
        |_| Some(json!({"patient": pid, "doctor": did})),
    )
    .await;

    let created = one_winner(&replies, StatusCode::CREATED, 409).json();
    let rows = app.mapping_rows(pid).await;
    assert_eq!(rows.len(), 1, "exactly one row: {rows:?}");
    assert_eq!(rows[0].id, id_of(&created));
    assert_eq!(rows[0].doctor_id, did);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patient_puts_with_the_same_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Raced ")).await);
    let path = format!("/api/patients/{pid}/");
    let etag = app
        .get(&path, &user.access)
        .await
        .header("etag")
        .expect("ETag")
        .to_string();
    let before = app.patient_row(pid).await.expect("row");

    let replies = race(&app, Method::PUT, &path, &user.access, Some(&etag), |i| {
        Some(json!({"name": format!("Writer {i}"), "age": i, "gender": "Other"}))
    })
    .await;

    let winner = one_winner(&replies, StatusCode::OK, 412).json();
    let row = app.patient_row(pid).await.expect("row");
    assert_eq!(row.name, winner["name"].as_str().unwrap());
    assert_eq!(i64::from(row.age), winner["age"].as_i64().unwrap());
    assert_eq!(
        row.version,
        before.version + 1,
        "exactly one write may have happened"
    );
    // The old tag is stale now; the new one works.
    let new_tag = app.get(&path, &user.access).await;
    assert_ne!(new_tag.header("etag"), Some(etag.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patient_patches_with_the_same_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Raced ")).await);
    let path = format!("/api/patients/{pid}/");
    let etag = app
        .get(&path, &user.access)
        .await
        .header("etag")
        .expect("ETag")
        .to_string();
    let before = app.patient_row(pid).await.expect("row");

    let replies = race(&app, Method::PATCH, &path, &user.access, Some(&etag), |i| {
        Some(json!({ "age": 100 + i }))
    })
    .await;

    let winner = one_winner(&replies, StatusCode::OK, 412).json();
    let row = app.patient_row(pid).await.expect("row");
    assert_eq!(i64::from(row.age), winner["age"].as_i64().unwrap());
    assert_eq!(row.version, before.version + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_doctor_puts_with_the_same_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    let user = app.user().await;
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let path = format!("/api/doctors/{did}/");
    let etag = app
        .get(&path, &user.access)
        .await
        .header("etag")
        .expect("ETag")
        .to_string();
    let before = app.doctor_row(did).await.expect("row");

    let replies = race(&app, Method::PUT, &path, &user.access, Some(&etag), |i| {
        Some(json!({"name": format!("Dr. Writer {i}"), "specialization": "Neurology"}))
    })
    .await;

    let winner = one_winner(&replies, StatusCode::OK, 412).json();
    let row = app.doctor_row(did).await.expect("row");
    assert_eq!(row.name, winner["name"].as_str().unwrap());
    assert_eq!(row.version, before.version + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deletes_of_one_patient_delete_it_once() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Raced ")).await);

    let replies = race(
        &app,
        Method::DELETE,
        &format!("/api/patients/{pid}/"),
        &user.access,
        None,
        |_| None,
    )
    .await;

    one_winner(&replies, StatusCode::NO_CONTENT, 404);
    assert!(app.patient_deleted(pid).await, "kept, hidden");
}

/// Without `If-Match` the client asked for no precondition: every update
/// applies (last writer wins), and none may answer 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patient_updates_without_if_match_all_succeed() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Raced ")).await);
    let before = app.patient_row(pid).await.expect("row");

    let replies = race(
        &app,
        Method::PUT,
        &format!("/api/patients/{pid}/"),
        &user.access,
        None,
        |i| Some(json!({"name": format!("Writer {i}"), "age": i, "gender": "Male"})),
    )
    .await;

    assert_all_ok(&replies, "patient PUTs without If-Match");
    assert_eq!(
        app.patient_row(pid).await.unwrap().version,
        before.version + RACERS as i64,
        "every update must have been applied"
    );
}

/// The same for doctors: no `If-Match`, no 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_doctor_updates_without_if_match_all_succeed() {
    let app = spawn_app().await;
    let user = app.user().await;
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let before = app.doctor_row(did).await.expect("row");

    let replies = race(
        &app,
        Method::PUT,
        &format!("/api/doctors/{did}/"),
        &user.access,
        None,
        |i| Some(json!({"name": format!("Dr. Writer {i}"), "specialization": "Oncology"})),
    )
    .await;

    assert_all_ok(&replies, "doctor PUTs without If-Match");
    assert_eq!(
        app.doctor_row(did).await.unwrap().version,
        before.version + RACERS as i64,
        "every update must have been applied"
    );
}

#[track_caller]
fn assert_all_ok(replies: &[Reply], what: &str) {
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{what}: every one must be 200, got {:?}; first failure: {}",
        statuses(replies),
        replies
            .iter()
            .find(|r| r.status != 200)
            .map_or("", |r| r.text.as_str())
    );
}

/// Sixteen creates at once, then sixteen deletes at once, by one owner:
/// the kept count (`X-Total-Count` of the unfiltered list) ends exact.
#[tokio::test]
async fn racing_creates_and_deletes_keep_the_total_exact() {
    use crate::lists::{miscounted_owners, patient_total};
    let app = spawn_app().await;
    let user = app.user().await;
    let keep = id_of(&app.create_patient(&user.access, "Stays").await);
    let created = race(
        &app,
        Method::POST,
        "/api/patients/",
        &user.access,
        None,
        |i| Some(json!({"name": format!("Racer {i}"), "age": 30, "gender": "Other"})),
    )
    .await;
    assert!(created.iter().all(|r| r.status == StatusCode::CREATED));
    assert_eq!(patient_total(&app, &user.access, "").await, 17);

    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = created
        .iter()
        .map(|reply| {
            let url = format!("{}/api/patients/{}/", app.address, id_of(&reply.json()));
            let request = app.client.delete(url).bearer_auth(&user.access);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                request.send().await.expect("request").status()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), StatusCode::NO_CONTENT);
    }
    assert_eq!(patient_total(&app, &user.access, "").await, 1);
    let reply = app.get("/api/patients/", &user.access).await;
    assert_eq!(reply.json()[0]["id"], keep);
    assert_eq!(miscounted_owners(&app).await, 0);
}
