//! Accounts: registration, login, the current user and password changes
//! (docs/contract.md, "Authentication").

use healthcare::entity::user;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, spawn_app, unique};

const REGISTER: &str = "/api/auth/register/";
const PASSWORD_CHANGE: &str = "/api/auth/password/";
const ARGON2ID_OWASP: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

async fn register_with(app: &TestApp, username: &str, email: &str, password: &str) -> Reply {
    app.post(
        REGISTER,
        None,
        json!({"username": username, "email": email, "password": password}),
    )
    .await
}

async fn user_row(app: &TestApp, id: i64) -> user::Model {
    user::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query user")
        .expect("the user row exists")
}

/// Rows whose username matches case-insensitively.
async fn users_named(app: &TestApp, username: &str) -> u64 {
    user::Entity::find()
        .filter(user::Column::UsernameKey.eq(username.to_lowercase()))
        .count(&app.db)
        .await
        .expect("count users")
}

/// Rows whose email matches case-insensitively.
async fn users_with_email(app: &TestApp, email: &str) -> u64 {
    user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.to_lowercase()))
        .count(&app.db)
        .await
        .expect("count users")
}

/// The messages of one field of a problem's `errors`, joined.
fn messages(body: &Value, field: &str) -> String {
    body["errors"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no errors for `{field}`: {body}"))
        .iter()
        .map(|m| m.as_str().expect("messages are strings"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A strong password of exactly `len` characters (random hex, mixed case).
fn strong_password(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s.char_indices()
        .map(|(i, c)| {
            if i % 3 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[tokio::test]
async fn registering_creates_the_user_and_stores_only_an_argon2id_hash() {
    let app = spawn_app().await;
    let username = unique("Anna.B+");
    let email = format!("{username}@example.com");
    let before = chrono::Utc::now();

    let reply = register_with(&app, &username, &email, PASSWORD).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let location = reply.header("location").expect("Location header");
    assert!(location.starts_with("/api/"), "{location}");
    let body = reply.json();
    let id = body["id"].as_i64().expect("integer id");
    assert_eq!(body["username"], username.as_str());
    assert_eq!(body["email"], email.as_str());
    let joined = chrono::DateTime::parse_from_rfc3339(
        body["date_joined"].as_str().expect("date_joined string"),
    )
    .expect("date_joined is RFC 3339");
    assert_eq!(joined.offset().local_minus_utc(), 0, "not UTC: {joined}");
    assert!(
        (joined.with_timezone(&chrono::Utc) - before)
            .num_seconds()
            .abs()
            < 60,
        "{joined}"
    );
    let object = body.as_object().expect("object");
    assert!(
        object.keys().all(|k| !k.contains("password")),
        "password in body: {body}"
    );
    assert!(!reply.text.contains(PASSWORD), "{}", reply.text);

    let row = user_row(&app, id).await;
    assert_eq!(row.username, username);
    assert_eq!(row.email, email);
    assert!(row.is_active);
    assert!(!row.is_staff);
    assert!(
        row.password_hash.starts_with(ARGON2ID_OWASP),
        "{}",
        row.password_hash
    );
    assert!(!row.password_hash.contains(PASSWORD));

    // The Location points at the account once logged in.
    let tokens = app.login(&username, PASSWORD).await.json();
    let me = app
        .get(location, tokens["access"].as_str().expect("access"))
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["id"], id);
}

#[tokio::test]
async fn the_seed_example_password_is_refused_with_a_reason() {
    let app = spawn_app().await;
    let username = unique("john");
    let email = format!("{username}@example.com");

    let reply = register_with(&app, &username, &email, "password123").await;

    let body = reply.field_error("password");
    let message = messages(&body, "password");
    assert!(
        message.to_lowercase().contains("guess") || message.to_lowercase().contains("common"),
        "the message should say why: {message}"
    );
    assert!(!reply.text.contains("password123"), "{}", reply.text);
    assert_eq!(users_named(&app, &username).await, 0);
}

#[tokio::test]
async fn a_password_shorter_than_8_characters_is_refused() {
    let app = spawn_app().await;
    let username = unique("shorty");

    let reply = register_with(
        &app,
        &username,
        &format!("{username}@example.com"),
        "Xq7#vR2",
    )
    .await;

    let body = reply.field_error("password");
    assert!(messages(&body, "password").contains('8'), "{body}");
    assert_eq!(users_named(&app, &username).await, 0);
}

#[tokio::test]
async fn a_password_longer_than_128_characters_is_refused() {
    let app = spawn_app().await;
    let username = unique("longer");

    let reply = register_with(
        &app,
        &username,
        &format!("{username}@example.com"),
        &strong_password(129),
    )
    .await;

    let body = reply.field_error("password");
    assert!(messages(&body, "password").contains("128"), "{body}");
    assert_eq!(users_named(&app, &username).await, 0);
}

#[tokio::test]
async fn a_password_of_128_characters_is_accepted_and_never_truncated() {
    let app = spawn_app().await;
    let username = unique("longest");
    let password = strong_password(128);

    let reply = register_with(
        &app,
        &username,
        &format!("{username}@example.com"),
        &password,
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    assert_eq!(app.login(&username, &password).await.status, 200);
    // bcrypt would have stopped at 72 bytes; every character counts here.
    app.login(&username, &password[..72]).await.problem(401);
    let mut last_changed = password[..127].to_string();
    last_changed.push(if password.ends_with('0') { '1' } else { '0' });
    app.login(&username, &last_changed).await.problem(401);
}

#[tokio::test]
async fn a_password_like_the_username_is_refused() {
    let app = spawn_app().await;
    let username = unique("johnsmith");

    for password in [
        username.clone(),
        format!("{username}1"),
        username.to_uppercase(),
    ] {
        let reply = register_with(
            &app,
            &username,
            &format!("{username}@example.com"),
            &password,
        )
        .await;
        let body = reply.field_error("password");
        assert!(!messages(&body, "password").is_empty(), "{body}");
    }
    assert_eq!(users_named(&app, &username).await, 0);
}

#[tokio::test]
async fn a_username_taken_in_another_case_is_a_conflict_and_creates_no_row() {
    let app = spawn_app().await;
    let username = unique("Casey");
    let first = app.register(&username).await;
    assert_eq!(first.status, 201, "{}", first.text);

    let again = register_with(
        &app,
        &username.to_uppercase(),
        &format!("{}@example.org", unique("other")),
        PASSWORD,
    )
    .await;

    let body = again.problem(409);
    assert!(!messages(&body, "username").is_empty(), "{body}");
    assert!(body["errors"].get("email").is_none(), "{body}");
    assert_eq!(users_named(&app, &username).await, 1);
}

#[tokio::test]
async fn an_email_taken_in_another_case_is_a_conflict_and_creates_no_row() {
    let app = spawn_app().await;
    let email = format!("{}@Example.com", unique("Mail.Box"));
    let first = register_with(&app, &unique("first"), &email, PASSWORD).await;
    assert_eq!(first.status, 201, "{}", first.text);

    let second_name = unique("second");
    let again = register_with(&app, &second_name, &email.to_uppercase(), PASSWORD).await;

    let body = again.problem(409);
    assert!(!messages(&body, "email").is_empty(), "{body}");
    assert!(body["errors"].get("username").is_none(), "{body}");
    assert_eq!(users_with_email(&app, &email).await, 1);
    assert_eq!(users_named(&app, &second_name).await, 0);
}

#[tokio::test]
async fn a_username_with_characters_outside_letters_digits_and_at_dot_plus_dash_underscore_is_refused()
 {
    let app = spawn_app().await;
    let base = unique("bad");
    for username in [
        format!("{base} space"),
        format!("{base};drop"),
        format!("{base}/slash"),
        format!("<{base}>"),
        format!("{base}😀"),
        format!("{base}{}", "a".repeat(150)),
    ] {
        let email = format!("{}@example.com", unique("valid"));
        let reply = register_with(&app, &username, &email, PASSWORD).await;
        let body = reply.field_error("username");
        assert!(body["errors"].get("email").is_none(), "{username}: {body}");
        assert_eq!(users_with_email(&app, &email).await, 0, "{username}");
    }
}

#[tokio::test]
async fn a_username_of_150_allowed_characters_is_accepted() {
    let app = spawn_app().await;
    let prefix = unique("Ünïcode.@+-_");
    let username = format!("{prefix}{}", "x".repeat(150 - prefix.chars().count()));
    assert_eq!(username.chars().count(), 150);

    let reply = register_with(
        &app,
        &username,
        &format!("{}@example.com", unique("u")),
        PASSWORD,
    )
    .await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["username"], username.as_str());
    assert_eq!(users_named(&app, &username).await, 1);
}

#[tokio::test]
async fn an_invalid_email_is_refused() {
    let app = spawn_app().await;
    for email in [
        "not-an-email".to_string(),
        "missing-at.example.com".to_string(),
        "two@@example.com".to_string(),
        "@example.com".to_string(),
        "user@".to_string(),
        "user name@example.com".to_string(),
    ] {
        let username = unique("mailer");
        let reply = register_with(&app, &username, &email, PASSWORD).await;
        let body = reply.field_error("email");
        assert!(body["errors"].get("username").is_none(), "{email}: {body}");
        assert_eq!(users_named(&app, &username).await, 0, "{email}");
    }
}

#[tokio::test]
async fn missing_and_null_fields_are_each_named() {
    let app = spawn_app().await;

    let empty = app.post(REGISTER, None, json!({})).await;
    let body = empty.problem(400);
    for field in ["username", "email", "password"] {
        assert!(!messages(&body, field).is_empty(), "{field}: {body}");
    }

    let username = unique("partial");
    let partial = app
        .post(REGISTER, None, json!({"username": username, "email": null}))
        .await;
    let body = partial.problem(400);
    assert!(!messages(&body, "email").is_empty(), "{body}");
    assert!(!messages(&body, "password").is_empty(), "{body}");
    assert!(body["errors"].get("username").is_none(), "{body}");
    assert_eq!(users_named(&app, &username).await, 0);

    let blank = register_with(&app, "   ", &format!("{username}@example.com"), PASSWORD).await;
    blank.field_error("username");
}

#[tokio::test]
async fn an_unknown_field_in_a_registration_is_refused() {
    let app = spawn_app().await;
    let username = unique("extra");

    let reply = app
        .post(
            REGISTER,
            None,
            json!({"username": username, "email": format!("{username}@example.com"),
                   "password": PASSWORD, "nickname": "Ex"}),
        )
        .await;

    reply.field_error("nickname");
    assert_eq!(users_named(&app, &username).await, 0);
}

#[tokio::test]
async fn registering_cannot_make_an_administrator() {
    let app = spawn_app().await;
    let username = unique("sneaky");

    let reply = app
        .post(
            REGISTER,
            None,
            json!({"username": username, "email": format!("{username}@example.com"),
                   "password": PASSWORD, "is_staff": true}),
        )
        .await;

    // Either refused as an unknown field or ignored as a read-only one;
    // never honoured.
    if reply.status == 201 {
        assert_eq!(reply.json()["is_staff"], false, "{}", reply.text);
        let id = reply.json()["id"].as_i64().expect("id");
        assert!(!user_row(&app, id).await.is_staff);
    } else {
        reply.field_error("is_staff");
        assert_eq!(users_named(&app, &username).await, 0);
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    let user = app.user().await;

    let wrong_password = app.login(&user.username, "Not-The-Password-99").await;
    let unknown_user = app.login(&unique("nobody"), PASSWORD).await;

    let a = wrong_password.problem(401);
    let b = unknown_user.problem(401);
    assert_eq!(a, b);
    for reply in [&wrong_password, &unknown_user] {
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "{:?}",
            reply.headers
        );
        assert!(!reply.text.contains("access"), "{}", reply.text);
    }
}

#[tokio::test]
async fn login_returns_an_access_and_a_refresh_token() {
    let app = spawn_app().await;
    let username = unique("login");
    assert_eq!(app.register(&username).await.status, 201);

    let reply = app.login(&username, PASSWORD).await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    let access = body["access"].as_str().expect("access");
    let refresh = body["refresh"].as_str().expect("refresh");
    assert_eq!(access.split('.').count(), 3);
    assert_eq!(refresh.split('.').count(), 3);
    assert_ne!(access, refresh);
}

#[tokio::test]
async fn me_returns_the_current_user() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;

    let reply = app.get("/api/auth/me/", &user.access).await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["id"], user.id);
    assert_eq!(body["username"], user.username.as_str());
    assert_eq!(
        body["email"],
        format!("{}@example.com", user.username).as_str()
    );
    assert!(body["date_joined"].as_str().is_some(), "{body}");
    assert!(
        body.as_object()
            .expect("object")
            .keys()
            .all(|k| !k.contains("password")),
        "{body}"
    );
    assert_eq!(
        app.get("/api/auth/me/", &other.access).await.json()["id"],
        other.id
    );
}

#[tokio::test]
async fn a_password_change_with_the_wrong_old_password_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    let hash_before = user_row(&app, user.id).await.password_hash;

    let reply = app
        .post(
            PASSWORD_CHANGE,
            Some(&user.access),
            json!({"old_password": "Not-The-Password-99", "new_password": "Amber-Falcon-Ridge-77"}),
        )
        .await;

    let body = reply.field_error("old_password");
    assert!(body["errors"].get("new_password").is_none(), "{body}");
    assert_eq!(user_row(&app, user.id).await.password_hash, hash_before);
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200);
    app.login(&user.username, "Amber-Falcon-Ridge-77")
        .await
        .problem(401);
    // Sessions survive a refused change.
    let refreshed = app
        .post(
            "/api/auth/token/refresh/",
            None,
            json!({"refresh": user.refresh}),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
}

#[tokio::test]
async fn a_changed_password_works_and_the_old_one_no_longer_does() {
    let app = spawn_app().await;
    let user = app.user().await;
    let hash_before = user_row(&app, user.id).await.password_hash;
    let new_password = "Amber-Falcon-Ridge-77";

    let reply = app
        .post(
            PASSWORD_CHANGE,
            Some(&user.access),
            json!({"old_password": PASSWORD, "new_password": new_password}),
        )
        .await;

    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(reply.text.is_empty(), "{}", reply.text);
    let hash_after = user_row(&app, user.id).await.password_hash;
    assert_ne!(hash_after, hash_before);
    assert!(hash_after.starts_with(ARGON2ID_OWASP), "{hash_after}");
    assert_eq!(app.login(&user.username, new_password).await.status, 200);
    app.login(&user.username, PASSWORD).await.problem(401);
}

#[tokio::test]
async fn a_guessable_new_password_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    let hash_before = user_row(&app, user.id).await.password_hash;

    for new_password in [
        "password123".to_string(),
        "Short1!".to_string(),
        user.username.clone(),
    ] {
        let reply = app
            .post(
                PASSWORD_CHANGE,
                Some(&user.access),
                json!({"old_password": PASSWORD, "new_password": new_password}),
            )
            .await;
        let body = reply.field_error("new_password");
        assert!(
            !messages(&body, "new_password").is_empty(),
            "{new_password}: {body}"
        );
    }
    assert_eq!(user_row(&app, user.id).await.password_hash, hash_before);
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn changing_the_password_needs_an_access_token() {
    let app = spawn_app().await;
    let user = app.user().await;
    let hash_before = user_row(&app, user.id).await.password_hash;

    let reply = app
        .post(
            PASSWORD_CHANGE,
            None,
            json!({"old_password": PASSWORD, "new_password": "Amber-Falcon-Ridge-77"}),
        )
        .await;

    reply.problem(401);
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{:?}",
        reply.headers
    );
    assert_eq!(user_row(&app, user.id).await.password_hash, hash_before);
}
