//! Building the application: state, routes, middleware, and serving it.

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Listener, TcpListener};
use poem::middleware::{CatchPanic, Cors, NormalizePath, TrailingSlash};
use poem::{Endpoint, EndpointExt, Route, Server};
use poem_openapi::OpenApiService;
use sea_orm::DatabaseConnection;

use crate::api::admin::AdminApi;
use crate::api::auth::AuthApi;
use crate::api::body::BodyLimit;
use crate::api::doctors::DoctorsApi;
use crate::api::mappings::MappingsApi;
use crate::api::ops::OpsApi;
use crate::api::patients::PatientsApi;
use crate::audit::{AuditLog, AuditMiddleware};
use crate::auth::Authenticator;
use crate::auth::password::PasswordHasherPool;
use crate::auth::tokens::JwtKeys;
use crate::config::Config;
use crate::error::ProblemCatchAll;
use crate::ratelimit::RateLimits;
use crate::store;
use crate::telemetry::RequestLog;

/// Everything a request handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub keys: JwtKeys,
    pub auth: Authenticator,
    pub hasher: PasswordHasherPool,
    pub limits: Arc<RateLimits>,
    pub audit: AuditLog,
    pub config: Arc<Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("password hasher: {0}")]
    Hasher(#[from] crate::auth::password::HashError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

impl AppState {
    /// Connects to the database, migrates it when configured to, and loads
    /// (or creates) the signing secret.
    pub async fn connect(config: Config) -> Result<Self, StartError> {
        let db = store::connect(
            &config.database_url,
            config.db_max_connections,
            Duration::from_secs(config.db_acquire_timeout),
        )
        .await?;
        if config.auto_migrate {
            store::migrate(&db).await?;
        }
        Self::with_db(config, db).await
    }

    pub async fn with_db(config: Config, db: DatabaseConnection) -> Result<Self, StartError> {
        let secret = match &config.jwt_secret {
            Some(secret) => secret.clone(),
            None => store::settings::jwt_secret(&db).await?,
        };
        let keys = JwtKeys::new(
            secret.as_bytes(),
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_ttl(),
            config.refresh_ttl(),
        );
        let hasher = PasswordHasherPool::new(config.hash_concurrency())?;
        Ok(Self {
            auth: Authenticator::new(keys.clone(), db.clone()),
            audit: AuditLog::start(db.clone()),
            limits: Arc::new(limits(&config)),
            db,
            keys,
            hasher,
            config: Arc::new(config),
        })
    }

    /// A state with no database, enough to describe the API (`healthcare openapi`).
    pub fn offline(config: Config) -> Result<Self, StartError> {
        let keys = JwtKeys::new(
            b"offline",
            "offline",
            "offline",
            config.access_ttl(),
            config.refresh_ttl(),
        );
        let db = DatabaseConnection::default();
        Ok(Self {
            auth: Authenticator::new(keys.clone(), db.clone()),
            audit: AuditLog::disabled(),
            limits: Arc::new(limits(&config)),
            db,
            keys,
            hasher: PasswordHasherPool::new(1)?,
            config: Arc::new(config),
        })
    }
}

fn limits(config: &Config) -> RateLimits {
    RateLimits::new(
        config.auth_rate_per_minute,
        config.login_attempts_per_hour,
        config.trusted_proxies.clone(),
    )
}

pub type Apis = (
    AuthApi,
    PatientsApi,
    DoctorsApi,
    MappingsApi,
    AdminApi,
    OpsApi,
);

const DESCRIPTION: &str = "\
Patients, doctors and their assignments, for clinic staff.

Log in with `POST /api/auth/login/` and send the access token as \
`Authorization: Bearer <token>` (in Swagger UI: **Authorize**). Every path \
works with and without a trailing slash. Every error is an RFC 9457 problem \
(`application/problem+json`) with `errors` keyed by field for invalid input. \
Lists are plain JSON arrays paginated with `limit`/`offset`, with \
`X-Total-Count` and RFC 8288 `Link` headers. Single resources carry an `ETag`; \
send it in `If-Match` on PUT, PATCH and DELETE to avoid overwriting someone \
else's change (412).";

pub fn api_service(state: &AppState) -> OpenApiService<Apis, ()> {
    let db = state.db.clone();
    OpenApiService::new(
        (
            AuthApi {
                state: state.clone(),
            },
            PatientsApi { db: db.clone() },
            DoctorsApi { db: db.clone() },
            MappingsApi { db: db.clone() },
            AdminApi {
                state: state.clone(),
            },
            OpsApi { db },
        ),
        "Healthcare API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .license(poem_openapi::LicenseObject::new("MIT"))
}

/// The methods each path template of the spec allows, for `Allow` on 405.
pub struct AllowedMethods {
    routes: Vec<PathTemplate>,
}

struct PathTemplate {
    /// `/api/patients/{id}`
    template: String,
    segments: Vec<String>,
    /// `GET, HEAD, PUT, PATCH, DELETE`
    allow: String,
}

impl AllowedMethods {
    pub fn from_spec(spec_json: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec_json).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            for (path, ops) in paths {
                let segments: Vec<String> = path
                    .trim_matches('/')
                    .split('/')
                    .map(str::to_string)
                    .collect();
                let mut methods: Vec<String> = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                routes.push(PathTemplate {
                    template: format!("/{}", segments.join("/")),
                    segments,
                    allow: methods.join(", "),
                });
            }
        }
        Self { routes }
    }

    fn find(&self, path: &str) -> Option<&PathTemplate> {
        let path = path.trim_matches('/');
        self.routes.iter().find(|route| {
            let mut parts = path.split('/');
            route.segments.iter().all(|t| {
                parts
                    .next()
                    .is_some_and(|p| (t.starts_with('{') && t.ends_with('}')) || t == p)
            }) && parts.next().is_none()
        })
    }

    pub fn allow_header(&self, path: &str) -> Option<&str> {
        self.find(path).map(|route| route.allow.as_str())
    }

    /// The spec's path template for a request path (`/api/patients/{id}`),
    /// so that metrics have one series per route, not per id.
    pub fn route_template(&self, path: &str) -> Option<&str> {
        self.find(path).map(|route| route.template.as_str())
    }
}

/// The whole application: API, docs, spec, with every middleware.
pub fn build_app(state: &AppState) -> impl Endpoint + 'static {
    crate::metrics::init();
    let api = api_service(state);
    let routes = Arc::new(AllowedMethods::from_spec(&api.spec()));
    let docs = api.swagger_ui();
    let spec_json = api.spec_endpoint();
    let spec_yaml = api.spec_endpoint_yaml();
    let cors = (!state.config.cors_allowed_origins.is_empty()).then(|| {
        state
            .config
            .cors_allowed_origins
            .iter()
            .fold(Cors::new(), |cors, origin| {
                cors.allow_origin(origin.as_str())
            })
            .allow_credentials(false)
            .expose_headers([
                "Location",
                "ETag",
                "X-Total-Count",
                "Link",
                "X-Request-Id",
                "Retry-After",
            ])
    });
    Route::new()
        .nest("/docs", docs)
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml)
        .nest("/", api)
        .data(state.auth.clone())
        .data(BodyLimit(
            usize::try_from(state.config.max_body_bytes).unwrap_or(65_536),
        ))
        .with(CatchPanic::new())
        .with(AuditMiddleware {
            log: state.audit.clone(),
            limits: state.limits.clone(),
        })
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .with(NormalizePath::new(TrailingSlash::Trim))
        .with(ProblemCatchAll::new(routes.clone()))
        .with(RequestLog { routes })
}

/// Serves until SIGINT/SIGTERM, then lets in-flight requests finish within
/// the configured grace period and closes the pool.
pub async fn serve(state: AppState) -> Result<(), StartError> {
    let addr = state.config.bind_addr;
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(%addr, "listening");
    run_until(state, acceptor, shutdown_signal()).await
}

/// Serves on `acceptor` until `shutdown` resolves; then stops accepting,
/// gives in-flight requests the grace period, flushes the audit trail and
/// closes the pool. Tests drive shutdown through `shutdown`.
pub async fn run_until<A>(
    state: AppState,
    acceptor: A,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), StartError>
where
    A: poem::listener::Acceptor + 'static,
{
    let grace = Duration::from_secs(state.config.shutdown_grace);
    let app = build_app(&state);
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown, Some(grace))
        .await?;
    tracing::info!("stopped accepting; flushing the audit trail and closing the database pool");
    state.audit.close().await;
    state.db.close().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
