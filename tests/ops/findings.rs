//! Findings of the black-box security test (issue 16) that need the real
//! binary: the permissions of the embedded database's files (17) and the
//! warning logged at start for a weakened password rule (16). The others are
//! in tests/api/findings.rs.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// The file of an `sqlite://...?mode=rwc` test URL.
fn sqlite_path(db: &TestDatabase) -> PathBuf {
    let rest = db.url.strip_prefix("sqlite://").expect("an SQLite URL");
    PathBuf::from(rest.split('?').next().expect("a path"))
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The usual umask, whatever the test runner was started with; the server
/// processes inherit it.
fn usual_umask() {
    // SAFETY: umask only sets this process's file-creation mask.
    unsafe {
        libc::umask(0o022);
    }
}

#[tokio::test]
async fn finding_17_a_new_database_is_created_owner_only() {
    usual_umask();
    let db = TestDatabase::sqlite();
    let path = sqlite_path(&db);
    assert!(!path.exists());
    let server = Server::start(&db.url, &[]).await;
    // Writes, so that the write-ahead log and its index are in use.
    let user = server.user().await;
    let reply = server.create_patient(&user.access, "Ada").await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    for file in [
        path.clone(),
        with_suffix(&path, "-wal"),
        with_suffix(&path, "-shm"),
    ] {
        assert!(file.exists(), "{} missing", file.display());
        assert_eq!(
            mode_of(&file),
            0o600,
            "{} is {:04o}, not owner-only",
            file.display(),
            mode_of(&file)
        );
    }
}

#[tokio::test]
async fn finding_17_an_existing_database_others_may_read_is_refused_at_start() {
    usual_umask();
    let db = TestDatabase::sqlite();
    let path = sqlite_path(&db);
    {
        let mut server = Server::start(&db.url, &[]).await;
        let user = server.user().await;
        let reply = server.create_patient(&user.access, "Ada").await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        server.stop(Duration::from_secs(20)).await;
    }
    assert_eq!(mode_of(&path), 0o600);

    for (file, mode) in [
        (path.clone(), 0o644),
        (path.clone(), 0o640),
        (path.clone(), 0o602),
        (with_suffix(&path, "-wal"), 0o644),
    ] {
        if !file.exists() {
            // A clean stop removes the log; one left by a crash is checked too.
            std::fs::write(&file, b"").expect("create the -wal file");
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let mut server = Server::spawn(&db.url, &[]);
        let log = server
            .wait_healthy()
            .await
            .expect_err("the server started on a database others may read");
        assert!(
            log.contains(&file.display().to_string()) && log.contains("chmod 600"),
            "{:04o} {}: the refusal names the file and the fix:\n{log}",
            mode,
            file.display()
        );
        assert!(
            log.contains(&format!("mode {mode:04o}")),
            "the refusal shows the mode:\n{log}"
        );
        let status = server.wait_exit(Duration::from_secs(10)).await;
        assert!(!status.success(), "exit status {status}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod back");
        if file != path {
            std::fs::remove_file(&file).expect("remove the empty -wal file");
        }
    }

    // Made private again, it starts, with its data.
    let server = Server::start(&db.url, &[]).await;
    let login = server
        .post(
            "/api/auth/login/",
            None,
            &json!({"username": "nobody", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, 401, "{}", login.text);
    assert_eq!(server.get("/readyz", None).await.status, 200);
}

// ---------------------------------------------------------------- 16.

#[tokio::test]
async fn finding_16_a_weakened_password_rule_is_logged_at_start() {
    let db = TestDatabase::new();
    let weak = Server::start(&db.url, &[("PASSWORD_MIN_STRENGTH", "0")]).await;
    let log = weak.log();
    assert!(
        log.contains("PASSWORD_MIN_STRENGTH is below 3") && log.contains("WARN"),
        "no warning at start:\n{log}"
    );
    let body = json!({
        "username": unique("testuser"),
        "email": format!("{}@example.com", unique("testuser")),
        "password": "testpass123",
    });
    let reply = weak.post("/api/auth/register/", None, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let strict = Server::start(&db.url, &[]).await;
    let log = strict.log();
    assert!(
        !log.contains("PASSWORD_MIN_STRENGTH"),
        "a warning at the default strength:\n{log}"
    );

    let mut refused = Server::spawn(&db.url, &[("PASSWORD_MIN_STRENGTH", "5")]);
    let log = refused
        .wait_healthy()
        .await
        .expect_err("started with PASSWORD_MIN_STRENGTH=5");
    assert!(log.contains("PASSWORD_MIN_STRENGTH"), "{log}");
}
