//! Administrator-only operations: users and the audit trail. Service
//! clients cannot use them, even a client of an administrator.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;

use super::audited::*;
use super::auth::{Done, User, session_error};
use super::context::Sessions;
use super::params::{Path, QueryArg};
use super::schema::{Choice, choice_type};
use super::security::PersonAuth;
use super::{ApiTags, link_header, page};
use crate::domain::audit::Resource;
use crate::domain::{Limit, Offset, Principal};
use crate::entity::audit_event;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::audit::AuditFilter;
use crate::store::{self, users};

impl Choice for Resource {
    const ALL: &'static [Self] = &Resource::ALL;
    const COMPONENT: Option<(&'static str, &'static str)> = Some((
        "ResourceType",
        "The kind of record an audit event is about.",
    ));

    fn as_str(self) -> &'static str {
        Resource::as_str(self)
    }
}

choice_type!(Resource);

/// One recorded access to patient data, one change, or one security event.
#[derive(Object, Debug, Clone)]
pub struct AuditEvent {
    #[oai(read_only)]
    pub id: i64,
    /// When it happened (UTC).
    pub at: DateTime<Utc>,
    /// The authenticated user, if any.
    #[oai(skip_serializing_if_is_none)]
    pub actor: Option<i64>,
    /// The service client acting for the user, if any.
    #[oai(skip_serializing_if_is_none)]
    pub client: Option<i64>,
    /// What happened: `create`, `read`, `list`, `history`, `update`,
    /// `delete`, `restore`, `erase`, `register`, `login_success`,
    /// `login_failure`, `logout`, `refresh_reuse`, `password_change`,
    /// `password_change_failure`, `deactivate`, `activate`,
    /// `revoke_tokens`, `forbidden`, ...
    pub action: String,
    /// The kind of record concerned.
    pub resource_type: String,
    /// The record concerned, when there is one.
    #[oai(skip_serializing_if_is_none)]
    pub resource_id: Option<i64>,
    /// The HTTP status the request was answered with.
    pub status: i32,
    /// The client's IP address.
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: String,
}

impl From<audit_event::Model> for AuditEvent {
    fn from(row: audit_event::Model) -> Self {
        Self {
            id: row.id,
            at: row.at,
            actor: row.actor_id,
            client: row.client_id,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            status: row.status,
            ip: row.ip,
            request_id: row.request_id,
        }
    }
}

#[derive(ApiResponse)]
pub enum AuditList {
    /// One page of events, newest first.
    #[oai(status = 200)]
    Ok(
        Json<Vec<AuditEvent>>,
        /// Number of events matching the filters.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages, filters kept.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum UserList {
    /// One page of users, ordered by id.
    #[oai(status = 200)]
    Ok(
        Json<Vec<User>>,
        /// Number of users.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum UserOk {
    /// The user.
    #[oai(status = 200)]
    Ok(Json<User>),
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_staff {
        Ok(())
    } else {
        Err(ApiError::forbidden("Only administrators may do this."))
    }
}

pub struct AdminApi {
    pub db: DatabaseConnection,
    pub sessions: Arc<Sessions>,
}

impl AdminApi {
    async fn set_active(
        &self,
        auth: &PersonAuth,
        req: &Request,
        id: i64,
        active: bool,
    ) -> Result<UserOk, ApiError> {
        let principal = &auth.0.principal;
        require_admin(principal)?;
        let user = self
            .sessions
            .set_active(principal, id, active)
            .await
            .map_err(|e| session_error(e, req))?;
        Ok(UserOk::Ok(Json(user.into())))
    }
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users
    ///
    /// Every account, ordered by id. Administrators only (403 otherwise).
    #[oai(
        path = "/api/users",
        method = "get",
        operation_id = "list_users",
        transform = "audit_admin_read"
    )]
    async fn list_users(
        &self,
        auth: PersonAuth,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<UserList, { AUTHED | BAD_REQUEST | FORBIDDEN }> {
        require_admin(&auth.0.principal)?;
        let page = page(limit, offset);
        let listed = users::list(&self.db, page).await?;
        let link = link_header("/api/users/", &[], page, listed.total);
        let items = listed.items.into_iter().map(User::from).collect();
        Ok(UserList::Ok(Json(items), listed.total, link))
    }

    /// Deactivate a user
    ///
    /// Ends every session of the user: they can no longer log in or
    /// refresh, every refresh token is revoked, and access tokens issued
    /// before now stop working within 5 seconds and stay refused even if
    /// the user is reactivated. Refused with 409 for the last active
    /// administrator. Administrators only.
    #[oai(
        path = "/api/users/:id/deactivate",
        method = "post",
        operation_id = "deactivate_user",
        transform = "audit_deactivate"
    )]
    async fn deactivate(
        &self,
        auth: PersonAuth,
        req: &Request,
        /// The user's id.
        id: Path,
    ) -> Res<UserOk, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND | CONFLICT }> {
        Ok(self.set_active(&auth, req, id.0, false).await?)
    }

    /// Reactivate a user
    ///
    /// The user may log in again. Administrators only.
    #[oai(
        path = "/api/users/:id/activate",
        method = "post",
        operation_id = "activate_user",
        transform = "audit_activate"
    )]
    async fn activate(
        &self,
        auth: PersonAuth,
        req: &Request,
        /// The user's id.
        id: Path,
    ) -> Res<UserOk, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND }> {
        Ok(self.set_active(&auth, req, id.0, true).await?)
    }

    /// Revoke a user's refresh tokens
    ///
    /// Every session of the user must log in again once its access token
    /// expires. Administrators only.
    #[oai(
        path = "/api/users/:id/revoke-tokens",
        method = "post",
        operation_id = "revoke_user_tokens",
        transform = "audit_revoke_tokens"
    )]
    async fn revoke_tokens(
        &self,
        auth: PersonAuth,
        req: &Request,
        /// The user's id.
        id: Path,
    ) -> Res<Done, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND }> {
        let principal = &auth.0.principal;
        require_admin(principal)?;
        self.sessions
            .revoke_tokens(principal, id.0)
            .await
            .map_err(|e| session_error(e, req))?;
        Ok(Done::NoContent)
    }

    /// Read the audit trail
    ///
    /// Every access to patient data, every change and every security
    /// event, newest first. Administrators only. The trail is append-only:
    /// no operation changes or deletes it.
    #[oai(
        path = "/api/audit",
        method = "get",
        operation_id = "list_audit_events",
        transform = "audit_admin_read"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        auth: PersonAuth,
        /// Only events by this user id.
        actor: QueryArg<i64>,
        /// Only events about this kind of record.
        resource_type: QueryArg<Resource>,
        /// Only events about this record id.
        resource_id: QueryArg<i64>,
        /// Only events at or after this time (RFC 3339).
        since: QueryArg<DateTime<Utc>>,
        /// Only events before this time (RFC 3339).
        until: QueryArg<DateTime<Utc>>,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<AuditList, { AUTHED | BAD_REQUEST | FORBIDDEN }> {
        require_admin(&auth.0.principal)?;
        let page = page(limit, offset);
        let filter = AuditFilter {
            actor: actor.0,
            resource_type: resource_type.0,
            resource_id: resource_id.0,
            since: since.0,
            until: until.0,
        };
        let listed = store::audit::list(&self.db, &filter, page).await?;
        let link = link_header("/api/audit/", &filter.query_params(), page, listed.total);
        let items = listed.items.into_iter().map(AuditEvent::from).collect();
        Ok(AuditList::Ok(Json(items), listed.total, link))
    }
}
