//! Several instances on one PostgreSQL database.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::{FreshPg, PASSWORD, Reply, Server, connect, require_pg, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs TEST_DATABASE_URL"]
async fn two_instances_started_together_migrate_once_and_accept_each_others_tokens() {
    let pg = require_pg();
    // Declared first, dropped last: after both processes are killed.
    let db = FreshPg::create(&pg).await;

    // At the same moment, on a database with no tables yet, no JWT_SECRET.
    let mut a = Server::spawn(&db.url, &[]);
    let mut b = Server::spawn(&db.url, &[]);
    let (up_a, up_b) = tokio::join!(a.wait_healthy(), b.wait_healthy());
    up_a.unwrap_or_else(|log| panic!("instance A did not come up: {log}"));
    up_b.unwrap_or_else(|log| panic!("instance B did not come up: {log}"));
    assert_eq!(a.get("/readyz", None).await.status, 200);
    assert_eq!(b.get("/readyz", None).await.status, 200);

    // Every migration is recorded once...
    let expected: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let direct = connect(&db.url).await;
    let rows = direct
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT version, COUNT(*) AS n FROM seaql_migrations GROUP BY version ORDER BY version",
        ))
        .await
        .expect("read seaql_migrations");
    let recorded: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "version").expect("version"),
                r.try_get::<i64>("", "n").expect("count"),
            )
        })
        .collect();
    assert_eq!(
        recorded.keys().cloned().collect::<Vec<_>>(),
        expected,
        "migrations recorded"
    );
    assert!(recorded.values().all(|n| *n == 1), "{recorded:?}");
    let _ = direct.close().await;

    // ...and was applied by exactly one of the two: the other waited on the
    // advisory lock and found nothing pending.
    let logs = format!("{}\n{}", a.log(), b.log());
    for name in &expected {
        let applied = logs
            .matches(&format!("Applying migration '{name}'"))
            .count();
        assert_eq!(
            applied, 1,
            "migration {name} applied {applied} times:\n{logs}"
        );
    }

    // Both use the signing secret kept in the database: a token from A works on B.
    let user = a.user().await;
    let me = b.get("/api/auth/me/", Some(&user.access)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["id"], user.id);
    assert_eq!(me.json()["username"], user.username);
    // And the other way round.
    let other = b.user().await;
    let me = a.get("/api/auth/me/", Some(&other.access)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["id"], other.id);

    // Data written through one is seen through the other.
    let created = a.create_patient(&user.access, "Shared Sam").await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_i64().expect("id");
    let read = b
        .get(&format!("/api/patients/{id}/"), Some(&user.access))
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json()["name"], "Shared Sam");

    // Stopped explicitly so the database can be dropped right after.
    a.stop(std::time::Duration::from_secs(20)).await;
    b.stop(std::time::Duration::from_secs(20)).await;
}

/// Wrong-password logins sent to `servers` in turn until one is refused;
/// how many were answered 401 first, and the refusal.
async fn failures_until_refused(
    servers: &[&Server],
    username: &str,
    most: usize,
) -> (usize, Reply) {
    let body = serde_json::json!({"username": username, "password": "not-the-password-1"});
    let mut failures = 0;
    for attempt in 0..most {
        let server = servers[attempt % servers.len()];
        let reply = server.post("/api/auth/login/", None, &body).await;
        match reply.status.as_u16() {
            401 => failures += 1,
            429 => return (failures, reply),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    panic!("no 429 within {most} attempts ({failures} answered 401)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs TEST_DATABASE_URL"]
async fn two_instances_on_one_database_give_an_account_one_budget_and_a_client_one_rate() {
    let pg = require_pg();
    let db = FreshPg::create(&pg).await;

    // The account budget: 10 failures an hour, a burst of 5.
    let env = [("LOGIN_ATTEMPTS_PER_HOUR", "10"), ("SHUTDOWN_DRAIN", "0")];
    let mut a = Server::start(&db.url, &env).await;
    let mut b = Server::start(&db.url, &env).await;
    let victim = unique("victim");
    a.register(&victim).await;
    let (failures, refused) = failures_until_refused(&[&a, &b], &victim, 20).await;
    assert_eq!(failures, 5, "failed guesses allowed across two instances");
    refused.problem(429);
    // Spent for both: even the right password is refused on either.
    let right = serde_json::json!({"username": victim, "password": PASSWORD});
    for server in [&a, &b] {
        let reply = server.post("/api/auth/login/", None, &right).await;
        reply.problem(429);
        assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
    }
    let direct = connect(&db.url).await;
    let rows = direct
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT key FROM auth_limits ORDER BY key",
        ))
        .await
        .expect("read auth_limits");
    let keys: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "key").expect("key"))
        .collect();
    assert!(
        keys.iter().any(|k| k.ends_with(&format!("fail:{victim}"))),
        "{keys:?}"
    );
    let _ = direct.close().await;
    a.stop(Duration::from_secs(20)).await;
    b.stop(Duration::from_secs(20)).await;

    // The per-IP rate: 10 a minute (one more every 6 s). Unknown usernames,
    // so that no account budget is involved.
    let env = [("AUTH_RATE_PER_MINUTE", "10"), ("SHUTDOWN_DRAIN", "0")];
    let mut a = Server::start(&db.url, &env).await;
    let mut b = Server::start(&db.url, &env).await;
    let started = Instant::now();
    let mut allowed = 0;
    for attempt in 0..30 {
        let server = if attempt % 2 == 0 { &a } else { &b };
        let body =
            serde_json::json!({"username": unique("nobody"), "password": "whatever-it-is-1"});
        let reply = server.post("/api/auth/login/", None, &body).await;
        match reply.status.as_u16() {
            401 => allowed += 1,
            429 => break,
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    // Exactly the burst, plus what refilled meanwhile; two separate
    // budgets would have allowed 20.
    let refilled = started.elapsed().as_secs() as usize / 6;
    assert!(
        (10..=10 + refilled).contains(&allowed),
        "{allowed} attempts allowed from one address across two instances in {:?}",
        started.elapsed()
    );
    a.stop(Duration::from_secs(20)).await;
    b.stop(Duration::from_secs(20)).await;
}
