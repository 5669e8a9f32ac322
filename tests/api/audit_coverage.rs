//! Every operation on patient data leaves an audit event, found by walking
//! the live spec: an operation added tomorrow without an audit declaration
//! fails here.

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::*;

/// Whether an operation's path is about patient data.
fn is_phi(path: &str) -> bool {
    path.starts_with("/api/patients") || path.starts_with("/api/mappings")
}

/// The example body of an operation's JSON request, pointed at real records.
fn body_for(spec: &Value, op: &Value, patient: i64, doctor: i64) -> Option<Value> {
    let name = op
        .pointer("/requestBody/content/application~1json/schema/$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")?;
    let mut body = spec["components"]["schemas"][name]["example"].clone();
    if let Some(fields) = body.as_object_mut() {
        for (field, id) in [("patient", patient), ("doctor", doctor)] {
            if fields.contains_key(field) {
                fields.insert(field.into(), json!(id));
            }
        }
    }
    Some(body)
}

#[tokio::test]
async fn every_patient_and_mapping_operation_records_an_audit_event() {
    let app = spawn_app().await;
    let admin = app.make_admin(&app.user().await).await;
    let spec = app.get("/openapi.json", &admin.access).await.json();
    let mut checked = Vec::new();
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        if !is_phi(path) {
            continue;
        }
        for (method, op) in ops.as_object().expect("operations") {
            let id = op["operationId"].as_str().expect("operationId").to_string();
            // Fresh records for every operation: some of them delete or erase.
            let patient = id_of(&app.create_patient(&admin.access, &unique("Covered ")).await);
            let doctor = id_of(&app.create_doctor(&admin.access, &unique("Dr. ")).await);
            let mapping = app
                .post(
                    "/api/mappings/",
                    Some(&admin.access),
                    json!({"patient": patient, "doctor": doctor}),
                )
                .await
                .id();
            if path.ends_with("/restore") {
                let deleted = app
                    .delete(&format!("/api/patients/{patient}/"), &admin.access)
                    .await;
                assert_eq!(deleted.status, 204, "{}", deleted.text);
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            // The shared mappings URL takes a mapping id for DELETE.
            let record = if path.starts_with("/api/mappings/") && method == Method::DELETE {
                mapping
            } else {
                patient
            };
            let url = path
                .replace("{id}", &record.to_string())
                .replace("{version}", "1");
            let request_id = unique("coverage-");
            let mut req = app
                .client
                .request(method.clone(), format!("{}{url}", app.address))
                .bearer_auth(&admin.access)
                .header("x-request-id", &request_id);
            if let Some(body) = body_for(&spec, op, patient, doctor) {
                req = req.json(&body);
            }
            let reply = req.send().await.expect("request");
            let status = reply.status();
            let events = healthcare::entity::audit_event::Entity::find()
                .filter(healthcare::entity::audit_event::Column::RequestId.eq(&request_id))
                .all(&app.db)
                .await
                .expect("query audit_events");
            assert_eq!(
                events.len(),
                1,
                "{id} ({method} {url}, answered {status}) left {} audit events",
                events.len()
            );
            assert_eq!(events[0].actor_id, Some(admin.id), "{id}");
            assert_eq!(i32::from(status.as_u16()), events[0].status, "{id}");
            checked.push(id);
        }
    }
    for expected in [
        "create_patient",
        "list_patients",
        "get_patient",
        "update_patient",
        "patch_patient",
        "delete_patient",
        "restore_patient",
        "erase_patient",
        "list_patient_versions",
        "get_patient_version",
        "list_patient_doctors",
        "assign_doctor",
        "list_mappings",
        "list_patient_mappings",
        "unassign_doctor",
    ] {
        assert!(
            checked.iter().any(|id| id == expected),
            "{expected} was not found in the spec: {checked:?}"
        );
    }
}
