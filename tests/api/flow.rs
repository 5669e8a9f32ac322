//! The original API's flow, exactly as its description shows it.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app, unique};

#[tokio::test]
async fn the_original_flow_works_with_trailing_slashes() {
    let app = spawn_app().await;
    let username = unique("john");
    let reg = app
        .post(
            "/api/auth/register/",
            None,
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(reg.status, 201, "{}", reg.text);
    let user = reg.json();
    assert_eq!(user["username"], username.as_str());
    assert!(user["date_joined"].as_str().is_some());
    assert!(user.get("password").is_none());

    let login = app.login(&username, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let tokens = login.json();
    let access = tokens["access"].as_str().unwrap().to_string();
    let refresh = tokens["refresh"].as_str().unwrap().to_string();

    let refreshed = app
        .post(
            "/api/auth/token/refresh/",
            None,
            json!({"refresh": refresh}),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert!(
        refreshed.json()["access"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );

    let created = app
        .post(
            "/api/patients/",
            Some(&access),
            json!({"name": "Alice", "age": 30, "gender": "Female"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let patient = created.json();
    let pid = patient["id"].as_i64().unwrap();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/patients/{pid}/").as_str())
    );
    assert_eq!(patient["name"], "Alice");
    assert_eq!(patient["created_by"], user["id"]);

    let list = app.get("/api/patients/", &access).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json(), json!([patient]));

    let one = app.get(&format!("/api/patients/{pid}/"), &access).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), patient);

    let updated = app
        .put(
            &format!("/api/patients/{pid}/"),
            &access,
            json!({"name": "Alice Updated", "age": 31, "gender": "Female"}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json()["name"], "Alice Updated");
    assert_eq!(app.patient_row(pid).await.unwrap().age, 31);

    let doctor = app
        .post(
            "/api/doctors/",
            Some(&access),
            json!({"name": "Dr. Smith", "specialization": "Cardiology"}),
        )
        .await;
    assert_eq!(doctor.status, 201, "{}", doctor.text);
    let did = doctor.json()["id"].as_i64().unwrap();
    let directory = app.get("/api/doctors/?limit=1000", &access).await.json();
    assert!(
        directory.as_array().unwrap().iter().any(|d| d["id"] == did),
        "{directory}"
    );
    assert_eq!(
        app.get(&format!("/api/doctors/{did}/"), &access)
            .await
            .json()["name"],
        "Dr. Smith"
    );
    let doctor = app
        .put(
            &format!("/api/doctors/{did}/"),
            &access,
            json!({"name": "Dr. Smith Updated", "specialization": "Neurology"}),
        )
        .await;
    assert_eq!(doctor.status, 200, "{}", doctor.text);
    assert_eq!(doctor.json()["specialization"], "Neurology");

    let mapping = app
        .post(
            "/api/mappings/",
            Some(&access),
            json!({"patient": pid, "doctor": did}),
        )
        .await;
    assert_eq!(mapping.status, 201, "{}", mapping.text);
    let mapping = mapping.json();
    let mid = mapping["id"].as_i64().unwrap();
    assert_eq!(mapping["patient"], pid);
    assert_eq!(mapping["doctor"], did);
    assert_eq!(mapping["doctor_detail"]["name"], "Dr. Smith Updated");

    assert_eq!(
        app.get("/api/mappings/", &access).await.json(),
        json!([mapping])
    );
    assert_eq!(
        app.get(&format!("/api/mappings/{pid}/"), &access)
            .await
            .json(),
        json!([mapping])
    );
    let doctors = app
        .get(&format!("/api/patients/{pid}/doctors/"), &access)
        .await
        .json();
    assert_eq!(doctors[0]["id"], did);

    let removed = app.delete(&format!("/api/mappings/{mid}/"), &access).await;
    assert_eq!(removed.status, 204);
    assert!(removed.text.is_empty());
    assert!(app.mapping_rows(pid).await.is_empty());
    assert_eq!(
        app.get(&format!("/api/mappings/{pid}/"), &access)
            .await
            .json(),
        json!([])
    );

    assert_eq!(
        app.delete(&format!("/api/doctors/{did}/"), &access)
            .await
            .status,
        204
    );
    assert!(app.doctor_deleted(did).await, "kept, hidden");
    assert_eq!(
        app.delete(&format!("/api/patients/{pid}/"), &access)
            .await
            .status,
        204
    );
    assert!(app.patient_deleted(pid).await, "kept, hidden");
}

#[tokio::test]
async fn every_path_works_without_the_trailing_slash_too() {
    let app = spawn_app().await;
    let user = app.user().await;
    let patient = app.create_patient(&user.access, "Bob").await;
    let pid = patient["id"].as_i64().unwrap();
    let doctor = app.create_doctor(&user.access, "Dr. Who").await;
    let did = doctor["id"].as_i64().unwrap();
    for path in [
        "/api/patients".to_string(),
        format!("/api/patients/{pid}"),
        format!("/api/patients/{pid}/doctors"),
        "/api/doctors".to_string(),
        format!("/api/doctors/{did}"),
        "/api/mappings".to_string(),
        format!("/api/mappings/{pid}"),
        "/api/auth/me".to_string(),
    ] {
        let with = app.get(&format!("{path}/"), &user.access).await;
        let without = app.get(&path, &user.access).await;
        assert_eq!(with.status, 200, "{path}/: {}", with.text);
        assert_eq!(without.status, 200, "{path}: {}", without.text);
        assert_eq!(with.text, without.text, "{path}");
    }
    let created = app
        .post(
            "/api/mappings",
            Some(&user.access),
            json!({"patient": pid, "doctor": did}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
}

#[tokio::test]
async fn root_redirects_to_the_docs_and_the_spec_is_served() {
    let app = spawn_app().await;
    let root = app.raw(Method::GET, "/", None, &[], vec![]).await;
    assert_eq!(root.status, 302);
    assert_eq!(root.header("location"), Some("/docs"));
    let docs = app.raw(Method::GET, "/docs", None, &[], vec![]).await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.text.contains("swagger"),
        "{}",
        &docs.text[..200.min(docs.text.len())]
    );
    let spec = app
        .raw(Method::GET, "/openapi.json", None, &[], vec![])
        .await;
    assert_eq!(spec.status, 200);
    assert_eq!(spec.json()["info"]["title"], "Healthcare API");
    let yaml = app
        .raw(Method::GET, "/openapi.yaml", None, &[], vec![])
        .await;
    assert_eq!(yaml.status, 200);
    assert!(yaml.text.contains("openapi:"));
}
