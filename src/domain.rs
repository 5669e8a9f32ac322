//! Validated values: once one of these exists, it is valid. The API layer
//! builds them from request bodies; the store layer only accepts them.

use poem_openapi::Enum;

/// Administrative gender, as FHIR defines it (capitalised as in the original API).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

/// `Serialize` for a [`Gender`] field: its name, as its `ToJSON` writes it.
pub fn serialize_gender<S: serde::Serializer>(
    gender: &Gender,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(gender.as_str())
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

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

pub const PATIENT_NAME_MAX: usize = 200;
pub const AGE_MAX: i64 = 150;
pub const DOCTOR_NAME_MAX: usize = 200;
pub const SPECIALIZATION_MAX: usize = 100;
pub const USERNAME_MAX: usize = 150;
pub const EMAIL_MAX: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientFields {
    pub name: String,
    pub age: i32,
    pub gender: Gender,
}

/// A partial change to a patient (JSON merge patch): `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientChanges {
    pub name: Option<String>,
    pub age: Option<i32>,
    pub gender: Option<Gender>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorFields {
    pub name: String,
    pub specialization: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorChanges {
    pub name: Option<String>,
    pub specialization: Option<String>,
}

/// Letters, digits and `@.+-_`, 1 to 150 characters (Django's rule).
pub fn check_username(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("This field may not be blank.".into());
    }
    if s.chars().count() > USERNAME_MAX {
        return Err(format!(
            "Ensure this field has no more than {USERNAME_MAX} characters."
        ));
    }
    if !s
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
    {
        return Err("Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.".into());
    }
    Ok(())
}

pub fn check_email(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("This field may not be blank.".into());
    }
    if s.chars().count() > EMAIL_MAX {
        return Err(format!(
            "Ensure this field has no more than {EMAIL_MAX} characters."
        ));
    }
    // email_address follows RFC 5322; also require a dot-separated domain as
    // every deliverable address has.
    let valid = email_address::EmailAddress::parse_with_options(
        s,
        email_address::Options::default().without_display_text(),
    )
    .ok()
    .is_some_and(|e| e.domain().contains('.') && !e.domain().starts_with('['));
    if valid {
        Ok(())
    } else {
        Err("Enter a valid email address.".into())
    }
}

/// The key that makes usernames and emails unique case-insensitively.
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}
