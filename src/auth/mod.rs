//! Authentication: password hashing, JWTs and the Bearer security scheme.

pub mod password;
pub mod tokens;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::error::ApiError;
use tokens::{JwtKeys, TokenError, TokenType};

/// Who is making the request, from a verified access token.
#[derive(Debug, Clone, Copy)]
pub struct Principal {
    pub user_id: i64,
    pub is_staff: bool,
}

/// A JWT access token from `POST /api/auth/login/`, sent as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_access_token")]
pub struct BearerAuth(pub Principal);

async fn check_access_token(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let keys = req
        .data::<JwtKeys>()
        .ok_or_else(|| ApiError::internal("authentication", "JwtKeys missing from request data"))?;
    let claims = keys
        .verify(&bearer.token, TokenType::Access)
        .map_err(|e| match e {
            TokenError::Expired => ApiError::invalid_token("The access token has expired."),
            TokenError::WrongType => ApiError::invalid_token("This is not an access token."),
            TokenError::Invalid => ApiError::invalid_token("The access token is invalid."),
        })?;
    let user_id = claims
        .user_id()
        .ok_or_else(|| ApiError::invalid_token("The access token is invalid."))?;
    tracing::Span::current().record("user_id", user_id);
    Ok(Principal {
        user_id,
        is_staff: claims.staff,
    })
}
