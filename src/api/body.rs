//! JSON request bodies, parsed field by field so that every invalid field is
//! reported by name (DRF style) instead of the first parse error only.

use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldErrors, Problem};

/// The largest body accepted, put in the request data by the app.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request type that knows how to read itself from a JSON object.
pub trait FromJson: Sized {
    fn from_json(fields: &mut Fields) -> Option<Self>;
}

/// A JSON request body of type `T`; its schema in the spec is `T`'s.
pub struct JsonBody<T>(pub T);

impl<T: Type + Send> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

fn is_json(content_type: &str) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|m| {
        m.type_() == "application"
            && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
    })
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
        if !request.content_type().is_some_and(is_json) {
            return Err(
                ApiError::UnsupportedMediaType(poem_openapi::payload::Json(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "The request body must be JSON (Content-Type: application/json).",
                )))
                .into(),
            );
        }
        let limit = request.data::<BodyLimit>().map_or(65_536, |l| l.0);
        let bytes = body
            .take()?
            .into_bytes_limit(limit)
            .await
            .map_err(|err| match err {
                poem::error::ReadBodyError::PayloadTooLarge => {
                    ApiError::PayloadTooLarge(poem_openapi::payload::Json(Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("The request body is larger than {limit} bytes."),
                    )))
                }
                _ => ApiError::bad_request("The request body could not be read."),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "The request body is empty; a JSON object is required.",
            )
            .into());
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
            ApiError::bad_request(format!(
                "The request body is not valid JSON (line {}, column {}).",
                err.line(),
                err.column()
            ))
        })?;
        let Value::Object(map) = value else {
            return Err(ApiError::bad_request("The request body must be a JSON object.").into());
        };
        let mut fields = Fields::new(map);
        let parsed = T::from_json(&mut fields);
        match (parsed, fields.finish()) {
            (Some(value), Ok(())) => Ok(JsonBody(value)),
            (_, Err(errors)) => Err(ApiError::invalid(errors).into()),
            (None, Ok(())) => Err(ApiError::bad_request("The request body is invalid.").into()),
        }
    }
}

/// Reads fields out of a JSON object, collecting one list of messages per
/// bad field. Fields not read are unknown unless declared read-only.
pub struct Fields {
    map: Map<String, Value>,
    errors: FieldErrors,
    ignored: &'static [&'static str],
}

const REQUIRED: &str = "This field is required.";
const NOT_NULL: &str = "This field may not be null.";
const BLANK: &str = "This field may not be blank.";

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: FieldErrors::new(),
            ignored: &[],
        }
    }

    /// Server-owned fields that a client may send back unchanged (GET, edit,
    /// PUT); they are ignored, never bound.
    pub fn ignore(&mut self, names: &'static [&'static str]) {
        self.ignored = names;
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    fn take(&mut self, field: &str, required: bool) -> Option<Value> {
        match self.map.remove(field) {
            None if required => {
                self.error(field, REQUIRED);
                None
            }
            None => None,
            Some(Value::Null) => {
                self.error(field, NOT_NULL);
                None
            }
            Some(v) => Some(v),
        }
    }

    fn as_string(&mut self, field: &str, value: Value, max_chars: usize) -> Option<String> {
        let Value::String(s) = value else {
            self.error(field, "Not a valid string.");
            return None;
        };
        let s = s.trim();
        if s.is_empty() {
            self.error(field, BLANK);
            return None;
        }
        if s.chars().count() > max_chars {
            self.error(
                field,
                format!("Ensure this field has no more than {max_chars} characters."),
            );
            return None;
        }
        if s.chars().any(char::is_control) {
            self.error(field, "Control characters are not allowed.");
            return None;
        }
        Some(s.to_string())
    }

    /// A required, trimmed, non-blank string of at most `max_chars` characters.
    pub fn string(&mut self, field: &str, max_chars: usize) -> Option<String> {
        let value = self.take(field, true)?;
        self.as_string(field, value, max_chars)
    }

    /// Like [`string`](Self::string), but absent is fine (merge patch).
    pub fn opt_string(&mut self, field: &str, max_chars: usize) -> Option<String> {
        let value = self.take(field, false)?;
        self.as_string(field, value, max_chars)
    }

    /// A string taken as-is (passwords: never trimmed or truncated).
    pub fn raw_string(&mut self, field: &str) -> Option<String> {
        match self.take(field, true)? {
            Value::String(s) if s.is_empty() => {
                self.error(field, BLANK);
                None
            }
            Value::String(s) => Some(s),
            _ => {
                self.error(field, "Not a valid string.");
                None
            }
        }
    }

    fn as_integer(&mut self, field: &str, value: Value, min: i64, max: i64) -> Option<i64> {
        let n = match &value {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        match n {
            None => {
                self.error(field, "A valid integer is required.");
                None
            }
            Some(n) if n < min || n > max => {
                self.error(field, format!("Must be between {min} and {max}."));
                None
            }
            Some(n) => Some(n),
        }
    }

    pub fn integer(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        let value = self.take(field, true)?;
        self.as_integer(field, value, min, max)
    }

    pub fn opt_integer(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        let value = self.take(field, false)?;
        self.as_integer(field, value, min, max)
    }

    fn as_choice<C: Copy>(
        &mut self,
        field: &str,
        value: Value,
        parse: fn(&str) -> Option<C>,
        names: &[&str],
    ) -> Option<C> {
        let parsed = value.as_str().and_then(|s| parse(s.trim()));
        if parsed.is_none() {
            let shown = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let shown: String = shown.chars().take(40).collect();
            self.error(
                field,
                format!(
                    "\"{shown}\" is not a valid choice. Choose one of: {}.",
                    names.join(", ")
                ),
            );
        }
        parsed
    }

    pub fn choice<C: Copy>(
        &mut self,
        field: &str,
        parse: fn(&str) -> Option<C>,
        names: &[&str],
    ) -> Option<C> {
        let value = self.take(field, true)?;
        self.as_choice(field, value, parse, names)
    }

    pub fn opt_choice<C: Copy>(
        &mut self,
        field: &str,
        parse: fn(&str) -> Option<C>,
        names: &[&str],
    ) -> Option<C> {
        let value = self.take(field, false)?;
        self.as_choice(field, value, parse, names)
    }

    /// Everything not read: read-only fields are dropped, anything else is an error.
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
