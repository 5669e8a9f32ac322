//! Nothing is ever lost: a `kill -9` in the middle of a load leaves every
//! acknowledged request audited and every patient with its first version;
//! and a database of the previous release upgrades with every row given
//! an imported version.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthcare::entity::{audit_event, patient, record_version};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use serde_json::json;

use crate::support::*;

/// What the load's clients were told: request ids of every 2xx answer.
#[derive(Default)]
struct Acknowledged {
    request_ids: Vec<String>,
    patients: Vec<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs TEST_DATABASE_URL"]
async fn a_kill_9_under_load_leaves_every_acknowledged_request_audited_and_versioned() {
    let pg = require_pg();
    let db = FreshPg::create(&pg).await;
    let mut server = Server::start(&db.url, &[("DB_MAX_CONNECTIONS", "8")]).await;
    let user = server.user().await;

    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..12 {
        let api = server.api.clone();
        let token = user.access.clone();
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let request_id = format!("kill9-{worker}-{n}");
                let body = json!({"name": format!("Loaded {worker} {n}"), "age": n % 100, "gender": "Other"});
                let headers = [("x-request-id", request_id.as_str())];
                let Some(reply) = api
                    .try_call(reqwest::Method::POST, "/api/patients/", Some(&token), Some(&body), &headers)
                    .await
                else {
                    break;
                };
                if reply.status == 201 {
                    let pid = reply.id();
                    {
                        let mut ack = acknowledged.lock().expect("lock");
                        ack.request_ids.push(request_id);
                        ack.patients.push(pid);
                    }
                    // A read and an update of what was just made, each audited.
                    for (method, suffix, body) in [
                        (reqwest::Method::GET, "r", None),
                        (reqwest::Method::PATCH, "u", Some(json!({"age": 1}))),
                    ] {
                        let request_id = format!("kill9-{worker}-{n}-{suffix}");
                        let headers = [("x-request-id", request_id.as_str())];
                        let path = format!("/api/patients/{pid}/");
                        match api.try_call(method, &path, Some(&token), body.as_ref(), &headers).await {
                            Some(reply) if reply.status.is_success() => {
                                acknowledged.lock().expect("lock").request_ids.push(request_id);
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                }
            }
        }));
    }
    // Let the load build up, then kill the server without warning.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        client.await.expect("client task");
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("lock"));
    assert!(
        acknowledged.patients.len() >= 20,
        "too little load before the kill: {} creates",
        acknowledged.patients.len()
    );

    // Restarted on the same database, it serves again.
    let restarted = Server::start(&db.url, &[]).await;
    assert_eq!(restarted.get("/healthz", None).await.status, 200);

    let conn = connect(&db.url).await;
    let audited: HashSet<String> = audit_event::Entity::find()
        .filter(audit_event::Column::RequestId.starts_with("kill9-"))
        .all(&conn)
        .await
        .expect("query audit_events")
        .into_iter()
        .map(|e| e.request_id)
        .collect();
    let missing: Vec<&String> = acknowledged
        .request_ids
        .iter()
        .filter(|id| !audited.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged requests have no audit event: {:?}",
        missing.len(),
        acknowledged.request_ids.len(),
        &missing[..missing.len().min(10)]
    );

    // Every patient row (acknowledged or not) has its create version and event.
    let patients = patient::Entity::find()
        .filter(patient::Column::CreatedBy.eq(user.id))
        .all(&conn)
        .await
        .expect("query patients");
    let created_versions: HashSet<i64> = record_version::Entity::find()
        .filter(record_version::Column::Resource.eq("patient"))
        .filter(record_version::Column::Change.eq("created"))
        .all(&conn)
        .await
        .expect("query record_versions")
        .into_iter()
        .map(|v| v.resource_id)
        .collect();
    let create_events: HashSet<i64> = audit_event::Entity::find()
        .filter(audit_event::Column::ResourceType.eq("patient"))
        .filter(audit_event::Column::Action.eq("create"))
        .all(&conn)
        .await
        .expect("query audit_events")
        .into_iter()
        .filter_map(|e| e.resource_id)
        .collect();
    let unversioned = patients
        .iter()
        .filter(|p| !created_versions.contains(&p.id))
        .count();
    let unaudited = patients
        .iter()
        .filter(|p| !create_events.contains(&p.id))
        .count();
    assert_eq!(
        (unversioned, unaudited),
        (0, 0),
        "of {} patients, {unversioned} have no create version and {unaudited} no create event",
        patients.len()
    );
    eprintln!(
        "kill -9 under load: {} patients, {} acknowledged requests, 0 unaudited, 0 unversioned",
        patients.len(),
        acknowledged.request_ids.len()
    );
}

/// The last migration of the previous release.
const PREVIOUS_RELEASE: u32 = 9;

async fn upgrade_a_previous_release_database(url: &str) {
    let conn = connect(url).await;
    Migrator::up(&conn, Some(PREVIOUS_RELEASE))
        .await
        .expect("old migrations");
    let backend = conn.get_database_backend();
    let now = "CURRENT_TIMESTAMP";
    for sql in [
        format!(
            "INSERT INTO users (username, username_key, email, email_key, password_hash, is_staff, is_active, date_joined)
             VALUES ('Straße', 'straße', 'Old@Exämple.com', 'old@exämple.com', 'x', false, true, {now}),
                    ('plain', 'plain', 'plain@example.com', 'plain@example.com', 'x', true, true, {now})"
        ),
        format!(
            "INSERT INTO patients (name, name_key, age, gender, created_by, created_at, updated_at, version)
             VALUES ('Old One', 'old one', 70, 'Male', 1, {now}, {now}, 3),
                    ('Old Two', 'old two', 71, 'Female', 2, {now}, {now}, 1)"
        ),
        format!(
            "INSERT INTO doctors (name, name_key, specialization, specialization_key, created_by, created_at, updated_at, version)
             VALUES ('Dr. Old', 'dr. old', 'Oncology', 'oncology', 2, {now}, {now}, 2)"
        ),
        format!("INSERT INTO mappings (patient_id, doctor_id, created_at) VALUES (1, 1, {now}), (2, 1, {now})"),
    ] {
        conn.execute_raw(Statement::from_string(backend, sql))
            .await
            .expect("rows of the previous release");
    }
    healthcare::store::migrate(&conn).await.expect("upgrade");

    let versions = record_version::Entity::find()
        .all(&conn)
        .await
        .expect("query versions");
    let imported: Vec<(String, i64, i64)> = versions
        .iter()
        .filter(|v| v.change == "imported")
        .map(|v| (v.resource.clone(), v.resource_id, v.version))
        .collect();
    for expected in [
        ("patient".to_string(), 1, 3),
        ("patient".to_string(), 2, 1),
        ("doctor".to_string(), 1, 2),
        ("mapping".to_string(), 1, 1),
        ("mapping".to_string(), 2, 1),
    ] {
        assert!(
            imported.contains(&expected),
            "{expected:?} not in {imported:?}"
        );
    }
    assert_eq!(imported.len(), 5);
    // Each holds the row, readable as the row.
    for version in &versions {
        match version.resource.as_str() {
            "patient" => {
                let row: patient::Model =
                    healthcare::store::history::row(version).expect("a patient row");
                assert_eq!(row.id, version.resource_id);
            }
            "doctor" => {
                let row: healthcare::entity::doctor::Model =
                    healthcare::store::history::row(version).expect("a doctor row");
                assert_eq!(row.id, version.resource_id);
            }
            _ => {
                let row: healthcare::store::mappings::Snapshot =
                    healthcare::store::history::row(version).expect("a mapping row");
                assert_eq!(row.mapping.id, version.resource_id);
                assert_eq!(row.doctor_detail.id, 1);
            }
        }
    }
    // Account keys follow the new comparison rule.
    let keys: Vec<(String, String)> = healthcare::entity::user::Entity::find()
        .all(&conn)
        .await
        .expect("query users")
        .into_iter()
        .map(|u| (u.username_key, u.email_key))
        .collect();
    assert!(
        keys.contains(&("strasse".into(), "old@xn--exmple-cua.com".into())),
        "{keys:?}"
    );
    assert!(
        keys.contains(&("plain".into(), "plain@example.com".into())),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_previous_release_sqlite_database_upgrades_with_every_row_versioned() {
    let db = TestDatabase::sqlite();
    upgrade_a_previous_release_database(&db.url).await;
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn a_previous_release_postgres_database_upgrades_with_every_row_versioned() {
    let db = FreshPg::create(&require_pg()).await;
    upgrade_a_previous_release_database(&db.url).await;
}
