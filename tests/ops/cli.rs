//! The command line: `createsuperuser`, `migrate`, `openapi`, `--help`, and
//! how a bad setting stops the start.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{BIN, PASSWORD, Server, TestDatabase, unique};

fn healthcare(
    database_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("run healthcare");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("healthcare output")
}

#[tokio::test]
async fn createsuperuser_makes_an_administrator_who_can_read_the_audit_trail() {
    let db = TestDatabase::new();
    let migrated = healthcare(&db.url, &["migrate"], &[], None);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let username = unique("admin");
    let email = format!("{username}@example.com");
    let created = healthcare(
        &db.url,
        &[
            "createsuperuser",
            "--username",
            &username,
            "--email",
            &email,
            "--password-stdin",
        ],
        &[],
        Some(&format!("{PASSWORD}\n")),
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(stdout.contains("Superuser created"), "{stdout}");
    assert!(!stdout.contains(PASSWORD));

    let mut server = Server::start(&db.url, &[]).await;
    let token = server.login(&username).await;
    let me = server.get("/api/auth/me/", Some(&token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["is_staff"], true);
    let audit = server.get("/api/audit/", Some(&token)).await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    server.stop(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn createsuperuser_refuses_a_guessable_password_and_a_taken_username() {
    let db = TestDatabase::new();
    let username = unique("admin");
    let email = format!("{username}@example.com");
    let args = [
        "createsuperuser",
        "--username",
        &username,
        "--email",
        &email,
        "--password-stdin",
    ];
    let weak = healthcare(&db.url, &args, &[], Some("password123\n"));
    assert!(!weak.status.success());
    let err = String::from_utf8_lossy(&weak.stderr);
    assert!(err.contains("password") && err.contains("guess"), "{err}");

    let ok = healthcare(&db.url, &args, &[], Some(PASSWORD));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let again = healthcare(&db.url, &args, &[], Some(PASSWORD));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("taken"));
}

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("ACCESS_TOKEN_TTL", "soon"),
        ("BIND_ADDR", "not-an-address"),
        ("ROTATE_REFRESH_TOKENS", "maybe"),
        ("LOG_FORMAT", "xml"),
        ("JWT_SECRET", "short"),
        ("DATABASE_URL", "mysql://localhost/db"),
    ] {
        let url = if var == "DATABASE_URL" {
            value
        } else {
            "sqlite::memory:"
        };
        let out = healthcare(url, &["serve"], &[(var, value)], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{var}={value}: {err}");
        assert!(err.contains(var), "{var}={value}: {err}");
        if var == "JWT_SECRET" {
            assert!(!err.contains(value), "the secret is echoed: {err}");
        }
    }
}

#[test]
fn help_lists_every_setting_and_openapi_prints_the_committed_spec() {
    let help = healthcare("sqlite::memory:", &["--help"], &[], None);
    let text = String::from_utf8_lossy(&help.stdout);
    for var in [
        "DATABASE_URL",
        "BIND_ADDR",
        "JWT_SECRET",
        "ACCESS_TOKEN_TTL",
        "REFRESH_TOKEN_TTL",
        "ROTATE_REFRESH_TOKENS",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "CORS_ALLOWED_ORIGINS",
        "LOG_FORMAT",
        "RUST_LOG",
    ] {
        assert!(text.contains(var), "--help does not mention {var}");
    }
    let spec = healthcare("sqlite::memory:", &["openapi", "--yaml"], &[], None);
    assert!(spec.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
            .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&spec.stdout).trim_end(),
        committed.trim_end()
    );
}
