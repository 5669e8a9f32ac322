//! HTTP only: one module per tag, request and response types, no SQL.

pub mod admin;
pub mod auth;
pub mod body;
pub mod doctors;
pub mod mappings;
pub mod ops;
pub mod patients;

use poem_openapi::Tags;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;

use crate::error::ApiError;
use crate::store::{DEFAULT_LIMIT, MAX_LIMIT, Page};

#[derive(Tags)]
pub enum ApiTags {
    /// Register, log in, refresh and revoke tokens.
    Auth,
    /// Patient records, visible only to the user who created them.
    Patients,
    /// The shared directory of doctors.
    Doctors,
    /// Which doctors are assigned to which patients.
    Mappings,
    /// Administrators only: users and the audit trail.
    Admin,
    /// Health and readiness probes.
    Operations,
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

/// Declares a list's `ordering` parameter: an enum of allow-listed fields,
/// each ascending or (with `-`) descending, mapped to a column.
macro_rules! ordering {
    ($(#[$doc:meta])* $name:ident for $column:ty {
        $($asc:ident = $asc_s:literal, $desc:ident = $desc_s:literal => $col:expr;)*
    }) => {
        $(#[$doc])*
        #[derive(poem_openapi::Enum, Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $(
                #[oai(rename = $asc_s)]
                $asc,
                #[oai(rename = $desc_s)]
                $desc,
            )*
        }

        impl $name {
            pub fn sort(self) -> crate::store::Sort<$column> {
                match self {
                    $(
                        Self::$asc => crate::store::Sort { column: $col, descending: false },
                        Self::$desc => crate::store::Sort { column: $col, descending: true },
                    )*
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$asc => $asc_s, Self::$desc => $desc_s,)*
                }
            }
        }
    };
}
pub(crate) use ordering;

/// `ETag` of a row at a version: a strong validator, quoted.
pub fn etag(kind: &str, id: i64, version: i64) -> String {
    format!("\"{kind}-{id}-v{version}\"")
}

/// The version an `If-Match` header names for this resource. `*` or no
/// header means "any"; a tag that is not this resource's never matches.
pub fn if_match_version(
    header: Option<&str>,
    kind: &str,
    id: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(header) = header.map(str::trim) else {
        return Ok(None);
    };
    if header == "*" {
        return Ok(None);
    }
    let prefix = format!("\"{kind}-{id}-v");
    for tag in header.split(',').map(str::trim) {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        if let Some(v) = tag.strip_prefix(&prefix).and_then(|r| r.strip_suffix('"'))
            && let Ok(v) = v.parse::<i64>()
        {
            return Ok(Some(v));
        }
    }
    Err(ApiError::precondition_failed())
}

/// `limit`/`offset` query values, checked.
pub fn page(limit: Option<u64>, offset: Option<u64>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("Must be between 1 and {MAX_LIMIT}."),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset > i64::MAX as u64 {
        return Err(ApiError::field("offset", "Is too large."));
    }
    Ok(Page { limit, offset })
}

/// RFC 8288 `Link` header with `next`/`prev` for a page of `total` rows.
pub fn link_header(
    path: &str,
    filters: &[(&str, String)],
    page: Page,
    total: u64,
) -> Option<String> {
    let url = |offset: u64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters {
            query.append_pair(name, value);
        }
        query.append_pair("limit", &page.limit.to_string());
        query.append_pair("offset", &offset.to_string());
        format!("<{path}?{}>", query.finish())
    };
    let mut links = Vec::new();
    if page.offset.saturating_add(page.limit) < total {
        links.push(format!("{}; rel=\"next\"", url(page.offset + page.limit)));
    }
    if page.offset > 0 {
        links.push(format!(
            "{}; rel=\"prev\"",
            url(page.offset.saturating_sub(page.limit))
        ));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_own_tag_star_and_absence() {
        assert_eq!(if_match_version(None, "patient", 3).unwrap(), None);
        assert_eq!(if_match_version(Some("*"), "patient", 3).unwrap(), None);
        assert_eq!(
            if_match_version(Some("\"patient-3-v7\""), "patient", 3).unwrap(),
            Some(7)
        );
        assert_eq!(
            if_match_version(Some("W/\"x\", \"patient-3-v2\""), "patient", 3).unwrap(),
            Some(2)
        );
    }

    #[test]
    fn if_match_with_a_foreign_tag_fails() {
        assert!(if_match_version(Some("\"patient-4-v7\""), "patient", 3).is_err());
        assert!(if_match_version(Some("\"doctor-3-v7\""), "patient", 3).is_err());
        assert!(if_match_version(Some("garbage"), "patient", 3).is_err());
    }

    #[test]
    fn link_header_keeps_the_filters_encoded() {
        let p = Page {
            limit: 2,
            offset: 0,
        };
        let filters = [("search", "a b&c".to_string())];
        assert_eq!(
            link_header("/x", &filters, p, 5).unwrap(),
            "</x?search=a+b%26c&limit=2&offset=2>; rel=\"next\""
        );
    }

    #[test]
    fn link_header_has_next_and_prev_only_where_they_exist() {
        let p = Page {
            limit: 10,
            offset: 0,
        };
        assert_eq!(link_header("/x", &[], p, 5), None);
        assert_eq!(
            link_header("/x", &[], p, 25).unwrap(),
            "</x?limit=10&offset=10>; rel=\"next\""
        );
        let p = Page {
            limit: 10,
            offset: 20,
        };
        assert_eq!(
            link_header("/x", &[], p, 25).unwrap(),
            "</x?limit=10&offset=10>; rel=\"prev\""
        );
    }
}
