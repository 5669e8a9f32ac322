//! What the audit trail records: who did what to which record, when, and
//! how it ended.

use chrono::{DateTime, Utc};

use super::Actor;

/// The kind of record an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Patient,
    Doctor,
    Mapping,
    User,
    Client,
    Webhook,
}

impl Resource {
    pub const ALL: [Resource; 6] = [
        Resource::Patient,
        Resource::Doctor,
        Resource::Mapping,
        Resource::User,
        Resource::Client,
        Resource::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Patient => "patient",
            Resource::Doctor => "doctor",
            Resource::Mapping => "mapping",
            Resource::User => "user",
            Resource::Client => "client",
            Resource::Webhook => "webhook",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Read,
    List,
    History,
    Update,
    Delete,
    Restore,
    Erase,
    Register,
    LoginSuccess,
    LoginFailure,
    Logout,
    /// A rotated refresh token was presented again: its family is revoked.
    RefreshReuse,
    PasswordChange,
    PasswordChangeFailure,
    Deactivate,
    Activate,
    RevokeTokens,
    /// An authenticated request refused for lack of rights (403).
    Forbidden,
    /// A service client's secret was rotated, or the client disabled.
    RotateSecret,
    Disable,
    /// A token issued at the OAuth token endpoint.
    TokenIssued,
    TokenRefused,
}

impl Action {
    pub const ALL: [Action; 23] = [
        Action::Create,
        Action::Read,
        Action::List,
        Action::History,
        Action::Update,
        Action::Delete,
        Action::Restore,
        Action::Erase,
        Action::Register,
        Action::LoginSuccess,
        Action::LoginFailure,
        Action::Logout,
        Action::RefreshReuse,
        Action::PasswordChange,
        Action::PasswordChangeFailure,
        Action::Deactivate,
        Action::Activate,
        Action::RevokeTokens,
        Action::Forbidden,
        Action::RotateSecret,
        Action::Disable,
        Action::TokenIssued,
        Action::TokenRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::List => "list",
            Action::History => "history",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Restore => "restore",
            Action::Erase => "erase",
            Action::Register => "register",
            Action::LoginSuccess => "login_success",
            Action::LoginFailure => "login_failure",
            Action::Logout => "logout",
            Action::RefreshReuse => "refresh_reuse",
            Action::PasswordChange => "password_change",
            Action::PasswordChangeFailure => "password_change_failure",
            Action::Deactivate => "deactivate",
            Action::Activate => "activate",
            Action::RevokeTokens => "revoke_tokens",
            Action::Forbidden => "forbidden",
            Action::RotateSecret => "rotate_secret",
            Action::Disable => "disable",
            Action::TokenIssued => "token_issued",
            Action::TokenRefused => "token_refused",
        }
    }
}

/// One audit event, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: Action,
    pub resource: Resource,
    pub resource_id: Option<i64>,
    /// The HTTP status the request was answered with.
    pub status: u16,
}

/// How a version of a record came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    Created,
    Updated,
    Deleted,
    Restored,
    /// The record existed before versions were kept.
    Imported,
}

impl Change {
    pub const ALL: [Change; 5] = [
        Change::Created,
        Change::Updated,
        Change::Deleted,
        Change::Restored,
        Change::Imported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
            Change::Restored => "restored",
            Change::Imported => "imported",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The audit action a change is recorded as.
    pub fn action(self) -> Action {
        match self {
            Change::Created | Change::Imported => Action::Create,
            Change::Updated => Action::Update,
            Change::Deleted => Action::Delete,
            Change::Restored => Action::Restore,
        }
    }
}
