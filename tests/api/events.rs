//! The change feed: what each caller sees, in which order, how the cursor
//! pages, how `wait` long-polls, and that concurrent writers never make a
//! reader miss or repeat an event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// Every event after `after` until the feed is exhausted, in pages of `limit`.
async fn follow(
    app: &TestApp,
    token: &str,
    after: Option<&str>,
    limit: u64,
) -> (Vec<Value>, String) {
    let mut events = Vec::new();
    let mut cursor = after.map(str::to_string);
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/events/?after={c}&limit={limit}"),
            None => format!("/api/events/?limit={limit}"),
        };
        let reply = app.get(&path, token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let page = reply.json();
        let batch = page["events"].as_array().expect("events").clone();
        assert!(batch.len() as u64 <= limit, "more than limit: {page}");
        let next = page["next"].as_str().expect("next").to_string();
        if batch.is_empty() {
            return (events, next);
        }
        assert_eq!(
            batch.last().unwrap()["id"],
            next.as_str(),
            "next is the last event's id"
        );
        events.extend(batch);
        cursor = Some(next);
    }
}

/// (type, resource_id, version) of the events about `ids` of `resource`.
fn about(events: &[Value], resource: &str, ids: &[i64]) -> Vec<(String, i64, i64)> {
    events
        .iter()
        .filter(|e| e["resource"] == resource && ids.contains(&e["resource_id"].as_i64().unwrap()))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["resource_id"].as_i64().unwrap(),
                e["version"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_feed_shows_own_patients_their_mappings_and_every_doctor_in_order() {
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let patient = id_of(&app.create_patient(&alice.access, "Feed Alice").await);
    let path = format!("/api/patients/{patient}/");
    assert_eq!(
        app.patch(&path, &alice.access, json!({"age": 31}))
            .await
            .status,
        200
    );
    let doctor = id_of(&app.create_doctor(&bob.access, "Feed Doctor").await);
    let mapping = app
        .post(
            "/api/mappings/",
            Some(&alice.access),
            json!({"patient": patient, "doctor": doctor}),
        )
        .await
        .id();
    assert_eq!(
        app.delete(&format!("/api/mappings/{mapping}/"), &alice.access)
            .await
            .status,
        204
    );
    assert_eq!(app.delete(&path, &alice.access).await.status, 204);
    let bobs = id_of(&app.create_patient(&bob.access, "Feed Bob").await);

    // Alice, page by page (2 at a time): her patient, its mapping, Bob's doctor.
    let (events, _) = follow(&app, &alice.access, None, 2).await;
    assert_eq!(
        about(&events, "patient", &[patient]),
        vec![
            ("patient.created".into(), patient, 1),
            ("patient.updated".into(), patient, 2),
            ("patient.deleted".into(), patient, 3),
        ]
    );
    assert_eq!(
        about(&events, "mapping", &[mapping]),
        vec![
            ("mapping.created".into(), mapping, 1),
            ("mapping.deleted".into(), mapping, 2)
        ]
    );
    assert_eq!(
        about(&events, "doctor", &[doctor]),
        vec![("doctor.created".into(), doctor, 1)]
    );
    assert!(
        about(&events, "patient", &[bobs]).is_empty(),
        "Bob's patient is not Alice's"
    );
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "no event twice");
    // Oldest first: the creation before the mapping before the deletion.
    let at = |t: &str, id: i64| {
        events
            .iter()
            .position(|e| e["type"] == t && e["resource_id"] == id)
            .unwrap()
    };
    assert!(at("patient.created", patient) < at("mapping.created", mapping));
    assert!(at("mapping.deleted", mapping) < at("patient.deleted", patient));
    let first = &events[at("patient.updated", patient)];
    assert_eq!(first["actor"], alice.id);
    assert!(first["occurred_at"].as_str().is_some());

    // Bob sees his patient and the doctor, not Alice's records.
    let (events, _) = follow(&app, &bob.access, None, 100).await;
    assert_eq!(about(&events, "patient", &[bobs]).len(), 1);
    assert!(about(&events, "patient", &[patient]).is_empty());
    assert!(about(&events, "mapping", &[mapping]).is_empty());
    assert_eq!(about(&events, "doctor", &[doctor]).len(), 1);

    // After the end: an empty page whose `next` is the cursor sent.
    let (_, end) = follow(&app, &alice.access, None, 1000).await;
    let reply = app
        .get(&format!("/api/events/?after={end}"), &alice.access)
        .await;
    assert_eq!(reply.json(), json!({"events": [], "next": end}));
}

#[tokio::test]
async fn bad_cursors_limits_and_waits_are_400s() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (_, end) = follow(&app, &user.access, None, 1000).await;
    // A cursor of the right shape that this server did not make.
    let mut forged = end.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for (query, field) in [
        ("after=42".to_string(), "after"),
        ("after=ev_".to_string(), "after"),
        (format!("after={forged}"), "after"),
        ("limit=0".to_string(), "limit"),
        ("limit=1001".to_string(), "limit"),
        ("limit=ten".to_string(), "limit"),
        ("wait=31".to_string(), "wait"),
        ("wait=-1".to_string(), "wait"),
    ] {
        app.get(&format!("/api/events/?{query}"), &user.access)
            .await
            .field_error(field);
    }
    app.request(reqwest::Method::GET, "/api/events/", None, None)
        .await
        .problem(401);
}

#[tokio::test]
async fn wait_answers_as_soon_as_an_event_exists_or_with_an_empty_page() {
    // Nobody else writes to its database: "nothing new" holds.
    let (app, _db) = spawn_isolated_app(|_| {}).await;
    let user = app.user().await;
    let (_, end) = follow(&app, &user.access, None, 1000).await;

    // Nothing new: an empty page after the wait.
    let started = Instant::now();
    let reply = app
        .get(&format!("/api/events/?after={end}&wait=1"), &user.access)
        .await;
    assert_eq!(reply.json(), json!({"events": [], "next": end}));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // A change while waiting: answered at once with it.
    let waiting = {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/api/events/?after={end}&wait=20", app.address),
            user.access.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let resp = client.get(url).bearer_auth(token).send().await.unwrap();
            (resp.json::<Value>().await.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let patient = id_of(&app.create_patient(&user.access, "Long Poll").await);
    let (page, took) = waiting.await.unwrap();
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(about(events, "patient", &[patient]).len(), 1, "{page}");
}

/// Writers on many connections at once, a reader following the feed
/// meanwhile: the reader sees every version exactly once, each record's in
/// version order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_concurrent_writers_sees_every_event_once_in_order() {
    let app = spawn_app_with(|c| c.db_max_connections = 10).await;
    let user = app.user().await;
    let (_, start) = follow(&app, &user.access, None, 1000).await;
    const WRITERS: usize = 6;
    const CHANGES: i64 = 5;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, base, token) = (app.client.clone(), app.address.clone(), user.access.clone());
        writers.push(tokio::spawn(async move {
            let created: Value = client
                .post(format!("{base}/api/patients/"))
                .bearer_auth(&token)
                .json(&json!({"name": format!("Writer {w}"), "age": 1, "gender": "Male"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = created["id"].as_i64().unwrap();
            for age in 2..=CHANGES {
                let resp = client
                    .patch(format!("{base}/api/patients/{id}/"))
                    .bearer_auth(&token)
                    .json(&json!({"age": age}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
            }
            id
        }));
    }
    // Follow while they write, with small pages.
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor = start.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Only this user's patients count (on a shared database other tests
    // add doctors, which every reader sees).
    let patients = |seen: &[Value]| seen.iter().filter(|e| e["resource"] == "patient").count();
    while patients(&seen) < WRITERS * CHANGES as usize {
        assert!(Instant::now() < deadline, "only {} events seen", seen.len());
        let reply = app
            .get(
                &format!("/api/events/?after={cursor}&limit=3&wait=2"),
                &user.access,
            )
            .await;
        let page = reply.json();
        seen.extend(page["events"].as_array().unwrap().iter().cloned());
        cursor = page["next"].as_str().unwrap().to_string();
    }
    let mut ids = Vec::new();
    for w in writers {
        ids.push(w.await.unwrap());
    }
    // Nothing more after the last write.
    let reply = app
        .get(&format!("/api/events/?after={cursor}"), &user.access)
        .await;
    let more = reply.json()["events"].as_array().unwrap().clone();
    assert_eq!(patients(&more), 0, "{more:?}");
    let mut per_record: HashMap<i64, Vec<i64>> = HashMap::new();
    for (_, id, version) in about(&seen, "patient", &ids) {
        per_record.entry(id).or_default().push(version);
    }
    assert_eq!(patients(&seen), WRITERS * CHANGES as usize);
    for id in ids {
        assert_eq!(
            per_record[&id],
            (1..=CHANGES).collect::<Vec<_>>(),
            "patient {id}"
        );
    }
}

/// A service client's token sees the kinds of record it holds the read
/// scope of; none of them is a 403. Webhooks need a person's session.
#[tokio::test]
async fn service_clients_see_the_kinds_their_read_scopes_allow() {
    let (app, _db) = spawn_isolated_app(|_| {}).await;
    let user = app.user().await;
    let patient = id_of(&app.create_patient(&user.access, "Scoped").await);
    let doctor = id_of(&app.create_doctor(&user.access, "Dr. Scoped").await);
    let client = app.new_client(&user, "*:read *:write").await;
    let doctors_only = app.client_token(&client, Some("doctors:read")).await;
    let (events, _) = follow(&app, &doctors_only, None, 100).await;
    assert_eq!(about(&events, "doctor", &[doctor]).len(), 1);
    assert!(
        about(&events, "patient", &[patient]).is_empty(),
        "{events:?}"
    );
    let (events, _) = follow(
        &app,
        &app.client_token(&client, Some("*:read")).await,
        None,
        100,
    )
    .await;
    assert_eq!(about(&events, "patient", &[patient]).len(), 1);
    let writer = app.client_token(&client, Some("patients:write")).await;
    let refused = app.get("/api/events/", &writer).await;
    refused.problem(403);
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    app.get("/api/webhooks/", &app.client_token(&client, None).await)
        .await
        .problem(403);
}
