//! Authentication: password hashing, JWTs and the Bearer security scheme.

pub mod password;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use sea_orm::DatabaseConnection;

use crate::error::ApiError;
use crate::store::users;
use tokens::{JwtKeys, TokenError, TokenType};

/// How long a user's active/staff status is trusted before it is read
/// again: deactivation and role changes take effect within this time on
/// every instance, at one indexed read per user per period.
const STATUS_TTL: Duration = Duration::from_secs(5);

/// Who is making the request, from a verified access token.
#[derive(Debug, Clone, Copy)]
pub struct Principal {
    pub user_id: i64,
    pub is_staff: bool,
}

#[derive(Debug, Clone, Copy)]
struct Status {
    active: bool,
    staff: bool,
}

/// Verifies access tokens and checks that their user is still active.
/// Cheap to clone (it is added to every request's data).
#[derive(Clone)]
pub struct Authenticator(Arc<Inner>);

struct Inner {
    keys: JwtKeys,
    db: DatabaseConnection,
    status: moka::future::Cache<i64, Option<Status>>,
}

impl Authenticator {
    pub fn new(keys: JwtKeys, db: DatabaseConnection) -> Self {
        Self(Arc::new(Inner {
            keys,
            db,
            status: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(STATUS_TTL)
                .build(),
        }))
    }

    /// Forgets what is cached about a user (after deactivation, say).
    pub async fn forget(&self, user_id: i64) {
        self.0.status.invalidate(&user_id).await;
    }

    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self
            .0
            .keys
            .verify(token, TokenType::Access)
            .map_err(|e| match e {
                TokenError::Expired => ApiError::invalid_token("The access token has expired."),
                TokenError::WrongType => ApiError::invalid_token("This is not an access token."),
                TokenError::Invalid => ApiError::invalid_token("The access token is invalid."),
            })?;
        let user_id = claims
            .user_id()
            .ok_or_else(|| ApiError::invalid_token("The access token is invalid."))?;
        let db = self.0.db.clone();
        let status = self
            .0
            .status
            .try_get_with(user_id, async move {
                users::find(&db, user_id).await.map(|u| {
                    u.map(|u| Status {
                        active: u.is_active,
                        staff: u.is_staff,
                    })
                })
            })
            .await
            .map_err(|e: Arc<sea_orm::DbErr>| {
                ApiError::from_db("checking the user of a token", (*e).clone())
            })?;
        match status {
            Some(Status {
                active: true,
                staff,
            }) => Ok(Principal {
                user_id,
                is_staff: staff,
            }),
            _ => Err(ApiError::invalid_token(
                "The user of this token is inactive or no longer exists.",
            )),
        }
    }
}

/// A JWT access token from `POST /api/auth/login/`, sent as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_access_token")]
pub struct BearerAuth(pub Principal);

async fn check_access_token(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let auth = req.data::<Authenticator>().ok_or_else(|| {
        ApiError::internal("authentication", "Authenticator missing from request data")
    })?;
    let principal = auth.authenticate(&bearer.token).await?;
    tracing::Span::current().record("user_id", principal.user_id);
    if let Some(slot) = req.data::<crate::audit::AuditContext>() {
        slot.set(principal.user_id);
    }
    Ok(principal)
}
