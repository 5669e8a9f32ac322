//! Security rules that hold the API up against brute force and abuse
//! (docs/contract.md: "General rules", "Authentication", "Administrators"): rate limits with `Retry-After`, per-account
//! lock-out, trusted proxies, body limits, administrators' powers over
//! accounts, security headers, request ids and CORS.

use std::time::{Duration, Instant};

use chrono::Utc;
use healthcare::entity::{audit_event, refresh_token, server_setting, user};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, User, spawn_app, spawn_app_with, unique};

const REGISTER: &str = "/api/auth/register/";
const REFRESH: &str = "/api/auth/token/refresh/";
const ME: &str = "/api/auth/me/";
const AUDIT: &str = "/api/audit/";
const USERS: &str = "/api/users/";
const WRONG_PASSWORD: &str = "Not-The-Password-99";

// ---------------------------------------------------------------- helpers

/// A 429 problem whose `Retry-After` is a whole number of seconds, at least 1.
#[track_caller]
fn assert_rate_limited(reply: &Reply) -> u64 {
    reply.problem(429);
    let retry_after = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", reply.headers));
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not integer seconds: {retry_after:?}"));
    assert!(seconds >= 1, "Retry-After: {seconds}");
    assert!(seconds <= 3600, "Retry-After: {seconds}");
    assert!(!reply.text.contains("\"access\""), "{}", reply.text);
    seconds
}

async fn register_ok(app: &TestApp, username: &str) -> i64 {
    let reply = app.register(username).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_i64().expect("id")
}

async fn user_row(app: &TestApp, id: i64) -> user::Model {
    user::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query users")
        .expect("user row")
}

async fn users_named(app: &TestApp, username: &str) -> u64 {
    user::Entity::find()
        .filter(user::Column::UsernameKey.eq(username.to_lowercase()))
        .count(&app.db)
        .await
        .expect("count users")
}

async fn refresh_rows(app: &TestApp, user_id: i64) -> Vec<refresh_token::Model> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .all(&app.db)
        .await
        .expect("query refresh_tokens")
}

async fn refresh(app: &TestApp, token: &str) -> Reply {
    app.post(REFRESH, None, json!({"refresh": token})).await
}

/// The audit event written for the request that got `request_id`.
async fn audit_row(app: &TestApp, request_id: &str) -> audit_event::Model {
    audit_event::Entity::find()
        .filter(audit_event::Column::RequestId.eq(request_id))
        .one(&app.db)
        .await
        .expect("query audit_events")
        .unwrap_or_else(|| panic!("no audit event for request {request_id}"))
}

/// Polls (bounded) until `path` with `token` answers `status`; the server
/// trusts a user's status for at most 5 seconds.
async fn eventually_status(app: &TestApp, path: &str, token: &str, status: u16) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let reply = app.get(path, token).await;
        if reply.status == status || Instant::now() >= deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[track_caller]
fn assert_security_headers(reply: &Reply, what: &str) {
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}: {:?}",
        reply.headers
    );
    assert_eq!(
        reply.header("x-frame-options"),
        Some("DENY"),
        "{what}: {:?}",
        reply.headers
    );
    assert!(
        reply
            .header("cache-control")
            .is_some_and(|v| v.contains("no-store")),
        "{what}: {:?}",
        reply.headers
    );
    assert!(
        reply
            .header("content-security-policy")
            .is_some_and(|v| !v.trim().is_empty()),
        "{what}: {:?}",
        reply.headers
    );
}

fn sign_claims(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign a token")
}

/// An access token for `user_id` signed with the server's own secret,
/// claiming (or disclaiming) administrator rights.
async fn forged_access(app: &TestApp, user_id: i64, staff: bool) -> String {
    let secret = server_setting::Entity::find_by_id("jwt_secret".to_string())
        .one(&app.db)
        .await
        .expect("query server_settings")
        .expect("the generated secret is kept in the database")
        .value;
    let now = Utc::now().timestamp();
    sign_claims(
        &secret,
        &json!({
            "sub": user_id.to_string(),
            "iat": now,
            "exp": now + 300,
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "iss": app.state.config.jwt_issuer,
            "aud": app.state.config.jwt_audience,
            "token_type": "access",
            "staff": staff,
        }),
    )
}

// ------------------------------------------------------ per-IP rate limits

#[tokio::test]
async fn repeated_logins_from_one_ip_get_429_with_retry_after() {
    let app = spawn_app_with(|c| c.auth_rate_per_minute = 3).await;
    let username = unique("rush");
    register_ok(&app, &username).await;

    // Register may or may not share the budget; either way the 429 comes
    // within rate + 1 logins, and every login before it succeeded.
    let mut limited = None;
    for attempt in 1..=4 {
        let reply = app.login(&username, PASSWORD).await;
        if reply.status == 429 {
            limited = Some((attempt, reply));
            break;
        }
        assert_eq!(reply.status, 200, "attempt {attempt}: {}", reply.text);
    }
    let (attempt, reply) = limited.expect("no 429 within 4 logins at 3 per minute");
    assert!(attempt >= 2, "limited at the first login");
    assert_rate_limited(&reply);

    // The right password does not get past the limit either.
    let again = app.login(&username, PASSWORD).await;
    assert_rate_limited(&again);
}

#[tokio::test]
async fn repeated_registrations_from_one_ip_get_429_and_create_no_account() {
    let app = spawn_app_with(|c| c.auth_rate_per_minute = 3).await;

    let mut created = Vec::new();
    let mut limited = None;
    for attempt in 1..=4 {
        let username = unique("signup");
        let reply = app.register(&username).await;
        if reply.status == 429 {
            limited = Some((username, reply));
            break;
        }
        assert_eq!(reply.status, 201, "attempt {attempt}: {}", reply.text);
        created.push(username);
    }
    let (refused, reply) = limited.expect("no 429 within 4 registrations at 3 per minute");
    assert_eq!(created.len(), 3, "{created:?}");
    assert_rate_limited(&reply);
    assert_eq!(users_named(&app, &refused).await, 0);
    for username in &created {
        assert_eq!(users_named(&app, username).await, 1, "{username}");
    }
}

#[tokio::test]
async fn repeated_refreshes_from_one_ip_get_429_with_retry_after() {
    let app = spawn_app_with(|c| c.auth_rate_per_minute = 3).await;
    let username = unique("refresher");
    let id = register_ok(&app, &username).await;
    let login = app.login(&username, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.json()["refresh"]
        .as_str()
        .expect("refresh")
        .to_string();

    let mut limited = None;
    for attempt in 1..=4 {
        let reply = refresh(&app, &token).await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200, "attempt {attempt}: {}", reply.text);
    }
    let reply = limited.expect("no 429 within 4 refreshes at 3 per minute");
    assert_rate_limited(&reply);
    // Rate limiting is not a revocation.
    assert!(
        refresh_rows(&app, id)
            .await
            .iter()
            .all(|r| r.revoked_at.is_none())
    );
}

// ------------------------------------------------- per-account lock-out

#[tokio::test]
async fn the_failed_login_budget_locks_the_account_even_for_the_right_password() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 1000;
        c.login_attempts_per_hour = 4;
    })
    .await;
    let victim = unique("victim");
    let victim_id = register_ok(&app, &victim).await;
    let bystander = unique("bystander");
    register_ok(&app, &bystander).await;

    let mut failures = 0;
    let mut locked = None;
    for _ in 0..6 {
        let reply = app.login(&victim, WRONG_PASSWORD).await;
        if reply.status == 429 {
            locked = Some(reply);
            break;
        }
        reply.problem(401);
        failures += 1;
    }
    let reply = locked.expect("no lock-out after 6 failures with a budget of 4");
    assert!(
        (1..=4).contains(&failures),
        "{failures} failures before the lock"
    );
    assert_rate_limited(&reply);

    let right = app.login(&victim, PASSWORD).await;
    assert_rate_limited(&right);
    assert!(refresh_rows(&app, victim_id).await.is_empty());

    // Another account from the same address is not affected.
    let other = app.login(&bystander, PASSWORD).await;
    assert_eq!(other.status, 200, "{}", other.text);
}

#[tokio::test]
async fn the_account_lock_ignores_the_case_of_the_username() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 1000;
        c.login_attempts_per_hour = 4;
    })
    .await;
    let username = unique("john");
    let id = register_ok(&app, &username).await;

    let shouted = username.to_uppercase();
    let mut locked = false;
    for _ in 0..6 {
        let reply = app.login(&shouted, WRONG_PASSWORD).await;
        if reply.status == 429 {
            locked = true;
            break;
        }
        reply.problem(401);
    }
    assert!(locked, "no lock-out for {shouted}");

    for variant in [username.clone(), shouted.clone(), {
        let mut mixed = username.clone();
        mixed.replace_range(..1, &username[..1].to_uppercase());
        mixed
    }] {
        let reply = app.login(&variant, PASSWORD).await;
        assert_rate_limited(&reply);
    }
    assert!(refresh_rows(&app, id).await.is_empty());
}

// ------------------------------------------------------ client addresses

#[tokio::test]
async fn x_forwarded_for_is_ignored_without_a_trusted_proxy() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 3;
        c.trusted_proxies.clear();
    })
    .await;
    let username = unique("spoofer");
    register_ok(&app, &username).await;

    let mut limited = None;
    for attempt in 1..=4u8 {
        let reply = app
            .login_from(&format!("203.0.113.{attempt}"), &username, WRONG_PASSWORD)
            .await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        reply.problem(401);
    }
    let reply = limited.expect("a new X-Forwarded-For per request escaped the per-IP limit");
    assert_rate_limited(&reply);

    // The audit trail records the socket's address, not the claimed one.
    let request_id = reply.header("x-request-id").expect("request id");
    assert_eq!(
        audit_row(&app, request_id).await.ip.as_deref(),
        Some("127.0.0.1")
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = spawn_app_with(|c| {
        c.auth_rate_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let username = unique("proxied");
    let reg = app.post_with_headers(
        REGISTER,
        None,
        &[("x-forwarded-for", "198.51.100.200")],
        json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.text);

    let first = "198.51.100.7";
    let mut limited = None;
    for attempt in 1..=4 {
        let reply = app.login_from(first, &username, PASSWORD).await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200, "attempt {attempt}: {}", reply.text);
    }
    assert_rate_limited(&limited.expect("no 429 for one forwarded client"));

    // Prepending a made-up address does not hide the real client.
    let spoofed = app
        .login_from(&format!("192.0.2.1, {first}"), &username, PASSWORD)
        .await;
    assert_rate_limited(&spoofed);

    // Another client behind the same proxy has a budget of its own.
    let second = app.login_from("198.51.100.8", &username, PASSWORD).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let request_id = second.header("x-request-id").expect("request id");
    assert_eq!(
        audit_row(&app, request_id).await.ip.as_deref(),
        Some("198.51.100.8")
    );
}

// ------------------------------------------------------------ body limit

#[tokio::test]
async fn a_body_over_the_configured_limit_is_413_and_creates_nothing() {
    let app = spawn_app_with(|c| c.max_body_bytes = 2048).await;
    let user = app.user().await;

    // The control: a body under the limit goes through.
    let small = app
        .post(
            "/api/patients/",
            Some(&user.access),
            json!({"name": "Small Enough", "age": 30, "gender": "Female"}),
        )
        .await;
    assert_eq!(small.status, 201, "{}", small.text);

    let big = app
        .post(
            "/api/patients/",
            Some(&user.access),
            json!({"name": "x".repeat(4096), "age": 30, "gender": "Female"}),
        )
        .await;
    big.problem(413);
    assert!(!big.text.contains("xxxxxxxx"), "{}", big.text);
    let rows = app.patient_rows_of(user.id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].name, "Small Enough");

    let username = unique("bulky");
    let register = app
        .post(
            REGISTER,
            None,
            json!({"username": username, "email": format!("{username}@example.com"),
                   "password": PASSWORD, "padding": "y".repeat(4096)}),
        )
        .await;
    register.problem(413);
    assert_eq!(users_named(&app, &username).await, 0);
}

// ------------------------------------------------------ administrators

async fn admin_and_target(app: &TestApp) -> (User, User) {
    let admin = app.make_admin(&app.user().await).await;
    let target = app.user().await;
    (admin, target)
}

#[tokio::test]
async fn a_deactivated_user_loses_access_refresh_and_login() {
    let app = spawn_app().await;
    let (admin, victim) = admin_and_target(&app).await;
    // The victim's session is live (and its status cached) before.
    assert_eq!(app.get(ME, &victim.access).await.status, 200);

    let reply = app
        .post(
            &format!("/api/users/{}/deactivate/", victim.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["id"], victim.id);
    assert_eq!(reply.json()["is_active"], false);
    assert!(!user_row(&app, victim.id).await.is_active);
    let rows = refresh_rows(&app, victim.id).await;
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.revoked_at.is_some()), "{rows:?}");

    // Refresh and login are refused at once.
    refresh(&app, &victim.refresh).await.problem(401);
    let login = app.login(&victim.username, PASSWORD).await;
    login.problem(401);
    assert!(!login.text.contains("access"), "{}", login.text);

    // The access token stops working within the status cache's 5 seconds.
    let me = eventually_status(&app, ME, &victim.access, 401).await;
    me.problem(401);
    app.get("/api/patients/", &victim.access).await.problem(401);

    // The administrator is unaffected.
    assert_eq!(app.get(ME, &admin.access).await.status, 200);
}

#[tokio::test]
async fn deactivating_an_unknown_user_is_404() {
    let app = spawn_app().await;
    let admin = app.make_admin(&app.user().await).await;

    for action in ["deactivate", "activate", "revoke-tokens"] {
        let reply = app
            .post(
                &format!("/api/users/{}/{action}/", i64::MAX - 7),
                Some(&admin.access),
                json!({}),
            )
            .await;
        reply.problem(404);
    }
}

#[tokio::test]
async fn non_administrators_get_403_on_every_administrator_route() {
    let app = spawn_app().await;
    let user = app.user().await;
    let target = app.user().await;

    for path in [USERS.to_string(), AUDIT.to_string()] {
        app.get(&path, &user.access).await.problem(403);
        // Without a token it is a 401, not a 403.
        app.request(Method::GET, &path, None, None)
            .await
            .problem(401);
    }
    for action in ["deactivate", "activate", "revoke-tokens"] {
        let path = format!("/api/users/{}/{action}/", target.id);
        app.post(&path, Some(&user.access), json!({}))
            .await
            .problem(403);
        // Not even on oneself.
        let own = format!("/api/users/{}/{action}/", user.id);
        app.post(&own, Some(&user.access), json!({}))
            .await
            .problem(403);
        app.post(&path, None, json!({})).await.problem(401);
    }

    assert!(user_row(&app, target.id).await.is_active);
    assert!(user_row(&app, user.id).await.is_active);
    assert!(
        refresh_rows(&app, target.id)
            .await
            .iter()
            .all(|r| r.revoked_at.is_none())
    );
    assert_eq!(refresh(&app, &target.refresh).await.status, 200);
    assert_eq!(app.get(ME, &target.access).await.status, 200);
}

#[tokio::test]
async fn revoking_a_users_tokens_kills_every_refresh_token_of_theirs_only() {
    let app = spawn_app().await;
    let (admin, victim) = admin_and_target(&app).await;
    let second = app.login(&victim.username, PASSWORD).await.json();
    let second_refresh = second["refresh"].as_str().expect("refresh").to_string();
    let bystander = app.user().await;

    let reply = app
        .post(
            &format!("/api/users/{}/revoke-tokens/", victim.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(reply.text.is_empty(), "{}", reply.text);

    let rows = refresh_rows(&app, victim.id).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.revoked_at.is_some()), "{rows:?}");
    refresh(&app, &victim.refresh).await.problem(401);
    refresh(&app, &second_refresh).await.problem(401);

    assert_eq!(refresh(&app, &bystander.refresh).await.status, 200);
    assert!(
        refresh_rows(&app, bystander.id)
            .await
            .iter()
            .all(|r| r.revoked_at.is_none())
    );
    // The account itself stays active: logging in again works.
    assert!(user_row(&app, victim.id).await.is_active);
    assert_eq!(app.login(&victim.username, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_reactivated_user_can_log_in_again() {
    let app = spawn_app().await;
    let (admin, user) = admin_and_target(&app).await;
    let deactivate = app
        .post(
            &format!("/api/users/{}/deactivate/", user.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(deactivate.status, 200, "{}", deactivate.text);
    app.login(&user.username, PASSWORD).await.problem(401);

    let activate = app
        .post(
            &format!("/api/users/{}/activate/", user.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(activate.status, 200, "{}", activate.text);
    assert_eq!(activate.json()["is_active"], true);
    assert!(user_row(&app, user.id).await.is_active);

    let login = app.login(&user.username, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let access = login.json()["access"].as_str().expect("access").to_string();
    let me = eventually_status(&app, ME, &access, 200).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["id"], user.id);
    // Tokens revoked at deactivation stay revoked.
    refresh(&app, &user.refresh).await.problem(401);
}

#[tokio::test]
async fn a_staff_claim_in_a_token_does_not_make_an_administrator() {
    let app = spawn_app().await;
    let user = app.user().await;
    let target = app.user().await;
    let forged = forged_access(&app, user.id, true).await;

    // The token itself is valid...
    let me = app.get(ME, &forged).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["is_staff"], false);
    // ...but administrator rights come from the database.
    app.get(AUDIT, &forged).await.problem(403);
    app.get(USERS, &forged).await.problem(403);
    app.post(
        &format!("/api/users/{}/deactivate/", target.id),
        Some(&forged),
        json!({}),
    )
    .await
    .problem(403);
    assert!(user_row(&app, target.id).await.is_active);

    // And the other way round: an administrator's token without the claim
    // still carries the rights the database gives.
    let admin = app.make_admin(&app.user().await).await;
    let modest = forged_access(&app, admin.id, false).await;
    let audit = app.get(AUDIT, &modest).await;
    assert_eq!(audit.status, 200, "{}", audit.text);
}

#[tokio::test]
async fn a_demoted_administrators_token_loses_its_rights() {
    let app = spawn_app().await;
    let admin = app.make_admin(&app.user().await).await;
    assert_eq!(app.get(AUDIT, &admin.access).await.status, 200);

    user::Entity::update_many()
        .col_expr(user::Column::IsStaff, Expr::value(false))
        .filter(user::Column::Id.eq(admin.id))
        .exec(&app.db)
        .await
        .expect("demote");

    let reply = eventually_status(&app, AUDIT, &admin.access, 403).await;
    reply.problem(403);
}

// ------------------------------------------------------------- headers

#[tokio::test]
async fn security_headers_are_on_every_api_response_including_errors() {
    let app = spawn_app_with(|c| c.max_body_bytes = 2048).await;
    let user = app.user().await;

    let cases = [
        (200, app.get(ME, &user.access).await),
        (
            201,
            app.post(
                "/api/patients/",
                Some(&user.access),
                json!({"name": "Headers", "age": 3, "gender": "Other"}),
            )
            .await,
        ),
        (
            400,
            app.post("/api/patients/", Some(&user.access), json!({"age": -1}))
                .await,
        ),
        (
            401,
            app.request(Method::GET, "/api/patients/", None, None).await,
        ),
        (401, app.login(&user.username, WRONG_PASSWORD).await),
        (403, app.get(AUDIT, &user.access).await),
        (404, app.get("/api/nowhere/", &user.access).await),
        (
            404,
            app.get(&format!("/api/patients/{}/", i64::MAX), &user.access)
                .await,
        ),
        (405, app.delete(ME, &user.access).await),
        (
            413,
            app.post(
                "/api/patients/",
                Some(&user.access),
                json!({"name": "z".repeat(4096), "age": 3, "gender": "Other"}),
            )
            .await,
        ),
        (
            415,
            app.raw(
                Method::POST,
                "/api/patients/",
                Some(&user.access),
                &[("content-type", "text/plain")],
                b"hello".to_vec(),
            )
            .await,
        ),
    ];
    for (status, reply) in &cases {
        if *status >= 400 {
            reply.problem(*status);
        } else {
            assert_eq!(reply.status, *status, "{}", reply.text);
        }
        assert_security_headers(reply, &status.to_string());
    }
}

#[tokio::test]
async fn every_response_has_a_request_id_echoed_only_when_sane() {
    let app = spawn_app().await;
    let user = app.user().await;

    // Generated when none is sent, on successes and errors alike, and
    // different for each request.
    let mut generated = Vec::new();
    for reply in [
        app.get(ME, &user.access).await,
        app.request(Method::GET, ME, None, None).await,
        app.get("/api/nowhere/", &user.access).await,
        app.delete(ME, &user.access).await,
        app.request(Method::GET, "/healthz", None, None).await,
    ] {
        let id = reply
            .header("x-request-id")
            .unwrap_or_else(|| panic!("no X-Request-Id on a {}", reply.status))
            .to_string();
        assert!(!id.is_empty() && id.len() <= 64, "{id:?}");
        generated.push(id);
    }
    let mut unique_ids = generated.clone();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), generated.len(), "{generated:?}");

    // A sane id from the client is kept, also on an error.
    for (path, token) in [(ME, Some(user.access.as_str())), (ME, None)] {
        let sane = format!("client-{}.trace:7_a", unique(""));
        let reply = app
            .raw(Method::GET, path, token, &[("x-request-id", &sane)], vec![])
            .await;
        assert_eq!(reply.header("x-request-id"), Some(sane.as_str()));
    }

    // Garbage is replaced.
    for garbage in [
        "a".repeat(200),
        "has spaces in it".to_string(),
        "semi;colon".to_string(),
        "<script>alert(1)</script>".to_string(),
        String::new(),
    ] {
        let reply = app
            .raw(
                Method::GET,
                ME,
                Some(&user.access),
                &[("x-request-id", &garbage)],
                vec![],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let id = reply.header("x-request-id").expect("X-Request-Id");
        assert_ne!(id, garbage);
        assert!(!id.is_empty() && id.len() <= 64, "{id:?}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)),
            "{id:?}"
        );
    }
}

// ----------------------------------------------------------------- CORS

async fn preflight(app: &TestApp, origin: &str) -> Reply {
    app.raw(
        Method::OPTIONS,
        "/api/patients/",
        None,
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        vec![],
    )
    .await
}

#[tokio::test]
async fn without_an_allow_list_no_origin_is_allowed_by_cors() {
    let app = spawn_app().await;
    assert!(
        app.state.config.cors_allowed_origins.is_empty(),
        "CORS_ALLOWED_ORIGINS is set in the environment of this test"
    );
    let user = app.user().await;

    let reply = preflight(&app, "https://evil.example").await;
    assert!(
        reply.header("access-control-allow-origin").is_none(),
        "{:?}",
        reply.headers
    );
    assert!(reply.header("access-control-allow-credentials").is_none());

    let simple = app
        .raw(
            Method::GET,
            ME,
            Some(&user.access),
            &[("origin", "https://evil.example")],
            vec![],
        )
        .await;
    assert!(
        simple.header("access-control-allow-origin").is_none(),
        "{:?}",
        simple.headers
    );
}

#[tokio::test]
async fn only_origins_on_the_allow_list_are_allowed_by_cors() {
    let app =
        spawn_app_with(|c| c.cors_allowed_origins = vec!["https://clinic.example".into()]).await;
    let user = app.user().await;

    let allowed = preflight(&app, "https://clinic.example").await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://clinic.example"),
        "{:?}",
        allowed.headers
    );
    assert!(
        allowed
            .header("access-control-allow-methods")
            .is_some_and(|m| m.to_uppercase().contains("POST")),
        "{:?}",
        allowed.headers
    );

    let simple = app
        .raw(
            Method::GET,
            ME,
            Some(&user.access),
            &[("origin", "https://clinic.example")],
            vec![],
        )
        .await;
    assert_eq!(simple.status, 200, "{}", simple.text);
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://clinic.example")
    );

    for origin in [
        "https://evil.example",
        "https://clinic.example.evil.example",
        "http://clinic.example",
    ] {
        let refused = preflight(&app, origin).await;
        assert!(
            refused.header("access-control-allow-origin").is_none(),
            "{origin}: {:?}",
            refused.headers
        );
        let simple = app
            .raw(
                Method::GET,
                ME,
                Some(&user.access),
                &[("origin", origin)],
                vec![],
            )
            .await;
        assert!(
            simple.header("access-control-allow-origin").is_none(),
            "{origin}: {:?}",
            simple.headers
        );
    }
}
