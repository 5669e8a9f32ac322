//! Who is asking, and with which rights.

use super::Invalid;

/// An OAuth 2.0 scope: the right to read or write one kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    PatientsRead,
    PatientsWrite,
    DoctorsRead,
    DoctorsWrite,
    MappingsRead,
    MappingsWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::PatientsRead,
        Scope::PatientsWrite,
        Scope::DoctorsRead,
        Scope::DoctorsWrite,
        Scope::MappingsRead,
        Scope::MappingsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PatientsRead => "patients:read",
            Scope::PatientsWrite => "patients:write",
            Scope::DoctorsRead => "doctors:read",
            Scope::DoctorsWrite => "doctors:write",
            Scope::MappingsRead => "mappings:read",
            Scope::MappingsWrite => "mappings:write",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Scope::PatientsRead => "Read the owner's patients and their history",
            Scope::PatientsWrite => "Create, change and delete the owner's patients",
            Scope::DoctorsRead => "Read the doctors directory",
            Scope::DoctorsWrite => "Add, change and delete doctors the owner created",
            Scope::MappingsRead => "Read which doctors are assigned to the owner's patients",
            Scope::MappingsWrite => "Assign and unassign doctors to the owner's patients",
        }
    }

    fn is_read(self) -> bool {
        matches!(
            self,
            Scope::PatientsRead | Scope::DoctorsRead | Scope::MappingsRead
        )
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Which scopes a shorthand stands for.
pub type Shorthand = fn(Scope) -> bool;

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    pub const ALL: Scopes = Scopes((1 << Scope::ALL.len()) - 1);
    /// Shorthands accepted wherever scopes are written: every read scope,
    /// every write scope.
    pub const SHORTHANDS: [(&'static str, Shorthand); 2] =
        [("*:read", Scope::is_read), ("*:write", |s| !s.is_read())];

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, scope: Scope) -> Self {
        Self(self.0 | scope.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// A space-separated list (RFC 6749 §3.3), shorthands allowed.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let mut scopes = Scopes::NONE;
        for word in raw.split(' ').filter(|w| !w.is_empty()) {
            if let Some(scope) = Scope::ALL.into_iter().find(|s| s.as_str() == word) {
                scopes = scopes.with(scope);
            } else if let Some((_, pick)) = Self::SHORTHANDS.iter().find(|(name, _)| *name == word)
            {
                for scope in Scope::ALL.into_iter().filter(|s| pick(*s)) {
                    scopes = scopes.with(scope);
                }
            } else {
                return Err(super::not_a_choice(word, &Scope::ALL.map(Scope::as_str)));
            }
        }
        Ok(scopes)
    }

    /// Space-separated, in a fixed order.
    pub fn to_string_list(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

/// The caller of a request, from a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub is_staff: bool,
    /// The service client acting for the user, when the token is a client's.
    pub client_id: Option<i64>,
    /// What the token may do; a person's own session may do everything.
    pub scopes: Scopes,
}

impl Principal {
    /// A person's own session: every scope.
    pub fn user(user_id: i64, is_staff: bool) -> Self {
        Self {
            user_id,
            is_staff,
            client_id: None,
            scopes: Scopes::ALL,
        }
    }

    /// Whose rows the caller sees: `None` for administrators (everyone's).
    pub fn owner_filter(&self) -> Option<i64> {
        (!self.is_staff).then_some(self.user_id)
    }

    /// Whether the caller may read or change records owned by `owner`.
    pub fn may_access(&self, owner: i64) -> bool {
        self.is_staff || owner == self.user_id
    }
}

/// Who did something, as the audit trail and the record history keep it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub client_id: Option<i64>,
    pub request_id: String,
    pub ip: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_names_and_shorthands_and_refuse_the_rest() {
        let s = Scopes::parse("patients:read  *:write").unwrap();
        assert!(s.contains(Scope::PatientsRead));
        assert!(!s.contains(Scope::DoctorsRead));
        assert!(s.contains(Scope::DoctorsWrite) && s.contains(Scope::MappingsWrite));
        assert_eq!(
            Scopes::parse("*:read *:write").unwrap(),
            Scopes::ALL,
            "the two shorthands cover every scope"
        );
        assert!(Scopes::parse("patients:delete").is_err());
        assert_eq!(Scopes::parse("").unwrap(), Scopes::NONE);
    }
}
