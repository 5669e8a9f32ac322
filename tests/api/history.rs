//! Nothing is ever lost: every change leaves a version, deleting hides
//! instead of destroying, administrators restore or erase.

use serde_json::{Value, json};

use crate::helpers::*;

async fn versions(app: &TestApp, token: &str, path: &str) -> (Vec<Value>, Reply) {
    let reply = app.get(path, token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let items = reply.json().as_array().expect("an array").clone();
    (items, reply)
}

fn total(reply: &Reply) -> u64 {
    reply
        .header("x-total-count")
        .and_then(|v| v.parse().ok())
        .expect("X-Total-Count")
}

#[tokio::test]
async fn every_change_of_a_patient_makes_exactly_one_version_readable_on_its_own() {
    let app = spawn_app().await;
    let user = app.user().await;
    let created = app
        .post(
            "/api/patients/",
            Some(&user.access),
            json!({"name": "Versioned One", "age": 40, "gender": "Female"}),
        )
        .await;
    let pid = created.id();
    let path = format!("/api/patients/{pid}/");
    let put = app
        .put(
            &path,
            &user.access,
            json!({"name": "Versioned Two", "age": 41, "gender": "Female"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let patch = app.patch(&path, &user.access, json!({"age": 42})).await;
    assert_eq!(patch.status, 200, "{}", patch.text);
    assert_eq!(
        patch.header("etag"),
        Some(format!("\"patient-{pid}-v3\"").as_str())
    );
    // A refused change makes no version.
    app.patch(&path, &user.access, json!({"age": 999}))
        .await
        .field_error("age");
    let deleted = app.delete(&path, &user.access).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);

    // The owner no longer sees the patient, nor its history; an admin does.
    app.get(&format!("{path}history/"), &user.access)
        .await
        .problem(404);
    let admin = app.make_admin(&app.user().await).await;
    let (items, reply) = versions(&app, &admin.access, &format!("{path}history/")).await;
    assert_eq!(total(&reply), 4);
    let summary: Vec<(i64, &str, i64)> = items
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["change"].as_str().unwrap(),
                v["record"]["age"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (4, "deleted", 42),
            (3, "updated", 42),
            (2, "updated", 41),
            (1, "created", 40)
        ]
    );
    for v in &items {
        assert_eq!(v["actor"], user.id);
        assert!(v["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    }
    // The first version is the record the create answered with.
    let first = app
        .get(&format!("{path}history/1/"), &admin.access)
        .await
        .json();
    assert_eq!(first["record"], created.json());
    let second = app
        .get(&format!("{path}history/2/"), &admin.access)
        .await
        .json();
    assert_eq!(second["record"]["name"], "Versioned Two");
    app.get(&format!("{path}history/5/"), &admin.access)
        .await
        .problem(404);
}

#[tokio::test]
async fn history_pages_carry_the_total_and_links_and_are_not_anyone_elses() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let pid = id_of(&app.create_patient(&owner.access, "Paged History").await);
    let path = format!("/api/patients/{pid}/");
    for age in 1..=4 {
        let reply = app.patch(&path, &owner.access, json!({"age": age})).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let (page, reply) = versions(&app, &owner.access, &format!("{path}history/?limit=2")).await;
    assert_eq!(total(&reply), 5);
    assert_eq!(
        page.iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [5, 4]
    );
    assert_eq!(
        reply.header("link"),
        Some(format!("</api/patients/{pid}/history/?limit=2&offset=2>; rel=\"next\"").as_str())
    );
    // Someone else's patient: 404, exactly as if it did not exist.
    app.get(&format!("{path}history/"), &other.access)
        .await
        .problem(404);
    app.get(&format!("{path}history/1/"), &other.access)
        .await
        .problem(404);
    app.get("/api/patients/999999999/history/", &owner.access)
        .await
        .problem(404);
}

#[tokio::test]
async fn a_deleted_patient_is_hidden_everywhere_and_its_mappings_with_it() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, "Hidden Patient").await);
    let kept = id_of(&app.create_patient(&user.access, "Kept Patient").await);
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let mapping = json!({"patient": pid, "doctor": did});
    assert_eq!(
        app.post("/api/mappings/", Some(&user.access), mapping.clone())
            .await
            .status,
        201
    );

    let path = format!("/api/patients/{pid}/");
    assert_eq!(app.delete(&path, &user.access).await.status, 204);
    app.get(&path, &user.access).await.problem(404);
    app.delete(&path, &user.access).await.problem(404);
    app.patch(&path, &user.access, json!({"age": 1}))
        .await
        .problem(404);
    let list = app.get("/api/patients/", &user.access).await;
    assert_eq!(list.header("x-total-count"), Some("1"));
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    assert_eq!(list.json()[0]["id"], kept);
    let search = app.get("/api/patients/?search=hidden", &user.access).await;
    assert_eq!(search.header("x-total-count"), Some("0"));
    let mappings = app.get("/api/mappings/", &user.access).await;
    assert_eq!(mappings.header("x-total-count"), Some("0"));
    app.get(&format!("/api/mappings/{pid}/"), &user.access)
        .await
        .problem(404);
    app.get(&format!("{path}doctors/"), &user.access)
        .await
        .problem(404);
    app.post("/api/mappings/", Some(&user.access), mapping)
        .await
        .field_error("patient");
    // It is kept, with its mapping, for an administrator to restore.
    assert!(app.patient_deleted(pid).await);
}

#[tokio::test]
async fn restoring_brings_back_the_patient_as_it_was_and_its_mappings_with_a_new_version() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let admin = app.make_admin(&app.user().await).await;
    let created = app.create_patient(&owner.access, "Restored Patient").await;
    let pid = id_of(&created);
    let did = id_of(&app.create_doctor(&owner.access, &unique("Dr. ")).await);
    let mid = app
        .post(
            "/api/mappings/",
            Some(&owner.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await
        .id();
    let path = format!("/api/patients/{pid}/");
    let restore = format!("{path}restore/");

    // Not deleted: nothing to restore.
    app.post(&restore, Some(&admin.access), json!({}))
        .await
        .problem(409);
    assert_eq!(app.delete(&path, &owner.access).await.status, 204);
    // Only administrators restore; someone else's patient stays invisible.
    app.post(&restore, Some(&owner.access), json!({}))
        .await
        .problem(403);
    app.post(&restore, Some(&other.access), json!({}))
        .await
        .problem(404);
    app.get("/api/patients/?deleted=true", &owner.access)
        .await
        .problem(403);
    let deleted = app.get("/api/patients/?deleted=true", &admin.access).await;
    assert!(
        deleted
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == pid),
        "{}",
        deleted.text
    );

    let restored = app.post(&restore, Some(&admin.access), json!({})).await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(
        restored.header("etag"),
        Some(format!("\"patient-{pid}-v3\"").as_str())
    );
    let mut as_it_was = created.clone();
    as_it_was["updated_at"] = restored.json()["updated_at"].clone();
    assert_eq!(restored.json(), as_it_was);
    assert_eq!(app.get(&path, &owner.access).await.status, 200);
    let mappings = app
        .get(&format!("/api/mappings/{pid}/"), &owner.access)
        .await;
    assert_eq!(mappings.json()[0]["id"], mid);
    let (history, _) = versions(&app, &owner.access, &format!("{path}history/")).await;
    assert_eq!(history[0]["change"], "restored");
    assert!(!app.patient_deleted(pid).await);
}

#[tokio::test]
async fn a_mapping_can_be_made_again_after_the_first_was_deleted() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, "Remapped").await);
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let pair = json!({"patient": pid, "doctor": did});
    let first = app
        .post("/api/mappings/", Some(&user.access), pair.clone())
        .await
        .id();
    app.post("/api/mappings/", Some(&user.access), pair.clone())
        .await
        .problem(409);
    assert_eq!(
        app.delete(&format!("/api/mappings/{first}/"), &user.access)
            .await
            .status,
        204
    );
    let second = app.post("/api/mappings/", Some(&user.access), pair).await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_ne!(second.id(), first);
    assert_eq!(app.mapping_rows(pid).await.len(), 1);
}

#[tokio::test]
async fn a_deleted_doctor_hides_its_mappings_and_a_restore_brings_them_back() {
    let app = spawn_app().await;
    let user = app.user().await;
    let admin = app.make_admin(&app.user().await).await;
    let pid = id_of(&app.create_patient(&user.access, "Doctor's Patient").await);
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let mid = app
        .post(
            "/api/mappings/",
            Some(&user.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await
        .id();
    let path = format!("/api/doctors/{did}/");
    assert_eq!(app.delete(&path, &user.access).await.status, 204);
    app.get(&path, &user.access).await.problem(404);
    assert_eq!(
        app.get(&format!("/api/mappings/{pid}/"), &user.access)
            .await
            .header("x-total-count"),
        Some("0")
    );
    app.get("/api/doctors/?deleted=true", &user.access)
        .await
        .problem(403);
    app.post(&format!("{path}restore/"), Some(&user.access), json!({}))
        .await
        .problem(403);
    let restored = app
        .post(&format!("{path}restore/"), Some(&admin.access), json!({}))
        .await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    let mappings = app
        .get(&format!("/api/mappings/{pid}/"), &user.access)
        .await;
    assert_eq!(mappings.json()[0]["id"], mid);
    let (history, _) = versions(&app, &user.access, &format!("{path}history/")).await;
    let changes: Vec<&str> = history
        .iter()
        .map(|v| v["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["restored", "deleted", "created"]);
}

#[tokio::test]
async fn erasing_a_patient_removes_it_its_mappings_and_history_but_keeps_the_audit_metadata() {
    use healthcare::entity::{audit_event, record_version};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let admin = app.make_admin(&app.user().await).await;
    let pid = id_of(&app.create_patient(&owner.access, "Erased Person").await);
    let did = id_of(&app.create_doctor(&owner.access, &unique("Dr. ")).await);
    let mid = app
        .post(
            "/api/mappings/",
            Some(&owner.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await
        .id();
    let erase = format!("/api/patients/{pid}/erase/");
    app.post(&erase, Some(&owner.access), json!({}))
        .await
        .problem(403);
    app.post(&erase, Some(&other.access), json!({}))
        .await
        .problem(404);
    let erased = app.post(&erase, Some(&admin.access), json!({})).await;
    assert_eq!(erased.status, 204, "{}", erased.text);

    assert!(app.patient_row(pid).await.is_none());
    let mut versions_left = 0;
    for (resource, id) in [("patient", pid), ("mapping", mid)] {
        versions_left += record_version::Entity::find()
            .filter(record_version::Column::Resource.eq(resource))
            .filter(record_version::Column::ResourceId.eq(id))
            .all(&app.db)
            .await
            .expect("query record_versions")
            .len();
    }
    assert_eq!(versions_left, 0);
    app.get(&format!("/api/patients/{pid}/history/"), &admin.access)
        .await
        .problem(404);
    app.post(
        &format!("/api/patients/{pid}/restore/"),
        Some(&admin.access),
        json!({}),
    )
    .await
    .problem(404);
    // The trail keeps who did what to which id, and when; never the content.
    let trail = audit_event::Entity::find()
        .filter(audit_event::Column::ResourceType.eq("patient"))
        .filter(audit_event::Column::ResourceId.eq(pid))
        .all(&app.db)
        .await
        .expect("query audit_events");
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"create") && actions.contains(&"erase"),
        "{actions:?}"
    );
}
