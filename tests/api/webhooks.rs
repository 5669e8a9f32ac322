//! Webhooks: subscriptions are their owner's alone, URLs inside the network
//! are refused (at registration and at delivery), every message is signed
//! and arrives (retried while the receiver is down), and a subscription
//! that keeps failing is disabled.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::receiver::{Mode, Receiver};
use crate::helpers::*;

/// An app whose webhooks may reach the local receiver, retrying fast.
async fn open_app() -> (TestApp, Option<FreshPg>) {
    spawn_isolated_app(|c| {
        c.webhook_allow_http = true;
        c.webhook_allow_private_networks = true;
        c.webhook_retry_base_ms = 50;
    })
    .await
}

async fn subscribe(
    app: &TestApp,
    token: &str,
    url: &str,
    events: &[&str],
    payload: &str,
) -> (i64, String) {
    let reply = app
        .post(
            "/api/webhooks/",
            Some(token),
            json!({"url": url, "events": events, "payload": payload}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.id();
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/webhooks/{id}/").as_str())
    );
    (id, reply.str("secret"))
}

const PATIENT_EVENTS: &[&str] = &["patient.created", "patient.updated", "patient.deleted"];

#[tokio::test]
async fn subscriptions_are_their_owners_alone_and_secrets_are_shown_once() {
    let (app, _db) = open_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let (id, secret) = subscribe(
        &app,
        &alice.access,
        "https://93.184.215.14/hook",
        &["patient.created", "patient.created"],
        "full",
    )
    .await;
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 32,
        "{secret}"
    );
    let path = format!("/api/webhooks/{id}/");
    let read = app.get(&path, &alice.access).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let body = read.json();
    assert_eq!(
        body["events"],
        json!(["patient.created"]),
        "repeats count once"
    );
    assert_eq!(body["payload"], "full");
    assert_eq!(body["enabled"], true);
    assert!(
        body.get("secret").is_none(),
        "the secret is never shown again: {body}"
    );
    let list = app.get("/api/webhooks/", &alice.access).await;
    assert_eq!(list.header("x-total-count"), Some("1"));

    // Bob sees none of it, and can change none of it.
    for reply in [
        app.get(&path, &bob.access).await,
        app.patch(&path, &bob.access, json!({"enabled": false}))
            .await,
        app.post(&format!("{path}secret/"), Some(&bob.access), json!({}))
            .await,
        app.post(&format!("{path}test/"), Some(&bob.access), json!({}))
            .await,
        app.get(&format!("{path}deliveries/"), &bob.access).await,
        app.delete(&path, &bob.access).await,
    ] {
        reply.problem(404);
    }
    assert_eq!(
        app.get("/api/webhooks/", &bob.access).await.json(),
        json!([])
    );

    let patched = app
        .patch(
            &path,
            &alice.access,
            json!({"events": ["doctor.created"], "payload": "id-only", "enabled": false}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["events"], json!(["doctor.created"]));
    assert_eq!(patched.json()["enabled"], false);
    let rotated = app
        .post(&format!("{path}secret/"), Some(&alice.access), json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_secret = rotated.str("secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let stored = healthcare::store::webhooks::get(&app.db, alice.id, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.secret, new_secret);

    assert_eq!(app.delete(&path, &alice.access).await.status, 204);
    app.get(&path, &alice.access).await.problem(404);
}

#[tokio::test]
async fn bad_subscriptions_are_400s_naming_the_field() {
    let (app, _db) = open_app().await;
    let user = app.user().await;
    for (body, field) in [
        (
            json!({"url": "https://example.com/", "events": ["patient.exploded"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": "patient.created"}),
            "events",
        ),
        (
            json!({"url": "not a url", "events": ["patient.created"]}),
            "url",
        ),
        (
            json!({"url": "ftp://example.com/", "events": ["patient.created"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com/", "events": ["patient.created"], "payload": "everything"}),
            "payload",
        ),
        (json!({"events": ["patient.created"]}), "url"),
        (
            json!({"url": "https://example.com/", "events": ["patient.created"], "colour": 1}),
            "colour",
        ),
    ] {
        app.post("/api/webhooks/", Some(&user.access), body)
            .await
            .field_error(field);
    }
}

/// The addresses of the issue, refused with the flags off, and a name that
/// resolves to loopback; nothing ever connects to them (a listener on the
/// loopback port sees no connection).
#[tokio::test]
async fn urls_inside_the_network_are_refused_without_connecting() {
    let app = spawn_app_with(|c| c.webhook_allow_http = true).await;
    let user = app.user().await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trap.local_addr().unwrap().port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://[::1]:{port}/"),
        "http://10.0.0.1/".to_string(),
        format!("http://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        "https://192.168.0.1/".to_string(),
        "https://100.64.0.1/".to_string(),
        "https://[::ffff:127.0.0.1]/".to_string(),
        "https://[fd00:ec2::254]/".to_string(),
        "https://0.0.0.0/".to_string(),
        format!("https://2130706433:{port}/"),
    ] {
        let reply = app
            .post(
                "/api/webhooks/",
                Some(&user.access),
                json!({"url": url, "events": ["patient.created"]}),
            )
            .await;
        let body = reply.field_error("url");
        assert!(
            body["errors"]["url"][0]
                .as_str()
                .unwrap()
                .contains("public address"),
            "{url}: {body}"
        );
    }
    // Without WEBHOOK_ALLOW_HTTP, http is refused whatever the address.
    let strict = spawn_app().await;
    let other = strict.user().await;
    strict
        .post(
            "/api/webhooks/",
            Some(&other.access),
            json!({"url": "http://example.com/", "events": ["patient.created"]}),
        )
        .await
        .field_error("url");
    let connected = tokio::time::timeout(Duration::from_millis(200), trap.accept()).await;
    assert!(
        connected.is_err(),
        "something connected to the refused address"
    );
}

/// A URL that was public when registered but points inward at delivery
/// (here written straight into the database, as a rebinding name would
/// resolve): the delivery is refused after resolution, and nothing connects.
#[tokio::test]
async fn deliveries_to_addresses_inside_the_network_are_refused_at_send_time() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let (app, _db) = spawn_isolated_app(|c| {
        c.webhook_allow_http = true;
        c.webhook_retry_base_ms = 50;
    })
    .await;
    let user = app.user().await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trap.local_addr().unwrap().port();
    let mut ids = Vec::new();
    for url in [
        format!("http://localhost:{port}/"),
        format!("http://127.0.0.1:{port}/"),
    ] {
        let now = chrono::Utc::now();
        let row = healthcare::entity::webhook::ActiveModel {
            owner_id: Set(user.id),
            url: Set(url),
            events: Set("patient.created".into()),
            payload: Set("id-only".into()),
            secret: Set(healthcare::webhooks::sign::new_secret()),
            enabled: Set(true),
            disabled_reason: Set(None),
            failing_since: Set(None),
            created_at: Set(now - chrono::Duration::seconds(1)),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .unwrap();
        ids.push(row.id);
    }
    app.create_patient(&user.access, "Rebound").await;
    for id in ids {
        let attempts = eventually_attempts(&app, &user.access, id, 1).await;
        let error = attempts[0]["error"].as_str().unwrap();
        assert!(error.contains("public address"), "{error}");
        assert!(attempts[0].get("status_code").is_none());
    }
    let connected = tokio::time::timeout(Duration::from_millis(200), trap.accept()).await;
    assert!(
        connected.is_err(),
        "something connected to the refused address"
    );
}

/// The attempts of a subscription, once there are at least `n`.
async fn eventually_attempts(app: &TestApp, token: &str, id: i64, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = app
            .get(&format!("/api/webhooks/{id}/deliveries/?limit=100"), token)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let items = reply.json().as_array().unwrap().clone();
        if items.len() >= n {
            return items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} attempts",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn every_change_is_delivered_signed_with_the_record_only_when_asked() {
    let (app, _db) = open_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let full = Receiver::start().await;
    let ids_only = Receiver::start().await;
    let (full_id, full_secret) =
        subscribe(&app, &user.access, &full.url(), PATIENT_EVENTS, "full").await;
    let (_, ids_secret) = subscribe(
        &app,
        &user.access,
        &ids_only.url(),
        PATIENT_EVENTS,
        "id-only",
    )
    .await;

    let patient = id_of(&app.create_patient(&user.access, "Hooked Patient").await);
    let path = format!("/api/patients/{patient}/");
    assert_eq!(
        app.patch(&path, &user.access, json!({"age": 33}))
            .await
            .status,
        200
    );
    assert_eq!(app.delete(&path, &user.access).await.status, 204);
    // Not the owner's: never sent. Not subscribed: never sent.
    app.create_patient(&other.access, "Someone Else's").await;
    app.create_doctor(&user.access, "Unsubscribed Doctor").await;

    for receiver in [&full, &ids_only] {
        receiver
            .wait_for(Duration::from_secs(20), "three deliveries", |r| {
                r.len() >= 3
            })
            .await;
    }
    // A moment for anything that should not come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (receiver, secret, with_record) in
        [(&full, &full_secret, true), (&ids_only, &ids_secret, false)]
    {
        let mut got = receiver.received();
        assert_eq!(got.len(), 3, "{got:?}");
        // Messages of one subscription may arrive in any order (Standard
        // Webhooks promises none); the event's version orders them.
        got.sort_by_key(|r| r.json()["data"]["event"]["version"].as_i64());
        let types: Vec<String> = got
            .iter()
            .map(|r| r.json()["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, PATIENT_EVENTS);
        for r in &got {
            assert!(r.verify(secret), "bad signature on {r:?}");
            assert!(r.id.starts_with("msg_"));
            let now = chrono::Utc::now().timestamp();
            let ts: i64 = r.timestamp.parse().unwrap();
            assert!((now - ts).abs() < 60);
            let body = r.json();
            assert_eq!(body["data"]["event"]["resource_id"], patient);
            assert_eq!(body["data"]["record"].is_object(), with_record, "{body}");
        }
        if with_record {
            assert_eq!(got[1].json()["data"]["record"]["age"], 33);
            assert_eq!(got[1].json()["data"]["record"]["name"], "Hooked Patient");
        }
    }
    // A signature under another secret does not verify.
    assert!(!full.received()[0].verify(&ids_secret));

    // The attempts are listed: time, status, latency.
    let attempts = eventually_attempts(&app, &user.access, full_id, 3).await;
    for a in &attempts {
        assert_eq!(a["status_code"], 200, "{a}");
        assert_eq!(a["delivery_state"], "delivered");
        assert!(a["latency_ms"].as_i64().unwrap() >= 0);
        assert!(a.get("error").is_none());
    }

    // The metrics count deliveries by outcome and show the queue.
    let metrics = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await
        .text;
    for series in [
        "webhook_deliveries_total{outcome=\"delivered\"}",
        "webhook_queue_depth",
        "webhook_oldest_pending_seconds",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }

    // A test message, signed like the others.
    let test = app
        .post(
            &format!("/api/webhooks/{full_id}/test/"),
            Some(&user.access),
            json!({}),
        )
        .await;
    assert_eq!(test.status, 202, "{}", test.text);
    assert_eq!(test.json()["type"], "webhook.test");
    let got = full
        .wait_for(Duration::from_secs(10), "the test message", |r| {
            r.len() >= 4
        })
        .await;
    assert_eq!(got[3].json()["type"], "webhook.test");
    assert!(got[3].verify(&full_secret));
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_once_per_message_id() {
    let (app, _db) = open_app().await;
    let user = app.user().await;
    // A port with nothing listening yet: connections are refused.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let (id, secret) = subscribe(&app, &user.access, &url, PATIENT_EVENTS, "id-only").await;
    let mut patients = Vec::new();
    for n in 0..3 {
        patients.push(id_of(
            &app.create_patient(&user.access, &format!("Down {n}")).await,
        ));
    }
    // Each has failed at least once before the receiver comes up.
    let attempts = eventually_attempts(&app, &user.access, id, 6).await;
    assert!(
        attempts
            .iter()
            .all(|a| a["error"].as_str().is_some_and(|e| e.contains("connect"))),
        "{attempts:?}"
    );
    // Up, but answering 503 for a while: still retried.
    let receiver = Receiver::start_on(port).await;
    receiver.set_mode(Mode::Answer(503));
    receiver
        .wait_for(Duration::from_secs(20), "a 503", |r| r.len() >= 2)
        .await;
    // A redirect is not followed: a failure, retried later.
    receiver.set_mode(Mode::Answer(307));
    let before = receiver.received().len();
    receiver
        .wait_for(Duration::from_secs(20), "a redirect", |r| {
            r.iter().skip(before).any(|r| r.answered == Some(307))
        })
        .await;
    receiver.set_mode(Mode::Answer(204));
    receiver
        .wait_for(Duration::from_secs(30), "every event delivered", |_| {
            receiver.delivered().len() >= 3
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 3);
    let mut about: Vec<i64> = delivered
        .iter()
        .map(|r| {
            assert!(r.verify(&secret));
            r.json()["data"]["event"]["resource_id"].as_i64().unwrap()
        })
        .collect();
    about.sort();
    assert_eq!(about, patients);
    let attempts = eventually_attempts(&app, &user.access, id, 1).await;
    let redirected = attempts
        .iter()
        .find(|a| a["status_code"] == 307)
        .expect("a 307 attempt");
    let error = redirected["error"].as_str().unwrap();
    assert!(error.contains("redirects are not followed"), "{error}");
    // Each message id was answered 2xx once: no retry after a success.
    let successes = receiver
        .received()
        .iter()
        .filter(|r| r.answered == Some(204))
        .count();
    assert_eq!(successes, 3);
}

#[tokio::test]
async fn a_subscription_failing_past_its_window_fails_and_is_disabled() {
    let (app, _db) = spawn_isolated_app(|c| {
        c.webhook_allow_http = true;
        c.webhook_allow_private_networks = true;
        c.webhook_retry_base_ms = 50;
        c.webhook_retry_for = 1;
        c.webhook_disable_after = 1;
    })
    .await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    receiver.set_mode(Mode::Answer(500));
    let (id, _) = subscribe(
        &app,
        &user.access,
        &receiver.url(),
        PATIENT_EVENTS,
        "id-only",
    )
    .await;
    app.create_patient(&user.access, "Always Failing").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let hook = app
            .get(&format!("/api/webhooks/{id}/"), &user.access)
            .await
            .json();
        let attempts = app
            .get(
                &format!("/api/webhooks/{id}/deliveries/?limit=100"),
                &user.access,
            )
            .await
            .json();
        let failed = attempts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["delivery_state"] == "failed");
        if hook["enabled"] == false && failed {
            assert!(
                hook["disabled_reason"].as_str().unwrap().contains("failed"),
                "{hook}"
            );
            assert!(hook["failing_since"].is_string());
            assert!(attempts[0]["status_code"] == 500);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{hook} {attempts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Turned back on by its owner: the failure record is cleared.
    let on = app
        .patch(
            &format!("/api/webhooks/{id}/"),
            &user.access,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(on.json()["enabled"], true);
    assert!(on.json().get("disabled_reason").is_none());
}

/// A subscription sends only what its owner may see now: nothing once the
/// owner's account is deactivated (the shared doctors directory included).
#[tokio::test]
async fn a_deactivated_owners_subscription_sends_nothing() {
    let (app, _db) = open_app().await;
    let owner = app.user().await;
    let admin = app.make_admin(&app.user().await).await;
    let receiver = Receiver::start().await;
    subscribe(
        &app,
        &owner.access,
        &receiver.url(),
        &["doctor.created"],
        "id-only",
    )
    .await;
    app.create_doctor(&admin.access, "Before Deactivation")
        .await;
    receiver
        .wait_for(Duration::from_secs(20), "the first doctor", |r| {
            r.len() == 1
        })
        .await;
    let off = app
        .post(
            &format!("/api/users/{}/deactivate/", owner.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    app.create_doctor(&admin.access, "After Deactivation").await;
    // The dispatcher has passed the second doctor once another owner's
    // subscription got it.
    let witness = Receiver::start().await;
    subscribe(
        &app,
        &admin.access,
        &witness.url(),
        &["doctor.created"],
        "id-only",
    )
    .await;
    app.create_doctor(&admin.access, "Witnessed").await;
    witness
        .wait_for(Duration::from_secs(20), "the witnessed doctor", |r| {
            !r.is_empty()
        })
        .await;
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
}
