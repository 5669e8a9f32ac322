//! The served spec and its Swagger UI. poem-openapi writes the document
//! from the code; a few facts it has no way to express are added here,
//! each derived from the code too:
//!
//! - every JSON request body is strict (`api::body`), so its schema gets
//!   `additionalProperties: false`;
//! - OpenAPI 3.0 allows scopes only on OAuth 2.0 requirements, so the
//!   Bearer alternative of each operation lists none (the scopes an
//!   operation needs are those of its OAuth2 requirement);
//! - tags are listed in the order a new user meets them.
//!
//! `/openapi.json`, `/openapi.yaml`, `/docs` and `healthcare openapi` all
//! serve this one document.

use std::sync::Arc;

use base64::Engine;
use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, Response};
use poem_openapi::OpenApiService;
use serde_json::Value;

use super::Apis;
use crate::api::ApiTags;

pub struct Spec {
    json: Arc<str>,
    yaml: Arc<str>,
    swagger_html: Arc<str>,
}

/// Adds to poem-openapi's document what it cannot say (see the module doc).
pub fn complete(mut doc: Value) -> Value {
    let mut strict = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|p| p.values_mut())
        {
            let body_ref = op
                .pointer("/requestBody/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"));
            if let Some(name) = body_ref {
                strict.push(name.to_string());
            }
            if let Some(requirements) = op.get_mut("security").and_then(Value::as_array_mut) {
                for requirement in requirements.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(scopes) = requirement.get_mut("BearerAuth") {
                        *scopes = Value::Array(Vec::new());
                    }
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in strict {
            if let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
                schema.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
    }
    if let Some(tags) = doc.get_mut("tags").and_then(Value::as_array_mut) {
        tags.sort_by_key(|tag| {
            let name = tag.get("name").and_then(Value::as_str).unwrap_or_default();
            ApiTags::ORDER
                .iter()
                .position(|t| *t == name)
                .unwrap_or(usize::MAX)
        });
    }
    doc
}

/// `'sha256-...'` of every inline script of `html`, for its CSP.
fn script_hashes(html: &str) -> Vec<String> {
    use sha2::Digest;
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script") {
        let Some(start) = rest[open..].find('>').map(|i| open + i + 1) else {
            break;
        };
        let Some(len) = rest[start..].find("</script>") else {
            break;
        };
        let digest = sha2::Sha256::digest(&rest.as_bytes()[start..start + len]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &rest[start + len..];
    }
    hashes
}

impl Spec {
    pub fn of(api: &OpenApiService<Apis, ()>) -> Self {
        let raw = api.spec();
        let doc = serde_json::from_str(&raw)
            .map(complete)
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "the generated spec is not JSON");
                Value::Null
            });
        let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
        let yaml = serde_yaml::to_string(&doc).unwrap_or_default();
        // Swagger UI's page embeds the document poem-openapi wrote; it gets
        // the completed one instead.
        let swagger_html = api.swagger_ui_html().replacen(&raw, &json, 1);
        Self {
            json: json.into(),
            yaml: yaml.into(),
            swagger_html: swagger_html.into(),
        }
    }

    pub fn json(&self) -> &str {
        &self.json
    }

    pub fn yaml(&self) -> &str {
        &self.yaml
    }

    /// The Content-Security-Policy of `/docs`: the page's own inline
    /// scripts (by hash) and nothing from elsewhere; never framed.
    pub fn docs_csp(&self) -> String {
        format!(
            "default-src 'none'; script-src {}; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            script_hashes(&self.swagger_html).join(" ")
        )
    }

    pub fn swagger_ui(&self) -> impl Endpoint + 'static {
        let html = self.swagger_html.clone();
        poem::Route::new().at("/", make_sync(move |_| Html(html.to_string())))
    }

    pub fn json_endpoint(&self) -> impl Endpoint + 'static {
        let json = self.json.clone();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(json.to_string())
        })
    }

    pub fn yaml_endpoint(&self) -> impl Endpoint + 'static {
        let yaml = self.yaml.clone();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/x-yaml")
                .header("Content-Disposition", "inline; filename=\"spec.yaml\"")
                .body(yaml.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_one_by_one() {
        let hashes = script_hashes("<script>a</script><p><script charset=\"x\">b</script>");
        assert_eq!(hashes.len(), 2);
        assert_ne!(hashes[0], hashes[1]);
    }
}
