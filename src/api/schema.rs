//! How each domain value reads from a request and how the spec describes
//! it. Both come from the value's own rule (its `parse`, its constants and,
//! for text, the character predicates of `domain::text`), so the spec cannot
//! drift from what the server checks.

use std::borrow::Cow;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

use crate::domain::text::{self, is_allowed, is_space, is_visible};
use crate::domain::{
    Age, ClientName, DoctorName, Email, Gender, IdempotencyKey, Invalid, Limit, LoginName,
    NewPassword, Offset, PatientName, Scope, Scopes, Search, Specialization, Username,
};

/// A value read from a request: a JSON body field, or a query, path or
/// header parameter.
pub trait Input: Sized + Send {
    /// The value's schema: type, bounds, pattern.
    fn schema() -> MetaSchema;

    /// Where the spec finds that schema: inline, or a named component that
    /// [`register`](Self::register) adds (so that generated clients share
    /// one type for it).
    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(Self::schema()))
    }

    fn register(_registry: &mut poem_openapi::registry::Registry) {}

    /// From a field of a JSON body.
    fn from_json(value: Value) -> Result<Self, Invalid>;

    /// From the text of a query, path or header parameter.
    fn from_text(text: &str) -> Result<Self, Invalid>;
}

const NOT_A_STRING: &str = "Not a valid string.";
const NOT_AN_INTEGER: &str = "A valid integer is required.";

fn json_string(value: Value) -> Result<String, Invalid> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(Invalid::new(NOT_A_STRING)),
    }
}

/// An integral JSON number (`30` or `30.0`), as an `i64`.
fn json_integer(value: &Value) -> Result<i64, Invalid> {
    let invalid = || Invalid::new(NOT_AN_INTEGER);
    let Value::Number(n) = value else {
        return Err(invalid());
    };
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .ok_or_else(invalid)
}

fn text_integer(text: &str) -> Result<i64, Invalid> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| Invalid::new(NOT_AN_INTEGER))
}

/// A bounded integer's value, or a message saying which numbers to send
/// (never the type it is read into).
fn integer_between(
    parsed: Result<i64, Invalid>,
    min: impl std::fmt::Display,
    max: impl std::fmt::Display,
) -> Result<i64, Invalid> {
    parsed.map_err(|_| {
        Invalid::new(format!(
            "A valid integer is required: a whole number from {min} to {max}."
        ))
    })
}

/// `[...]` matching exactly the Basic Multilingual Plane characters for
/// which `keep` holds, as an ECMA-262 class (`\uXXXX` escapes).
fn class_of(keep: impl Fn(char) -> bool) -> String {
    let mut class = String::from("[");
    let mut run: Option<(u32, u32)> = None;
    let close = |class: &mut String, (lo, hi): (u32, u32)| {
        if lo == hi {
            class.push_str(&format!("\\u{lo:04X}"));
        } else {
            class.push_str(&format!("\\u{lo:04X}-\\u{hi:04X}"));
        }
    };
    for code in 0..=0xFFFF_u32 {
        let hit = char::from_u32(code).is_some_and(&keep);
        run = match (run, hit) {
            (Some((lo, hi)), true) if hi + 1 == code => Some((lo, code)),
            (Some(done), true) => {
                close(&mut class, done);
                Some((code, code))
            }
            (None, true) => Some((code, code)),
            (Some(done), false) => {
                close(&mut class, done);
                None
            }
            (None, false) => None,
        };
    }
    if let Some(done) = run {
        close(&mut class, done);
    }
    class.push(']');
    class
}

/// The pattern of [`text::check`] for `max_chars`: optional surrounding
/// whitespace around 1 to `max_chars` allowed characters that start and end
/// visible. (Characters beyond the BMP are all allowed and visible.)
pub fn text_pattern(max_chars: usize) -> String {
    let space = class_of(is_space);
    // The complements, written as negated classes, so that characters beyond
    // the BMP (which the rule allows) match too.
    let visible = class_of(|c| !is_visible(c)).replacen('[', "[^", 1);
    let allowed = class_of(|c| !is_allowed(c)).replacen('[', "[^", 1);
    let middle = match max_chars {
        0 | 1 => String::new(),
        n => format!("(?:{allowed}{{0,{}}}{visible})?", n - 2),
    };
    format!("^{space}*{visible}{middle}{space}*$")
}

fn text_schema(max_chars: usize) -> MetaSchema {
    MetaSchema {
        min_length: Some(1),
        pattern: Some(text_pattern(max_chars)),
        ..MetaSchema::new("string")
    }
}

/// Implements [`Input`] for a text value of `domain` (see `text_value!`).
macro_rules! text_input {
    ($($ty:ty),*) => {$(
        impl Input for $ty {
            fn schema() -> MetaSchema {
                text_schema(<$ty>::MAX_CHARS)
            }

            fn from_json(value: Value) -> Result<Self, Invalid> {
                Self::parse(&json_string(value)?)
            }

            fn from_text(text: &str) -> Result<Self, Invalid> {
                Self::parse(text)
            }
        }
    )*};
}

text_input!(
    PatientName,
    DoctorName,
    Specialization,
    LoginName,
    ClientName
);

impl Input for Age {
    fn schema() -> MetaSchema {
        MetaSchema {
            minimum: Some(f64::from(Age::MIN)),
            maximum: Some(f64::from(Age::MAX)),
            ..MetaSchema::new_with_format("integer", "int32")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Age::new(integer_between(json_integer(&value), Age::MIN, Age::MAX)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Age::new(integer_between(text_integer(text), Age::MIN, Age::MAX)?)
    }
}

/// An allow-listed choice: the spec lists the values, the parse refuses others.
pub trait Choice: Sized + Copy + Send + Sync + 'static {
    const ALL: &'static [Self];
    /// The spec's component for this choice, with its description, when it
    /// has one (see [`choice_type!`]); inline otherwise.
    const COMPONENT: Option<(&'static str, &'static str)> = None;

    fn as_str(self) -> &'static str;
}

impl<C: Choice> Input for C {
    fn schema() -> MetaSchema {
        MetaSchema {
            enum_items: C::ALL.iter().map(|c| Value::from(c.as_str())).collect(),
            ..MetaSchema::new("string")
        }
    }

    fn schema_ref() -> MetaSchemaRef {
        match C::COMPONENT {
            Some((name, _)) => MetaSchemaRef::Reference(name.to_string()),
            None => MetaSchemaRef::Inline(Box::new(Self::schema())),
        }
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        if let Some((name, description)) = C::COMPONENT {
            registry.create_schema::<C, _>(name.to_string(), |_| MetaSchema {
                description: Some(description),
                ..Self::schema()
            });
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        match value {
            Value::String(s) => Self::from_text(&s),
            other => Err(crate::domain::not_a_choice(
                &other.to_string(),
                &C::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            )),
        }
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        let text = text.trim();
        C::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| {
                crate::domain::not_a_choice(
                    text,
                    &C::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                )
            })
    }
}

impl Choice for Gender {
    const ALL: &'static [Self] = &Gender::ALL;
    const COMPONENT: Option<(&'static str, &'static str)> = Some((
        "Gender",
        "Administrative gender (FHIR): `Male`, `Female`, `Other` or `Unknown`.",
    ));

    fn as_str(self) -> &'static str {
        Gender::as_str(self)
    }
}

/// A description built once from constants (the spec wants `&'static str`).
fn described(
    cell: &'static OnceLock<String>,
    text: impl FnOnce() -> String,
) -> Option<&'static str> {
    Some(cell.get_or_init(text).as_str())
}

impl Input for Limit {
    fn schema() -> MetaSchema {
        static DOC: OnceLock<String> = OnceLock::new();
        MetaSchema {
            description: described(&DOC, || {
                format!(
                    "Page size, {} to {} (default {}).",
                    Limit::MIN,
                    Limit::MAX,
                    Limit::DEFAULT.get()
                )
            }),
            minimum: Some(Limit::MIN as f64),
            maximum: Some(Limit::MAX as f64),
            default: Some(Value::from(Limit::DEFAULT.get())),
            ..MetaSchema::new_with_format("integer", "int64")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        let n = integer_between(json_integer(&value), Limit::MIN, Limit::MAX)?;
        Limit::new(u64::try_from(n).unwrap_or(0))
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        let n = integer_between(text_integer(text), Limit::MIN, Limit::MAX)?;
        Limit::new(u64::try_from(n).unwrap_or(0))
    }
}

impl Input for Offset {
    fn schema() -> MetaSchema {
        MetaSchema {
            description: Some("Rows to skip (default 0; at most 10^15)."),
            minimum: Some(0.0),
            maximum: Some(Offset::MAX as f64),
            default: Some(Value::from(0)),
            ..MetaSchema::new_with_format("integer", "int64")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Self::from_i64(integer_between(json_integer(&value), 0, Offset::MAX)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Self::from_i64(integer_between(text_integer(text), 0, Offset::MAX)?)
    }
}

impl Offset {
    fn from_i64(n: i64) -> Result<Self, Invalid> {
        Offset::new(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

/// A search term; blank means "no filter".
impl<const MAX: usize> Input for Option<Search<MAX>> {
    fn schema() -> MetaSchema {
        MetaSchema {
            max_length: None,
            pattern: Some(format!(
                "^{}*$",
                class_of(|c| c.is_control()).replacen('[', "[^", 1)
            )),
            ..MetaSchema::new("string")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Search::parse(&json_string(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Search::parse(text)
    }
}

/// A record id in a body or a filter.
impl Input for i64 {
    fn schema() -> MetaSchema {
        MetaSchema::new_with_format("integer", "int64")
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        json_integer(&value)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        text_integer(text)
    }
}

/// The id of an existing record, sent in a body: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId(pub i64);

impl Input for RecordId {
    fn schema() -> MetaSchema {
        MetaSchema {
            minimum: Some(1.0),
            ..MetaSchema::new_with_format("integer", "int64")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        match json_integer(&value)? {
            n if n >= 1 => Ok(Self(n)),
            _ => Err(Invalid::new("Must be a positive integer.")),
        }
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Self::from_json(Value::from(text_integer(text)?))
    }
}

impl Input for DateTime<Utc> {
    fn schema() -> MetaSchema {
        MetaSchema::new_with_format("string", "date-time")
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Self::from_text(&json_string(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                Invalid::new(
                    "Enter a date and time in RFC 3339 format, such as 2026-11-29T08:00:00Z.",
                )
            })
    }
}

impl Input for bool {
    fn schema() -> MetaSchema {
        MetaSchema::new("boolean")
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        value
            .as_bool()
            .ok_or_else(|| Invalid::new("Must be true or false."))
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Invalid::new("Must be true or false.")),
        }
    }
}

impl Input for Username {
    fn schema() -> MetaSchema {
        let space = class_of(is_space);
        MetaSchema {
            min_length: Some(1),
            // `\w` as Unicode-aware engines read it: letters, digits, `_`.
            // The rule also normalises (NFKC) and refuses mixed scripts,
            // which no pattern can say.
            pattern: Some(format!(
                "^{space}*[\\w.@+-]{{1,{}}}{space}*$",
                Username::MAX_CHARS
            )),
            ..MetaSchema::new("string")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Username::parse(&json_string(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Username::parse(text)
    }
}

impl Input for Email {
    fn schema() -> MetaSchema {
        MetaSchema {
            min_length: Some(1),
            ..MetaSchema::new_with_format("string", "email")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Email::parse(&json_string(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Email::parse(text)
    }
}

/// The spec's pattern of a scope list: the names and shorthands
/// `Scopes::parse` knows, separated by spaces, at least one.
fn scopes_pattern() -> String {
    let words: Vec<String> = Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(Scopes::SHORTHANDS.iter().map(|(name, _)| *name))
        .map(|w| w.replace('*', "\\*"))
        .collect();
    let word = format!("(?:{})", words.join("|"));
    format!("^ *{word}(?: +{word})* *$")
}

/// A list of scopes to grant: at least one.
impl Input for Scopes {
    fn schema() -> MetaSchema {
        static PATTERN: OnceLock<String> = OnceLock::new();
        MetaSchema {
            description: Some(
                "Space-separated scopes: patients:read patients:write doctors:read doctors:write \
                 mappings:read mappings:write (`*:read` and `*:write` stand for every read or \
                 write scope).",
            ),
            pattern: Some(PATTERN.get_or_init(scopes_pattern).clone()),
            ..MetaSchema::new("string")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Self::from_text(&json_string(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        match Scopes::parse(text)? {
            scopes if scopes.is_empty() => Err(Invalid::new("Give at least one scope.")),
            scopes => Ok(scopes),
        }
    }
}

impl Input for IdempotencyKey {
    fn schema() -> MetaSchema {
        static DOC: OnceLock<String> = OnceLock::new();
        MetaSchema {
            description: described(&DOC, || {
                format!(
                    "A unique key for this request (a UUID, say), 1 to {} printable ASCII \
                     characters; quoted or not. Sending the same request again with the same key \
                     within 24 hours replays the first response instead of repeating the change \
                     (`Idempotent-Replayed: true`); a different request with the same key is a 422, \
                     a retry while the first is still running a 409.",
                    IdempotencyKey::MAX_CHARS
                )
            }),
            pattern: Some({
                let key = format!(
                    "{}{{1,{}}}",
                    class_of(IdempotencyKey::is_key_char),
                    IdempotencyKey::MAX_CHARS
                );
                format!("^(?:\"{key}\"|{key})$")
            }),
            ..MetaSchema::new("string")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        IdempotencyKey::parse(&json_string(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        IdempotencyKey::parse(text)
    }
}

/// A password as typed: never trimmed, never empty.
pub struct Secret(pub String);

impl Input for Secret {
    fn schema() -> MetaSchema {
        MetaSchema {
            min_length: Some(1),
            ..MetaSchema::new_with_format("string", "password")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        match json_string(value)? {
            s if s.is_empty() => Err(Invalid::new(text::BLANK)),
            s => Ok(Self(s)),
        }
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Self::from_json(Value::from(text))
    }
}

/// A new password as typed; its strength is checked against the account
/// (see [`NewPassword`]), its length here and there alike.
pub struct NewSecret(pub String);

impl Input for NewSecret {
    fn schema() -> MetaSchema {
        MetaSchema {
            min_length: Some(NewPassword::MIN_CHARS),
            max_length: Some(NewPassword::MAX_CHARS),
            ..MetaSchema::new_with_format("string", "password")
        }
    }

    fn from_json(value: Value) -> Result<Self, Invalid> {
        Secret::from_json(value).map(|s| Self(s.0))
    }

    fn from_text(text: &str) -> Result<Self, Invalid> {
        Secret::from_text(text).map(|s| Self(s.0))
    }
}

/// A stored text field in a response: at most `MAX` characters (the rule
/// it was accepted under), described as such.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<const MAX: usize>(pub String);

impl<const MAX: usize> serde::Serialize for Text<MAX> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<const MAX: usize> Type for Text<MAX> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        format!("string(max {MAX})").into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            min_length: Some(1),
            max_length: Some(MAX),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<const MAX: usize> ParseFromJSON for Text<MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) if s.chars().count() <= MAX => Ok(Self(s)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<const MAX: usize> ToJSON for Text<MAX> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A choice type in responses too (its `Type`, `ToJSON`, `Serialize`),
/// described by the component its [`Choice`] names.
macro_rules! choice_type {
    ($ty:ty) => {
        impl poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                match <Self as $crate::api::schema::Choice>::COMPONENT {
                    Some((name, _)) => name.into(),
                    None => "string(enum)".into(),
                }
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                <Self as $crate::api::schema::Input>::schema_ref()
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <Self as $crate::api::schema::Input>::register(registry);
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }

        impl poem_openapi::types::ParseFromJSON for $ty {
            fn parse_from_json(
                value: Option<serde_json::Value>,
            ) -> poem_openapi::types::ParseResult<Self> {
                <Self as $crate::api::schema::Input>::from_json(value.unwrap_or_default())
                    .map_err(poem_openapi::types::ParseError::custom)
            }
        }

        impl poem_openapi::types::ToJSON for $ty {
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(serde_json::Value::from(
                    $crate::api::schema::Choice::as_str(*self),
                ))
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($crate::api::schema::Choice::as_str(*self))
            }
        }
    };
}
pub(crate) use choice_type;

/// `Age` in a response: an integer within the same bounds.
impl Type for Age {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "integer(age)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(<Self as Input>::schema()))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for Age {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        <Self as Input>::from_json(value.unwrap_or_default()).map_err(ParseError::custom)
    }
}

impl ToJSON for Age {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.years()))
    }
}

impl serde::Serialize for Age {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(self.years())
    }
}

choice_type!(Gender);

#[cfg(test)]
mod tests {
    use super::*;

    /// The ECMA pattern in Rust regex syntax (`\uXXXX` → `\x{XXXX}`).
    fn rust_regex(pattern: &str) -> regex::Regex {
        let converted = regex::Regex::new(r"\\u([0-9A-F]{4})")
            .unwrap()
            .replace_all(pattern, r"\x{$1}");
        regex::Regex::new(&converted).unwrap()
    }

    #[test]
    fn the_text_pattern_accepts_exactly_what_the_rule_accepts() {
        let max = 5;
        let re = rust_regex(&text_pattern(max));
        let pieces = [
            "a", "é", " ", "\t", "\n", "\u{200B}", "\u{200D}", "\u{FEFF}", "\u{202E}", "\u{0}",
            "\u{85}", "\u{A0}", "\u{3000}", "😀", "-", "\\", "]",
        ];
        // Every string of up to 7 pieces from a small alphabet of the
        // interesting classes, lengths around the bound included.
        let mut checked = 0;
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            let rule = text::check(&s, max).is_ok();
            assert_eq!(re.is_match(&s), rule, "{s:?}: pattern and rule disagree");
            checked += 1;
            if s.chars().count() < 7 {
                for p in pieces.iter().filter(|_| checked < 400_000) {
                    stack.push(format!("{s}{p}"));
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    #[test]
    fn the_spec_bound_is_the_domain_constant() {
        let schema = <PatientName as Input>::schema();
        let pattern = schema.pattern.unwrap();
        assert!(
            pattern.contains(&format!("{{0,{}}}", PatientName::MAX_CHARS - 2)),
            "{pattern}"
        );
    }
}
