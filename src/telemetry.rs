//! Logging: tracing-subscriber set-up (the line per request is written by
//! `app::observe`).

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber: human-readable text or one JSON object
/// per line, filtered by `RUST_LOG` syntax. Lines go to stderr through a
/// writer thread: a request hands its line over instead of making a system
/// call, and the thread writes whatever has queued up in one go (a busy
/// server writes many lines per call). Nothing is dropped: a full queue
/// (128k lines) makes loggers wait. Keep the returned guard until exit: its
/// drop writes out what is still queued.
pub fn init(format: LogFormat, filter: &str) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // Already installed (tests build many apps in one process): keep it.
    drop(result);
    guard
}
