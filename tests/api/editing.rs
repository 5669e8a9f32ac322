//! Editing (API.md §1, §3, §4): PATCH is a JSON merge patch (absent fields
//! stay, `null` is refused because every field is required, read-only fields
//! are ignored, unknown ones refused), single resources carry an `ETag`, and
//! PUT, PATCH and DELETE honour `If-Match` (412 problem on a mismatch).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, id_of, spawn_app, unique};

#[track_caller]
fn etag_of(reply: &Reply) -> String {
    let tag = reply
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag ({}): {}", reply.status, reply.text))
        .to_string();
    // A strong validator: quoted, not weak.
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
        "not a strong entity tag: {tag}"
    );
    tag
}

/// A request with an optional `If-Match` and an optional JSON body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut headers = Vec::new();
    if let Some(tag) = if_match {
        headers.push(("if-match", tag));
    }
    let bytes = match body {
        Some(body) => {
            headers.push(("content-type", "application/json"));
            serde_json::to_vec(&body).expect("json")
        }
        None => Vec::new(),
    };
    app.raw(method, path, Some(token), &headers, bytes).await
}

async fn patch_if(app: &TestApp, path: &str, token: &str, tag: &str, body: Value) -> Reply {
    send(app, Method::PATCH, path, token, Some(tag), Some(body)).await
}

async fn put_if(app: &TestApp, path: &str, token: &str, tag: &str, body: Value) -> Reply {
    send(app, Method::PUT, path, token, Some(tag), Some(body)).await
}

async fn delete_if(app: &TestApp, path: &str, token: &str, tag: &str) -> Reply {
    send(app, Method::DELETE, path, token, Some(tag), None).await
}

#[track_caller]
fn ok(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

async fn new_patient(app: &TestApp, token: &str) -> (i64, String, Value) {
    let reply = app
        .post(
            "/api/patients/",
            Some(token),
            json!({"name": "Ada Lovelace", "age": 36, "gender": "Female"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    let id = id_of(&body);
    (id, format!("/api/patients/{id}/"), body)
}

async fn new_doctor(app: &TestApp, token: &str) -> (i64, String, Value) {
    let reply = app
        .post(
            "/api/doctors/",
            Some(token),
            json!({"name": unique("Dr Edit "), "specialization": "Oncology"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    let id = id_of(&body);
    (id, format!("/api/doctors/{id}/"), body)
}

// ---------------------------------------------------------------------------
// PATCH semantics: patients
// ---------------------------------------------------------------------------

#[tokio::test]
async fn patient_patch_changes_only_the_fields_present() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, created) = new_patient(&app, &user.access).await;

    let after = ok(&app.patch(&path, &user.access, json!({"age": 37})).await);
    assert_eq!(after["age"], 37);
    assert_eq!(after["name"], "Ada Lovelace");
    assert_eq!(after["gender"], "Female");
    assert_eq!(after["id"], created["id"]);
    assert_eq!(after["created_by"], user.id);
    assert_eq!(after["created_at"], created["created_at"]);
    let row = app.patient_row(id).await.expect("row");
    assert_eq!(
        (row.name.as_str(), row.age, row.gender.as_str()),
        ("Ada Lovelace", 37, "Female")
    );

    // Strings are trimmed, as on every write.
    let after = ok(&app
        .patch(&path, &user.access, json!({"name": "  Ada King  "}))
        .await);
    assert_eq!(after["name"], "Ada King");
    assert_eq!(after["age"], 37);
    let after = ok(&app
        .patch(&path, &user.access, json!({"gender": "Other"}))
        .await);
    assert_eq!(
        (&after["name"], &after["age"], &after["gender"]),
        (&json!("Ada King"), &json!(37), &json!("Other"))
    );
    let after = ok(&app
        .patch(
            &path,
            &user.access,
            json!({"name": "Augusta", "age": 0, "gender": "Unknown"}),
        )
        .await);
    assert_eq!(
        (&after["name"], &after["age"], &after["gender"]),
        (&json!("Augusta"), &json!(0), &json!("Unknown"))
    );
    // What PATCH answered is what a GET reads back.
    assert_eq!(ok(&app.get(&path, &user.access).await), after);
    let row = app.patient_row(id).await.expect("row");
    assert_eq!(
        (row.name.as_str(), row.age, row.gender.as_str()),
        ("Augusta", 0, "Unknown")
    );
}

#[tokio::test]
async fn patient_patch_with_null_is_refused_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;
    let before = app.patient_row(id).await.expect("row");
    let tag = etag_of(&app.get(&path, &user.access).await);

    for (body, fields) in [
        (json!({"name": null}), &["name"][..]),
        (json!({"age": null}), &["age"]),
        (json!({"gender": null}), &["gender"]),
        // A valid change beside a null one is not applied either.
        (json!({"age": 50, "gender": null}), &["gender"]),
        (json!({"name": "Changed", "age": null}), &["age"]),
        (
            json!({"name": null, "age": null, "gender": null}),
            &["name", "age", "gender"],
        ),
    ] {
        let reply = app.patch(&path, &user.access, body.clone()).await;
        for field in fields {
            reply.field_error(field);
        }
        assert_eq!(
            app.patient_row(id).await.as_ref(),
            Some(&before),
            "{body} changed the row"
        );
    }
    // The ETag did not move either.
    assert_eq!(etag_of(&app.get(&path, &user.access).await), tag);
}

#[tokio::test]
async fn patient_patch_with_invalid_or_unknown_fields_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;
    let before = app.patient_row(id).await.expect("row");

    for (body, field) in [
        (json!({"favourite_colour": "blue"}), "favourite_colour"),
        (
            json!({"age": 40, "favourite_colour": "blue"}),
            "favourite_colour",
        ),
        (json!({"owner": 1}), "owner"),
        (json!({"version": 7}), "version"),
        (json!({"age": 151}), "age"),
        (json!({"age": -1}), "age"),
        (json!({"age": "40"}), "age"),
        (json!({"age": 40.5}), "age"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"gender": "female"}), "gender"),
        (json!({"gender": "Robot"}), "gender"),
        (json!({"name": "Fine", "gender": "Robot"}), "gender"),
    ] {
        let reply = app.patch(&path, &user.access, body.clone()).await;
        reply.field_error(field);
        assert_eq!(
            app.patient_row(id).await.as_ref(),
            Some(&before),
            "{body} changed the row"
        );
    }
    // Not an object at all.
    for body in [json!([]), json!("age"), json!(null), json!(3)] {
        app.patch(&path, &user.access, body).await.problem(400);
    }
    assert_eq!(app.patient_row(id).await, Some(before));
}

#[tokio::test]
async fn patient_patch_ignores_read_only_fields() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let (id, path, created) = new_patient(&app, &user.access).await;

    let after = ok(&app
        .patch(
            &path,
            &user.access,
            json!({
                "id": id + 1000,
                "created_by": other.id,
                "created_at": "2000-01-01T00:00:00Z",
                "updated_at": "2000-01-01T00:00:00Z",
                "age": 40,
            }),
        )
        .await);
    assert_eq!(after["id"], id);
    assert_eq!(after["created_by"], user.id);
    assert_eq!(after["created_at"], created["created_at"]);
    assert_ne!(after["updated_at"], "2000-01-01T00:00:00Z");
    assert_eq!(after["age"], 40);
    let row = app.patient_row(id).await.expect("row");
    assert_eq!(row.created_by, user.id);
    assert_eq!(row.age, 40);
    // Still the owner's, still not the other user's.
    assert_eq!(app.get(&path, &user.access).await.status, 200);
    app.get(&path, &other.access).await.problem(404);

    // Read-only fields alone are an empty patch.
    let read_back = ok(&app.get(&path, &user.access).await);
    let mut sent = read_back.clone();
    sent["name"] = json!("Round Trip");
    let after = ok(&app.patch(&path, &user.access, sent).await);
    assert_eq!(after["name"], "Round Trip");
    assert_eq!(after["age"], 40);
}

/// An empty merge patch changes no field. The server still counts it as a
/// write: a new version (so a new `ETag`) and a new `updated_at`, together.
#[tokio::test]
async fn patient_empty_patch_keeps_every_value() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;
    let read = app.get(&path, &user.access).await;
    let before = ok(&read);
    let tag = etag_of(&read);
    let row_before = app.patient_row(id).await.expect("row");

    let reply = app.patch(&path, &user.access, json!({})).await;
    let after = ok(&reply);
    let new_tag = etag_of(&reply);
    for field in ["id", "name", "age", "gender", "created_by", "created_at"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let row = app.patient_row(id).await.expect("row");
    assert_eq!(
        (&row.name, row.age, &row.gender, row.created_at),
        (
            &row_before.name,
            row_before.age,
            &row_before.gender,
            row_before.created_at
        )
    );
    // ETag and updated_at move together.
    assert_ne!(new_tag, tag, "an empty PATCH is still a write");
    assert_ne!(after["updated_at"], before["updated_at"]);
    assert!(row.updated_at > row_before.updated_at);
    // And the answer agrees with a fresh read.
    let read = app.get(&path, &user.access).await;
    assert_eq!(ok(&read), after);
    assert_eq!(etag_of(&read), new_tag);
    // The old tag is stale now, the new one current.
    patch_if(&app, &path, &user.access, &tag, json!({}))
        .await
        .problem(412);
    ok(&patch_if(&app, &path, &user.access, &new_tag, json!({})).await);
}

#[tokio::test]
async fn patient_patch_accepts_the_merge_patch_media_type() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;
    let reply = app
        .raw(
            Method::PATCH,
            &path,
            Some(&user.access),
            &[("content-type", "application/merge-patch+json")],
            br#"{"age": 44}"#.to_vec(),
        )
        .await;
    assert_eq!(ok(&reply)["age"], 44);
    assert_eq!(app.patient_row(id).await.expect("row").age, 44);
    // But not a body that is not JSON.
    let reply = app
        .raw(
            Method::PATCH,
            &path,
            Some(&user.access),
            &[("content-type", "text/plain")],
            br#"{"age": 45}"#.to_vec(),
        )
        .await;
    reply.problem(415);
    assert_eq!(app.patient_row(id).await.expect("row").age, 44);
}

#[tokio::test]
async fn patient_put_still_requires_every_field() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;
    let before = app.patient_row(id).await;
    let reply = app.put(&path, &user.access, json!({"age": 50})).await;
    reply.field_error("name");
    reply.field_error("gender");
    let reply = app
        .put(
            &path,
            &user.access,
            json!({"name": "X", "age": null, "gender": "Male"}),
        )
        .await;
    reply.field_error("age");
    assert_eq!(app.patient_row(id).await, before);
}

// ---------------------------------------------------------------------------
// ETag and If-Match: patients
// ---------------------------------------------------------------------------

#[tokio::test]
async fn patient_etags_change_with_every_write() {
    let app = spawn_app().await;
    let user = app.user().await;
    let reply = app
        .post(
            "/api/patients/",
            Some(&user.access),
            json!({"name": "Tagged", "age": 20, "gender": "Male"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let created_tag = etag_of(&reply);
    let path = format!("/api/patients/{}/", id_of(&reply.json()));

    let read = app.get(&path, &user.access).await;
    assert_eq!(etag_of(&read), created_tag, "GET after POST");
    // Reading does not change it.
    assert_eq!(etag_of(&app.get(&path, &user.access).await), created_tag);
    // Without the trailing slash: the same resource, the same tag.
    let bare = path.trim_end_matches('/');
    assert_eq!(etag_of(&app.get(bare, &user.access).await), created_tag);

    let patched = app.patch(&path, &user.access, json!({"age": 21})).await;
    let patched_tag = etag_of(&patched);
    assert_ne!(patched_tag, created_tag);
    assert_eq!(etag_of(&app.get(&path, &user.access).await), patched_tag);

    let put = app
        .put(
            &path,
            &user.access,
            json!({"name": "Tagged", "age": 22, "gender": "Male"}),
        )
        .await;
    let put_tag = etag_of(&put);
    assert_ne!(put_tag, patched_tag);
    assert_ne!(put_tag, created_tag);
    assert_eq!(etag_of(&app.get(&path, &user.access).await), put_tag);

    // Two patients never share a tag.
    let (_, other_path, _) = new_patient(&app, &user.access).await;
    let other_tag = etag_of(&app.get(&other_path, &user.access).await);
    assert_ne!(other_tag, put_tag);
    assert_ne!(other_tag, created_tag);
}

#[tokio::test]
async fn patient_if_match_current_succeeds_and_stale_is_412_with_nothing_changed() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;

    // Two clients read the same version.
    let first_read = etag_of(&app.get(&path, &user.access).await);
    let second_read = first_read.clone();

    // The first one writes with it: 200 and a new tag.
    let reply = patch_if(&app, &path, &user.access, &first_read, json!({"age": 50})).await;
    assert_eq!(ok(&reply)["age"], 50);
    let current = etag_of(&reply);
    assert_ne!(current, first_read);

    // The second one's tag is stale now: 412 for PATCH, PUT and DELETE.
    let before = app.patient_row(id).await.expect("row");
    let reply = patch_if(&app, &path, &user.access, &second_read, json!({"age": 60})).await;
    reply.problem(412);
    assert_eq!(app.patient_row(id).await.as_ref(), Some(&before));
    let reply = put_if(
        &app,
        &path,
        &user.access,
        &second_read,
        json!({"name": "Overwritten", "age": 60, "gender": "Male"}),
    )
    .await;
    reply.problem(412);
    assert_eq!(app.patient_row(id).await.as_ref(), Some(&before));
    let reply = delete_if(&app, &path, &user.access, &second_read).await;
    reply.problem(412);
    assert_eq!(app.patient_row(id).await.as_ref(), Some(&before));
    // An invalid body with a stale tag changes nothing either way.
    let reply = patch_if(&app, &path, &user.access, &second_read, json!({"age": 999})).await;
    assert!(
        [400, 412].contains(&reply.status.as_u16()),
        "{}: {}",
        reply.status,
        reply.text
    );
    assert_eq!(app.patient_row(id).await.as_ref(), Some(&before));

    // After reading again, the second client succeeds.
    let fresh = etag_of(&app.get(&path, &user.access).await);
    assert_eq!(fresh, current);
    let reply = put_if(
        &app,
        &path,
        &user.access,
        &fresh,
        json!({"name": "Merged", "age": 61, "gender": "Other"}),
    )
    .await;
    assert_eq!(ok(&reply)["name"], "Merged");
    let after_put = etag_of(&reply);
    assert_ne!(after_put, fresh);
    // A tag list holding the current tag matches.
    let list = format!("\"nope\", {after_put}");
    let reply = patch_if(&app, &path, &user.access, &list, json!({"age": 62})).await;
    assert_eq!(ok(&reply)["age"], 62);
    assert_eq!(app.patient_row(id).await.expect("row").age, 62);
}

#[tokio::test]
async fn patient_if_match_star_matches_foreign_tags_fail_and_malformed_ones_are_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;
    let (_, other_path, _) = new_patient(&app, &user.access).await;
    let other_tag = etag_of(&app.get(&other_path, &user.access).await);

    let reply = patch_if(&app, &path, &user.access, "*", json!({"age": 70})).await;
    assert_eq!(ok(&reply)["age"], 70);
    let reply = put_if(
        &app,
        &path,
        &user.access,
        "*",
        json!({"name": "Star", "age": 71, "gender": "Male"}),
    )
    .await;
    assert_eq!(ok(&reply)["age"], 71);

    let current = etag_of(&app.get(&path, &user.access).await);
    let unquoted = current.trim_matches('"').to_string();
    let before = app.patient_row(id).await.expect("row");
    // Malformed headers are refused (400, never taken as absent);
    // well-formed tags that are not this patient's current one fail (412).
    let cases = [
        ("garbage", 400),
        ("W/", 400),
        (unquoted.as_str(), 400),
        ("\"garbage\"", 412),
        ("\"\"", 412),
        // Another patient's current tag is not this one's.
        (other_tag.as_str(), 412),
        ("\"patient-0-v1\"", 412),
        ("\"doctor-1-v1\"", 412),
    ];
    for (garbage, status) in cases {
        let reply = patch_if(&app, &path, &user.access, garbage, json!({"age": 1})).await;
        reply.problem(status);
        let reply = put_if(
            &app,
            &path,
            &user.access,
            garbage,
            json!({"name": "G", "age": 1, "gender": "Male"}),
        )
        .await;
        reply.problem(status);
        let reply = delete_if(&app, &path, &user.access, garbage).await;
        reply.problem(status);
        assert_eq!(
            app.patient_row(id).await.as_ref(),
            Some(&before),
            "If-Match: {garbage}"
        );
    }

    // DELETE with `*` succeeds.
    let reply = delete_if(&app, &path, &user.access, "*").await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(app.patient_deleted(id).await, "kept, hidden");
}

#[tokio::test]
async fn patient_delete_with_a_stale_tag_is_412_and_with_the_current_one_204() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (id, path, _) = new_patient(&app, &user.access).await;
    let did = id_of(&app.create_doctor(&user.access, &unique("Dr ")).await);
    let reply = app
        .post(
            "/api/mappings/",
            Some(&user.access),
            json!({"patient": id, "doctor": did}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let stale = etag_of(&app.get(&path, &user.access).await);
    let current = etag_of(&app.patch(&path, &user.access, json!({"age": 1})).await);

    let reply = delete_if(&app, &path, &user.access, &stale).await;
    reply.problem(412);
    assert!(app.patient_row(id).await.is_some(), "deleted despite 412");
    assert_eq!(app.mapping_rows(id).await.len(), 1);
    assert_eq!(app.get(&path, &user.access).await.status, 200);

    let reply = delete_if(&app, &path, &user.access, &current).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(reply.text.is_empty());
    assert!(app.patient_deleted(id).await, "kept, hidden");
    assert!(app.mapping_rows(id).await.is_empty());
    app.get(&path, &user.access).await.problem(404);
    // Gone: its old tag now finds nothing.
    delete_if(&app, &path, &user.access, &current)
        .await
        .problem(404);
    patch_if(&app, &path, &user.access, &current, json!({"age": 2}))
        .await
        .problem(404);
}

#[tokio::test]
async fn someone_elses_patient_is_404_even_with_its_current_etag() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let other = app.user().await;
    let (id, path, _) = new_patient(&app, &owner.access).await;
    let tag = etag_of(&app.get(&path, &owner.access).await);
    let before = app.patient_row(id).await.expect("row");

    patch_if(&app, &path, &other.access, &tag, json!({"age": 99}))
        .await
        .problem(404);
    patch_if(&app, &path, &other.access, "*", json!({"age": 99}))
        .await
        .problem(404);
    put_if(
        &app,
        &path,
        &other.access,
        &tag,
        json!({"name": "Mine", "age": 99, "gender": "Male"}),
    )
    .await
    .problem(404);
    delete_if(&app, &path, &other.access, &tag)
        .await
        .problem(404);
    assert_eq!(app.patient_row(id).await, Some(before));
    // The owner's tag still works for the owner.
    ok(&patch_if(&app, &path, &owner.access, &tag, json!({"age": 37})).await);

    // An administrator may change it with the current tag.
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let tag = etag_of(&app.get(&path, &admin.access).await);
    let reply = patch_if(&app, &path, &admin.access, &tag, json!({"age": 38})).await;
    assert_eq!(ok(&reply)["age"], 38);
    assert_eq!(ok(&reply)["created_by"], owner.id);
}

// ---------------------------------------------------------------------------
// Doctors: PATCH semantics and If-Match
// ---------------------------------------------------------------------------

#[tokio::test]
async fn doctor_patch_semantics() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let (id, path, created) = new_doctor(&app, &user.access).await;
    let name = created["name"].clone();

    // Absent fields stay.
    let after = ok(&app
        .patch(
            &path,
            &user.access,
            json!({"specialization": " Neurology "}),
        )
        .await);
    assert_eq!(after["specialization"], "Neurology");
    assert_eq!(after["name"], name);
    assert_eq!(after["created_at"], created["created_at"]);
    let new_name = unique("Dr Renamed ");
    let after = ok(&app
        .patch(&path, &user.access, json!({"name": new_name}))
        .await);
    assert_eq!(after["name"], new_name.as_str());
    assert_eq!(after["specialization"], "Neurology");
    let row = app.doctor_row(id).await.expect("row");
    assert_eq!(
        (row.name.as_str(), row.specialization.as_str()),
        (new_name.as_str(), "Neurology")
    );

    // null, invalid and unknown fields: 400 naming them, nothing changed.
    let before = app.doctor_row(id).await.expect("row");
    for (body, field) in [
        (json!({"name": null}), "name"),
        (json!({"specialization": null}), "specialization"),
        (
            json!({"name": "Fine", "specialization": null}),
            "specialization",
        ),
        (json!({"specialization": ""}), "specialization"),
        (json!({"specialization": "x".repeat(101)}), "specialization"),
        (json!({"name": "  "}), "name"),
        (json!({"hospital": "General"}), "hospital"),
        (json!({"name": "Fine", "hospital": "General"}), "hospital"),
    ] {
        let reply = app.patch(&path, &user.access, body.clone()).await;
        reply.field_error(field);
        assert_eq!(
            app.doctor_row(id).await.as_ref(),
            Some(&before),
            "{body} changed the doctor"
        );
    }

    // Read-only fields are ignored.
    let after = ok(&app
        .patch(
            &path,
            &user.access,
            json!({
                "id": id + 1000,
                "created_by": other.id,
                "created_at": "2000-01-01T00:00:00Z",
                "updated_at": "2000-01-01T00:00:00Z",
                "specialization": "Radiology",
            }),
        )
        .await);
    assert_eq!(after["id"], id);
    assert_eq!(after["created_by"], user.id);
    assert_eq!(after["created_at"], created["created_at"]);
    assert_eq!(after["specialization"], "Radiology");
    // Its creator is still the only non-admin who may change it.
    app.patch(&path, &other.access, json!({"name": "Hijack"}))
        .await
        .problem(403);

    // An empty patch keeps every value (and, like any write, moves the ETag).
    let read = app.get(&path, &user.access).await;
    let before = ok(&read);
    let tag = etag_of(&read);
    let reply = app.patch(&path, &user.access, json!({})).await;
    let after = ok(&reply);
    for field in ["id", "name", "specialization", "created_by", "created_at"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_ne!(etag_of(&reply), tag);
    assert_ne!(after["updated_at"], before["updated_at"]);
    assert_eq!(
        etag_of(&app.get(&path, &user.access).await),
        etag_of(&reply)
    );
}

#[tokio::test]
async fn doctor_etags_and_if_match() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let reply = app
        .post(
            "/api/doctors/",
            Some(&user.access),
            json!({"name": unique("Dr Tag "), "specialization": "Oncology"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let created_tag = etag_of(&reply);
    let id = id_of(&reply.json());
    let path = format!("/api/doctors/{id}/");

    // Any user reads the same tag.
    assert_eq!(etag_of(&app.get(&path, &user.access).await), created_tag);
    assert_eq!(etag_of(&app.get(&path, &other.access).await), created_tag);

    // Current tag: 200 and a new tag.
    let reply = patch_if(
        &app,
        &path,
        &user.access,
        &created_tag,
        json!({"specialization": "Hematology"}),
    )
    .await;
    assert_eq!(ok(&reply)["specialization"], "Hematology");
    let patched = etag_of(&reply);
    assert_ne!(patched, created_tag);
    assert_eq!(etag_of(&app.get(&path, &other.access).await), patched);

    // Stale tag: 412 for PATCH, PUT and DELETE, nothing changed.
    let before = app.doctor_row(id).await.expect("row");
    patch_if(
        &app,
        &path,
        &user.access,
        &created_tag,
        json!({"specialization": "Stale"}),
    )
    .await
    .problem(412);
    put_if(
        &app,
        &path,
        &user.access,
        &created_tag,
        json!({"name": "Stale", "specialization": "Stale"}),
    )
    .await
    .problem(412);
    delete_if(&app, &path, &user.access, &created_tag)
        .await
        .problem(412);
    for (garbage, status) in [
        ("garbage", 400),
        ("\"garbage\"", 412),
        ("\"patient-1-v1\"", 412),
    ] {
        patch_if(
            &app,
            &path,
            &user.access,
            garbage,
            json!({"specialization": "Garbage"}),
        )
        .await
        .problem(status);
        delete_if(&app, &path, &user.access, garbage)
            .await
            .problem(status);
    }
    assert_eq!(app.doctor_row(id).await.as_ref(), Some(&before));

    // Someone who may not change it is refused even with the current tag.
    patch_if(
        &app,
        &path,
        &other.access,
        &patched,
        json!({"specialization": "Theirs"}),
    )
    .await
    .problem(403);
    delete_if(&app, &path, &other.access, &patched)
        .await
        .problem(403);
    assert_eq!(app.doctor_row(id).await.as_ref(), Some(&before));

    // PUT with the current tag, then `*`.
    let new_name = unique("Dr Put ");
    let reply = put_if(
        &app,
        &path,
        &user.access,
        &patched,
        json!({"name": new_name, "specialization": "Surgery"}),
    )
    .await;
    assert_eq!(ok(&reply)["name"], new_name.as_str());
    let after_put = etag_of(&reply);
    assert_ne!(after_put, patched);
    let reply = patch_if(
        &app,
        &path,
        &user.access,
        "*",
        json!({"specialization": "Any"}),
    )
    .await;
    assert_eq!(ok(&reply)["specialization"], "Any");
    let current = etag_of(&reply);
    assert_ne!(current, after_put);

    // An administrator with the current tag may change it.
    let admin = app.user().await;
    let admin = app.make_admin(&admin).await;
    let reply = patch_if(
        &app,
        &path,
        &admin.access,
        &current,
        json!({"specialization": "Admin"}),
    )
    .await;
    assert_eq!(ok(&reply)["specialization"], "Admin");
    let current_after_admin = etag_of(&reply);

    // DELETE: stale 412 (still there), current 204.
    delete_if(&app, &path, &user.access, &current)
        .await
        .problem(412);
    assert!(app.doctor_row(id).await.is_some());
    let reply = delete_if(&app, &path, &user.access, &current_after_admin).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(app.doctor_deleted(id).await, "kept, hidden");
    app.get(&path, &user.access).await.problem(404);
    delete_if(&app, &path, &user.access, &current_after_admin)
        .await
        .problem(404);
}

#[tokio::test]
async fn doctor_delete_with_a_stale_tag_keeps_its_mappings() {
    let app = spawn_app().await;
    let user = app.user().await;
    let (did, path, _) = new_doctor(&app, &user.access).await;
    let pid = id_of(&app.create_patient(&user.access, "Mapped").await);
    let reply = app
        .post(
            "/api/mappings/",
            Some(&user.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let stale = etag_of(&app.get(&path, &user.access).await);
    let current = etag_of(
        &app.patch(&path, &user.access, json!({"specialization": "Moved"}))
            .await,
    );
    delete_if(&app, &path, &user.access, &stale)
        .await
        .problem(412);
    assert!(app.doctor_row(did).await.is_some());
    assert_eq!(app.mapping_rows(pid).await.len(), 1);
    let reply = delete_if(&app, &path, &user.access, &current).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(app.mapping_rows(pid).await.is_empty());
}
