//! The application: state, the one route table, the middleware in order,
//! and serving it.

pub mod cors;
pub mod observe;
pub mod problems;
pub mod server;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use poem::middleware::{CatchPanic, NormalizePath, TrailingSlash};
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApi, OpenApiService};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::api::admin::AdminApi;
use crate::api::auth::AuthApi;
use crate::api::clients::ClientsApi;
use crate::api::context::{Sessions, Shared};
use crate::api::doctors::DoctorsApi;
use crate::api::events::EventsApi;
use crate::api::mappings::MappingsApi;
use crate::api::oauth::OAuthApi;
use crate::api::ops::{Draining, OpsApi};
use crate::api::patients::PatientsApi;
use crate::api::routes::RouteTable;
use crate::api::webhooks::WebhooksApi;
use crate::audit::AuditLog;
use crate::auth::limits::Limits;
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
    /// Set on SIGTERM: `/readyz` answers 503 while requests are still served.
    pub draining: Draining,
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
            draining: Draining::default(),
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
            draining: Draining::default(),
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
        LimitBackend::for_database(&config.database_url, &db, config.limit_scope.as_deref()),
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
            OpsApi {
                db,
                draining: state.draining.clone(),
            },
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

/// Serves until SIGINT/SIGTERM, then drains (see [`run_until`]) and closes
/// the pool.
pub async fn serve(state: AppState) -> Result<(), StartError> {
    let files = crate::config::raise_open_file_limit();
    // Before the listener exists: see `shutdown_signal`.
    let shutdown = shutdown_signal();
    let addr = state.config.bind_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(
        %addr,
        max_connections = state.config.connection_cap(),
        open_file_limit = files,
        "listening"
    );
    run_until(state, listener, shutdown).await
}

/// Serves on `listener` until `shutdown` resolves. Then `/readyz` answers
/// 503 at once while requests are still served for `SHUTDOWN_DRAIN` seconds
/// (each response closing its connection), so that a load balancer stops
/// sending any; then the listener closes, requests in progress get
/// `SHUTDOWN_GRACE` seconds to finish, and the pool is closed. Tests drive
/// shutdown through `shutdown`.
pub async fn run_until(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let config = &state.config;
    let grace = Duration::from_secs(config.shutdown_grace);
    let drain_for = Duration::from_secs(config.shutdown_drain);
    let limits = server::ConnectionLimits {
        header_read_timeout: Duration::from_secs(config.header_read_timeout),
        keep_alive_timeout: Duration::from_secs(config.keep_alive_timeout),
        body_read_timeout: Duration::from_secs(config.body_read_timeout),
        max_connections: config.connection_cap(),
    };
    let app = build_app(&state);
    let (signalled, signal) = tokio::sync::watch::channel(false);
    let draining = state.draining.clone();
    let watch_signal = async move {
        shutdown.await;
        draining.start();
        tracing::info!(
            drain_seconds = drain_for.as_secs(),
            "shutting down: /readyz answers 503; still serving until the drain period ends"
        );
        let _ = signalled.send(true);
    };
    let mut on_drain = signal.clone();
    let mut on_stop = signal;
    let drain = async move {
        let _ = on_drain.wait_for(|s| *s).await;
    };
    let stop = async move {
        let _ = on_stop.wait_for(|s| *s).await;
        tokio::time::sleep(drain_for).await;
        tracing::info!("stopped accepting; finishing the requests in progress");
    };
    let serving = server::serve(listener, app, limits, drain, stop, grace);
    tokio::pin!(watch_signal);
    tokio::pin!(serving);
    tokio::select! {
        biased;
        () = &mut watch_signal => serving.await,
        () = &mut serving => {}
    }
    tracing::info!("closing the database pool");
    state.db.close().await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: the server answers requests
/// from other threads as soon as it accepts, and a SIGTERM arriving before
/// the handlers would kill the process outright.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        let on = |s: &mut Option<tokio::signal::unix::Signal>| {
            let s = s.take();
            async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            () = on(&mut interrupt) => {},
            () = on(&mut terminate) => {},
        }
        tracing::info!("shutdown signal received");
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    }
}
