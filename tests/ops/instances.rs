//! Several instances on one PostgreSQL database.

use std::collections::BTreeMap;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::{FreshPg, Server, connect, require_pg};

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
