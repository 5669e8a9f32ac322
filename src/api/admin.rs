//! Administrator-only operations: users and the audit trail.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::{Done, User};
use super::{ApiTags, link_header, page};
use crate::audit::{self, Filter};
use crate::auth::{BearerAuth, Principal};
use crate::entity::audit_event;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::startup::AppState;
use crate::store::{refresh_tokens, users};

/// One recorded access to patient data, or a security event.
#[derive(Object, Debug, Clone)]
pub struct AuditEvent {
    #[oai(read_only)]
    pub id: i64,
    /// When it happened (UTC).
    pub at: DateTime<Utc>,
    /// The authenticated user, if any.
    pub actor: Option<i64>,
    /// `create`, `read`, `list`, `update`, `delete`, `login_success`, `login_failure` or `revoke`.
    pub action: String,
    /// `patient`, `mapping` or `user`.
    pub resource_type: String,
    /// The record concerned, when there is one.
    pub resource_id: Option<i64>,
    /// The HTTP status the request was answered with.
    pub status: i32,
    /// The client's IP address.
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
        /// RFC 8288 links to the next and previous pages.
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
        #[oai(header = "X-Total-Count")] u64,
        #[oai(header = "Link")] Option<String>,
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
    pub state: AppState,
}

impl AdminApi {
    async fn set_active(
        &self,
        auth: &BearerAuth,
        id: i64,
        active: bool,
    ) -> Result<UserOk, ApiError> {
        require_admin(&auth.0)?;
        let user = users::set_active(&self.state.db, id, active)
            .await?
            .ok_or_else(|| ApiError::not_found("User"))?;
        if !active {
            let revoked = refresh_tokens::revoke_user(&self.state.db, id).await?;
            tracing::info!(
                user_id = id,
                revoked,
                by = auth.0.user_id,
                "user deactivated; tokens revoked"
            );
        }
        self.state.auth.forget(id).await;
        Ok(UserOk::Ok(Json(user.into())))
    }
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users
    ///
    /// Every account, ordered by id. Administrators only (403 otherwise).
    #[oai(path = "/api/users", method = "get", operation_id = "list_users")]
    async fn list_users(
        &self,
        auth: BearerAuth,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Rows to skip (default 0; at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        offset: Query<Option<u64>>,
    ) -> Res<UserList, { AUTHED | BAD_REQUEST | FORBIDDEN }> {
        require_admin(&auth.0)?;
        let page = page(limit.0, offset.0)?;
        let listed = users::list(&self.state.db, page).await?;
        let link = link_header("/api/users/", &[], page, listed.total);
        let items = listed.items.into_iter().map(User::from).collect();
        Ok(UserList::Ok(Json(items), listed.total, link))
    }

    /// Deactivate a user
    ///
    /// The user can no longer log in or refresh, every refresh token of the
    /// user is revoked, and their access tokens stop working within 5
    /// seconds. Administrators only.
    #[oai(
        path = "/api/users/:id/deactivate",
        method = "post",
        operation_id = "deactivate_user"
    )]
    async fn deactivate(
        &self,
        auth: BearerAuth,
        /// The user's id.
        id: Path<i64>,
    ) -> Res<UserOk, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND }> {
        Ok(self.set_active(&auth, id.0, false).await?)
    }

    /// Reactivate a user
    ///
    /// Administrators only.
    #[oai(
        path = "/api/users/:id/activate",
        method = "post",
        operation_id = "activate_user"
    )]
    async fn activate(
        &self,
        auth: BearerAuth,
        /// The user's id.
        id: Path<i64>,
    ) -> Res<UserOk, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND }> {
        Ok(self.set_active(&auth, id.0, true).await?)
    }

    /// Revoke a user's refresh tokens
    ///
    /// Every session of the user must log in again once its access token
    /// expires. Administrators only.
    #[oai(
        path = "/api/users/:id/revoke-tokens",
        method = "post",
        operation_id = "revoke_user_tokens"
    )]
    async fn revoke_tokens(
        &self,
        auth: BearerAuth,
        /// The user's id.
        id: Path<i64>,
    ) -> Res<Done, { AUTHED | BAD_REQUEST | FORBIDDEN | NOT_FOUND }> {
        require_admin(&auth.0)?;
        if users::find(&self.state.db, id.0).await?.is_none() {
            return Err(ApiError::not_found("User").into());
        }
        let revoked = refresh_tokens::revoke_user(&self.state.db, id.0).await?;
        tracing::info!(
            user_id = id.0,
            revoked,
            by = auth.0.user_id,
            "tokens revoked by an administrator"
        );
        Ok(Done::NoContent)
    }

    /// Read the audit trail
    ///
    /// Every access to patient data and every security event, newest first.
    /// Administrators only. The trail is append-only: no operation changes
    /// or deletes it.
    #[oai(
        path = "/api/audit",
        method = "get",
        operation_id = "list_audit_events"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        auth: BearerAuth,
        /// Only events by this user id.
        actor: Query<Option<i64>>,
        /// Only events about this kind of resource (`patient`, `mapping`, `user`).
        resource_type: Query<Option<String>>,
        /// Only events about this record id.
        resource_id: Query<Option<i64>>,
        /// Only events at or after this time (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Only events before this time (RFC 3339).
        until: Query<Option<DateTime<Utc>>>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Rows to skip (default 0; at most 2^53 - 1).
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        offset: Query<Option<u64>>,
    ) -> Res<AuditList, { AUTHED | BAD_REQUEST | FORBIDDEN }> {
        require_admin(&auth.0)?;
        let page = page(limit.0, offset.0)?;
        // Reading the trail sees every event recorded before the request.
        self.state.audit.flush().await;
        let filter = Filter {
            actor: actor.0,
            resource_type: resource_type.0,
            resource_id: resource_id.0,
            since: since.0,
            until: until.0,
        };
        let listed = audit::list(&self.state.db, filter, page).await?;
        let link = link_header("/api/audit/", &[], page, listed.total);
        let items = listed.items.into_iter().map(AuditEvent::from).collect();
        Ok(AuditList::Ok(Json(items), listed.total, link))
    }
}
