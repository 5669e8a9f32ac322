//! The database goes away and comes back: the server answers 503 problems
//! quickly meanwhile, recovers by itself, and loses nothing it answered 2xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement, TransactionTrait};
use serde_json::json;
use tokio::sync::watch;

use crate::proxy::Proxy;
use crate::support::{
    Api, Server, address_of, connect, eventually, require_pg, unique, with_address,
};

/// Every answer during an outage must come at least this fast (the
/// acquire timeout is 1 s).
const FAST: Duration = Duration::from_secs(10);

/// One POST of the background writer.
struct Outcome {
    status: u16,
    name: String,
    id: Option<i64>,
    elapsed: Duration,
    text: String,
    retry_after: Option<String>,
    content_type: Option<String>,
}

#[derive(Default)]
struct Counts {
    created: AtomicUsize,
    unavailable: AtomicUsize,
}

/// Creates patients one after another until told to stop.
async fn keep_writing(
    api: Api,
    token: String,
    counts: Arc<Counts>,
    stop: watch::Receiver<bool>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    while !*stop.borrow() {
        let name = unique("Outage Writer ");
        let reply = api.create_patient(&token, &name).await;
        let id = (reply.status == 201).then(|| reply.json()["id"].as_i64().expect("patient id"));
        match reply.status.as_u16() {
            201 => counts.created.fetch_add(1, Ordering::SeqCst),
            503 => counts.unavailable.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        outcomes.push(Outcome {
            status: reply.status.as_u16(),
            name,
            id,
            elapsed: reply.elapsed,
            retry_after: reply.header("retry-after").map(str::to_string),
            content_type: reply.header("content-type").map(str::to_string),
            text: reply.text,
        });
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs TEST_DATABASE_URL"]
async fn database_outage_gives_fast_503_problems_then_recovers_without_losing_answered_writes() {
    let pg = require_pg();
    let proxy = Proxy::start(address_of(&pg)).await;
    let mut server = Server::start(
        &with_address(&pg, proxy.addr()),
        &[("DB_ACQUIRE_TIMEOUT", "1"), ("DB_MAX_CONNECTIONS", "2")],
    )
    .await;
    assert_eq!(server.get("/readyz", None).await.status, 200);
    let user = server.user().await;

    // Patients created before, during and after the outage; (id, name) of
    // every one that was answered 201.
    let mut answered: Vec<(i64, String)> = Vec::new();
    let name = unique("Before Outage ");
    let created = server.create_patient(&user.access, &name).await;
    assert_eq!(created.status, 201, "{}", created.text);
    answered.push((created.json()["id"].as_i64().expect("id"), name));

    let counts = Arc::new(Counts::default());
    let (stop, stopped) = watch::channel(false);
    let writer = tokio::spawn(keep_writing(
        server.api.clone(),
        user.access.clone(),
        counts.clone(),
        stopped,
    ));
    eventually(Duration::from_secs(10), "a write before the outage", || {
        counts.created.load(Ordering::SeqCst) >= 1
    })
    .await;

    // A request caught mid-query by the outage: its UPDATE waits on a row
    // lock held by a direct connection when the database goes away.
    let victim = server.create_patient(&user.access, "Row Locked").await;
    assert_eq!(victim.status, 201, "{}", victim.text);
    let victim = victim.json()["id"].as_i64().expect("id");
    let direct = connect(&pg).await;
    let lock = direct.begin().await.expect("begin");
    let holder: i32 = lock
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .expect("backend pid")
        .expect("a row")
        .try_get("", "pid")
        .expect("pid");
    lock.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT id FROM patients WHERE id = $1 FOR UPDATE",
        [victim.into()],
    ))
    .await
    .expect("lock the row");
    let patch = tokio::spawn({
        let api = server.api.clone();
        let token = user.access.clone();
        async move {
            api.call(
                Method::PATCH,
                &format!("/api/patients/{victim}/"),
                Some(&token),
                Some(&json!({"age": 43})),
                &[],
            )
            .await
        }
    });
    let waiting = Instant::now();
    loop {
        let blocked: i64 = lock
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                [holder.into()],
            ))
            .await
            .expect("blocked backends")
            .expect("a row")
            .try_get("", "n")
            .expect("count");
        if blocked > 0 {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "the PATCH never reached the row lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.cut().await;

    let patched = patch.await.expect("PATCH task");
    patched.unavailable();
    assert!(patched.elapsed < FAST, "PATCH took {:?}", patched.elapsed);
    lock.rollback().await.expect("release the row");
    let _ = direct.close().await;

    // Twice: the first answers find dead pooled connections, the second
    // ones an empty pool that cannot connect.
    for round in 0..2 {
        let ready = server.get("/readyz", None).await;
        ready.unavailable();
        assert!(ready.elapsed < FAST, "/readyz took {:?}", ready.elapsed);

        let list = server.get("/api/patients/", Some(&user.access)).await;
        list.unavailable();
        assert!(list.elapsed < FAST, "GET took {:?}", list.elapsed);

        let name = unique("During Outage ");
        let create = server.create_patient(&user.access, &name).await;
        create.unavailable();
        assert!(create.elapsed < FAST, "POST took {:?}", create.elapsed);

        // The process itself is fine: liveness and metrics do not need the database.
        assert_eq!(
            server.get("/healthz", None).await.status,
            200,
            "round {round}"
        );
        assert_eq!(
            server.get("/metrics", None).await.status,
            200,
            "round {round}"
        );
    }
    let unavailable_before = counts.unavailable.load(Ordering::SeqCst);
    eventually(
        Duration::from_secs(15),
        "the writer to see the outage",
        || counts.unavailable.load(Ordering::SeqCst) > unavailable_before,
    )
    .await;

    proxy.restore().await;

    // The server recovers by itself: no restart, no request to reconnect.
    let restored = Instant::now();
    loop {
        let ready = server.get("/readyz", None).await;
        if ready.status == 200 {
            break;
        }
        ready.unavailable();
        assert!(
            restored.elapsed() < Duration::from_secs(20),
            "/readyz still 503 20 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = server.get("/api/patients/", Some(&user.access)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let name = unique("After Outage ");
    let created = server.create_patient(&user.access, &name).await;
    assert_eq!(created.status, 201, "{}", created.text);
    answered.push((created.json()["id"].as_i64().expect("id"), name));

    let created_before = counts.created.load(Ordering::SeqCst);
    eventually(Duration::from_secs(20), "the writer to recover", || {
        counts.created.load(Ordering::SeqCst) > created_before
    })
    .await;
    stop.send(true).expect("stop the writer");
    let outcomes = writer.await.expect("writer");
    eprintln!(
        "outage writer: {} answered 201, {} answered 503, slowest {:?}",
        counts.created.load(Ordering::SeqCst),
        counts.unavailable.load(Ordering::SeqCst),
        outcomes.iter().map(|o| o.elapsed).max().unwrap_or_default()
    );

    for o in &outcomes {
        assert!(
            o.status == 201 || o.status == 503,
            "POST during the outage answered {} (never a 500 or anything else): {}",
            o.status,
            o.text
        );
        assert!(o.elapsed < FAST, "a POST took {:?}", o.elapsed);
        if o.status == 503 {
            assert_eq!(
                o.content_type.as_deref(),
                Some("application/problem+json"),
                "{}",
                o.text
            );
            assert!(
                o.retry_after.is_some(),
                "503 without Retry-After: {}",
                o.text
            );
        }
    }
    answered.extend(
        outcomes
            .iter()
            .filter_map(|o| o.id.map(|id| (id, o.name.clone()))),
    );

    // Every patient answered 201 is in the database, read directly (not through the proxy).
    let db = connect(&pg).await;
    for (id, name) in &answered {
        let row = healthcare::entity::patient::Entity::find_by_id(*id)
            .one(&db)
            .await
            .expect("query patient")
            .unwrap_or_else(|| panic!("patient {id} ({name}) was answered 201 but is not stored"));
        assert_eq!(&row.name, name);
        assert_eq!(row.created_by, user.id);
    }
    let _ = db.close().await;

    // And through the API, after recovery.
    let listed = server
        .get("/api/patients/?limit=1000", Some(&user.access))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<i64> = listed
        .json()
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["id"].as_i64())
        .collect();
    for (id, _) in &answered {
        assert!(ids.contains(id), "patient {id} missing from the list");
    }

    // A clean stop once the database is back (the audit trail flushes).
    server.stop(Duration::from_secs(20)).await;
}
