//! What each operation records in the audit trail, declared on the
//! operation itself (`#[oai(..., transform = "audit_patient_read")]`), and
//! the wrapper that records it.
//!
//! - A disclosure (reads, lists, history) records every outcome; a success
//!   is answered only once its event is committed, and with 503 if it
//!   cannot be (nothing is disclosed unaudited).
//! - A change writes its success's event in its own transaction (with the
//!   record's new version, see `store::Write`); refusals and failures are
//!   recorded here.
//! - A security event (login, logout, password, account status) records
//!   every outcome under the action its status means.
//! - A refusal for lack of rights (403) is recorded as `forbidden`, whatever
//!   the operation (a doctor's update by someone else, an administrator
//!   route, a list of deleted records): one action finds every refused
//!   privileged attempt; its resource type and id say what it was about.
//!
//! The wrapper runs before the operation's parameters are read, so requests
//! refused for a bad token or bad input are recorded too.

use std::sync::{Arc, OnceLock};

use poem::{Endpoint, IntoResponse, Request, Response};

use super::context::{RequestMeta, Shared};
use crate::audit::AuditUnavailable;
use crate::domain::Actor;
use crate::domain::audit::{Action, Event, Resource};
use crate::error::ApiError;

/// How an operation is audited.
#[derive(Clone, Copy)]
pub enum Kind {
    Disclosure(Action),
    Change(Action),
    /// The action for the final status; `None`: nothing to record.
    Security(fn(u16) -> Option<Action>),
}

/// What the operation learnt that the wrapper cannot see: who the caller
/// is (set by the token check or the login), which record a new resource
/// is, or a more precise action.
#[derive(Clone, Default)]
pub struct AuditNote(Arc<NoteInner>);

#[derive(Default)]
struct NoteInner {
    user: OnceLock<i64>,
    client: OnceLock<i64>,
    resource_id: OnceLock<i64>,
    action: OnceLock<Action>,
}

impl AuditNote {
    pub fn set_user(&self, user_id: i64) {
        let _ = self.0.user.set(user_id);
    }

    pub fn set_client(&self, client_id: i64) {
        let _ = self.0.client.set(client_id);
    }

    pub fn set_resource(&self, id: i64) {
        let _ = self.0.resource_id.set(id);
    }

    /// Records `action` (committed before the response, like a
    /// disclosure) instead of what the declaration says.
    pub fn set_action(&self, action: Action) {
        let _ = self.0.action.set(action);
    }
}

/// The audit wrapper of one operation.
pub struct Audited<E> {
    inner: E,
    resource: Resource,
    kind: Kind,
}

impl<E> Audited<E> {
    pub fn new(inner: E, resource: Resource, kind: Kind) -> Self {
        Self {
            inner,
            resource,
            kind,
        }
    }
}

impl<E: Endpoint> Endpoint for Audited<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let note = AuditNote::default();
        req.extensions_mut().insert(note.clone());
        let meta = req.extensions().get::<RequestMeta>().cloned();
        let log = req.data::<Shared>().map(|shared| shared.audit.clone());
        // The record an operation is about is its first path parameter
        // (poem-openapi names path parameters by position).
        let path_id = req
            .raw_path_param("param0")
            .and_then(|id| id.parse::<i64>().ok());
        let resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        let status = resp.status().as_u16();
        let success = (200..300).contains(&status);
        let noted = note.0.action.get().copied();
        let (action, must_commit) = match (noted, self.kind) {
            (Some(action), _) => (Some(action), true),
            (None, _) if status == 403 => (Some(Action::Forbidden), false),
            (None, Kind::Disclosure(action)) => (Some(action), true),
            (None, Kind::Change(_)) if success => (None, false),
            (None, Kind::Change(action)) => (Some(action), false),
            (None, Kind::Security(for_status)) => (for_status(status), true),
        };
        let Some(action) = action else {
            return Ok(resp);
        };
        let meta = meta.unwrap_or_default();
        let event = Event {
            at: crate::store::now(),
            actor: Actor {
                user_id: note.0.user.get().copied(),
                client_id: note.0.client.get().copied(),
                request_id: meta.request_id,
                ip: meta.ip.map(|ip| ip.to_string()),
            },
            action,
            resource: self.resource,
            resource_id: note.0.resource_id.get().copied().or(path_id),
            status,
        };
        // No writer in the request data is a wiring bug: fail closed.
        let committed = match log {
            Some(log) => log.commit(event).await,
            None => Err(AuditUnavailable),
        };
        match committed {
            Ok(()) => Ok(resp),
            Err(unavailable) if must_commit && success => {
                tracing::error!(error = %unavailable, "answering 503: the access could not be audited");
                Ok(ApiError::unavailable_because(
                    "The audit trail is unavailable, so nothing can be disclosed. Try again shortly.",
                )
                .into_response())
            }
            Err(unavailable) => {
                tracing::error!(error = %unavailable, status, "a refused request could not be audited");
                Ok(resp)
            }
        }
    }
}

/// Declares audit wrappers for `transform = "..."`.
macro_rules! declare {
    ($($name:ident => $resource:ident, $kind:expr;)*) => {$(
        pub fn $name<E: Endpoint + 'static>(ep: E) -> Audited<E> {
            Audited::new(ep, Resource::$resource, $kind)
        }
    )*};
}

/// An administrator's change of an account: every outcome of an
/// authenticated attempt (a 409 for the last administrator included), a 403
/// as `forbidden`.
fn admin_change(action: Action) -> impl Fn(u16) -> Option<Action> {
    move |status| match status {
        401 => None,
        403 => Some(Action::Forbidden),
        _ => Some(action),
    }
}

declare! {
    audit_patient_create => Patient, Kind::Change(Action::Create);
    audit_patient_list => Patient, Kind::Disclosure(Action::List);
    audit_patient_read => Patient, Kind::Disclosure(Action::Read);
    audit_patient_update => Patient, Kind::Change(Action::Update);
    audit_patient_delete => Patient, Kind::Change(Action::Delete);
    audit_patient_restore => Patient, Kind::Change(Action::Restore);
    audit_patient_erase => Patient, Kind::Change(Action::Erase);
    audit_patient_history => Patient, Kind::Disclosure(Action::History);
    audit_doctor_create => Doctor, Kind::Change(Action::Create);
    audit_doctor_update => Doctor, Kind::Change(Action::Update);
    audit_doctor_delete => Doctor, Kind::Change(Action::Delete);
    audit_doctor_restore => Doctor, Kind::Change(Action::Restore);
    audit_doctor_history => Doctor, Kind::Disclosure(Action::History);
    audit_mapping_create => Mapping, Kind::Change(Action::Create);
    audit_mapping_list => Mapping, Kind::Disclosure(Action::List);
    audit_mapping_delete => Mapping, Kind::Change(Action::Delete);
    audit_register => User, Kind::Security(|s| (200..300).contains(&s).then_some(Action::Register));
    audit_login => User, Kind::Security(|s| match s {
        200..=299 => Some(Action::LoginSuccess),
        401 | 429 => Some(Action::LoginFailure),
        _ => None,
    });
    audit_refresh => User, Kind::Security(|_| None);
    audit_logout => User, Kind::Security(|s| (200..300).contains(&s).then_some(Action::Logout));
    audit_password => User, Kind::Security(|s| match s {
        200..=299 => Some(Action::PasswordChange),
        400 | 401 | 429 => Some(Action::PasswordChangeFailure),
        _ => None,
    });
    audit_deactivate => User, Kind::Security(|s| admin_change(Action::Deactivate)(s));
    audit_activate => User, Kind::Security(|s| admin_change(Action::Activate)(s));
    audit_revoke_tokens => User, Kind::Security(|s| admin_change(Action::RevokeTokens)(s));
    audit_admin_read => User, Kind::Security(|s| (s == 403).then_some(Action::Forbidden));
    audit_client_create => Client, Kind::Security(|s| (200..300).contains(&s).then_some(Action::Create));
    audit_client_rotate => Client, Kind::Security(|s| (200..300).contains(&s).then_some(Action::RotateSecret));
    audit_client_disable => Client, Kind::Security(|s| (200..300).contains(&s).then_some(Action::Disable));
    audit_client_delete => Client, Kind::Security(|s| (200..300).contains(&s).then_some(Action::Delete));
    audit_token => User, Kind::Security(|s| match s {
        200..=299 => Some(Action::TokenIssued),
        400 | 401 | 429 => Some(Action::TokenRefused),
        _ => None,
    });
    // The feed tells which patients changed, when and by whom: a listing.
    audit_events_read => Patient, Kind::Disclosure(Action::List);
    audit_webhook_create => Webhook, Kind::Security(|s| webhook_change(Action::Create)(s));
    audit_webhook_update => Webhook, Kind::Security(|s| webhook_change(Action::Update)(s));
    audit_webhook_delete => Webhook, Kind::Security(|s| webhook_change(Action::Delete)(s));
    audit_webhook_rotate => Webhook, Kind::Security(|s| webhook_change(Action::RotateSecret)(s));
}

/// A change of a webhook subscription (where data is sent, with which
/// secret): its success, and a refusal for lack of rights.
fn webhook_change(action: Action) -> impl Fn(u16) -> Option<Action> {
    move |status| match status {
        200..=299 => Some(action),
        403 => Some(Action::Forbidden),
        _ => None,
    }
}
