//! The committed spec is the live spec.

use healthcare::config::Config;

fn committed(name: &str) -> String {
    let path = format!("{}/openapi/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn committed_spec_equals_the_live_spec() {
    let config = Config::for_database("sqlite::memory:");
    let yaml = healthcare::cli::openapi(config.clone(), true).unwrap();
    let json = healthcare::cli::openapi(config, false).unwrap();
    assert!(
        committed("openapi.yaml").trim_end() == yaml.trim_end()
            && committed("openapi.json").trim_end() == json.trim_end(),
        "openapi/ is stale: run `cargo run -- openapi --yaml > openapi/openapi.yaml && cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_has_a_tag_summary_description_and_operation_id() {
    let spec: serde_json::Value = serde_json::from_str(&committed("openapi.json")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(seen.insert(id.to_string()), "duplicate operationId {id}");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{id}: no tag"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{id}: no summary"
            );
            assert!(
                op["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{id}: no description"
            );
            for (code, resp) in op["responses"].as_object().unwrap() {
                // The OAuth token endpoint answers RFC 6749 errors, which
                // OAuth clients read (the one documented exception).
                if id == "token" && (code.starts_with('4') || code.starts_with('5')) {
                    assert_eq!(
                        resp["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
                        "#/components/schemas/OAuthError",
                        "{id} {code}: not an OAuth error"
                    );
                    continue;
                }
                if code.starts_with('4') || code.starts_with('5') {
                    assert!(
                        resp["content"]["application/problem+json"].is_object(),
                        "{id} {code}: not a problem document"
                    );
                }
            }
        }
    }
    assert!(seen.contains("create_patient") && seen.contains("assign_doctor"));
}

fn live_spec() -> serde_json::Value {
    let config = Config::for_database("sqlite::memory:");
    let json = healthcare::cli::openapi(config, false).unwrap();
    serde_json::from_str(&json).unwrap()
}

/// Every JSON request body the server reads strictly (all of them: unknown
/// fields are a 400) says so.
#[test]
fn every_json_request_body_declares_additional_properties_false() {
    let spec = live_spec();
    let mut bodies = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else {
                continue;
            };
            let name = schema["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .unwrap_or_else(|| panic!("{method} {path}: body schema is not a named component"));
            let component = &spec["components"]["schemas"][name];
            assert_eq!(
                component["additionalProperties"],
                serde_json::Value::Bool(false),
                "{method} {path}: {name} does not declare additionalProperties: false"
            );
            bodies += 1;
        }
    }
    assert!(bodies >= 10, "only {bodies} JSON request bodies found");
}

/// The bounds in the spec are the domain's constants: change one and both
/// the runtime check and the spec change.
#[test]
fn the_spec_bounds_are_the_domain_constants() {
    use healthcare::domain::{Age, DoctorName, Limit, PatientName, Specialization};
    let spec = live_spec();
    let schemas = &spec["components"]["schemas"];
    let max_length =
        |schema: &str, field: &str| schemas[schema]["properties"][field]["maxLength"].as_u64();
    let pattern = |schema: &str, field: &str| {
        schemas[schema]["properties"][field]["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{schema}.{field}: no pattern"))
            .to_string()
    };
    let interior = |max: usize| format!("{{0,{}}}", max - 2);
    assert_eq!(
        max_length("Patient", "name"),
        Some(PatientName::MAX_CHARS as u64)
    );
    assert_eq!(
        max_length("Doctor", "name"),
        Some(DoctorName::MAX_CHARS as u64)
    );
    assert_eq!(
        max_length("Doctor", "specialization"),
        Some(Specialization::MAX_CHARS as u64)
    );
    for schema in ["PatientInput", "PatientPatch"] {
        assert!(pattern(schema, "name").contains(&interior(PatientName::MAX_CHARS)));
    }
    for schema in ["DoctorInput", "DoctorPatch"] {
        assert!(pattern(schema, "name").contains(&interior(DoctorName::MAX_CHARS)));
        assert!(pattern(schema, "specialization").contains(&interior(Specialization::MAX_CHARS)));
    }
    let age = &schemas["PatientInput"]["properties"]["age"];
    assert_eq!(age["minimum"].as_f64(), Some(f64::from(Age::MIN)));
    assert_eq!(age["maximum"].as_f64(), Some(f64::from(Age::MAX)));
    let limit = spec["paths"]["/api/patients"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("a limit parameter")
        .clone();
    assert_eq!(limit["schema"]["maximum"].as_f64(), Some(Limit::MAX as f64));
    assert_eq!(
        limit["schema"]["default"].as_u64(),
        Some(Limit::DEFAULT.get())
    );
}

#[test]
fn tags_are_listed_in_the_order_a_new_user_meets_them() {
    let spec = live_spec();
    let tags: Vec<&str> = spec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let position = |name: &str| tags.iter().position(|t| *t == name).unwrap();
    assert!(position("Auth") < position("Patients"));
    assert!(position("Patients") < position("Doctors"));
    assert!(position("Doctors") < position("Mappings"));
    assert!(position("Mappings") < position("Admin"));
    assert!(position("Admin") < position("Operations"));
}
