//! JSON request bodies, read field by field through each value's [`Input`]
//! rule, so that every invalid field is reported by name (DRF style), not
//! only the first parse error.
//!
//! Bodies are strict: an unknown field, a repeated key (`{"age": 3, "age":
//! 150}`: a gateway reading the first would see another value than we do),
//! a content coding we do not decode and a charset other than UTF-8 are
//! refused. The spec says so: every JSON request body is declared with
//! `additionalProperties: false` (see `app::spec`).

use std::fmt;

use poem::http::header;
use poem::{Request, RequestBody};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::schema::Input;
use crate::error::{ApiError, FieldErrors};

/// Used only where the app did not say (a request built by hand).
const DEFAULT_LIMIT: usize = 65_536;

/// A request type that reads itself from a JSON object (see [`input!`]).
pub trait FromJson: Sized {
    /// Server-owned fields a client may send back unchanged (GET, edit,
    /// PUT): ignored, never bound.
    const IGNORED: &'static [&'static str];

    fn from_json(fields: &mut Fields) -> Option<Self>;
}

/// A JSON request body of type `T`, with the SHA-256 of its bytes (what an
/// idempotent retry is compared by); its schema in the spec is `T`'s.
pub struct JsonBody<T>(pub T, pub BodyDigest);

/// SHA-256 of a request body as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDigest(pub [u8; 32]);

impl<T: Type + Send> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// `application/json` or `application/*+json`, in UTF-8 (the only charset
/// JSON has, RFC 8259 §8.1).
fn check_media_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let unsupported = |detail: &str| ApiError::unsupported_media_type(detail.to_string());
    let mime = content_type
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .ok_or_else(|| {
            unsupported("The request body must be JSON (Content-Type: application/json).")
        })?;
    let json = mime.type_() == "application"
        && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"));
    if !json {
        return Err(unsupported(
            "The request body must be JSON (Content-Type: application/json).",
        ));
    }
    if mime
        .get_param(mime::CHARSET)
        .is_some_and(|charset| !charset.as_str().eq_ignore_ascii_case("utf-8"))
    {
        return Err(unsupported(
            "JSON request bodies must be UTF-8 (charset=utf-8 or no charset).",
        ));
    }
    Ok(())
}

/// Bodies are read as sent: a `Content-Encoding` other than `identity` is
/// refused rather than parsed as if it were plain (RFC 9110 §8.4).
pub(crate) fn check_content_encoding(req: &Request) -> Result<(), ApiError> {
    let encoded = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    if encoded {
        Err(ApiError::unsupported_media_type(
            "Content-Encoding is not supported: send the request body uncompressed.".into(),
        ))
    } else {
        Ok(())
    }
}

impl<'a, T: Type + FromJson + Send> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: Self::CONTENT_TYPE,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        check_media_type(request.content_type())?;
        check_content_encoding(request)?;
        let limit = request
            .data::<super::context::Shared>()
            .map_or(DEFAULT_LIMIT, |shared| shared.body_limit);
        let bytes = body
            .take()?
            .into_bytes_limit(limit)
            .await
            .map_err(|err| match err {
                poem::error::ReadBodyError::PayloadTooLarge => ApiError::payload_too_large(limit),
                _ => ApiError::bad_request("The request body could not be read."),
            })?;
        let map = read_object(&bytes)?;
        let mut fields = Fields::new(map, T::IGNORED);
        let parsed = T::from_json(&mut fields);
        match (parsed, fields.finish()) {
            (Some(value), Ok(())) => {
                use sha2::Digest;
                Ok(JsonBody(
                    value,
                    BodyDigest(sha2::Sha256::digest(&bytes).into()),
                ))
            }
            (_, Err(errors)) => Err(ApiError::invalid(errors).into()),
            (None, Ok(())) => Err(ApiError::bad_request("The request body is invalid.").into()),
        }
    }
}

/// A JSON object whose keys are all distinct (values are ordinary JSON).
struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        let shown: String = key.chars().take(64).collect();
                        return Err(de::Error::custom(format_args!("duplicate key \"{shown}\"")));
                    }
                    let value = access.next_value::<Value>()?;
                    map.insert(key, value);
                }
                Ok(StrictObject(map))
            }
        }

        deserializer.deserialize_any(ObjectVisitor)
    }
}

pub(crate) fn read_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "The request body is empty; a JSON object is required.",
        ));
    }
    // The shape first, so that `[1]` is "not an object", not a parse error.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        serde_json::from_slice::<Value>(bytes).map_err(|err| not_json(&err))?;
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    }
    serde_json::from_slice::<StrictObject>(bytes)
        .map(|o| o.0)
        .map_err(|err| {
            let message = err.to_string();
            if let Some(start) = message.find("duplicate key") {
                let what = message[start..]
                    .split(" at line")
                    .next()
                    .unwrap_or("duplicate key");
                ApiError::bad_request(format!(
                    "The request body has a {what}: each field may appear once."
                ))
            } else {
                not_json(&err)
            }
        })
}

fn not_json(err: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!(
        "The request body is not valid JSON (line {}, column {}).",
        err.line(),
        err.column()
    ))
}

/// Reads fields out of a JSON object, collecting one list of messages per
/// bad field. Fields not read are unknown unless ignored.
pub struct Fields {
    map: Map<String, Value>,
    errors: FieldErrors,
    ignored: &'static [&'static str],
}

const REQUIRED: &str = "This field is required.";
const NOT_NULL: &str = "This field may not be null.";

impl Fields {
    fn new(map: Map<String, Value>, ignored: &'static [&'static str]) -> Self {
        Self {
            map,
            errors: FieldErrors::new(),
            ignored,
        }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    fn read<T: Input>(&mut self, field: &str, required: bool) -> Option<T> {
        match self.map.remove(field) {
            None => {
                if required {
                    self.error(field, REQUIRED);
                }
                None
            }
            Some(Value::Null) => {
                self.error(field, NOT_NULL);
                None
            }
            Some(value) => match T::from_json(value) {
                Ok(value) => Some(value),
                Err(invalid) => {
                    self.error(field, invalid.into_message());
                    None
                }
            },
        }
    }

    /// A field that must be present.
    pub fn required<T: Input>(&mut self, field: &str) -> Option<T> {
        self.read(field, true)
    }

    /// A field that may be absent (merge patch); `null` is still refused.
    pub fn optional<T: Input>(&mut self, field: &str) -> Option<T> {
        self.read(field, false)
    }

    /// Everything not read: ignored fields are dropped, anything else is an error.
    fn finish(mut self) -> Result<(), FieldErrors> {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !self.ignored.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            let key: String = key.chars().take(64).collect();
            self.error(&key, "Unknown field.");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// The doc comment lines of a type or field, as poem-openapi joins them;
/// computed once per type (see `input!(@doc ...)`).
pub fn doc_text(lines: &[&str]) -> Option<&'static str> {
    let text = lines
        .iter()
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim();
    (!text.is_empty()).then(|| &*Box::leak(text.to_owned().into_boxed_str()))
}

/// Declares a request body: the struct, its schema (each field's from its
/// [`Input`] rule, the ignored read-only fields declared `readOnly`) and its
/// [`FromJson`] reader, from one list of fields. `required` fields must be
/// sent; `optional` ones may be left out (merge patch).
macro_rules! input {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident ignoring $ignored:expr, example $example:expr => {
            $( $(#[doc = $fdoc:literal])* $kind:ident $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        pub struct $name {
            $( pub $field: $crate::api::body::input!(@type $kind $ty), )*
        }

        impl $crate::api::body::FromJson for $name {
            const IGNORED: &'static [&'static str] = $ignored;

            fn from_json(f: &mut $crate::api::body::Fields) -> Option<Self> {
                $( let $field = f.$kind::<$ty>(stringify!($field)); )*
                Some(Self { $( $field: $crate::api::body::input!(@value $kind $field), )* })
            }
        }

        impl poem_openapi::types::Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                poem_openapi::registry::MetaSchemaRef::Reference(stringify!($name).to_string())
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
                use $crate::api::schema::Input;
                registry.create_schema::<Self, _>(stringify!($name).to_string(), |registry| {
                    let mut schema = MetaSchema::new("object");
                    schema.description = $crate::api::body::input!(@doc $($doc),*);
                    schema.example = Some($example);
                    $(
                        <$ty as Input>::register(registry);
                        let mut field = <$ty as Input>::schema_ref();
                        if let (MetaSchemaRef::Inline(field), Some(doc)) =
                            (&mut field, $crate::api::body::input!(@doc $($fdoc),*))
                        {
                            field.description = Some(doc);
                        }
                        schema.properties.push((stringify!($field), field));
                        if $crate::api::body::input!(@required $kind) {
                            schema.required.push(stringify!($field));
                        }
                    )*
                    for ignored in <Self as $crate::api::body::FromJson>::IGNORED {
                        schema.properties.push((
                            ignored,
                            MetaSchemaRef::Inline(Box::new(MetaSchema {
                                read_only: true,
                                description: Some("Server-owned; accepted and ignored, so that a record read with GET can be sent back."),
                                ..MetaSchema::ANY
                            })),
                        ));
                    }
                    schema
                });
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }
    };
    (@type required $ty:ty) => { $ty };
    (@type optional $ty:ty) => { Option<$ty> };
    (@value required $field:ident) => { $field? };
    (@value optional $field:ident) => { $field };
    (@doc $($line:literal),*) => {{
        static DOC: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
        *DOC.get_or_init(|| $crate::api::body::doc_text(&[$($line),*]))
    }};
    (@required required) => { true };
    (@required optional) => { false };
}
pub(crate) use input;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_naming_it() {
        let err = read_object(br#"{"age": 3, "age": 150}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key \"age\""), "{err}");
    }

    #[test]
    fn non_objects_and_broken_json_are_told_apart() {
        assert!(
            read_object(b"[1]")
                .unwrap_err()
                .to_string()
                .contains("must be a JSON object")
        );
        assert!(
            read_object(b"{\"a\":")
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
        assert_eq!(read_object(br#"{"a": {"b": 1}}"#).unwrap().len(), 1);
    }

    #[test]
    fn only_utf8_json_is_accepted() {
        assert!(check_media_type(Some("application/json")).is_ok());
        assert!(check_media_type(Some("application/merge-patch+json; charset=UTF-8")).is_ok());
        assert!(check_media_type(Some("application/json; charset=latin1")).is_err());
        assert!(check_media_type(Some("text/plain")).is_err());
        assert!(check_media_type(None).is_err());
    }
}
