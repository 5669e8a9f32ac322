//! The application: state, the one route table, the middleware in order,
//! and serving it.

pub mod cors;
pub mod observe;
pub mod problems;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Listener, TcpListener};
use poem::middleware::{CatchPanic, NormalizePath, TrailingSlash};
use poem::{Endpoint, EndpointExt, Route, Server};
use poem_openapi::{OpenApi, OpenApiService};
use sea_orm::DatabaseConnection;

use crate::api::admin::AdminApi;
use crate::api::auth::AuthApi;
use crate::api::clients::ClientsApi;
use crate::api::context::{Sessions, Shared};
use crate::api::doctors::DoctorsApi;
use crate::api::events::EventsApi;
use crate::api::mappings::MappingsApi;
use crate::api::oauth::OAuthApi;
use crate::api::ops::OpsApi;
use crate::api::patients::PatientsApi;
use crate::api::routes::RouteTable;
use crate::api::webhooks::WebhooksApi;
use crate::audit::AuditLog;
use crate::auth::limits::{Limits, MemoryLimits};
use crate::auth::password::PasswordHasherPool;
use crate::auth::sessions::Policy;
use crate::auth::tokens::JwtKeys;
use crate::config::Config;
use crate::domain::account::Strength;
use crate::store;
use crate::store::accounts::Accounts;
use crate::store::limits::LimitBackend;
use cors::CorsPolicy;
use observe::Observe;
use problems::ProblemCatchAll;

/// Everything the operations need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub sessions: Arc<Sessions>,
    pub audit: AuditLog,
    pub config: Arc<Config>,
    /// The change feed and webhook delivery.
    pub webhooks: crate::webhooks::Engine,
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
    #[error("{0}")]
    Config(String),
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
        let webhooks = crate::webhooks::Engine::new(db.clone(), &config, secret.as_bytes());
        webhooks.start().map_err(StartError::Config)?;
        Ok(Self {
            sessions: Arc::new(sessions(&config, db.clone(), keys, hasher)?),
            audit: AuditLog::start(db.clone()),
            webhooks,
            db,
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
        let hasher = PasswordHasherPool::new(1)?;
        let webhooks = crate::webhooks::Engine::new(db.clone(), &config, b"offline");
        Ok(Self {
            sessions: Arc::new(sessions(&config, db.clone(), keys, hasher)?),
            audit: AuditLog::disabled(),
            webhooks,
            db,
            config: Arc::new(config),
        })
    }
}

fn sessions(
    config: &Config,
    db: DatabaseConnection,
    keys: JwtKeys,
    hasher: PasswordHasherPool,
) -> Result<Sessions, StartError> {
    let limits = Limits::new(
        LimitBackend::Memory(MemoryLimits::default()),
        config.auth_rate_per_minute,
        config.login_attempts_per_hour,
    );
    let password_strength = Strength::new(config.password_min_strength)
        .ok_or_else(|| StartError::Config("PASSWORD_MIN_STRENGTH must be 0 to 4".into()))?;
    Ok(Sessions::new(
        Accounts(db),
        keys,
        hasher,
        Arc::new(limits),
        Policy {
            rotate_refresh_tokens: config.rotate_refresh_tokens,
            password_strength,
        },
    ))
}

pub type Apis = (
    AuthApi,
    OAuthApi,
    ClientsApi,
    PatientsApi,
    DoctorsApi,
    MappingsApi,
    EventsApi,
    WebhooksApi,
    AdminApi,
    OpsApi,
);

const DESCRIPTION: &str = "\
Patients, doctors and their assignments, for clinic staff.

Log in with `POST /api/auth/login/` and send the access token as \
`Authorization: Bearer <token>` (in Swagger UI: **Authorize**, with a \
username and password, or a service client's id and secret, through the \
OAuth 2.0 token endpoint `POST /api/auth/token`). Every path works with and \
without a trailing slash. Every error is an RFC 9457 problem \
(`application/problem+json`) with `errors` keyed by field for invalid input. \
JSON request bodies are strict: unknown fields (other than the record's \
read-only ones) and repeated keys are refused. Lists are plain JSON arrays \
paginated with `limit`/`offset`, with `X-Total-Count` and RFC 8288 `Link` \
headers. Single resources carry an `ETag`; send it in `If-Match` on PUT, \
PATCH and DELETE to avoid overwriting someone else's change (412). POST and \
PATCH accept an `Idempotency-Key` so that a retry never repeats a change.";

pub fn api_service(state: &AppState) -> OpenApiService<Apis, ()> {
    let db = state.db.clone();
    OpenApiService::new(
        (
            AuthApi {
                sessions: state.sessions.clone(),
            },
            OAuthApi {
                sessions: state.sessions.clone(),
                public_url: state.config.public_url.clone(),
            },
            ClientsApi {
                db: db.clone(),
                sessions: state.sessions.clone(),
            },
            PatientsApi { db: db.clone() },
            DoctorsApi { db: db.clone() },
            MappingsApi { db: db.clone() },
            EventsApi {
                db: db.clone(),
                engine: state.webhooks.clone(),
            },
            WebhooksApi {
                db: db.clone(),
                engine: state.webhooks.clone(),
            },
            AdminApi {
                db: db.clone(),
                sessions: state.sessions.clone(),
            },
            OpsApi { db },
        ),
        "Healthcare API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .license(poem_openapi::LicenseObject::new("MIT"))
}

/// The route table of every operation the API serves.
pub fn route_table() -> RouteTable {
    RouteTable::new(Apis::meta())
}

/// The whole application: API, docs, spec, with every middleware.
pub fn build_app(state: &AppState) -> impl Endpoint + 'static {
    crate::metrics::init();
    let api = api_service(state);
    let routes = Arc::new(route_table());
    let spec = spec::Spec::of(&api);
    let origins = &state.config.cors_allowed_origins;
    let shared = Shared {
        authenticator: state.sessions.authenticator().clone(),
        routes: routes.clone(),
        audit: state.audit.clone(),
        body_limit: usize::try_from(state.config.max_body_bytes).unwrap_or(65_536),
    };
    Route::new()
        .nest("/docs", spec.swagger_ui())
        .at("/openapi.json", spec.json_endpoint())
        .at("/openapi.yaml", spec.yaml_endpoint())
        .nest("/", api)
        .data(shared)
        .with(CatchPanic::new())
        .with_if(!origins.is_empty(), CorsPolicy::new(origins))
        .with(NormalizePath::new(TrailingSlash::Trim))
        .with(ProblemCatchAll::new(routes.clone()))
        .with(Observe::new(
            routes,
            state.config.trusted_proxies.clone(),
            spec.docs_csp(),
        ))
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
/// gives in-flight requests the grace period and closes the pool. Tests
/// drive shutdown through `shutdown`.
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
    tracing::info!("stopped accepting; closing the database pool");
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
