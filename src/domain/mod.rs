//! Validated values and who is asking. Each rule (a length, a range, a
//! character class, a normalisation) is written once, here: the runtime
//! check is the value's `parse`, and the OpenAPI schema of the value is
//! derived from the same constants and predicates (`api::schema`). A value
//! has private fields and can only be built through `parse`, so once one
//! exists it is valid. Nothing here knows about HTTP or the database.

pub mod account;
pub mod audit;
pub mod events;
pub mod page;
pub mod principal;
pub mod text;

pub use account::{Email, NewPassword, Username};
pub use page::{Limit, Offset, Page};
pub use principal::{Actor, Principal, Scope, Scopes};

use text::text_value;

/// Why a value was refused: one sentence for the client, naming no
/// internal type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }

    pub fn into_message(self) -> String {
        self.0
    }
}

text_value! {
    /// A patient's full name.
    PatientName, max = 200
}

text_value! {
    /// A doctor's full name.
    DoctorName, max = 200
}

text_value! {
    /// A doctor's medical specialty.
    Specialization, max = 100
}

text_value! {
    /// A service client's name, for its owner to recognise it by.
    ClientName, max = 100
}

text_value! {
    /// A username as typed at login: not checked against the username rule
    /// (an unknown name must cost what a known one does), only bounded.
    LoginName, max = account::Username::MAX_CHARS
}

/// Age in years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Age(i32);

impl Age {
    pub const MIN: i32 = 0;
    pub const MAX: i32 = 150;

    pub fn new(years: i64) -> Result<Self, Invalid> {
        match i32::try_from(years) {
            Ok(years) if (Self::MIN..=Self::MAX).contains(&years) => Ok(Self(years)),
            _ => Err(Invalid::new(format!(
                "Must be between {} and {}.",
                Self::MIN,
                Self::MAX
            ))),
        }
    }

    /// An age as stored: always in range, but a row written by hand outside
    /// it is shown at the nearest bound rather than failing the read.
    pub fn clamped(years: i32) -> Self {
        Self(years.clamp(Self::MIN, Self::MAX))
    }

    pub fn years(self) -> i32 {
        self.0
    }
}

/// Administrative gender, as FHIR defines it (capitalised as in the original API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub const ALL: [Gender; 4] = [Gender::Male, Gender::Female, Gender::Other, Gender::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "Male",
            Gender::Female => "Female",
            Gender::Other => "Other",
            Gender::Unknown => "Unknown",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == raw)
            .ok_or_else(|| not_a_choice(raw, Self::ALL.map(Gender::as_str).as_slice()))
    }
}

/// The message for a value outside an allow-list, showing a bounded,
/// printable excerpt of what was sent.
pub fn not_a_choice(raw: &str, choices: &[&str]) -> Invalid {
    let shown: String = raw
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    Invalid::new(format!(
        "\"{shown}\" is not a valid choice. Choose one of: {}.",
        choices.join(", ")
    ))
}

/// Text to look for in a list (a query-string filter): trimmed, at most
/// `MAX` characters, no control characters (a NUL would end the pattern on
/// SQLite and break the query on PostgreSQL). Blank means "no filter".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search<const MAX: usize>(String);

impl<const MAX: usize> Search<MAX> {
    pub const MAX_CHARS: usize = MAX;

    /// `None` when `raw` is blank.
    pub fn parse(raw: &str) -> Result<Option<Self>, Invalid> {
        let term = raw.trim();
        if term.chars().any(char::is_control) {
            return Err(Invalid::new("Control characters are not allowed."));
        }
        if term.chars().count() > MAX {
            return Err(Invalid::new(format!(
                "Ensure this value has no more than {MAX} characters."
            )));
        }
        Ok((!term.is_empty()).then(|| Self(term.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A patient or doctor name search (case-insensitive substring).
pub type NameSearch = Search<{ PatientName::MAX_CHARS }>;
/// A specialisation filter (case-insensitive, exact).
pub type SpecializationSearch = Search<{ Specialization::MAX_CHARS }>;

/// An `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): 1 to
/// 255 printable ASCII characters (space included, `"` excluded), sent bare
/// or as a quoted string (the quotes are not part of the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 255;

    /// Whether `c` may appear in a key.
    pub fn is_key_char(c: char) -> bool {
        (' '..='~').contains(&c) && c != '"'
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let key = raw
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .unwrap_or(raw);
        if key.is_empty() {
            return Err(Invalid::new("The key may not be blank."));
        }
        if key.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "The key must have at most {} characters.",
                Self::MAX_CHARS
            )));
        }
        if !key.chars().all(Self::is_key_char) {
            return Err(Invalid::new(
                "The key may hold only printable ASCII characters other than `\"`.",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key that makes names searchable case-insensitively on every database.
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_outside_the_range_are_refused() {
        assert_eq!(Age::new(0).unwrap().years(), 0);
        assert_eq!(Age::new(150).unwrap().years(), 150);
        assert!(Age::new(-1).is_err());
        assert!(Age::new(151).is_err());
        assert!(Age::new(i64::from(i32::MAX) + 1).is_err());
    }

    #[test]
    fn genders_are_the_four_fhir_codes() {
        assert_eq!(Gender::parse(" Female ").unwrap(), Gender::Female);
        let err = Gender::parse("female").unwrap_err();
        assert!(
            err.message().contains("Male, Female, Other, Unknown"),
            "{err}"
        );
    }

    #[test]
    fn searches_refuse_nul_and_treat_blank_as_absent() {
        assert!(NameSearch::parse("\0").is_err());
        assert!(NameSearch::parse("a\0zzz").is_err());
        assert_eq!(NameSearch::parse("  ").unwrap(), None);
        assert_eq!(NameSearch::parse(" al ").unwrap().unwrap().as_str(), "al");
    }
}
