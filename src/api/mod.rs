//! HTTP only: one module per tag, request and response types, thin
//! handlers; no SQL. Every value a request carries is read through its
//! domain rule ([`schema::Input`]); every operation declares its audit
//! ([`audited`]) and its scope ([`security`]).

pub mod admin;
pub mod audited;
pub mod auth;
pub mod body;
pub mod clients;
pub mod context;
pub mod doctors;
pub mod events;
pub mod idempotency;
pub mod mappings;
pub mod oauth;
pub mod ops;
pub mod params;
pub mod patients;
pub mod routes;
pub mod schema;
pub mod security;
pub mod versions;
pub mod webhooks;

use poem_openapi::Tags;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde_json::Value;

use crate::domain::{Invalid, Limit, Offset, Page};
use crate::error::ApiError;
use params::QueryArg;
use schema::Input;

/// The tags in the order a new user meets them (Swagger UI shows them so).
#[derive(Tags)]
pub enum ApiTags {
    /// Register, log in, refresh and revoke tokens; OAuth 2.0 for integrations.
    Auth,
    /// Service clients: credentials an integration uses to act for you.
    Clients,
    /// Patient records, visible only to the user who created them.
    Patients,
    /// The shared directory of doctors.
    Doctors,
    /// Which doctors are assigned to which patients.
    Mappings,
    /// The change feed: every change you may see, in order.
    Events,
    /// Signed webhooks: changes sent to your URL as they happen.
    Webhooks,
    /// Administrators only: users and the audit trail.
    Admin,
    /// Health and readiness probes, metrics.
    Operations,
}

impl ApiTags {
    pub const ORDER: [&'static str; 9] = [
        "Auth",
        "Clients",
        "Patients",
        "Doctors",
        "Mappings",
        "Events",
        "Webhooks",
        "Admin",
        "Operations",
    ];
}

/// A JSON response body, described in the spec exactly as [`Json`] (same
/// media type, same schema), but written straight from the value by serde
/// instead of through a `serde_json::Value` tree first: on a page of rows
/// that tree was most of the cost of answering. The type's `Serialize` must
/// give what its `ToJSON` would (a test per type checks it).
pub struct JsonOut<T>(pub T);

impl<T: Type> Payload for JsonOut<T> {
    const CONTENT_TYPE: &'static str = Json::<T>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> poem::IntoResponse for JsonOut<T> {
    fn into_response(self) -> poem::Response {
        poem::web::Json(self.0).into_response()
    }
}

/// Timestamps as poem-openapi writes them (`to_rfc3339`), for `Serialize`.
pub fn rfc3339<S: serde::Serializer>(
    at: &chrono::DateTime<chrono::Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339())
}

/// Declares a list's `ordering` parameter: an allow-list of fields, each
/// ascending or (with `-`) descending, mapped to a column.
macro_rules! ordering {
    ($(#[$doc:meta])* $name:ident for $column:ty {
        $($asc:ident = $asc_s:literal, $desc:ident = $desc_s:literal => $col:expr;)*
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($asc, $desc,)*
        }

        impl $crate::api::schema::Choice for $name {
            const ALL: &'static [Self] = &[$(Self::$asc, Self::$desc,)*];

            fn as_str(self) -> &'static str {
                match self {
                    $(Self::$asc => $asc_s, Self::$desc => $desc_s,)*
                }
            }
        }

        impl $name {
            pub fn sort(self) -> $crate::store::Sort<$column> {
                match self {
                    $(
                        Self::$asc => $crate::store::Sort { column: $col, descending: false },
                        Self::$desc => $crate::store::Sort { column: $col, descending: true },
                    )*
                }
            }

            /// The sort, and how the client wrote it unless it is the default.
            pub fn chosen(
                ordering: Option<Self>,
            ) -> ($crate::store::Sort<$column>, Option<&'static str>) {
                use $crate::api::schema::Choice;
                let first = Self::ALL[0];
                let chosen = ordering.unwrap_or(first);
                (chosen.sort(), (chosen != first).then(|| chosen.as_str()))
            }
        }
    };
}
pub(crate) use ordering;

/// `ETag` of a row at a version: a strong validator, quoted.
pub fn etag(kind: &str, id: i64, version: i64) -> String {
    format!("\"{kind}-{id}-v{version}\"")
}

/// An `If-Match` header (RFC 9110 §13.1.1): `*` or a list of entity tags.
/// Anything else is malformed and refused (400), never taken as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Tags(Vec<String>),
}

/// `etagc` of RFC 9110: visible ASCII but `"`.
fn is_etagc(c: char) -> bool {
    c == '!' || ('#'..='~').contains(&c)
}

/// The spec's pattern of an `If-Match` value: exactly what
/// [`IfMatch::from_text`] accepts (`etagc` is `[!#-~]`). RFC 9110 lists may
/// hold empty elements, and none at all (a list no tag of which matches).
const IF_MATCH_PATTERN: &str =
    r#"^[ \t]*(?:\*|(?:(?:W/)?"[!#-~]*")?(?:[ \t]*,[ \t]*(?:(?:W/)?"[!#-~]*")?)*)[ \t]*$"#;

/// The entity tags of a list (`"a", W/"b"`), each as `"opaque"`; `None`
/// when it is not one. A tag may hold a comma, so the list is read tag by
/// tag rather than split.
fn entity_tags(text: &str) -> Option<Vec<String>> {
    let ows = [' ', '\t'];
    let mut rest = text.trim_matches(ows);
    let mut tags = Vec::new();
    loop {
        while let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start_matches(ows);
        }
        if rest.is_empty() {
            return Some(tags);
        }
        let quoted = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = quoted.find('"')?;
        let opaque = &quoted[..end];
        if !opaque.chars().all(is_etagc) {
            return None;
        }
        tags.push(format!("\"{opaque}\""));
        rest = quoted[end + 1..].trim_start_matches(ows);
        if rest.is_empty() {
            return Some(tags);
        }
        rest = rest.strip_prefix(',')?.trim_start_matches(ows);
    }
}

impl Input for IfMatch {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some(
                "`*`, or entity tags as the `ETag` header gives them, comma-separated.",
            ),
            pattern: Some(IF_MATCH_PATTERN.to_string()),
            ..MetaSchema::new("string")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        match value {
            Value::String(s) => Self::from_text(&s),
            _ => Err(Invalid::new("Not a valid string.")),
        }
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        if text.trim() == "*" {
            return Ok(Self::Any);
        }
        entity_tags(text).map(Self::Tags).ok_or_else(|| {
            Invalid::new(
                "Send `*` or entity tags exactly as the ETag header gave them (\"patient-1-v2\"), comma-separated.",
            )
        })
    }
}

/// The version an `If-Match` header requires of this resource: `None` for
/// no header or `*`; 412 when no tag is this resource's.
pub fn required_version(
    if_match: Option<&IfMatch>,
    kind: &str,
    id: i64,
) -> Result<Option<i64>, ApiError> {
    let tags = match if_match {
        None | Some(IfMatch::Any) => return Ok(None),
        Some(IfMatch::Tags(tags)) => tags,
    };
    let prefix = format!("\"{kind}-{id}-v");
    tags.iter()
        .find_map(|tag| {
            tag.strip_prefix(&prefix)?
                .strip_suffix('"')?
                .parse::<i64>()
                .ok()
        })
        .map(Some)
        .ok_or_else(ApiError::precondition_failed)
}

/// The page a list's `limit` and `offset` ask for.
pub fn page(limit: QueryArg<Limit>, offset: QueryArg<Offset>) -> Page {
    Page {
        limit: limit.0.unwrap_or_default(),
        offset: offset.0.unwrap_or_default(),
    }
}

/// RFC 8288 `Link` header with `next`/`prev` for a page of `total` rows,
/// keeping the list's filters.
pub fn link_header(
    path: &str,
    filters: &[(&str, String)],
    page: Page,
    total: u64,
) -> Option<String> {
    let url = |page: Page| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters {
            query.append_pair(name, value);
        }
        query.append_pair("limit", &page.limit().to_string());
        query.append_pair("offset", &page.offset().to_string());
        format!("<{path}?{}>", query.finish())
    };
    let links: Vec<String> = [
        page.next(total)
            .map(|p| format!("{}; rel=\"next\"", url(p))),
        page.prev().map(|p| format!("{}; rel=\"prev\"", url(p))),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!links.is_empty()).then(|| links.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_match(s: &str) -> IfMatch {
        IfMatch::from_text(s).unwrap()
    }

    fn page_of(limit: u64, offset: u64) -> Page {
        Page {
            limit: Limit::new(limit).unwrap(),
            offset: Offset::new(offset).unwrap(),
        }
    }

    #[test]
    fn if_match_accepts_own_tag_star_and_absence() {
        assert_eq!(required_version(None, "patient", 3).unwrap(), None);
        assert_eq!(
            required_version(Some(&if_match("*")), "patient", 3).unwrap(),
            None
        );
        assert_eq!(
            required_version(Some(&if_match("\"patient-3-v7\"")), "patient", 3).unwrap(),
            Some(7)
        );
        assert_eq!(
            required_version(Some(&if_match("W/\"x\", \"patient-3-v2\"")), "patient", 3).unwrap(),
            Some(2)
        );
    }

    #[test]
    fn if_match_with_a_foreign_tag_fails_and_a_malformed_one_is_refused() {
        assert!(required_version(Some(&if_match("\"patient-4-v7\"")), "patient", 3).is_err());
        assert!(required_version(Some(&if_match("\"doctor-3-v7\"")), "patient", 3).is_err());
        assert!(IfMatch::from_text("garbage").is_err());
        assert!(IfMatch::from_text("\"patient-1-v1\", \"é\"").is_err());
        assert!(IfMatch::from_text("\"a\"b\"").is_err());
        assert!(
            required_version(Some(&if_match(" , ")), "patient", 3).is_err(),
            "an empty list matches nothing"
        );
    }

    #[test]
    fn if_match_is_read_tag_by_tag_as_its_published_pattern_says() {
        let pattern = regex::Regex::new(IF_MATCH_PATTERN).unwrap();
        for text in [
            "*",
            "\"a\"",
            "\"\"",
            "\"a,b\"",
            "W/\"x\", \"y\"",
            "\"a\" ,\t\"b\"",
            "",
            ",",
            "\"a\",,\"b\"",
            "*, \"a\"",
            "\"a",
            "a\"",
            "\"é\"",
            "W/",
            "\"a\" \"b\"",
            "\"a\",",
            " * ",
            "**",
            "garbage",
            "\"a b\"",
            " , \"a\",,",
        ] {
            assert_eq!(
                pattern.is_match(text),
                IfMatch::from_text(text).is_ok(),
                "{text:?}"
            );
        }
        assert_eq!(
            if_match("\"a,b\", W/\"c\""),
            IfMatch::Tags(vec!["\"a,b\"".into(), "\"c\"".into()])
        );
    }

    #[test]
    fn link_header_keeps_the_filters_encoded() {
        let filters = [("search", "a b&c".to_string())];
        assert_eq!(
            link_header("/x", &filters, page_of(2, 0), 5).unwrap(),
            "</x?search=a+b%26c&limit=2&offset=2>; rel=\"next\""
        );
    }

    #[test]
    fn link_header_has_next_and_prev_only_where_they_exist() {
        assert_eq!(link_header("/x", &[], page_of(10, 0), 5), None);
        assert_eq!(
            link_header("/x", &[], page_of(10, 0), 25).unwrap(),
            "</x?limit=10&offset=10>; rel=\"next\""
        );
        assert_eq!(
            link_header("/x", &[], page_of(10, 20), 25).unwrap(),
            "</x?limit=10&offset=10>; rel=\"prev\""
        );
    }
}
