//! Every setting, read once at start from the command line, the environment
//! and a `.env` file, and validated before anything else happens.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://healthcare.sqlite3?mode=rwc";

#[derive(Parser, Debug)]
#[command(
    name = "healthcare",
    version,
    about = "Healthcare backend API: patients, doctors and their mappings over REST with JWT auth.",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create an administrator (is_staff) account.
    Createsuperuser(SuperuserArgs),
    /// Print the OpenAPI spec (JSON by default).
    Openapi {
        /// Print YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct SuperuserArgs {
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Database URL: an SQLite file (default) or `postgres://user:pass@host:5432/db`.
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    /// Address and port to listen on.
    #[arg(
        long,
        env = "BIND_ADDR",
        value_name = "BIND_ADDR",
        default_value = "127.0.0.1:8000",
        global = true
    )]
    pub bind_addr: SocketAddr,

    /// HS256 signing secret (at least 32 bytes). When unset, a random one is
    /// generated once and kept in the database.
    #[arg(
        long,
        env = "JWT_SECRET",
        value_name = "JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,

    /// Access-token lifetime in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL", value_name = "ACCESS_TOKEN_TTL", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub access_token_ttl: u64,

    /// Refresh-token lifetime in seconds.
    #[arg(long, env = "REFRESH_TOKEN_TTL", value_name = "REFRESH_TOKEN_TTL", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000), global = true)]
    pub refresh_token_ttl: u64,

    /// Issue a new refresh token on every refresh and revoke the whole family
    /// when an already-rotated one is presented again.
    #[arg(long, env = "ROTATE_REFRESH_TOKENS", value_name = "ROTATE_REFRESH_TOKENS", default_value = "false",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub rotate_refresh_tokens: bool,

    /// `iss` claim issued and required.
    #[arg(
        long,
        env = "JWT_ISSUER",
        value_name = "JWT_ISSUER",
        default_value = "healthcare",
        global = true
    )]
    pub jwt_issuer: String,

    /// `aud` claim issued and required.
    #[arg(
        long,
        env = "JWT_AUDIENCE",
        value_name = "JWT_AUDIENCE",
        default_value = "healthcare-api",
        global = true
    )]
    pub jwt_audience: String,

    /// Comma-separated browser origins allowed by CORS (none by default).
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_name = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_allowed_origins: Vec<String>,

    /// `text` (human-readable) or `json` (one object per line).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_name = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(
        long,
        env = "RUST_LOG",
        value_name = "RUST_LOG",
        default_value = "info",
        global = true
    )]
    pub rust_log: String,

    /// Apply pending migrations when `serve` starts.
    #[arg(long, env = "AUTO_MIGRATE", value_name = "AUTO_MIGRATE", default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub auto_migrate: bool,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", value_name = "MAX_BODY_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1024..=16_777_216), global = true)]
    pub max_body_bytes: u64,

    /// Database connection pool size.
    #[arg(long, env = "DB_MAX_CONNECTIONS", value_name = "DB_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// Seconds to wait for a database connection before answering 503.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT", value_name = "DB_ACQUIRE_TIMEOUT", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=60), global = true)]
    pub db_acquire_timeout: u64,

    /// Password hashes allowed to run at once (0: half the CPU cores, at least one).
    #[arg(
        long,
        env = "PASSWORD_HASH_CONCURRENCY",
        value_name = "PASSWORD_HASH_CONCURRENCY",
        default_value_t = 0,
        global = true
    )]
    pub password_hash_concurrency: usize,

    /// Attempts allowed per client IP per minute at every endpoint that checks
    /// a credential (login, token, register, refresh, password change).
    #[arg(long, env = "AUTH_RATE_PER_MINUTE", value_name = "AUTH_RATE_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub auth_rate_per_minute: u32,

    /// Failed password checks allowed per account per hour from addresses it
    /// has not logged in from (ASVS 2.2.1: at most 100); an address that
    /// logged in successfully keeps an allowance of its own.
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_HOUR", value_name = "LOGIN_ATTEMPTS_PER_HOUR", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(2..=1_000_000), global = true)]
    pub login_attempts_per_hour: u32,

    /// The zxcvbn strength score (0 to 4) a new password must reach. Keep 3
    /// (the default) or 4 in production; lower values exist only to replay
    /// another implementation's fixtures (such as `testpass123`) in a test
    /// environment, and log a warning at start.
    #[arg(long, env = "PASSWORD_MIN_STRENGTH", value_name = "PASSWORD_MIN_STRENGTH", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=4), global = true)]
    pub password_min_strength: u8,

    /// Comma-separated IPs of reverse proxies whose `X-Forwarded-For` is
    /// trusted for the client IP (none by default: the socket's peer is the client).
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_name = "TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// The URL clients reach this server at (`https://api.example.com`): the
    /// OAuth metadata's issuer. When unset, each request's own host is used.
    #[arg(long, env = "PUBLIC_URL", value_name = "PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Seconds to let in-flight requests finish on SIGTERM/SIGINT.
    #[arg(
        long,
        env = "SHUTDOWN_GRACE",
        value_name = "SHUTDOWN_GRACE",
        default_value_t = 30,
        global = true
    )]
    pub shutdown_grace: u64,

    /// Accept `http://` webhook URLs (tests and local development only).
    #[arg(long, env = "WEBHOOK_ALLOW_HTTP", value_name = "WEBHOOK_ALLOW_HTTP", default_value = "false",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_http: bool,

    /// Let webhooks reach loopback, private and link-local addresses (tests only).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE_NETWORKS", value_name = "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
          default_value = "false", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private_networks: bool,

    /// Seconds a webhook receiver has to answer.
    #[arg(long, env = "WEBHOOK_TIMEOUT", value_name = "WEBHOOK_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=10), global = true)]
    pub webhook_timeout: u64,

    /// First retry delay of a failed delivery in milliseconds; doubled at
    /// each attempt (at most an hour), with jitter.
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", value_name = "WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000), global = true)]
    pub webhook_retry_base_ms: u64,

    /// Seconds a delivery is retried before it is marked failed.
    #[arg(long, env = "WEBHOOK_RETRY_FOR", value_name = "WEBHOOK_RETRY_FOR", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=2_592_000), global = true)]
    pub webhook_retry_for: u64,

    /// Seconds of failing deliveries (no success) after which a subscription is disabled.
    #[arg(long, env = "WEBHOOK_DISABLE_AFTER", value_name = "WEBHOOK_DISABLE_AFTER", default_value_t = 432_000,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000), global = true)]
    pub webhook_disable_after: u64,
    /// Seconds between SIGTERM/SIGINT and closing the listener: `/readyz`
    /// answers 503 at once and requests are still served, so that a load
    /// balancer takes the instance out before it stops accepting.
    #[arg(long, env = "SHUTDOWN_DRAIN", value_name = "SHUTDOWN_DRAIN", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=600), global = true)]
    pub shutdown_drain: u64,

    /// Seconds a connection has to send a request's headers (from when it
    /// opens, or from the first byte of a later request); then it is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT", value_name = "HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub header_read_timeout: u64,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, env = "KEEP_ALIVE_TIMEOUT", value_name = "KEEP_ALIVE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub keep_alive_timeout: u64,

    /// Seconds a request body has to arrive once its headers have.
    #[arg(long, env = "BODY_READ_TIMEOUT", value_name = "BODY_READ_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub body_read_timeout: u64,

    /// Concurrent connections (0: the open-file limit less the database pool
    /// and 64 spare, at most 10,000).
    #[arg(long, env = "MAX_CONNECTIONS", value_name = "MAX_CONNECTIONS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000), global = true)]
    pub max_connections: u32,

    /// A prefix for the rate-limit keys kept in the database, so that tests
    /// sharing one database do not share budgets. Not a setting: every
    /// instance of a deployment shares them.
    #[arg(skip)]
    pub limit_scope: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl Config {
    /// Checks that clap cannot express as a single value parser.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.jwt_secret
            && secret.len() < 32
        {
            return Err(ConfigError {
                var: "JWT_SECRET",
                message: "must be at least 32 bytes long".into(),
            });
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(ConfigError {
                var: "DATABASE_URL",
                message: "must start with sqlite: or postgres://".into(),
            });
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError {
                var: "PUBLIC_URL",
                message: format!("`{url}` is not an http(s) URL"),
            });
        }
        for origin in &self.cors_allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError {
                    var: "CORS_ALLOWED_ORIGINS",
                    message: format!("`{origin}` is not an http(s) origin"),
                });
            }
        }
        Ok(())
    }

    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl)
    }

    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl)
    }

    /// The connection cap: `MAX_CONNECTIONS`, or when 0, what the open-file
    /// limit leaves after the database pool and some spare descriptors.
    pub fn connection_cap(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections as usize;
        }
        let files = open_file_limit().unwrap_or(1024);
        let reserved = u64::from(self.db_max_connections) + 64;
        usize::try_from(files.saturating_sub(reserved).clamp(16, 10_000)).unwrap_or(10_000)
    }

    pub fn hash_concurrency(&self) -> usize {
        match self.password_hash_concurrency {
            // Half the cores (at least one): logins never take every core
            // from the other requests, and at most that many 19 MiB hashes
            // are in memory at once.
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        }
    }

    /// Settings for tests and tools: the defaults, with the given database.
    pub fn for_database(database_url: &str) -> Self {
        let mut config = Cli::parse_from(["healthcare"]).config;
        config.database_url = database_url.to_string();
        config
    }
}

/// The soft limit on open files of this process.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then_some(limit.rlim_cur)
}

/// Raises the soft limit on open files to the hard limit (as Go's runtime
/// does): the default soft limit (often 1,024) is what a server on a busy
/// host runs out of first. Returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur);
            }
        }
    }
    Some(limit.rlim_cur)
}
