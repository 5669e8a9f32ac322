//! What every request carries into the operations: its id and client
//! address, learnt by the app before any operation runs, and the shared
//! services the request-level extractors need (token checks, the route
//! table, the audit writer).

use std::net::IpAddr;
use std::sync::Arc;

use super::routes::RouteTable;
use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::store::accounts::Accounts;
use crate::store::limits::LimitBackend;

/// Sessions as this server runs them: accounts in the database, limits in
/// this process or shared through the database.
pub type Sessions = crate::auth::sessions::Sessions<Accounts, LimitBackend>;

/// The request's id (from a sane `X-Request-Id`, generated otherwise) and
/// the client's address (the peer, or what a trusted proxy reports).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: String,
    pub ip: Option<IpAddr>,
}

/// Services the extractors and the audit wrapper read from the request's
/// data (poem gives them no other way in), put there by the app.
#[derive(Clone)]
pub struct Shared {
    pub authenticator: Authenticator<Accounts>,
    pub routes: Arc<RouteTable>,
    pub audit: AuditLog,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
}
