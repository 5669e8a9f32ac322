//! `/api/clients/`: service clients, the credentials an integration uses at
//! the OAuth token endpoint to act for the user who created them, with
//! narrowed scopes. Only a person's own session manages clients (a client's
//! token cannot create, rotate or even list clients). Administrators list,
//! read and disable anyone's clients, but never see or set a secret: only
//! the owner rotates or deletes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::audited::*;
use super::auth::Done;
use super::body::{JsonBody, input};
use super::context::Sessions;
use super::params::{Path, QueryArg};
use super::security::{Caller, PersonAuth};
use super::{ApiTags, link_header, page};
use crate::auth::Subject;
use crate::auth::clients::new_secret;
use crate::domain::{ClientName, Limit, Offset, Scopes};
use crate::entity::service_client;
use crate::error::status::*;
use crate::error::{ApiError, Res};
use crate::store::clients;

/// A service client (its secret is never shown again after creation or
/// rotation).
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct ServiceClient {
    /// The client's id in this API's URLs.
    #[oai(read_only)]
    pub id: i64,
    /// The OAuth 2.0 `client_id` to send to the token endpoint.
    pub client_id: String,
    /// What the owner calls it.
    pub name: String,
    /// The scopes it may be granted, space-separated.
    pub scopes: String,
    /// The user it acts for.
    pub owner: i64,
    pub created_at: DateTime<Utc>,
    /// When it was disabled; absent while it is active.
    #[oai(skip_serializing_if_is_none)]
    pub disabled_at: Option<DateTime<Utc>>,
}

impl Example for ServiceClient {
    fn example() -> Self {
        Self {
            id: 3,
            client_id: "3".into(),
            name: "Nightly billing sync".into(),
            scopes: "patients:read mappings:read".into(),
            owner: 1,
            created_at: DateTime::<Utc>::from_timestamp(1_764_000_000, 0).unwrap_or_default(),
            disabled_at: None,
        }
    }
}

impl From<service_client::Model> for ServiceClient {
    fn from(row: service_client::Model) -> Self {
        Self {
            id: row.id,
            client_id: row.id.to_string(),
            name: row.name,
            scopes: row.scopes,
            owner: row.owner_id,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        }
    }
}

/// A service client with its secret, shown this once.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct ClientCredentials {
    #[oai(read_only)]
    pub id: i64,
    /// The OAuth 2.0 `client_id` to send to the token endpoint.
    pub client_id: String,
    /// The OAuth 2.0 `client_secret`: 256 random bits. Shown only now; the
    /// server keeps only a hash of it. Rotate it if it is lost.
    pub client_secret: String,
    pub name: String,
    /// The scopes it may be granted, space-separated.
    pub scopes: String,
    /// The user it acts for.
    pub owner: i64,
    pub created_at: DateTime<Utc>,
}

impl Example for ClientCredentials {
    fn example() -> Self {
        let client = ServiceClient::example();
        Self {
            id: client.id,
            client_id: client.client_id,
            client_secret: "hcs_x3YbN0kq9Zc1mW7pQ2rT5vL8aE4dG6hJ0sU1iO3nB5f".into(),
            name: client.name,
            scopes: client.scopes,
            owner: client.owner,
            created_at: client.created_at,
        }
    }
}

fn with_secret(row: service_client::Model, client_secret: String) -> ClientCredentials {
    let client = ServiceClient::from(row);
    ClientCredentials {
        id: client.id,
        client_id: client.client_id,
        client_secret,
        name: client.name,
        scopes: client.scopes,
        owner: client.owner,
        created_at: client.created_at,
    }
}

input! {
    /// A new service client.
    pub struct ClientInput ignoring &[], example json!({"name": "Nightly billing sync", "scopes": "patients:read mappings:read"}) => {
        /// What you call it (surrounding whitespace is trimmed).
        required name: ClientName,
        /// What it may do, space-separated (at least one scope); it can
        /// never do more than you.
        required scopes: Scopes,
    }
}

#[derive(ApiResponse)]
pub enum ClientCreated {
    /// The new client with its secret, shown this once.
    #[oai(status = 201)]
    Created(
        Json<ClientCredentials>,
        /// URL of the new client.
        #[oai(header = "Location")]
        String,
        /// Never cache a secret.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum SecretRotated {
    /// The client with its new secret, shown this once.
    #[oai(status = 200)]
    Ok(
        Json<ClientCredentials>,
        /// Never cache a secret.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum ClientList {
    /// One page of clients, oldest first.
    #[oai(status = 200)]
    Ok(
        Json<Vec<ServiceClient>>,
        /// Number of clients.
        #[oai(header = "X-Total-Count")]
        u64,
        /// RFC 8288 links to the next and previous pages.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum ClientOk {
    /// The client.
    #[oai(status = 200)]
    Ok(Json<ServiceClient>),
}

const NO_STORE: &str = "no-store";

pub struct ClientsApi {
    pub db: DatabaseConnection,
    pub sessions: Arc<Sessions>,
}

impl ClientsApi {
    /// The client `caller` may see, or 404.
    async fn visible(&self, caller: &Caller, id: i64) -> Result<service_client::Model, ApiError> {
        clients::visible(&self.db, &caller.principal, id)
            .await?
            .ok_or_else(|| ApiError::not_found("Client"))
    }

    /// The client, when `caller` owns it: an administrator may see and
    /// disable anyone's, but a secret is only ever its owner's.
    async fn owned(&self, caller: &Caller, id: i64) -> Result<service_client::Model, ApiError> {
        let client = self.visible(caller, id).await?;
        if client.owner_id != caller.principal.user_id {
            return Err(ApiError::forbidden(
                "Only the client's owner may do this; administrators may disable it.",
            ));
        }
        Ok(client)
    }

    /// Refuses the client's tokens on this instance now (the others within
    /// the status cache's few seconds).
    async fn forget(&self, id: i64) {
        self.sessions
            .authenticator()
            .forget(Subject::Client(id))
            .await;
    }
}

#[OpenApi(tag = "ApiTags::Clients")]
impl ClientsApi {
    /// Create a service client
    ///
    /// Creates credentials for an integration that acts for you at the
    /// OAuth 2.0 token endpoint (`POST /api/auth/token`, grant
    /// `client_credentials`), limited to `scopes`. The answer holds the
    /// `client_secret`, shown this once (only a hash is kept). Needs your
    /// own session: a service client cannot create clients.
    #[oai(
        path = "/api/clients",
        method = "post",
        operation_id = "create_client",
        transform = "audit_client_create"
    )]
    async fn create(
        &self,
        auth: PersonAuth,
        req: &Request,
        body: JsonBody<ClientInput>,
    ) -> Res<ClientCreated, { AUTHED | BODY }> {
        let caller = auth.0;
        let input = body.0;
        let (secret, hash) = new_secret();
        let row = clients::create(
            &self.db,
            caller.principal.user_id,
            &input.name,
            input.scopes,
            hash,
        )
        .await?;
        if let Some(note) = req.extensions().get::<AuditNote>() {
            note.set_resource(row.id);
        }
        let location = format!("/api/clients/{}/", row.id);
        Ok(ClientCreated::Created(
            Json(with_secret(row, secret)),
            location,
            NO_STORE.into(),
        ))
    }

    /// List service clients
    ///
    /// Your clients (everyone's for administrators), oldest first; deleted
    /// ones are gone, disabled ones show `disabled_at`. Secrets are never
    /// listed.
    #[oai(path = "/api/clients", method = "get", operation_id = "list_clients")]
    async fn list(
        &self,
        auth: PersonAuth,
        limit: QueryArg<Limit>,
        offset: QueryArg<Offset>,
    ) -> Res<ClientList, { AUTHED | BAD_REQUEST }> {
        let page = page(limit, offset);
        let listed = clients::list(&self.db, &auth.0.principal, page).await?;
        let link = link_header("/api/clients/", &[], page, listed.total);
        let items = listed.items.into_iter().map(ServiceClient::from).collect();
        Ok(ClientList::Ok(Json(items), listed.total, link))
    }

    /// Read a service client
    ///
    /// One of your clients (anyone's for administrators); 404 otherwise.
    #[oai(path = "/api/clients/:id", method = "get", operation_id = "get_client")]
    async fn get(
        &self,
        auth: PersonAuth,
        /// The client's id.
        id: Path,
    ) -> Res<ClientOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let client = self.visible(&auth.0, id.0).await?;
        Ok(ClientOk::Ok(Json(client.into())))
    }

    /// Rotate a client's secret
    ///
    /// Issues a new secret, shown this once. The old secret stops working
    /// at once, and so does every token issued before (within 5 seconds on
    /// other instances): the integration gets a new token with the new
    /// secret. Only the owner may rotate (403 for an administrator).
    #[oai(
        path = "/api/clients/:id/secret",
        method = "post",
        operation_id = "rotate_client_secret",
        transform = "audit_client_rotate"
    )]
    async fn rotate(
        &self,
        auth: PersonAuth,
        /// The client's id.
        id: Path,
    ) -> Res<SecretRotated, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let client = self.owned(&auth.0, id.0).await?;
        let (secret, hash) = new_secret();
        let row = clients::rotate_secret(&self.db, client.id, hash)
            .await?
            .ok_or_else(|| ApiError::not_found("Client"))?;
        self.forget(row.id).await;
        Ok(SecretRotated::Ok(
            Json(with_secret(row, secret)),
            NO_STORE.into(),
        ))
    }

    /// Disable a service client
    ///
    /// For good: its secret is refused and every token it holds stops
    /// working (within 5 seconds on other instances). The owner or an
    /// administrator may disable it; disabling it again changes nothing.
    #[oai(
        path = "/api/clients/:id/disable",
        method = "post",
        operation_id = "disable_client",
        transform = "audit_client_disable"
    )]
    async fn disable(
        &self,
        auth: PersonAuth,
        /// The client's id.
        id: Path,
    ) -> Res<ClientOk, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let client = self.visible(&auth.0, id.0).await?;
        let row = clients::disable(&self.db, client.id)
            .await?
            .ok_or_else(|| ApiError::not_found("Client"))?;
        self.forget(row.id).await;
        Ok(ClientOk::Ok(Json(row.into())))
    }

    /// Delete a service client
    ///
    /// Like disabling, and the client is no longer listed. Only the owner
    /// may delete (403 for an administrator, who may disable it instead).
    #[oai(
        path = "/api/clients/:id",
        method = "delete",
        operation_id = "delete_client",
        transform = "audit_client_delete"
    )]
    async fn delete(
        &self,
        auth: PersonAuth,
        /// The client's id.
        id: Path,
    ) -> Res<Done, { AUTHED | BAD_REQUEST | NOT_FOUND }> {
        let client = self.owned(&auth.0, id.0).await?;
        if !clients::delete(&self.db, client.id).await? {
            return Err(ApiError::not_found("Client").into());
        }
        self.forget(client.id).await;
        Ok(Done::NoContent)
    }
}
