//! The security schemes: a JWT access token sent as `Authorization: Bearer`,
//! described twice in the spec — as a plain Bearer scheme, and as an OAuth
//! 2.0 scheme with the `password` and `clientCredentials` flows of
//! `/api/auth/token`, so that Swagger UI's Authorize dialog can log in by
//! itself. Each operation declares the scope it needs on its `Auth`
//! parameter (`#[oai(scope = "Scope::PatientsRead")]`); that declaration,
//! read back through the route table, is what the token check enforces.

use poem::Request;
use poem::http::header;
use poem_openapi::auth::Bearer;
use poem_openapi::registry::{MetaOAuthScope, Registry};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions, OAuthScopes, SecurityScheme,
};

use super::audited::AuditNote;
use super::context::{RequestMeta, Shared};
use crate::auth::AuthError;
use crate::domain::{Actor, Principal, Scope};
use crate::error::ApiError;
use crate::store::Write;

impl OAuthScopes for Scope {
    fn meta() -> Vec<MetaOAuthScope> {
        Scope::ALL
            .into_iter()
            .map(|scope| MetaOAuthScope {
                name: scope.as_str(),
                description: Some(scope.description()),
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        self.as_str()
    }
}

/// A JWT access token from `POST /api/auth/login/` or `POST /api/auth/token`,
/// sent as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(rename = "BearerAuth", ty = "bearer", bearer_format = "JWT")]
#[allow(dead_code)]
struct BearerScheme(Bearer);

/// OAuth 2.0 (RFC 6749) at `/api/auth/token`: a person with their username
/// and password, or a service client with its id and secret. The token is
/// then sent as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(
    rename = "OAuth2",
    ty = "oauth2",
    flows(
        password(token_url = "/api/auth/token", scopes = "Scope"),
        client_credentials(token_url = "/api/auth/token", scopes = "Scope")
    )
)]
#[allow(dead_code)]
struct OAuth2Scheme(Bearer);

/// Who is calling, and what their changes are stamped with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub actor: Actor,
}

impl Caller {
    /// What a change by this caller records, answered with `status`.
    pub fn write(&self, status: u16) -> Write<'_> {
        Write {
            actor: &self.actor,
            status,
            claim: None,
        }
    }
}

fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !str::is_empty(t))
}

fn auth_error(err: AuthError) -> ApiError {
    match err {
        AuthError::Db(e) => ApiError::from_db("checking the user of a token", e),
        other => ApiError::invalid_token(other.to_string()),
    }
}

/// Checks the token and the scope the operation declares; `people_only`
/// refuses service clients' tokens.
async fn check(req: &Request, people_only: bool) -> Result<Caller, ApiError> {
    let shared = req.data::<Shared>().ok_or_else(|| {
        ApiError::internal(
            "authentication",
            "shared services missing from request data",
        )
    })?;
    let token = bearer_token(req)
        .ok_or_else(|| ApiError::unauthorized("Authentication credentials were not provided."))?;
    let principal = shared
        .authenticator
        .authenticate(token)
        .await
        .map_err(auth_error)?;
    tracing::Span::current().record("user_id", principal.user_id);
    if let Some(note) = req.extensions().get::<AuditNote>() {
        note.set_user(principal.user_id);
        if let Some(client) = principal.client_id {
            note.set_client(client);
        }
    }
    if people_only && principal.client_id.is_some() {
        return Err(ApiError::forbidden(
            "Service clients cannot do this: it needs a person's own session.",
        ));
    }
    let pattern = req.data::<poem::PathPattern>().map(|p| p.0.as_ref());
    let required = pattern.and_then(|p| shared.routes.scopes(req.method(), p));
    let Some(required) = required else {
        return Err(ApiError::internal(
            "authentication",
            format!("no route entry for {} {pattern:?}", req.method()),
        ));
    };
    if let Some(missing) = required.iter().find(|s| !principal.scopes.contains(**s)) {
        return Err(ApiError::insufficient_scope(missing.as_str()));
    }
    let meta = req
        .extensions()
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default();
    Ok(Caller {
        actor: Actor {
            user_id: Some(principal.user_id),
            client_id: principal.client_id,
            request_id: meta.request_id,
            ip: meta.ip.map(|ip| ip.to_string()),
        },
        principal,
    })
}

/// Declares both schemes on an operation and extracts the [`Caller`].
macro_rules! auth_extractor {
    ($(#[$doc:meta])* $name:ident, people_only = $people_only:expr) => {
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl<'a> ApiExtractor<'a> for $name {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <BearerScheme as ApiExtractor>::register(registry);
                <OAuth2Scheme as ApiExtractor>::register(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                let mut schemes = <BearerScheme as ApiExtractor>::security_schemes();
                schemes.extend(<OAuth2Scheme as ApiExtractor>::security_schemes());
                schemes
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut poem::RequestBody,
                _param_opts: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                Ok(Self(check(req, $people_only).await?))
            }
        }
    };
}

auth_extractor! {
    /// Any access token: a person's or a service client's.
    Auth, people_only = false
}

auth_extractor! {
    /// A person's own access token: service clients are refused (403).
    PersonAuth, people_only = true
}
