//! JWTs: what is accepted, what is refused, and refresh-token revocation
//! and rotation (docs/contract.md, "Authentication").

use chrono::Utc;
use healthcare::entity::{refresh_token, server_setting, user};
use healthcare::store::refresh_tokens::fingerprint;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, spawn_app, spawn_app_with, unique};

const ME: &str = "/api/auth/me/";
const REFRESH: &str = "/api/auth/token/refresh/";
const LOGOUT: &str = "/api/auth/logout/";

// ---------------------------------------------------------------- helpers

/// The signing secret the server generated and keeps in its database.
async fn signing_secret(app: &TestApp) -> String {
    server_setting::Entity::find_by_id("jwt_secret".to_string())
        .one(&app.db)
        .await
        .expect("query server_settings")
        .expect("the generated secret is kept in the database")
        .value
}

/// Claims the server would issue right now for `user_id`.
fn claims(app: &TestApp, user_id: i64, token_type: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "sub": user_id.to_string(),
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "iss": app.state.config.jwt_issuer,
        "aud": app.state.config.jwt_audience,
        "token_type": token_type,
    })
}

fn sign(secret: &str, alg: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign a token")
}

/// The claims of a token, read without checking anything.
fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token).expect("decodable token")
}

/// Unpadded base64url (RFC 7515 §2).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

/// A 401 for a bearer token that was sent but is not acceptable (RFC 6750 §3.1).
#[track_caller]
fn assert_invalid_token(reply: &Reply) -> Value {
    let body = reply.problem(401);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "challenge: {challenge:?}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "challenge: {challenge:?}"
    );
    body
}

/// A 401 from the refresh or logout endpoint.
#[track_caller]
fn assert_refused(reply: &Reply) -> Value {
    let body = reply.problem(401);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "challenge: {challenge:?}");
    assert!(body.get("access").is_none(), "{body}");
    body
}

async fn refresh(app: &TestApp, token: &str) -> Reply {
    app.post(REFRESH, None, json!({"refresh": token})).await
}

async fn logout(app: &TestApp, token: &str) -> Reply {
    app.post(LOGOUT, None, json!({"refresh": token})).await
}

/// The server's record of a refresh token.
async fn refresh_row(app: &TestApp, token: &str) -> refresh_token::Model {
    let jti = claims_of(token)["jti"]
        .as_str()
        .expect("jti claim")
        .to_string();
    refresh_token::Entity::find()
        .filter(refresh_token::Column::JtiHash.eq(fingerprint(&jti)))
        .one(&app.db)
        .await
        .expect("query refresh_tokens")
        .expect("the refresh token is recorded")
}

async fn refresh_rows_of_user(app: &TestApp, user_id: i64) -> Vec<refresh_token::Model> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .all(&app.db)
        .await
        .expect("query refresh_tokens")
}

async fn refresh_rows_of_family(app: &TestApp, family: &str) -> Vec<refresh_token::Model> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::Family.eq(family))
        .all(&app.db)
        .await
        .expect("query refresh_tokens")
}

/// Records a refresh token id as the server does at login, so that a
/// hand-made token differs from a real one only where a test says so.
async fn record_refresh(app: &TestApp, user_id: i64, jti: &str) {
    let now = Utc::now();
    refresh_token::ActiveModel {
        jti_hash: Set(fingerprint(jti)),
        user_id: Set(user_id),
        family: Set(unique("family")),
        expires_at: Set(now + chrono::Duration::days(1)),
        revoked_at: Set(None),
        rotated_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("record refresh token");
}

async fn login_tokens(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let reply = app.login(username, password).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    (
        body["access"].as_str().expect("access").to_string(),
        body["refresh"].as_str().expect("refresh").to_string(),
    )
}

// ------------------------------------------------- access tokens (Bearer)

#[tokio::test]
async fn a_protected_endpoint_without_a_token_is_401_with_a_bearer_challenge() {
    let app = spawn_app().await;

    for path in [ME, "/api/patients/", "/api/doctors/", "/api/mappings/"] {
        let reply = app.request(Method::GET, path, None, None).await;
        reply.problem(401);
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{path}: {challenge:?}");
        // RFC 6750 §3.1: no error code when no credentials were sent.
        assert!(!challenge.contains("error="), "{path}: {challenge:?}");
    }
}

#[tokio::test]
async fn a_non_bearer_authorization_header_is_401() {
    let app = spawn_app().await;
    let user = app.user().await;

    let basic = app
        .raw(
            Method::GET,
            ME,
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
            vec![],
        )
        .await;
    basic.problem(401);
    assert!(
        basic
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );

    // The token itself, without the scheme.
    let bare = app
        .raw(
            Method::GET,
            ME,
            None,
            &[("authorization", user.access.as_str())],
            vec![],
        )
        .await;
    bare.problem(401);
}

#[tokio::test]
async fn a_garbage_token_is_refused() {
    let app = spawn_app().await;

    for token in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "....."] {
        let reply = app.get(ME, token).await;
        assert_invalid_token(&reply);
        assert!(
            !reply.text.contains(token) || token.len() < 6,
            "{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn a_correctly_signed_hand_made_token_is_accepted() {
    // The control for the refusals below: each changes one thing only.
    let app = spawn_app().await;
    let user = app.user().await;
    let token = sign(
        &signing_secret(&app).await,
        Algorithm::HS256,
        &claims(&app, user.id, "access"),
    );

    let reply = app.get(ME, &token).await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["id"], user.id);
}

#[tokio::test]
async fn a_token_signed_with_a_wrong_key_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let token = sign(
        "an-entirely-different-secret-of-more-than-32-bytes",
        Algorithm::HS256,
        &claims(&app, user.id, "access"),
    );

    let reply = app.get(ME, &token).await;

    assert_invalid_token(&reply);
    assert!(!reply.text.contains(&token));
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims(&app, user.id, "access").to_string().as_bytes());

    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
        // A real token's signature glued to an `alg: none` header.
        {
            let real = user.access.split('.').nth(2).expect("signature");
            format!("{header}.{payload}.{real}")
        },
    ] {
        let reply = app.get(ME, &token).await;
        assert_invalid_token(&reply);
    }
}

#[tokio::test]
async fn a_token_signed_with_another_hmac_algorithm_is_refused() {
    // The algorithm is pinned to HS256, even with the right secret.
    let app = spawn_app().await;
    let user = app.user().await;
    let secret = signing_secret(&app).await;

    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(&secret, alg, &claims(&app, user.id, "access"));
        assert_invalid_token(&app.get(ME, &token).await);
    }
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut expired = claims(&app, user.id, "access");
    let now = Utc::now().timestamp();
    expired["iat"] = json!(now - 3600);
    expired["exp"] = json!(now - 600);
    let token = sign(&signing_secret(&app).await, Algorithm::HS256, &expired);

    let reply = app.get(ME, &token).await;

    let body = assert_invalid_token(&reply);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.to_lowercase().contains("expired")),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut other = claims(&app, user.id, "access");
    other["aud"] = json!("some-other-api");
    let token = sign(&signing_secret(&app).await, Algorithm::HS256, &other);

    assert_invalid_token(&app.get(ME, &token).await);
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut other = claims(&app, user.id, "access");
    other["iss"] = json!("https://evil.example.com");
    let token = sign(&signing_secret(&app).await, Algorithm::HS256, &other);

    assert_invalid_token(&app.get(ME, &token).await);
}

#[tokio::test]
async fn a_token_missing_a_required_claim_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let secret = signing_secret(&app).await;

    for claim in ["exp", "iat", "sub", "jti", "iss", "aud", "token_type"] {
        let mut partial = claims(&app, user.id, "access");
        partial.as_object_mut().expect("object").remove(claim);
        let token = sign(&secret, Algorithm::HS256, &partial);
        let reply = app.get(ME, &token).await;
        assert_eq!(reply.status, 401, "without {claim}: {}", reply.text);
        assert_invalid_token(&reply);
    }
}

#[tokio::test]
async fn a_refresh_token_is_refused_where_an_access_token_is_expected() {
    let app = spawn_app().await;
    let user = app.user().await;

    assert_invalid_token(&app.get(ME, &user.refresh).await);
    assert_invalid_token(&app.get("/api/patients/", &user.refresh).await);
    let create = app
        .post(
            "/api/patients/",
            Some(&user.refresh),
            json!({"name": "Nobody", "age": 40, "gender": "Male"}),
        )
        .await;
    assert_invalid_token(&create);
    assert!(app.patient_rows_of(user.id).await.is_empty());
}

#[tokio::test]
async fn issued_tokens_carry_the_contract_claims_and_default_lifetimes() {
    let app = spawn_app().await;
    let user = app.user().await;

    for (token, kind, ttl) in [
        (&user.access, "access", 300),
        (&user.refresh, "refresh", 86_400),
    ] {
        let header = jsonwebtoken::decode_header(token).expect("header");
        assert_eq!(header.alg, Algorithm::HS256, "{kind}");
        let c = claims_of(token);
        assert_eq!(c["sub"], user.id.to_string(), "{kind}: {c}");
        assert_eq!(c["token_type"], kind, "{c}");
        assert_eq!(c["iss"], app.state.config.jwt_issuer.as_str(), "{c}");
        assert_eq!(c["aud"], app.state.config.jwt_audience.as_str(), "{c}");
        assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c}");
        let iat = c["iat"].as_i64().expect("iat");
        let exp = c["exp"].as_i64().expect("exp");
        assert_eq!(exp - iat, ttl, "{kind}: {c}");
        assert!((iat - Utc::now().timestamp()).abs() < 60, "{c}");
    }
    assert_ne!(
        claims_of(&user.access)["jti"],
        claims_of(&user.refresh)["jti"]
    );
}

#[tokio::test]
async fn token_lifetimes_follow_the_configuration() {
    let app = spawn_app_with(|c| {
        c.access_token_ttl = 60;
        c.refresh_token_ttl = 7200;
    })
    .await;
    let user = app.user().await;

    let access = claims_of(&user.access);
    let refresh = claims_of(&user.refresh);
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        60
    );
    assert_eq!(
        refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(),
        7200
    );
}

#[tokio::test]
async fn a_configured_secret_signs_the_tokens() {
    let secret = format!("{}{}", unique("configured-"), "-0123456789abcdef0123456789");
    let configured = secret.clone();
    let app = spawn_app_with(move |c| c.jwt_secret = Some(configured)).await;
    let user = app.user().await;

    let mine = sign(&secret, Algorithm::HS256, &claims(&app, user.id, "access"));
    assert_eq!(app.get(ME, &mine).await.status, 200);
    // The database's generated secret is not the one in use.
    if let Some(stored) = server_setting::Entity::find_by_id("jwt_secret".to_string())
        .one(&app.db)
        .await
        .expect("query server_settings")
    {
        let theirs = sign(
            &stored.value,
            Algorithm::HS256,
            &claims(&app, user.id, "access"),
        );
        assert_invalid_token(&app.get(ME, &theirs).await);
    }
}

#[tokio::test]
async fn the_generated_secret_is_strong_and_kept_in_the_database() {
    let app = spawn_app().await;
    let user = app.user().await;
    let secret = signing_secret(&app).await;

    assert!(
        secret.len() >= 32,
        "secret too short: {} bytes",
        secret.len()
    );
    // The server's own tokens verify with the stored secret.
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.set_audience(&[app.state.config.jwt_audience.as_str()]);
    validation.set_issuer(&[app.state.config.jwt_issuer.as_str()]);
    jsonwebtoken::decode::<Value>(
        &user.access,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .expect("issued with the stored secret");
    // A second app on the same database picks up the same secret.
    let again = healthcare::app::AppState::with_db(
        crate::helpers::test_config(&app.state.config.database_url),
        app.db.clone(),
    )
    .await
    .expect("second state");
    assert_eq!(
        again
            .sessions
            .keys()
            .verify(&user.access, healthcare::auth::tokens::TokenType::Access)
            .expect("accepted by a second instance")
            .user_id(),
        Some(user.id)
    );
}

// --------------------------------------------------------- refresh tokens

#[tokio::test]
async fn refresh_tokens_are_recorded_as_hashes_only() {
    let app = spawn_app().await;
    let user = app.user().await;
    let jti = claims_of(&user.refresh)["jti"]
        .as_str()
        .expect("jti")
        .to_string();

    let rows = refresh_rows_of_user(&app, user.id).await;

    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row, &refresh_row(&app, &user.refresh).await);
    for value in [&row.jti_hash, &row.family] {
        assert!(!value.contains(&jti), "{row:?}");
        assert!(!value.contains(&user.refresh), "{row:?}");
    }
    assert!(row.revoked_at.is_none());
    assert!(row.rotated_at.is_none());
}

#[tokio::test]
async fn without_rotation_refresh_returns_only_an_access_token_and_the_refresh_token_stays_usable()
{
    let app = spawn_app().await;
    let user = app.user().await;

    for _ in 0..2 {
        let reply = refresh(&app, &user.refresh).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        assert!(body.get("refresh").is_none(), "{body}");
        let access = body["access"].as_str().expect("access");
        let me = app.get(ME, access).await;
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.json()["id"], user.id);
    }
    assert_eq!(refresh_rows_of_user(&app, user.id).await.len(), 1);
    assert!(refresh_row(&app, &user.refresh).await.revoked_at.is_none());
}

#[tokio::test]
async fn an_access_token_is_refused_where_a_refresh_token_is_expected() {
    let app = spawn_app().await;
    let user = app.user().await;

    assert_refused(&refresh(&app, &user.access).await);
    assert_refused(&logout(&app, &user.access).await);
    // Nothing was revoked by the refused logout.
    assert!(refresh_row(&app, &user.refresh).await.revoked_at.is_none());
    assert_eq!(refresh(&app, &user.refresh).await.status, 200);
}

#[tokio::test]
async fn a_garbage_or_foreign_refresh_token_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut foreign = claims(&app, user.id, "refresh");
    foreign["aud"] = json!("some-other-api");
    let foreign = sign(&signing_secret(&app).await, Algorithm::HS256, &foreign);
    let wrong_key = sign(
        "an-entirely-different-secret-of-more-than-32-bytes",
        Algorithm::HS256,
        &claims(&app, user.id, "refresh"),
    );

    for token in ["garbage", foreign.as_str(), wrong_key.as_str()] {
        assert_refused(&refresh(&app, token).await);
    }
}

#[tokio::test]
async fn a_signed_refresh_token_the_server_never_recorded_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let secret = signing_secret(&app).await;

    let forged = claims(&app, user.id, "refresh");
    let reply = refresh(&app, &sign(&secret, Algorithm::HS256, &forged)).await;
    assert_refused(&reply);

    // The control: the same kind of token, once recorded, is accepted.
    let recorded = claims(&app, user.id, "refresh");
    record_refresh(&app, user.id, recorded["jti"].as_str().expect("jti")).await;
    let reply = refresh(&app, &sign(&secret, Algorithm::HS256, &recorded)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut expired = claims(&app, user.id, "refresh");
    let now = Utc::now().timestamp();
    expired["iat"] = json!(now - 2 * 86_400);
    expired["exp"] = json!(now - 600);
    record_refresh(&app, user.id, expired["jti"].as_str().expect("jti")).await;
    let token = sign(&signing_secret(&app).await, Algorithm::HS256, &expired);

    assert_refused(&refresh(&app, &token).await);
}

#[tokio::test]
async fn a_refresh_token_is_refused_after_logout() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (_, other_session) = login_tokens(&app, &user.username, PASSWORD).await;

    let reply = logout(&app, &user.refresh).await;

    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(reply.text.is_empty(), "{}", reply.text);
    assert!(refresh_row(&app, &user.refresh).await.revoked_at.is_some());
    assert_refused(&refresh(&app, &user.refresh).await);
    // Only that session ended.
    assert!(refresh_row(&app, &other_session).await.revoked_at.is_none());
    let other = refresh(&app, &other_session).await;
    assert_eq!(other.status, 200, "{}", other.text);
}

#[tokio::test]
async fn a_logged_out_refresh_token_stays_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    assert_eq!(logout(&app, &user.refresh).await.status, 204);

    // Logging out again does not bring it back, whatever it answers.
    let again = logout(&app, &user.refresh).await;
    assert!(
        again.status == 204 || again.status == 401,
        "{} {}",
        again.status,
        again.text
    );
    if again.status == 401 {
        assert_refused(&again);
    }
    for _ in 0..2 {
        assert_refused(&refresh(&app, &user.refresh).await);
    }
    assert!(refresh_row(&app, &user.refresh).await.revoked_at.is_some());
}

#[tokio::test]
async fn logout_revokes_the_whole_rotation_family() {
    let app = spawn_app_with(|c| c.rotate_refresh_tokens = true).await;
    let user = app.user().await;
    let first = refresh(&app, &user.refresh).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = first.json()["refresh"]
        .as_str()
        .expect("rotated refresh")
        .to_string();

    let reply = logout(&app, &second).await;

    assert_eq!(reply.status, 204, "{}", reply.text);
    let family = refresh_row(&app, &second).await.family;
    let rows = refresh_rows_of_family(&app, &family).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.revoked_at.is_some()), "{rows:?}");
    assert_refused(&refresh(&app, &second).await);
    assert_refused(&refresh(&app, &user.refresh).await);
}

#[tokio::test]
async fn with_rotation_each_refresh_returns_a_new_refresh_token_of_the_same_family() {
    let app = spawn_app_with(|c| c.rotate_refresh_tokens = true).await;
    let user = app.user().await;

    let first = refresh(&app, &user.refresh).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let body = first.json();
    let second = body["refresh"]
        .as_str()
        .expect("rotated refresh")
        .to_string();
    assert_ne!(second, user.refresh);
    assert_eq!(claims_of(&second)["token_type"], "refresh");
    let access = body["access"].as_str().expect("access");
    assert_eq!(app.get(ME, access).await.json()["id"], user.id);

    let old = refresh_row(&app, &user.refresh).await;
    let new = refresh_row(&app, &second).await;
    assert!(old.rotated_at.is_some(), "{old:?}");
    assert_eq!(new.family, old.family);
    assert!(
        new.revoked_at.is_none() && new.rotated_at.is_none(),
        "{new:?}"
    );

    // The new one rotates in turn.
    let next = refresh(&app, &second).await;
    assert_eq!(next.status, 200, "{}", next.text);
    let third = next.json()["refresh"]
        .as_str()
        .expect("rotated refresh")
        .to_string();
    assert_ne!(third, second);
    assert_eq!(refresh_row(&app, &third).await.family, old.family);
}

#[tokio::test]
async fn with_rotation_reusing_a_spent_refresh_token_revokes_its_whole_family() {
    let app = spawn_app_with(|c| c.rotate_refresh_tokens = true).await;
    let user = app.user().await;
    let (_, other_session) = login_tokens(&app, &user.username, PASSWORD).await;
    let first = refresh(&app, &user.refresh).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = first.json()["refresh"]
        .as_str()
        .expect("rotated refresh")
        .to_string();

    // The spent token comes back (stolen, replayed).
    let reused = refresh(&app, &user.refresh).await;

    assert_refused(&reused);
    // The thief's or the owner's newer token from the same login is dead too.
    assert_refused(&refresh(&app, &second).await);
    let family = refresh_row(&app, &second).await.family;
    let rows = refresh_rows_of_family(&app, &family).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.revoked_at.is_some()), "{rows:?}");
    // Another login of the same user is a different family and lives on.
    assert!(refresh_row(&app, &other_session).await.revoked_at.is_none());
    let other = refresh(&app, &other_session).await;
    assert_eq!(other.status, 200, "{}", other.text);
}

#[tokio::test]
async fn a_password_change_revokes_every_refresh_token_of_the_user() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (_, other_session) = login_tokens(&app, &user.username, PASSWORD).await;
    let bystander = app.user().await;
    let new_password = "Amber-Falcon-Ridge-77";

    let changed = app
        .post(
            "/api/auth/password/",
            Some(&user.access),
            json!({"old_password": PASSWORD, "new_password": new_password}),
        )
        .await;

    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_refused(&refresh(&app, &user.refresh).await);
    assert_refused(&refresh(&app, &other_session).await);
    let rows = refresh_rows_of_user(&app, user.id).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.revoked_at.is_some()), "{rows:?}");
    // Other users keep their sessions; a new login works.
    assert_eq!(refresh(&app, &bystander.refresh).await.status, 200);
    let (_, fresh) = login_tokens(&app, &user.username, new_password).await;
    assert_eq!(refresh(&app, &fresh).await.status, 200);
}

#[tokio::test]
async fn a_deactivated_user_can_neither_log_in_nor_refresh() {
    let app = spawn_app().await;
    let user = app.user().await;
    let wrong_password = app.login(&user.username, "Not-The-Password-99").await;
    let wrong_password = wrong_password.problem(401);

    user::Entity::update_many()
        .col_expr(user::Column::IsActive, Expr::value(false))
        .filter(user::Column::Id.eq(user.id))
        .exec(&app.db)
        .await
        .expect("deactivate");

    let login = app.login(&user.username, PASSWORD).await;
    let body = login.problem(401);
    // Indistinguishable from a wrong password.
    assert_eq!(body, wrong_password);
    assert!(!login.text.contains("refresh"), "{}", login.text);

    assert_refused(&refresh(&app, &user.refresh).await);
    assert_eq!(refresh_rows_of_user(&app, user.id).await.len(), 1);
}
