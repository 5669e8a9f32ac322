//! Who may see and change what: patients and their mappings belong to their
//! creator (another user's are indistinguishable from missing ones), doctors
//! are shared for reading but changed only by their creator, administrators
//! see and change everything.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, id_of, spawn_app, unique};

/// An id no test ever reaches, even on a shared PostgreSQL database.
const MISSING: i64 = i64::MAX;

/// Every item of a list endpoint, following `limit`/`offset` to the end
/// (a shared PostgreSQL database may hold more than one page).
async fn list_all(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let reply = app
            .get(
                &format!("{path}{sep}limit=1000&offset={}", items.len()),
                token,
            )
            .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let page = reply.json().as_array().expect("a JSON array").clone();
        let done = page.len() < 1000;
        items.extend(page);
        if done {
            return items;
        }
    }
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(id_of).collect()
}

async fn map(app: &TestApp, token: &str, patient: i64, doctor: i64) -> Value {
    let reply = app
        .post(
            "/api/mappings/",
            Some(token),
            json!({"patient": patient, "doctor": doctor}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

/// Asserts `reply` is a 404 problem with the very body a missing id gets.
#[track_caller]
fn same_404_as(reply: &Reply, missing: &Reply, what: &str) {
    let body = reply.problem(404);
    let expected = missing.problem(404);
    assert_eq!(
        body, expected,
        "{what}: another user's resource must look exactly like a missing one"
    );
}

#[tokio::test]
async fn another_users_patient_is_not_found_on_every_method_exactly_like_a_missing_one() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let pid = id_of(&app.create_patient(&owner.access, &unique("Owned ")).await);
    let before = app.patient_row(pid).await.expect("row");
    let update = json!({"name": "Stolen", "age": 99, "gender": "Male"});

    let mine = format!("/api/patients/{pid}/");
    let missing = format!("/api/patients/{MISSING}/");

    let got = app.get(&mine, &other.access).await;
    same_404_as(&got, &app.get(&missing, &other.access).await, "GET");

    let put = app.put(&mine, &other.access, update.clone()).await;
    same_404_as(
        &put,
        &app.put(&missing, &other.access, update.clone()).await,
        "PUT",
    );

    let patch = app.patch(&mine, &other.access, json!({"age": 99})).await;
    same_404_as(
        &patch,
        &app.patch(&missing, &other.access, json!({"age": 99})).await,
        "PATCH",
    );

    let delete = app.delete(&mine, &other.access).await;
    same_404_as(
        &delete,
        &app.delete(&missing, &other.access).await,
        "DELETE",
    );

    assert_eq!(
        app.patient_row(pid).await,
        Some(before),
        "another user's requests must not change or delete the patient"
    );
    // And the owner still sees it.
    assert_eq!(app.get(&mine, &owner.access).await.status, 200);
}

#[tokio::test]
async fn another_users_patient_is_not_found_even_with_its_current_etag() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let pid = id_of(&app.create_patient(&owner.access, &unique("Tagged ")).await);
    let path = format!("/api/patients/{pid}/");
    let etag = app
        .get(&path, &owner.access)
        .await
        .header("etag")
        .expect("ETag")
        .to_string();
    let before = app.patient_row(pid).await.expect("row");

    let body = serde_json::to_vec(&json!({"name": "Stolen", "age": 1, "gender": "Male"})).unwrap();
    let headers = [
        ("content-type", "application/json"),
        ("if-match", etag.as_str()),
    ];
    let put = app
        .raw(
            Method::PUT,
            &path,
            Some(&other.access),
            &headers,
            body.clone(),
        )
        .await;
    put.problem(404);
    let patch = app
        .raw(Method::PATCH, &path, Some(&other.access), &headers, body)
        .await;
    patch.problem(404);
    let delete = app
        .raw(
            Method::DELETE,
            &path,
            Some(&other.access),
            &[("if-match", etag.as_str())],
            vec![],
        )
        .await;
    delete.problem(404);
    assert_eq!(app.patient_row(pid).await, Some(before));
}

#[tokio::test]
async fn a_users_patient_list_never_includes_another_users_patients() {
    let app = spawn_app().await;
    let first = app.user().await;
    let second = app.user().await;
    let theirs = id_of(&app.create_patient(&first.access, &unique("First ")).await);
    let mine = id_of(&app.create_patient(&second.access, &unique("Second ")).await);

    let reply = app.get("/api/patients/", &second.access).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(ids(reply.json().as_array().unwrap()), vec![mine]);
    assert_eq!(reply.header("x-total-count"), Some("1"));

    let reply = app.get("/api/patients/", &first.access).await;
    assert_eq!(ids(reply.json().as_array().unwrap()), vec![theirs]);
    assert_eq!(reply.header("x-total-count"), Some("1"));
}

#[tokio::test]
async fn another_users_patients_doctors_are_not_found() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let pid = id_of(&app.create_patient(&owner.access, &unique("Owned ")).await);
    let did = id_of(&app.create_doctor(&owner.access, &unique("Dr. ")).await);
    map(&app, &owner.access, pid, did).await;

    let reply = app
        .get(&format!("/api/patients/{pid}/doctors/"), &other.access)
        .await;
    let missing = app
        .get(&format!("/api/patients/{MISSING}/doctors/"), &other.access)
        .await;
    same_404_as(&reply, &missing, "GET doctors");
    assert!(!reply.text.contains(&did.to_string()), "{}", reply.text);
}

#[tokio::test]
async fn a_user_cannot_assign_a_doctor_to_another_users_patient() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let pid = id_of(&app.create_patient(&owner.access, &unique("Owned ")).await);
    // Even a doctor the intruder created does not help.
    let did = id_of(&app.create_doctor(&other.access, &unique("Dr. ")).await);

    let reply = app
        .post(
            "/api/mappings/",
            Some(&other.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await;
    let body = reply.field_error("patient");
    let missing = app
        .post(
            "/api/mappings/",
            Some(&other.access),
            json!({"patient": MISSING, "doctor": did}),
        )
        .await;
    assert_eq!(
        body,
        missing.field_error("patient"),
        "another user's patient must look exactly like a missing one"
    );
    assert!(
        app.mapping_rows(pid).await.is_empty(),
        "no mapping may be created"
    );
}

#[tokio::test]
async fn a_user_can_neither_read_nor_delete_another_users_mappings() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let pid = id_of(&app.create_patient(&owner.access, &unique("Owned ")).await);
    // The intruder created the doctor: that gives no right over the mapping.
    let did = id_of(&app.create_doctor(&other.access, &unique("Dr. ")).await);
    let mid = id_of(&map(&app, &owner.access, pid, did).await);
    let rows_before = app.mapping_rows(pid).await;

    let read = app
        .get(&format!("/api/mappings/{pid}/"), &other.access)
        .await;
    same_404_as(
        &read,
        &app.get(&format!("/api/mappings/{MISSING}/"), &other.access)
            .await,
        "GET mappings of a patient",
    );

    let delete = app
        .delete(&format!("/api/mappings/{mid}/"), &other.access)
        .await;
    same_404_as(
        &delete,
        &app.delete(&format!("/api/mappings/{MISSING}/"), &other.access)
            .await,
        "DELETE mapping",
    );
    assert_eq!(
        app.mapping_rows(pid).await,
        rows_before,
        "the mapping must still be there"
    );
}

#[tokio::test]
async fn a_users_mapping_list_never_includes_another_users_mappings() {
    let app = spawn_app().await;
    let first = app.user().await;
    let second = app.user().await;
    let did = id_of(&app.create_doctor(&first.access, &unique("Dr. ")).await);
    let p1 = id_of(&app.create_patient(&first.access, &unique("First ")).await);
    let p2 = id_of(&app.create_patient(&second.access, &unique("Second ")).await);
    let m1 = id_of(&map(&app, &first.access, p1, did).await);
    let m2 = id_of(&map(&app, &second.access, p2, did).await);

    let reply = app.get("/api/mappings/", &second.access).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(ids(reply.json().as_array().unwrap()), vec![m2]);
    assert_eq!(reply.header("x-total-count"), Some("1"));

    let reply = app.get("/api/mappings/", &first.access).await;
    assert_eq!(ids(reply.json().as_array().unwrap()), vec![m1]);
}

#[tokio::test]
async fn every_user_can_read_a_doctor_but_only_its_creator_may_change_or_delete_it() {
    let app = spawn_app().await;
    let creator = app.user().await;
    let other = app.user().await;
    let doctor = app.create_doctor(&creator.access, &unique("Dr. ")).await;
    let did = id_of(&doctor);
    let path = format!("/api/doctors/{did}/");
    let before = app.doctor_row(did).await.expect("row");

    let read = app.get(&path, &other.access).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json(), doctor);
    assert!(ids(&list_all(&app, "/api/doctors/", &other.access).await).contains(&did));

    let put = app
        .put(
            &path,
            &other.access,
            json!({"name": "Dr. Hijack", "specialization": "Nothing"}),
        )
        .await;
    put.problem(403);
    let patch = app
        .patch(&path, &other.access, json!({"specialization": "Nothing"}))
        .await;
    patch.problem(403);
    let delete = app.delete(&path, &other.access).await;
    delete.problem(403);

    assert_eq!(
        app.doctor_row(did).await,
        Some(before),
        "a user who did not create the doctor must not change or delete it"
    );
}

#[tokio::test]
async fn an_administrator_reads_changes_and_deletes_every_users_patients() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let pid = id_of(&app.create_patient(&owner.access, &unique("Owned ")).await);
    let path = format!("/api/patients/{pid}/");

    let read = app.get(&path, &admin.access).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json()["created_by"], owner.id);
    assert!(ids(&list_all(&app, "/api/patients/", &admin.access).await).contains(&pid));
    let doctors = app.get(&format!("{path}doctors/"), &admin.access).await;
    assert_eq!(doctors.status, 200, "{}", doctors.text);

    let put = app
        .put(
            &path,
            &admin.access,
            json!({"name": "Renamed by admin", "age": 41, "gender": "Other"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let row = app.patient_row(pid).await.expect("row");
    assert_eq!(
        (row.name.as_str(), row.age, row.gender.as_str()),
        ("Renamed by admin", 41, "Other")
    );
    assert_eq!(
        row.created_by, owner.id,
        "an administrator's change must not take the patient over"
    );

    let patch = app.patch(&path, &admin.access, json!({"age": 42})).await;
    assert_eq!(patch.status, 200, "{}", patch.text);
    assert_eq!(app.patient_row(pid).await.unwrap().age, 42);

    let delete = app.delete(&path, &admin.access).await;
    assert_eq!(delete.status, 204, "{}", delete.text);
    assert!(app.patient_deleted(pid).await, "kept, hidden");
}

#[tokio::test]
async fn an_administrator_changes_and_deletes_every_users_doctors() {
    let app = spawn_app().await;
    let creator = app.user().await;
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let did = id_of(&app.create_doctor(&creator.access, &unique("Dr. ")).await);
    let path = format!("/api/doctors/{did}/");

    let put = app
        .put(
            &path,
            &admin.access,
            json!({"name": "Dr. Admin", "specialization": "Oncology"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let patch = app
        .patch(&path, &admin.access, json!({"specialization": "Neurology"}))
        .await;
    assert_eq!(patch.status, 200, "{}", patch.text);
    let row = app.doctor_row(did).await.expect("row");
    assert_eq!(
        (row.name.as_str(), row.specialization.as_str()),
        ("Dr. Admin", "Neurology")
    );
    assert_eq!(row.created_by, creator.id);

    let delete = app.delete(&path, &admin.access).await;
    assert_eq!(delete.status, 204, "{}", delete.text);
    assert!(app.doctor_deleted(did).await, "kept, hidden");
}

#[tokio::test]
async fn an_administrator_sees_and_manages_every_users_mappings() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let pid = id_of(&app.create_patient(&owner.access, &unique("Owned ")).await);
    let d1 = id_of(&app.create_doctor(&owner.access, &unique("Dr. ")).await);
    let d2 = id_of(&app.create_doctor(&owner.access, &unique("Dr. ")).await);
    let m1 = id_of(&map(&app, &owner.access, pid, d1).await);

    assert!(ids(&list_all(&app, "/api/mappings/", &admin.access).await).contains(&m1));
    let of_patient = app
        .get(&format!("/api/mappings/{pid}/"), &admin.access)
        .await;
    assert_eq!(of_patient.status, 200, "{}", of_patient.text);
    assert_eq!(ids(of_patient.json().as_array().unwrap()), vec![m1]);

    // An administrator may assign a doctor to anyone's patient ...
    let m2 = id_of(&map(&app, &admin.access, pid, d2).await);
    let owner_view = app
        .get(&format!("/api/mappings/{pid}/"), &owner.access)
        .await;
    assert_eq!(ids(owner_view.json().as_array().unwrap()), vec![m1, m2]);

    // ... and remove an assignment.
    let delete = app
        .delete(&format!("/api/mappings/{m1}/"), &admin.access)
        .await;
    assert_eq!(delete.status, 204, "{}", delete.text);
    let left: Vec<i64> = app.mapping_rows(pid).await.iter().map(|m| m.id).collect();
    assert_eq!(left, vec![m2]);
}

#[tokio::test]
async fn deleting_a_patient_hides_its_mappings_and_nothing_else() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Leaving ")).await);
    let kept = id_of(&app.create_patient(&user.access, &unique("Staying ")).await);
    let d1 = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let d2 = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    map(&app, &user.access, pid, d1).await;
    map(&app, &user.access, pid, d2).await;
    let kept_mapping = id_of(&map(&app, &user.access, kept, d1).await);

    let delete = app
        .delete(&format!("/api/patients/{pid}/"), &user.access)
        .await;
    assert_eq!(delete.status, 204, "{}", delete.text);
    assert!(delete.text.is_empty());

    assert!(app.patient_deleted(pid).await, "kept, hidden");
    assert!(
        app.mapping_rows(pid).await.is_empty(),
        "the patient's mappings must go with it"
    );
    assert!(app.doctor_row(d1).await.is_some());
    assert!(app.doctor_row(d2).await.is_some());
    let other: Vec<i64> = app.mapping_rows(kept).await.iter().map(|m| m.id).collect();
    assert_eq!(other, vec![kept_mapping]);
    let listed = app.get("/api/mappings/", &user.access).await;
    assert_eq!(ids(listed.json().as_array().unwrap()), vec![kept_mapping]);
}

#[tokio::test]
async fn deleting_a_doctor_hides_its_mappings_and_nothing_else() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Patient ")).await);
    let leaving = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let staying = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    map(&app, &user.access, pid, leaving).await;
    let kept = id_of(&map(&app, &user.access, pid, staying).await);

    let delete = app
        .delete(&format!("/api/doctors/{leaving}/"), &user.access)
        .await;
    assert_eq!(delete.status, 204, "{}", delete.text);

    assert!(app.doctor_deleted(leaving).await, "kept, hidden");
    assert!(app.patient_row(pid).await.is_some());
    let rows = app.mapping_rows(pid).await;
    assert_eq!(
        rows.iter().map(|m| (m.id, m.doctor_id)).collect::<Vec<_>>(),
        vec![(kept, staying)],
        "only the deleted doctor's mapping may go"
    );
    let doctors = app
        .get(&format!("/api/patients/{pid}/doctors/"), &user.access)
        .await;
    assert_eq!(ids(doctors.json().as_array().unwrap()), vec![staying]);
}

#[tokio::test]
async fn assigning_a_doctor_that_does_not_exist_is_a_400_naming_doctor() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Patient ")).await);
    let reply = app
        .post(
            "/api/mappings/",
            Some(&user.access),
            json!({"patient": pid, "doctor": MISSING}),
        )
        .await;
    let body = reply.field_error("doctor");
    assert!(body["errors"].get("patient").is_none(), "{body}");
    assert!(app.mapping_rows(pid).await.is_empty());
}

#[tokio::test]
async fn assigning_the_same_doctor_twice_is_a_409_and_leaves_one_row() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pid = id_of(&app.create_patient(&user.access, &unique("Patient ")).await);
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr. ")).await);
    let first = map(&app, &user.access, pid, did).await;

    let again = app
        .post(
            "/api/mappings/",
            Some(&user.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await;
    again.problem(409);
    let rows = app.mapping_rows(pid).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].id, id_of(&first));
}
