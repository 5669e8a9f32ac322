//! The change feed's and webhooks' vocabulary: event types, what a webhook
//! sends, and the bounds of a feed request.

use super::Invalid;
use super::audit::Resource;

/// What happened to which kind of record: `patient.updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    PatientCreated,
    PatientUpdated,
    PatientDeleted,
    PatientRestored,
    DoctorCreated,
    DoctorUpdated,
    DoctorDeleted,
    DoctorRestored,
    MappingCreated,
    MappingDeleted,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::PatientCreated,
        EventType::PatientUpdated,
        EventType::PatientDeleted,
        EventType::PatientRestored,
        EventType::DoctorCreated,
        EventType::DoctorUpdated,
        EventType::DoctorDeleted,
        EventType::DoctorRestored,
        EventType::MappingCreated,
        EventType::MappingDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PatientCreated => "patient.created",
            EventType::PatientUpdated => "patient.updated",
            EventType::PatientDeleted => "patient.deleted",
            EventType::PatientRestored => "patient.restored",
            EventType::DoctorCreated => "doctor.created",
            EventType::DoctorUpdated => "doctor.updated",
            EventType::DoctorDeleted => "doctor.deleted",
            EventType::DoctorRestored => "doctor.restored",
            EventType::MappingCreated => "mapping.created",
            EventType::MappingDeleted => "mapping.deleted",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| super::not_a_choice(raw, &Self::ALL.map(Self::as_str)))
    }

    /// The event of a stored version (`resource`, `change` as
    /// `record_versions` keeps them); a version imported when history
    /// began is its record's creation.
    pub fn of_version(resource: &str, change: &str) -> Option<Self> {
        let change = if change == "imported" {
            "created"
        } else {
            change
        };
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().split_once('.') == Some((resource, change)))
    }

    pub fn resource(self) -> Resource {
        match self.as_str().split_once('.').map(|(r, _)| r) {
            Some("patient") => Resource::Patient,
            Some("doctor") => Resource::Doctor,
            _ => Resource::Mapping,
        }
    }
}

/// Event types a subscription asks for: at least one, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes(Vec<EventType>);

impl EventTypes {
    pub fn new(mut types: Vec<EventType>) -> Result<Self, Invalid> {
        types.sort();
        types.dedup();
        if types.is_empty() {
            return Err(Invalid::new("Name at least one event type."));
        }
        Ok(Self(types))
    }

    /// As stored: comma-separated. Unknown names (none are written) are skipped.
    pub fn from_stored(stored: &str) -> Self {
        Self(
            stored
                .split(',')
                .filter_map(|t| EventType::parse(t).ok())
                .collect(),
        )
    }

    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn contains(&self, t: EventType) -> bool {
        self.0.contains(&t)
    }

    pub fn iter(&self) -> impl Iterator<Item = EventType> + '_ {
        self.0.iter().copied()
    }
}

/// What a webhook message carries: the event only (the default: nothing
/// about a patient leaves unless asked for), or the record too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadMode {
    #[default]
    IdOnly,
    Full,
}

impl PayloadMode {
    pub const ALL: [PayloadMode; 2] = [PayloadMode::IdOnly, PayloadMode::Full];

    pub fn as_str(self) -> &'static str {
        match self {
            PayloadMode::IdOnly => "id-only",
            PayloadMode::Full => "full",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }
}

/// How many events one feed page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedLimit(u64);

impl FeedLimit {
    pub const MAX: u64 = 1000;
    pub const DEFAULT: u64 = 100;

    pub fn new(n: i64) -> Result<Self, Invalid> {
        match u64::try_from(n) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(Invalid::new(format!(
                "Must be between 1 and {}.",
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl Default for FeedLimit {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// How long a feed request may wait for a new event, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitSeconds(u64);

impl WaitSeconds {
    pub const MAX: u64 = 30;

    pub fn new(n: i64) -> Result<Self, Invalid> {
        match u64::try_from(n) {
            Ok(n) if n <= Self::MAX => Ok(Self(n)),
            _ => Err(Invalid::new(format!(
                "Must be between 0 and {}.",
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_event_types_and_imports_are_creations() {
        assert_eq!(
            EventType::of_version("patient", "imported"),
            Some(EventType::PatientCreated)
        );
        assert_eq!(
            EventType::of_version("mapping", "deleted"),
            Some(EventType::MappingDeleted)
        );
        assert_eq!(EventType::of_version("mapping", "updated"), None);
        assert_eq!(EventType::MappingCreated.resource(), Resource::Mapping);
        assert!(EventType::parse("patient.exploded").is_err());
    }

    #[test]
    fn event_types_are_stored_sorted_once() {
        let types = EventTypes::new(vec![
            EventType::DoctorCreated,
            EventType::PatientCreated,
            EventType::DoctorCreated,
        ])
        .unwrap();
        assert_eq!(types.to_stored(), "patient.created,doctor.created");
        assert_eq!(EventTypes::from_stored(&types.to_stored()), types);
        assert!(EventTypes::new(vec![]).is_err());
    }
}
