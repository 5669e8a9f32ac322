//! HS256 JWTs: issuing and verifying access and refresh tokens.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::Scopes;

/// Clock skew tolerated between instances when checking `exp` and `iat`.
const LEEWAY_SECS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub token_type: TokenType,
    /// Space-separated scopes; absent on tokens of a person's own session
    /// issued before scopes existed, which may do everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `iat` to the millisecond, so that a token issued in the same second
    /// as a deactivation, but before it, is told apart from one after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
    /// The service client the token was issued to, acting for `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<i64>,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }

    /// When the token was issued, in milliseconds since the epoch.
    pub fn issued_at_ms(&self) -> i64 {
        self.iat_ms.unwrap_or(self.iat.saturating_mul(1000))
    }

    /// What the token may do.
    pub fn scopes(&self) -> Scopes {
        match &self.scope {
            None => Scopes::ALL,
            Some(scope) => Scopes::parse(scope).unwrap_or(Scopes::NONE),
        }
    }
}

/// Who a token is for and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub user_id: i64,
    pub client_id: Option<i64>,
    pub scopes: Scopes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("Token has expired.")]
    Expired,
    #[error("Token is invalid.")]
    Invalid,
    #[error("Token has the wrong type.")]
    WrongType,
}

/// An issued token and what the server needs to remember about it.
pub struct Issued {
    pub token: String,
    pub jti: String,
    pub expires_at: chrono::DateTime<Utc>,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl JwtKeys {
    pub fn new(
        secret: &[u8],
        issuer: &str,
        audience: &str,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        // Only HS256 is accepted: `alg: none` and algorithm confusion fail here.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Issues a token of `token_type` for `grant`, valid for `ttl` (or the
    /// type's configured lifetime).
    pub fn issue(
        &self,
        grant: Grant,
        token_type: TokenType,
        ttl: Option<Duration>,
    ) -> Result<Issued, jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let ttl = ttl.unwrap_or(match token_type {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        });
        let expires_at =
            now + chrono::Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            sub: grant.user_id.to_string(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            jti: jti.clone(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            token_type,
            iat_ms: Some(now.timestamp_millis()),
            scope: Some(grant.scopes.to_string_list()),
            client_id: grant.client_id,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(Issued {
            token,
            jti,
            expires_at,
        })
    }

    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        if claims.token_type != expected {
            return Err(TokenError::WrongType);
        }
        if claims.user_id().is_none() || claims.iat > Utc::now().timestamp() + LEEWAY_SECS as i64 {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user_id: i64) -> Grant {
        Grant {
            user_id,
            client_id: None,
            scopes: Scopes::ALL,
        }
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "iss",
            "aud",
            Duration::from_secs(300),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn access_and_refresh_tokens_are_not_interchangeable() {
        let k = keys();
        let access = k.issue(grant(7), TokenType::Access, None).unwrap().token;
        let refresh = k.issue(grant(7), TokenType::Refresh, None).unwrap().token;
        assert_eq!(
            k.verify(&access, TokenType::Access).unwrap().user_id(),
            Some(7)
        );
        assert_eq!(
            k.verify(&access, TokenType::Refresh).unwrap_err(),
            TokenError::WrongType
        );
        assert_eq!(
            k.verify(&refresh, TokenType::Access).unwrap_err(),
            TokenError::WrongType
        );
    }

    #[test]
    fn tokens_for_another_audience_or_issuer_are_invalid() {
        let other = JwtKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "iss",
            "other",
            Duration::from_secs(300),
            Duration::from_secs(3600),
        );
        let token = other
            .issue(grant(1), TokenType::Access, None)
            .unwrap()
            .token;
        assert_eq!(
            keys().verify(&token, TokenType::Access).unwrap_err(),
            TokenError::Invalid
        );
    }
}
