//! Prometheus metrics: request counts and latency histograms by route
//! template and status, and database pool gauges read at scrape time.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sea_orm::DatabaseConnection;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use (every app in the
/// process, as in tests, shares it).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS).ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the recorder (call at start so the first request is counted)
/// and, once per process, a task that folds histogram samples into their
/// buckets every few seconds so that they never pile up between scrapes.
pub fn init() {
    static UPKEEP: OnceLock<()> = OnceLock::new();
    let (Some(handle), Ok(runtime)) = (handle(), tokio::runtime::Handle::try_current()) else {
        return;
    };
    UPKEEP.get_or_init(|| {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    });
}

/// The counter and histogram of one (method, route, status), registered
/// once: building their labelled keys on every request cost more than the
/// rest of the metrics work together.
type Series = (metrics::Counter, metrics::Histogram);

/// Status, method, route and their handles.
type Registered = Vec<(u16, String, String, Series)>;

pub fn record_request(method: &str, route: &str, status: u16, seconds: f64) {
    use std::sync::RwLock;
    // A few dozen series at most (routes × methods × statuses seen): a scan
    // is as quick as hashing and needs no key allocation.
    static SERIES: OnceLock<RwLock<Registered>> = OnceLock::new();
    let series = SERIES.get_or_init(Default::default);
    let found = series.read().ok().and_then(|list| {
        list.iter()
            .find(|(s, m, r, _)| *s == status && m == method && r == route)
            .map(|(_, _, _, handles)| handles.clone())
    });
    let (counter, histogram) = found.unwrap_or_else(|| {
        let labels = [
            ("method", method.to_string()),
            ("route", route.to_string()),
            ("status", status.to_string()),
        ];
        let handles = (
            metrics::counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels),
        );
        if let Ok(mut list) = series.write() {
            list.push((
                status,
                method.to_string(),
                route.to_string(),
                handles.clone(),
            ));
        }
        handles
    });
    counter.increment(1);
    histogram.record(seconds);
}

/// The Prometheus text exposition, with the pool gauges as of now.
pub fn render(db: &DatabaseConnection) -> String {
    let (size, idle, max) = pool_stats(db);
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_max_connections").set(f64::from(max));
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

fn pool_stats(db: &DatabaseConnection) -> (u32, u32, u32) {
    use sea_orm::DatabaseConnectionType as Kind;
    match &db.inner {
        Kind::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                idle(pool.num_idle()),
                pool.options().get_max_connections(),
            )
        }
        Kind::SqlxSqlitePoolConnection(_) => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                idle(pool.num_idle()),
                pool.options().get_max_connections(),
            )
        }
        _ => (0, 0, 0),
    }
}

fn idle(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One webhook delivery attempt, by what came of it: `delivered`, `retry`,
/// `failed` (given up) or `cancelled`.
pub fn webhook_delivery(outcome: &'static str) {
    metrics::counter!("webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// The delivery queue: deliveries waiting, and the age of the oldest.
pub fn webhook_queue(depth: u64, oldest: Option<chrono::DateTime<chrono::Utc>>) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("webhook_queue_depth").set(depth as f64);
    let age = oldest.map_or(0.0, |at| {
        (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
    });
    metrics::gauge!("webhook_oldest_pending_seconds").set(age);
}
