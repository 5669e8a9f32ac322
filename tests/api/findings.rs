//! One test (or a few) per finding of the black-box security test of issue
//! 16, named after the item: each failed on the behaviour the test found and
//! holds now. Item 17 (file permissions of the embedded database) needs the
//! real binary and is in tests/ops/findings.rs.

use std::collections::{BTreeMap, BTreeSet};

use healthcare::entity::{audit_event, patient, user};
use rand::Rng;
use reqwest::Method;
use reqwest::header::HeaderValue;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::*;

const WRONG_PASSWORD: &str = "Not-The-Password-99";

// ---------------------------------------------------------------- helpers

/// The audit events of one request (by its `X-Request-Id`).
async fn events_of(app: &TestApp, reply: &Reply) -> Vec<audit_event::Model> {
    let request_id = reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id: {:?}", reply.headers));
    audit_event::Entity::find()
        .filter(audit_event::Column::RequestId.eq(request_id))
        .all(&app.db)
        .await
        .expect("query audit_events")
}

/// The one audit event of a request: its action, actor, resource and status.
#[track_caller]
fn one_event(events: &[audit_event::Model]) -> (&str, Option<i64>, &str, Option<i64>, i32) {
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    (
        e.action.as_str(),
        e.actor_id,
        e.resource_type.as_str(),
        e.resource_id,
        e.status,
    )
}

/// A 429 problem with `Retry-After` in whole seconds.
#[track_caller]
fn assert_429(reply: &Reply) {
    reply.problem(429);
    let retry = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", reply.headers));
    assert!(
        retry.parse::<u64>().is_ok_and(|s| (1..=3600).contains(&s)),
        "Retry-After: {retry}"
    );
}

async fn user_row(app: &TestApp, id: i64) -> user::Model {
    user::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query users")
        .expect("user row")
}

async fn patients_of(app: &TestApp, user_id: i64) -> u64 {
    patient::Entity::find()
        .filter(patient::Column::CreatedBy.eq(user_id))
        .count(&app.db)
        .await
        .expect("count patients")
}

// ------------------------------------- 1. metric labels are a bounded set

/// `http_requests_total` series of an exposition, as label maps.
fn request_series(exposition: &str) -> Vec<BTreeMap<String, String>> {
    let label = regex::Regex::new(r#"([a-z_]+)="((?:[^"\\]|\\.)*)""#).expect("regex");
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("http_requests_total{"))
        .map(|labels| {
            let labels = &labels[..labels.rfind('}').expect("closing brace")];
            label
                .captures_iter(labels)
                .map(|c| (c[1].to_string(), c[2].to_string()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn finding_01_unknown_methods_share_one_metric_label() {
    let app = spawn_app().await;
    let mut rng = rand::rng();
    let mut sent = Vec::new();
    for i in 0..1000 {
        // Long, random, never a real method name (nor part of one).
        let len = if i % 10 == 0 {
            rng.random_range(1000..4000)
        } else {
            rng.random_range(12..64)
        };
        let name: String = std::iter::once('Z')
            .chain((1..len).map(|_| char::from(b'A' + rng.random_range(0..26u8))))
            .collect();
        let method = Method::from_bytes(name.as_bytes()).expect("a token");
        let path = ["/healthz", "/api/patients/", "/no/such/route"][i % 3];
        let reply = app.request(method, path, None, None).await;
        assert!(
            reply.status.is_client_error(),
            "{path}: {} {}",
            reply.status,
            reply.text
        );
        sent.push(name);
    }

    let metrics = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    let series = request_series(&metrics.text);
    assert!(!series.is_empty(), "no http_requests_total series");
    let mut per_route: BTreeMap<String, usize> = BTreeMap::new();
    for labels in &series {
        let route = labels.get("route").expect("route label").clone();
        *per_route.entry(route).or_default() += 1;
        let method = labels.get("method").expect("method label");
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"
            ]
            .contains(&method.as_str()),
            "a method label outside the bounded set: {labels:?}"
        );
    }
    for (route, count) in &per_route {
        assert!(count < &100, "{count} series for route {route}");
    }
    assert!(
        per_route
            .keys()
            .all(|r| r == "unmatched" || r == "/docs" || r.starts_with('/')),
        "{per_route:?}"
    );
    for name in &sent {
        assert!(
            !metrics.text.contains(name.as_str()),
            "a sent method is in /metrics: {}",
            &name[..name.len().min(40)]
        );
    }
    assert!(
        series
            .iter()
            .any(|l| l["method"] == "OTHER" && l["route"] == "/healthz"),
        "the invented methods are counted, as OTHER"
    );
}

// ------------------ 2. the password change is limited, and every try audited

#[tokio::test]
async fn finding_02_wrong_old_passwords_hit_the_account_budget_and_are_audited() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 1000;
        c.login_attempts_per_hour = 4;
    })
    .await;
    let user = app.user().await;
    let hash_before = user_row(&app, user.id).await.password_hash;
    let change = |old: &str| json!({"old_password": old, "new_password": "Amber-Falcon-Ridge-77"});

    let mut replies = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let reply = app
            .post(
                "/api/auth/password/",
                Some(&user.access),
                change(WRONG_PASSWORD),
            )
            .await;
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
        reply.field_error("old_password");
        replies.push(reply);
    }
    let refused = refused.expect("no 429 after 8 wrong old passwords with a budget of 4");
    assert_429(&refused);
    assert!(
        (1..=4).contains(&replies.len()),
        "{} wrong guesses before the 429",
        replies.len()
    );
    // Once spent, even the right old password waits: it is an oracle.
    let right = app
        .post("/api/auth/password/", Some(&user.access), change(PASSWORD))
        .await;
    assert_429(&right);
    assert_eq!(
        user_row(&app, user.id).await.password_hash,
        hash_before,
        "the password changed"
    );

    replies.push(refused);
    replies.push(right);
    for reply in &replies {
        let events = events_of(&app, reply).await;
        assert_eq!(
            one_event(&events),
            (
                "password_change_failure",
                Some(user.id),
                "user",
                None,
                i32::from(reply.status.as_u16())
            )
        );
    }
}

#[tokio::test]
async fn finding_02_password_changes_share_the_per_ip_limit() {
    let app = spawn_app_with(|c| c.auth_rate_per_minute = 3).await;
    // Registering and logging in spend two of the three.
    let user = app.user().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = app
            .post(
                "/api/auth/password/",
                Some(&user.access),
                json!({"old_password": WRONG_PASSWORD, "new_password": "Amber-Falcon-Ridge-77"}),
            )
            .await;
        if reply.status == 429 {
            assert_429(&reply);
            let events = events_of(&app, &reply).await;
            assert_eq!(one_event(&events).0, "password_change_failure");
        }
        statuses.push(reply.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

// ------------------------- 3. control characters in query-string filters

#[tokio::test]
async fn finding_03_control_characters_in_query_filters_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    let user = app.user().await;
    let admin = app.make_admin(&app.user().await).await;
    // Rows a NUL-truncated pattern would match.
    app.create_patient(&user.access, "Zoe Cala").await;
    app.create_doctor(&user.access, "Dr Cala").await;

    let cases = [
        ("/api/patients/", "search", &user.access),
        ("/api/doctors/", "search", &user.access),
        ("/api/doctors/", "specialization", &user.access),
        ("/api/audit/", "resource_type", &admin.access),
    ];
    for (path, param, token) in cases {
        for value in [
            "%00", "a%00zzz", "%00%00", "Ca%0Ala", "a%1Fb", "%7F", "a%C2%85b",
        ] {
            let url = format!("{path}?{param}={value}");
            let reply = app.get(&url, token).await;
            let body = reply.field_error(param);
            assert_eq!(
                body["errors"].as_object().map(|e| e.len()),
                Some(1),
                "{url}: {body}"
            );
            assert!(!reply.text.contains('\0'), "{url}: NUL echoed");
        }
    }
    // A plain filter still works.
    let found = app.get("/api/patients/?search=cala", &user.access).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json().as_array().map(Vec::len), Some(1));
}

// -------------------------------- 4. security events in the audit trail

#[tokio::test]
async fn finding_04_registration_and_password_changes_are_audited() {
    let app = spawn_app().await;
    let username = unique("reg");
    let registered = app.register(&username).await;
    let id = registered.id();
    assert_eq!(
        one_event(&events_of(&app, &registered).await),
        ("register", Some(id), "user", Some(id), 201)
    );
    // A refused registration (taken) is not a security event of an account.
    let again = app.register(&username).await;
    again.problem(409);

    let login = app.login(&username, PASSWORD).await;
    let access = login.str("access");
    let failed = app
        .post(
            "/api/auth/password/",
            Some(&access),
            json!({"old_password": WRONG_PASSWORD, "new_password": "Amber-Falcon-Ridge-77"}),
        )
        .await;
    failed.field_error("old_password");
    assert_eq!(
        one_event(&events_of(&app, &failed).await),
        ("password_change_failure", Some(id), "user", None, 400)
    );
    let changed = app
        .post(
            "/api/auth/password/",
            Some(&access),
            json!({"old_password": PASSWORD, "new_password": "Amber-Falcon-Ridge-77"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(
        one_event(&events_of(&app, &changed).await),
        ("password_change", Some(id), "user", None, 204)
    );
}

#[tokio::test]
async fn finding_04_account_status_changes_are_each_their_own_action() {
    let app = spawn_app().await;
    let admin = app.make_admin(&app.user().await).await;
    let target = app.user().await;
    let post = |action: &'static str| {
        let path = format!("/api/users/{}/{action}/", target.id);
        let token = admin.access.clone();
        let app = &app;
        async move { app.post(&path, Some(&token), json!({})).await }
    };

    let deactivate = post("deactivate").await;
    assert_eq!(deactivate.status, 200, "{}", deactivate.text);
    let activate = post("activate").await;
    assert_eq!(activate.status, 200, "{}", activate.text);
    let revoke = post("revoke-tokens").await;
    assert_eq!(revoke.status, 204, "{}", revoke.text);
    for (reply, action) in [
        (&deactivate, "deactivate"),
        (&activate, "activate"),
        (&revoke, "revoke_tokens"),
    ] {
        assert_eq!(
            one_event(&events_of(&app, reply).await),
            (
                action,
                Some(admin.id),
                "user",
                Some(target.id),
                i32::from(reply.status.as_u16())
            )
        );
    }
}

#[tokio::test]
async fn finding_04_refused_privileged_actions_are_audited_as_forbidden() {
    let app = spawn_app().await;
    let mallory = app.user().await;
    let owner = app.user().await;
    let victim = app.user().await;
    let doctor = id_of(&app.create_doctor(&owner.access, "Dr Owned").await);

    let mut refused = Vec::new();
    for path in ["/api/users/", "/api/audit/"] {
        let reply = app.get(path, &mallory.access).await;
        reply.problem(403);
        refused.push((reply, None));
    }
    for action in ["deactivate", "activate", "revoke-tokens"] {
        let reply = app
            .post(
                &format!("/api/users/{}/{action}/", victim.id),
                Some(&mallory.access),
                json!({}),
            )
            .await;
        reply.problem(403);
        refused.push((reply, Some(victim.id)));
    }
    let doctor_path = format!("/api/doctors/{doctor}/");
    let put = app
        .put(
            &doctor_path,
            &mallory.access,
            json!({"name": "Dr Mine", "specialization": "Surgery"}),
        )
        .await;
    put.problem(403);
    let patch = app
        .patch(&doctor_path, &mallory.access, json!({"name": "Dr Mine"}))
        .await;
    patch.problem(403);
    let delete = app.delete(&doctor_path, &mallory.access).await;
    delete.problem(403);

    for (reply, target) in &refused {
        assert_eq!(
            one_event(&events_of(&app, reply).await),
            ("forbidden", Some(mallory.id), "user", *target, 403)
        );
    }
    for reply in [&put, &patch, &delete] {
        assert_eq!(
            one_event(&events_of(&app, reply).await),
            ("forbidden", Some(mallory.id), "doctor", Some(doctor), 403)
        );
    }
    let row = app.doctor_row(doctor).await.expect("doctor row");
    assert_eq!(row.name, "Dr Owned");
    assert!(row.deleted_at.is_none());
    assert!(user_row(&app, victim.id).await.is_active);
}

// ----------------------------------------------------- 5. account lockout

#[tokio::test]
async fn finding_05_a_guesser_elsewhere_cannot_lock_the_owner_out() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 1000;
        c.login_attempts_per_hour = 4;
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let owner = unique("owner");
    let id = app.register(&owner).await.id();
    let (home, guesser, stranger) = ("198.51.100.10", "203.0.113.66", "192.0.2.7");
    // Every attempt, with the action and address the trail must show.
    let mut attempts: Vec<(Reply, &str, &str)> = Vec::new();

    let first = app.login_from(home, &owner, PASSWORD).await;
    assert_eq!(first.status, 200, "{}", first.text);
    attempts.push((first, "login_success", home));

    let mut guesses = 0;
    loop {
        let reply = app.login_from(guesser, &owner, WRONG_PASSWORD).await;
        let locked = reply.status == 429;
        if locked {
            assert_429(&reply);
        } else {
            reply.problem(401);
            guesses += 1;
            assert!(guesses <= 4, "more than the budget of 4 guesses allowed");
        }
        attempts.push((reply, "login_failure", guesser));
        if locked {
            break;
        }
    }
    assert!(guesses >= 1);
    // The guesser is locked out, even with the right password, and so is
    // any address the account never logged in from.
    for ip in [guesser, stranger] {
        let reply = app.login_from(ip, &owner, PASSWORD).await;
        assert_429(&reply);
        attempts.push((reply, "login_failure", ip));
    }

    // The owner, from the address they logged in from, is not; and their
    // successful logins do not spend their own allowance.
    for _ in 0..6 {
        let reply = app.login_from(home, &owner, PASSWORD).await;
        assert_eq!(reply.status, 200, "owner locked out: {}", reply.text);
        attempts.push((reply, "login_success", home));
    }
    let typo = app.login_from(home, &owner, WRONG_PASSWORD).await;
    typo.problem(401);
    attempts.push((typo, "login_failure", home));
    let again = app.login_from(home, &owner, PASSWORD).await;
    assert_eq!(again.status, 200, "{}", again.text);
    attempts.push((again, "login_success", home));

    // Every attempt is in the trail, with the address it came from.
    for (reply, action, ip) in &attempts {
        let events = events_of(&app, reply).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(
            (event.action.as_str(), event.ip.as_deref()),
            (*action, Some(*ip))
        );
        if reply.status != 429 {
            assert_eq!(event.actor_id, Some(id));
        }
    }
}

#[tokio::test]
async fn finding_05_successful_logins_do_not_spend_the_budget() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 1000;
        c.login_attempts_per_hour = 4;
    })
    .await;
    let owner = unique("owner");
    app.register(&owner).await.id();
    for _ in 0..10 {
        let reply = app.login(&owner, PASSWORD).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // The whole allowance is still there: the first wrong guess is a 401.
    app.login(&owner, WRONG_PASSWORD).await.problem(401);
    app.login(&owner, WRONG_PASSWORD).await.problem(401);
}

// ------------------------------------------ 6. the last administrator

/// An app whose database holds only this test's accounts: the test's SQLite
/// file, or a PostgreSQL database of its own (the run's one holds the
/// administrators of every other test).
async fn isolated_app() -> (TestApp, Option<FreshPg>) {
    match pg_url() {
        Some(base) => {
            let fresh = FreshPg::create(&base).await;
            let url = fresh.url.clone();
            let app = spawn_app_with(|c| {
                c.database_url = url;
                c.auth_rate_per_minute = 1000;
            })
            .await;
            (app, Some(fresh))
        }
        None => (
            spawn_app_with(|c| c.auth_rate_per_minute = 1000).await,
            None,
        ),
    }
}

async fn active_admins(app: &TestApp) -> u64 {
    user::Entity::find()
        .filter(user::Column::IsStaff.eq(true))
        .filter(user::Column::IsActive.eq(true))
        .count(&app.db)
        .await
        .expect("count administrators")
}

#[tokio::test]
async fn finding_06_the_last_active_administrator_cannot_be_deactivated() {
    let (app, _db) = isolated_app().await;
    let root = app.make_admin(&app.user().await).await;
    let deactivate = |who: i64, token: String| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/users/{who}/deactivate/"),
                Some(&token),
                json!({}),
            )
            .await
        }
    };

    let reply = deactivate(root.id, root.access.clone()).await;
    let body = reply.problem(409);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("last active administrator")),
        "{body}"
    );
    assert!(user_row(&app, root.id).await.is_active);
    assert_eq!(
        one_event(&events_of(&app, &reply).await).4,
        409,
        "the refusal is in the trail"
    );

    // With a second administrator, one of them may go, not both.
    let second = app.make_admin(&app.user().await).await;
    let reply = deactivate(second.id, root.access.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    deactivate(root.id, root.access.clone()).await.problem(409);
    assert_eq!(active_admins(&app).await, 1);

    // Deactivating a regular user is unaffected.
    let regular = app.user().await;
    let reply = deactivate(regular.id, root.access.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn finding_06_two_administrators_deactivating_each_other_at_once_leave_one() {
    let (app, _db) = isolated_app().await;
    let a = app.user().await;
    let b = app.user().await;
    for round in 0..8 {
        // Both active administrators, with fresh tokens (a deactivation
        // ends the sessions of the one deactivated).
        user::Entity::update_many()
            .col_expr(user::Column::IsStaff, Expr::value(true))
            .col_expr(user::Column::IsActive, Expr::value(true))
            .filter(user::Column::Id.is_in([a.id, b.id]))
            .exec(&app.db)
            .await
            .expect("reset administrators");
        for id in [a.id, b.id] {
            app.state
                .sessions
                .authenticator()
                .forget(healthcare::auth::Subject::User(id))
                .await;
        }
        let a_token = app.login(&a.username, PASSWORD).await.str("access");
        let b_token = app.login(&b.username, PASSWORD).await.str("access");
        let (a_path, b_path) = (
            format!("/api/users/{}/deactivate/", a.id),
            format!("/api/users/{}/deactivate/", b.id),
        );
        let (ab, ba) = tokio::join!(
            app.post(&b_path, Some(&a_token), json!({})),
            app.post(&a_path, Some(&b_token), json!({})),
        );
        let statuses = [ab.status.as_u16(), ba.status.as_u16()];
        assert!(
            statuses.iter().filter(|s| **s == 200).count() <= 1,
            "round {round}: both deactivations succeeded: {statuses:?}"
        );
        for (reply, status) in [(&ab, statuses[0]), (&ba, statuses[1])] {
            // The loser is refused as the last administrator, or (when the
            // winner was first) no longer authenticated at all.
            assert!(
                [200, 401, 409].contains(&status),
                "round {round}: {status} {}",
                reply.text
            );
        }
        assert_eq!(active_admins(&app).await, 1, "round {round}: {statuses:?}");
    }
}

// ------------------------------------------------ 7. look-alike accounts

/// `s` in fullwidth forms (`admin1` -> `ａｄｍｉｎ１`).
fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(u32::from(c) - 0x21 + 0xFF01).expect("fullwidth"),
            c => c,
        })
        .collect()
}

async fn register_as(app: &TestApp, username: &str, email: &str) -> Reply {
    app.post(
        "/api/auth/register/",
        None,
        json!({"username": username, "email": email, "password": PASSWORD}),
    )
    .await
}

async fn users_with_key(app: &TestApp, column: user::Column, key: &str) -> u64 {
    user::Entity::find()
        .filter(column.eq(key))
        .count(&app.db)
        .await
        .expect("count users")
}

#[tokio::test]
async fn finding_07_fullwidth_and_case_variants_of_a_username_are_taken() {
    let app = spawn_app().await;
    let name = unique("admin");
    let first = register_as(&app, &name, &format!("{name}@example.com")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    for variant in [
        fullwidth(&name),
        name.to_uppercase(),
        fullwidth(&name.to_uppercase()),
    ] {
        assert_ne!(variant, name);
        let reply = register_as(&app, &variant, &format!("{}@example.org", unique("x"))).await;
        let body = reply.problem(409);
        assert!(body["errors"]["username"].is_array(), "{variant}: {body}");
        // And it logs in as the same account.
        let login = app.login(&variant, PASSWORD).await;
        assert_eq!(login.status, 200, "{variant}: {}", login.text);
    }
    assert_eq!(
        users_with_key(&app, user::Column::UsernameKey, &name).await,
        1
    );
}

#[tokio::test]
async fn finding_07_an_idn_domain_and_its_punycode_are_one_mailbox() {
    let app = spawn_app().await;
    let local = unique("a");
    let first = register_as(&app, &unique("u"), &format!("{local}@xn--exmple-cua.com")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    for email in [
        format!("{local}@exämple.com"),
        format!("{}@EXÄMPLE.com", local.to_uppercase()),
        format!("{local}@XN--EXMPLE-CUA.COM"),
    ] {
        let reply = register_as(&app, &unique("u"), &email).await;
        let body = reply.problem(409);
        assert!(body["errors"]["email"].is_array(), "{email}: {body}");
    }
    assert_eq!(
        users_with_key(
            &app,
            user::Column::EmailKey,
            &format!("{local}@xn--exmple-cua.com")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn finding_07_mixed_script_usernames_are_refused() {
    let app = spawn_app().await;
    // Digits only: they belong to every script.
    let tail = uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000;
    // Latin with a Cyrillic `а` (U+0430), and Latin with a Greek `ο`.
    for name in [
        format!("p\u{0430}ypal{tail}"),
        format!("g\u{03BF}ogle{tail}"),
    ] {
        let reply = register_as(&app, &name, &format!("{}@example.com", unique("m"))).await;
        let body = reply.field_error("username");
        assert!(
            body["errors"]["username"][0]
                .as_str()
                .is_some_and(|m| m.contains("scripts")),
            "{body}"
        );
    }
    // One script at a time is fine.
    let cyrillic = format!("иван{tail}");
    let reply = register_as(&app, &cyrillic, &format!("{}@example.com", unique("m"))).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

// ------------------------------------ 8. invisible or deceptive names

const DECEPTIVE: [&str; 6] = [
    "\u{200B}",
    "\u{FEFF}",
    "\u{200D}\u{200D}",
    "a\u{202E}gnp.exe",
    "\u{2066}Ada\u{2069}",
    "Ada\u{200B}",
];

#[tokio::test]
async fn finding_08_invisible_and_deceptive_names_are_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let patient = id_of(&app.create_patient(&user.access, "Ada").await);
    let doctor = id_of(&app.create_doctor(&user.access, "Dr Ada").await);

    for name in DECEPTIVE {
        let reply = app
            .post(
                "/api/patients/",
                Some(&user.access),
                json!({"name": name, "age": 30, "gender": "Female"}),
            )
            .await;
        reply.field_error("name");
        let reply = app
            .post(
                "/api/doctors/",
                Some(&user.access),
                json!({"name": name, "specialization": "Cardiology"}),
            )
            .await;
        reply.field_error("name");
        let reply = app
            .post(
                "/api/doctors/",
                Some(&user.access),
                json!({"name": "Dr B", "specialization": name}),
            )
            .await;
        reply.field_error("specialization");
        let reply = app
            .patch(
                &format!("/api/patients/{patient}/"),
                &user.access,
                json!({"name": name}),
            )
            .await;
        reply.field_error("name");
        let reply = app
            .patch(
                &format!("/api/doctors/{doctor}/"),
                &user.access,
                json!({"name": name}),
            )
            .await;
        reply.field_error("name");
    }
    assert_eq!(patients_of(&app, user.id).await, 1);
    assert_eq!(app.patient_row(patient).await.expect("patient").name, "Ada");
    assert_eq!(app.doctor_row(doctor).await.expect("doctor").name, "Dr Ada");
    // A joiner inside a name is part of the script, and kept.
    let reply = app
        .post(
            "/api/patients/",
            Some(&user.access),
            json!({"name": "क्\u{200D}ष", "age": 30, "gender": "Female"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

// ------------------------------------------------ 9. duplicate JSON keys

#[tokio::test]
async fn finding_09_duplicate_json_keys_are_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let headers = [("content-type", "application/json")];
    let body = br#"{"name":"A","age":3,"age":150,"gender":"Male"}"#.to_vec();
    let reply = app
        .raw(
            Method::POST,
            "/api/patients/",
            Some(&user.access),
            &headers,
            body,
        )
        .await;
    let problem = reply.problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("\"age\"")),
        "{problem}"
    );
    assert_eq!(patients_of(&app, user.id).await, 0);

    let id = id_of(&app.create_patient(&user.access, "A").await);
    let reply = app
        .raw(
            Method::PATCH,
            &format!("/api/patients/{id}/"),
            Some(&user.access),
            &headers,
            br#"{"age":3,"age":150}"#.to_vec(),
        )
        .await;
    reply.problem(400);
    assert_eq!(app.patient_row(id).await.expect("row").age, 30);
}

// ------------------------------------------------- 10. malformed If-Match

#[tokio::test]
async fn finding_10_a_malformed_if_match_is_400_never_ignored() {
    let app = spawn_app().await;
    let user = app.user().await;
    let id = id_of(&app.create_patient(&user.access, "Ada").await);
    let path = format!("/api/patients/{id}/");
    let stale = app
        .get(&path, &user.access)
        .await
        .header("etag")
        .expect("etag")
        .to_string();
    let newer = app.patch(&path, &user.access, json!({"age": 31})).await;
    assert_eq!(newer.status, 200, "{}", newer.text);
    let before = app.patient_row(id).await.expect("row");

    // The issue's header: the stale tag, then a quoted byte that is not UTF-8.
    let mut raw = format!("{stale}, \"").into_bytes();
    raw.extend_from_slice(b"\xe9\"");
    let malformed = HeaderValue::from_bytes(&raw).expect("a header value (obs-text)");
    for method in [Method::PATCH, Method::PUT, Method::DELETE] {
        let mut req = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(&user.access)
            .header("if-match", malformed.clone());
        if method != Method::DELETE {
            req = req.json(&json!({"name": "Overwritten", "age": 99, "gender": "Male"}));
        }
        let started = std::time::Instant::now();
        let reply = Reply::read(req.send().await.expect("request"), started).await;
        let body = reply.problem(400);
        assert!(
            body.to_string().contains("If-Match") || body.to_string().contains("if-match"),
            "{method}: the problem names the header: {body}"
        );
        assert_eq!(
            app.patient_row(id).await.as_ref(),
            Some(&before),
            "{method}"
        );
    }

    let reply = app
        .raw(
            Method::PATCH,
            &path,
            Some(&user.access),
            &[
                ("if-match", stale.as_str()),
                ("content-type", "application/json"),
            ],
            br#"{"age": 99}"#.to_vec(),
        )
        .await;
    reply.problem(412);
    assert_eq!(app.patient_row(id).await.as_ref(), Some(&before));
}

// ------------------------------------------ 11. security headers of /docs

#[tokio::test]
async fn finding_11_the_docs_cannot_be_framed_and_run_only_their_own_scripts() {
    let app = spawn_app().await;
    for path in ["/docs", "/docs/"] {
        let reply = app.request(Method::GET, path, None, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert!(reply.text.contains("swagger"), "{path}: not Swagger UI");
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        let csp = reply
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"));
        let directives: BTreeMap<&str, &str> = csp
            .split(';')
            .filter_map(|d| {
                let d = d.trim();
                d.split_once(' ').or(Some((d, "")))
            })
            .collect();
        assert_eq!(directives.get("frame-ancestors"), Some(&"'none'"), "{csp}");
        assert_eq!(directives.get("default-src"), Some(&"'none'"), "{csp}");
        let scripts = directives.get("script-src").expect("script-src");
        assert!(
            !scripts.contains("unsafe-inline") && !scripts.contains("unsafe-eval"),
            "{csp}"
        );
        // One hash per inline script of the page, each matching one.
        let inline = reply.text.matches("<script").count();
        let hashes: Vec<&str> = scripts.split_whitespace().collect();
        assert!(
            !hashes.is_empty() && hashes.iter().all(|h| h.starts_with("'sha256-")),
            "{csp}"
        );
        assert!(
            hashes.len() <= inline,
            "{} hashes, {inline} scripts",
            hashes.len()
        );
    }
    // The API keeps its own, stricter policy.
    let api = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        api.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
}

// ---------------------------------- 12. content codings and charsets: 415

#[tokio::test]
async fn finding_12_encoded_or_non_utf8_bodies_are_415() {
    let app = spawn_app().await;
    let user = app.user().await;
    let body = json!({"name": "Ada", "age": 30, "gender": "Female"})
        .to_string()
        .into_bytes();
    let cases: [&[(&str, &str)]; 6] = [
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "br"),
        ],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "identity, deflate"),
        ],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "x-made-up"),
        ],
        &[("content-type", "application/json; charset=latin1")],
        &[("content-type", "application/json; charset=utf-16")],
    ];
    for headers in cases {
        let reply = app
            .raw(
                Method::POST,
                "/api/patients/",
                Some(&user.access),
                headers,
                body.clone(),
            )
            .await;
        reply.problem(415);
    }
    assert_eq!(patients_of(&app, user.id).await, 0);

    for headers in [
        &[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ][..],
        &[("content-type", "application/json; charset=UTF-8")][..],
    ] {
        let reply = app
            .raw(
                Method::POST,
                "/api/patients/",
                Some(&user.access),
                headers,
                body.clone(),
            )
            .await;
        assert_eq!(reply.status, 201, "{headers:?}: {}", reply.text);
    }
    assert_eq!(patients_of(&app, user.id).await, 2);
}

// ------------------------------------------------------------ 13. CORS

const ORIGIN: &str = "https://clinic.example";

async fn cors_app() -> TestApp {
    spawn_app_with(|c| c.cors_allowed_origins = vec![ORIGIN.into()]).await
}

async fn preflight(app: &TestApp, origin: &str, method: &str, headers: Option<&str>) -> Reply {
    let mut sent = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(headers) = headers {
        sent.push(("access-control-request-headers", headers));
    }
    app.raw(Method::OPTIONS, "/api/patients/", None, &sent, vec![])
        .await
}

/// The comma-separated values of a header, lower-cased.
fn listed(reply: &Reply, name: &str) -> BTreeSet<String> {
    reply
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

#[track_caller]
fn assert_varies_on_origin(reply: &Reply, what: &str) {
    assert!(
        listed(reply, "vary").contains("origin"),
        "{what}: no Vary: Origin in {:?}",
        reply.headers
    );
}

#[tokio::test]
async fn finding_13_preflight_allows_only_the_listed_request_headers() {
    let app = cors_app().await;
    let allowed: BTreeSet<String> = [
        "authorization",
        "content-type",
        "if-match",
        "idempotency-key",
        "x-request-id",
    ]
    .map(String::from)
    .into();
    for requested in [
        "authorization, content-type",
        "x-evil-header",
        "authorization, x-evil-header, cookie",
    ] {
        let reply = preflight(&app, ORIGIN, "POST", Some(requested)).await;
        let granted = listed(&reply, "access-control-allow-headers");
        assert!(
            !granted.contains("x-evil-header")
                && !granted.contains("cookie")
                && !granted.contains("*"),
            "{requested}: the requested headers are echoed: {granted:?}"
        );
        assert!(granted.is_subset(&allowed), "{requested}: {granted:?}");
        if reply.status.is_success() {
            assert_eq!(granted, allowed, "{requested}");
        }
    }
    let reply = preflight(&app, ORIGIN, "PATCH", Some("if-match, idempotency-key")).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(listed(&reply, "access-control-allow-headers"), allowed);
}

#[tokio::test]
async fn finding_13_preflight_never_allows_trace_or_connect() {
    let app = cors_app().await;
    for method in ["TRACE", "CONNECT", "TRACK", "EVIL"] {
        let reply = preflight(&app, ORIGIN, method, None).await;
        assert!(!reply.status.is_success(), "{method}: {}", reply.status);
        assert!(
            reply.header("access-control-allow-origin").is_none(),
            "{method}: {:?}",
            reply.headers
        );
    }
    let reply = preflight(&app, ORIGIN, "DELETE", None).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    let methods = listed(&reply, "access-control-allow-methods");
    assert!(methods.contains("delete"), "{methods:?}");
    for bad in ["trace", "connect", "*"] {
        assert!(!methods.contains(bad), "{methods:?}");
    }
}

#[tokio::test]
async fn finding_13_cors_answers_vary_on_origin() {
    let app = cors_app().await;
    let user = app.user().await;
    let me = "/api/auth/me/";

    let allowed = app
        .raw(
            Method::GET,
            me,
            Some(&user.access),
            &[("origin", ORIGIN)],
            vec![],
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(ORIGIN));
    assert_varies_on_origin(&allowed, "an allowed origin");

    let none = app.get(me, &user.access).await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_varies_on_origin(&none, "no Origin");

    let pre = preflight(&app, ORIGIN, "POST", Some("content-type")).await;
    assert!(pre.status.is_success(), "{}", pre.status);
    assert_varies_on_origin(&pre, "a preflight");

    let other = app
        .raw(
            Method::GET,
            me,
            Some(&user.access),
            &[("origin", "https://evil.example")],
            vec![],
        )
        .await;
    assert!(other.header("access-control-allow-origin").is_none());
    assert_varies_on_origin(&other, "another origin");
}

#[tokio::test]
async fn finding_13_same_origin_and_allowed_origin_posts_are_not_refused() {
    let app = cors_app().await;
    let user = app.user().await;
    let body = json!({"name": "Ada", "age": 30, "gender": "Female"});

    // A browser sends Origin on a same-origin POST: the server's own origin.
    let own = app.address.clone();
    let same = app
        .post_with_headers(
            "/api/patients/",
            Some(&user.access),
            &[("origin", own.as_str())],
            body.clone(),
        )
        .await;
    assert_eq!(same.status, 201, "same origin: {}", same.text);
    assert!(same.header("access-control-allow-origin").is_none());

    let listed_origin = app
        .post_with_headers(
            "/api/patients/",
            Some(&user.access),
            &[("origin", ORIGIN)],
            body.clone(),
        )
        .await;
    assert_eq!(listed_origin.status, 201, "{}", listed_origin.text);
    assert_eq!(
        listed_origin.header("access-control-allow-origin"),
        Some(ORIGIN)
    );

    // Another origin gets no CORS grant: its script cannot read the answer.
    let other = app
        .post_with_headers(
            "/api/patients/",
            Some(&user.access),
            &[("origin", "https://evil.example")],
            body,
        )
        .await;
    assert!(other.header("access-control-allow-origin").is_none());
    assert_eq!(
        patients_of(&app, user.id).await,
        if other.status == 201 { 3 } else { 2 }
    );
}

// ----------------------------- 14. validation messages say what to send

/// Words that name our types, not what the client must send.
const INTERNAL: [&str; 16] = [
    "uint",
    "int32",
    "int64",
    "integer(",
    "optional_",
    "Option<",
    "Ordering",
    "ParseError",
    "parse",
    "DateTime",
    "chrono",
    "serde",
    "i64",
    "u64",
    "Resource",
    "enum",
];

/// A list, the token to call it with, a parameter, bad values for it and
/// what a message about them must mention.
type Case<'a> = (String, &'a str, &'a str, Vec<&'a str>, &'a [&'a str]);

#[tokio::test]
async fn finding_14_validation_messages_name_no_internal_type() {
    let app = spawn_app().await;
    let user = app.user().await;
    let admin = app.make_admin(&app.user().await).await;
    let patient = id_of(&app.create_patient(&user.access, "Ada").await);
    let doctor = id_of(&app.create_doctor(&user.access, "Dr Ada").await);

    let numbers = ["abc", "1.5", "-1", "99999999999999999999999"];
    let mut cases: Vec<Case> = Vec::new();
    let paged = [
        "/api/patients/".to_string(),
        format!("/api/patients/{patient}/doctors/"),
        format!("/api/patients/{patient}/history/"),
        "/api/doctors/".to_string(),
        format!("/api/doctors/{doctor}/history/"),
        "/api/mappings/".to_string(),
        format!("/api/mappings/{patient}/"),
        "/api/users/".to_string(),
        "/api/audit/".to_string(),
    ];
    for list in &paged {
        let token = if list.starts_with("/api/users") || list.starts_with("/api/audit") {
            admin.access.as_str()
        } else {
            user.access.as_str()
        };
        let mut limits = numbers.to_vec();
        limits.extend(["0", "100000"]);
        cases.push((list.clone(), token, "limit", limits, &["1", "1000"]));
        cases.push((
            list.clone(),
            token,
            "offset",
            numbers.to_vec(),
            &["0", "1000000000000000"],
        ));
    }
    let u = user.access.as_str();
    let a = admin.access.as_str();
    cases.extend([
        (
            "/api/patients/".into(),
            u,
            "ordering",
            vec!["nope", "-", "--age", "name,age"],
            &["age", "-age"][..],
        ),
        (
            "/api/patients/".into(),
            u,
            "gender",
            vec!["male?", "M", "1"],
            &["Male", "Female"][..],
        ),
        (
            "/api/patients/".into(),
            u,
            "min_age",
            vec!["abc", "-5", "1000", "1.5"],
            &["0", "150"][..],
        ),
        (
            "/api/patients/".into(),
            u,
            "max_age",
            vec!["abc", "-5", "1000"],
            &["0", "150"][..],
        ),
        (
            "/api/patients/".into(),
            u,
            "deleted",
            vec!["maybe", "2", "yes please"],
            &["true", "false"][..],
        ),
        (
            "/api/doctors/".into(),
            u,
            "ordering",
            vec!["nope", "-"],
            &["name"][..],
        ),
        (
            "/api/doctors/".into(),
            u,
            "deleted",
            vec!["maybe"],
            &["true", "false"][..],
        ),
        (
            "/api/mappings/".into(),
            u,
            "ordering",
            vec!["nope"],
            &["id"][..],
        ),
        (
            "/api/mappings/".into(),
            u,
            "patient",
            vec!["abc", "1.5"],
            &["integer"][..],
        ),
        (
            "/api/mappings/".into(),
            u,
            "doctor",
            vec!["abc"],
            &["integer"][..],
        ),
        (
            "/api/audit/".into(),
            a,
            "actor",
            vec!["abc", "1.5", "me"],
            &["integer"][..],
        ),
        (
            "/api/audit/".into(),
            a,
            "resource_id",
            vec!["abc"],
            &["integer"][..],
        ),
        (
            "/api/audit/".into(),
            a,
            "resource_type",
            vec!["patients", "Patient"],
            &["patient", "doctor"][..],
        ),
        (
            "/api/audit/".into(),
            a,
            "since",
            vec!["yesterday", "2024-13-01", "1700000000"],
            &["RFC 3339"][..],
        ),
        (
            "/api/audit/".into(),
            a,
            "until",
            vec!["soon"],
            &["RFC 3339"][..],
        ),
    ]);

    for (list, token, param, values, hints) in &cases {
        for value in values {
            let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            let url = format!("{list}?{param}={encoded}");
            let reply = app.get(&url, token).await;
            let body = reply.field_error(param);
            let messages: Vec<&str> = body["errors"][param]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m.as_str().expect("a message"))
                .collect();
            let all = format!("{} {}", body["detail"], messages.join(" "));
            for word in INTERNAL {
                assert!(!all.contains(word), "{url}: `{word}` in {all}");
            }
            assert!(
                hints.iter().all(|hint| all.contains(hint)),
                "{url}: the message does not say what to send ({hints:?}): {all}"
            );
        }
    }
}

// ---------------- 15. tokens from before a deactivation stay refused after it

#[tokio::test]
async fn finding_15_a_token_from_before_a_deactivation_is_refused_after_reactivation() {
    let app = spawn_app().await;
    let admin = app.make_admin(&app.user().await).await;
    let user = app.user().await;
    let me = "/api/auth/me/";
    assert_eq!(app.get(me, &user.access).await.status, 200);

    for action in ["deactivate", "activate"] {
        let reply = app
            .post(
                &format!("/api/users/{}/{action}/", user.id),
                Some(&admin.access),
                json!({}),
            )
            .await;
        assert_eq!(reply.status, 200, "{action}: {}", reply.text);
    }
    assert!(user_row(&app, user.id).await.is_active);
    assert!(user_row(&app, user.id).await.tokens_valid_after.is_some());

    let old = app.get(me, &user.access).await;
    old.problem(401);
    let old = app
        .post(
            "/api/patients/",
            Some(&user.access),
            json!({"name": "Ada", "age": 30, "gender": "Female"}),
        )
        .await;
    old.problem(401);
    assert_eq!(patients_of(&app, user.id).await, 0);
    // The old refresh token was revoked too.
    app.post(
        "/api/auth/token/refresh/",
        None,
        json!({"refresh": user.refresh}),
    )
    .await
    .problem(401);

    // A new login works.
    let login = app.login(&user.username, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let fresh = app.get(me, &login.str("access")).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
}

// ------------------------------------------- 16. PASSWORD_MIN_STRENGTH

/// The registration of the original Postman collection, made unique.
fn postman_registration() -> (String, Value) {
    let username = unique("testuser");
    let body = json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "password": "testpass123",
    });
    (username, body)
}

#[tokio::test]
async fn finding_16_the_original_fixtures_pass_with_password_min_strength_0() {
    let app = spawn_app_with(|c| c.password_min_strength = 0).await;
    let (username, body) = postman_registration();
    let reply = app.post("/api/auth/register/", None, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let login = app.login(&username, "testpass123").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let me = app.get("/api/auth/me/", &login.str("access")).await;
    assert_eq!(me.status, 200, "{}", me.text);
}

#[tokio::test]
async fn finding_16_by_default_a_guessable_password_is_refused_naming_the_setting() {
    let app = spawn_app().await;
    assert_eq!(app.state.config.password_min_strength, 3);
    let (username, body) = postman_registration();
    let reply = app.post("/api/auth/register/", None, body).await;
    let problem = reply.field_error("password");
    let message = problem["errors"]["password"][0].as_str().expect("message");
    assert!(message.contains("PASSWORD_MIN_STRENGTH"), "{message}");
    for advice in [
        "lower the",
        "lowering",
        "reduce",
        "decrease",
        "set PASSWORD_MIN_STRENGTH",
        "=0",
    ] {
        assert!(
            !message.to_lowercase().contains(&advice.to_lowercase()),
            "the message suggests weakening the setting: {message}"
        );
    }
    assert_eq!(
        users_with_key(&app, user::Column::UsernameKey, &username).await,
        0
    );
    app.login(&username, "testpass123").await.problem(401);
}
