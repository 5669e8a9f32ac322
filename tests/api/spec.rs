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
