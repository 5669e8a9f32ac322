//! Serving the application on a socket: our own accept loop over hyper's
//! HTTP/1.1 connections, because poem's server has no time limit on request
//! headers, no idle limit and no cap on connections (900 connections that
//! sent half a request line were still held after 65 s, and 1,100 of them
//! exhausted the file descriptors so that no client was served).
//!
//! Every connection is in one of three phases, each with its own deadline:
//!
//! - waiting for a request's headers (from the moment it is accepted, or
//!   from the first byte of a later request): `HEADER_READ_TIMEOUT`;
//! - in a request (headers read, the handler running): no deadline, but the
//!   body must arrive within `BODY_READ_TIMEOUT` of the headers;
//! - idle between requests (keep-alive): `KEEP_ALIVE_TIMEOUT`.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a
//! keep-alive connection waits for its next request, which would make the
//! idle limit the header limit.
//!
//! At most `max_connections` are open. When a new connection arrives at the
//! cap, the connection that has been waiting longest without a request in
//! progress (a half-sent request line, an idle keep-alive) is closed to make
//! room, so that a flood of slow connections cannot keep a real client in
//! the kernel's queue; when every connection is in a request, the listener
//! waits for one to finish. When the process runs out of file descriptors,
//! the listener closes the oldest waiting connection and backs off (10 ms,
//! doubling up to 1 s) instead of spinning on the failing `accept`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, http};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};

/// The time limits and the cap on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
}

/// Where the server is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Serving normally.
    Serving,
    /// Still serving, but every response closes its connection, so that
    /// clients and balancers move to the other instances.
    Draining,
    /// No longer accepting: finish the request in progress, then close.
    Closing,
    /// The grace period is over: close now.
    Abort,
}

const AWAITING_HEAD: u8 = 0;
const IN_REQUEST: u8 = 1;
const IDLE: u8 = 2;

/// One connection's phase, shared by its task, its I/O and its service.
struct Conn {
    id: u64,
    phase: AtomicU8,
    /// When the phase began, in milliseconds since the server started.
    since: AtomicU64,
    evicted: AtomicBool,
    changed: Notify,
    epoch: Instant,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: u8) {
        self.since.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.changed.notify_one();
    }

    /// When the current phase runs out, if it can.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let limit = match self.phase.load(Ordering::Acquire) {
            AWAITING_HEAD => limits.header_read_timeout,
            IDLE => limits.keep_alive_timeout,
            _ => return None,
        };
        let since = Duration::from_millis(self.since.load(Ordering::Relaxed));
        Some(self.epoch + since + limit)
    }

    fn waiting(&self) -> bool {
        self.phase.load(Ordering::Acquire) != IN_REQUEST
    }
}

#[derive(Default)]
struct Open {
    conns: HashMap<u64, Arc<Conn>>,
    /// How many of `conns` were told to close and have not yet.
    evicted: usize,
}

/// The open connections.
struct Registry {
    open: Mutex<Open>,
    next_id: AtomicU64,
    /// A connection ended: a slot may be free.
    freed: Notify,
    epoch: Instant,
}

impl Registry {
    fn new() -> Self {
        Self {
            open: Mutex::new(Open::default()),
            next_id: AtomicU64::new(0),
            freed: Notify::new(),
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // A panic while holding this lock leaves only a map behind; keep going.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            phase: AtomicU8::new(AWAITING_HEAD),
            since: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            changed: Notify::new(),
            epoch: self.epoch,
        });
        conn.since.store(conn.now_ms(), Ordering::Relaxed);
        self.lock().conns.insert(conn.id, conn.clone());
        conn
    }

    fn remove(&self, conn: &Conn) {
        {
            let mut open = self.lock();
            if open.conns.remove(&conn.id).is_some() && conn.evicted.load(Ordering::Acquire) {
                open.evicted -= 1;
            }
        }
        self.freed.notify_one();
    }

    /// Open connections not told to close.
    fn live(&self) -> usize {
        let open = self.lock();
        open.conns.len() - open.evicted
    }

    fn is_empty(&self) -> bool {
        self.lock().conns.is_empty()
    }

    fn any_waiting(&self) -> bool {
        self.lock()
            .conns
            .values()
            .any(|c| c.waiting() && !c.evicted.load(Ordering::Acquire))
    }

    /// Closes the connection that has waited longest without a request in
    /// progress (other than `keep`); false when there is none.
    fn evict_oldest_waiting(&self, keep: Option<u64>) -> bool {
        let mut open = self.lock();
        let oldest = open
            .conns
            .values()
            .filter(|c| Some(c.id) != keep && c.waiting() && !c.evicted.load(Ordering::Acquire))
            .min_by_key(|c| c.since.load(Ordering::Relaxed))
            .cloned();
        match oldest {
            Some(conn) => {
                conn.evicted.store(true, Ordering::Release);
                conn.changed.notify_one();
                open.evicted += 1;
                true
            }
            None => false,
        }
    }
}

/// The I/O of one connection: a byte arriving while idle starts the wait
/// for a request's headers.
struct Tracked {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let conn = &self.conn;
            if conn.phase.load(Ordering::Acquire) == IDLE {
                conn.enter(AWAITING_HEAD);
            }
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

type Boxed = BoxBody<Bytes, io::Error>;

/// A request body that must be complete by a deadline; after it, reading
/// fails (the handler answers 400 and the connection is closed).
struct TimedBody {
    inner: Boxed,
    deadline: Pin<Box<Sleep>>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body did not arrive within BODY_READ_TIMEOUT",
                )))),
                Poll::Pending => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `ep` on `listener` until `stop` resolves, then lets the requests
/// in progress finish for up to `grace` and returns. Between `drain`
/// resolving and `stop`, every response closes its connection.
pub async fn serve<E>(
    listener: TcpListener,
    ep: E,
    limits: ConnectionLimits,
    drain: impl Future<Output = ()>,
    stop: impl Future<Output = ()>,
    grace: Duration,
) where
    E: Endpoint + 'static,
{
    let ep = Arc::new(ep);
    let registry = Arc::new(Registry::new());
    let (stage_tx, stage_rx) = watch::channel(Stage::Serving);
    let local = listener.local_addr().ok();
    let max = limits.max_connections.max(1);
    let mut stop = pin!(stop);
    let mut drain = pin!(drain);
    let mut draining = false;
    let mut backoff = MIN_BACKOFF;

    'accepting: loop {
        // At the cap with every connection in a request: wait for a slot.
        while registry.live() >= max && !registry.any_waiting() {
            tokio::select! {
                () = &mut stop => break 'accepting,
                () = registry.freed.notified() => {}
                // A connection that finishes a request becomes evictable
                // without freeing its slot; look again now and then.
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        tokio::select! {
            biased;
            () = &mut stop => break 'accepting,
            () = &mut drain, if !draining => {
                draining = true;
                stage_tx.send_replace(Stage::Draining);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = MIN_BACKOFF;
                    let conn = registry.add();
                    if registry.live() > max {
                        registry.evict_oldest_waiting(Some(conn.id));
                    }
                    let local = stream.local_addr().ok().or(local);
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        local,
                        ep.clone(),
                        conn,
                        registry.clone(),
                        stage_rx.clone(),
                        limits,
                    ));
                }
                Err(err) if out_of_descriptors(&err) => {
                    tracing::warn!(
                        error = %err,
                        backoff_ms = backoff.as_millis() as u64,
                        "cannot accept: out of file descriptors; closing the oldest waiting connection and backing off"
                    );
                    registry.evict_oldest_waiting(None);
                    tokio::select! {
                        () = &mut stop => break 'accepting,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                // A connection that failed before we took it (reset,
                // aborted): nothing to do but take the next one. Anything
                // else gets a short pause, so a persistent error cannot spin.
                Err(err) => {
                    tracing::debug!(error = %err, "accept failed");
                    if !matches!(
                        err.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(MIN_BACKOFF).await;
                    }
                }
            }
        }
    }
    // Closed first: new connections are refused from now on.
    drop(listener);
    close(registry, stage_tx, grace).await;
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

fn out_of_descriptors(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Stops accepting (the listener is dropped by the caller's return), asks
/// every connection to finish its request and close, and cuts off those
/// still open after `grace`.
async fn close(registry: Arc<Registry>, stage: watch::Sender<Stage>, grace: Duration) {
    stage.send_replace(Stage::Closing);
    let deadline = Instant::now() + grace;
    loop {
        if registry.is_empty() {
            return;
        }
        tokio::select! {
            () = registry.freed.notified() => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    tracing::warn!("grace period over: closing the connections still open");
    stage.send_replace(Stage::Abort);
    // They close as soon as their tasks see the stage; wait briefly.
    let cut = Instant::now() + Duration::from_secs(1);
    while !registry.is_empty() && Instant::now() < cut {
        tokio::select! {
            () = registry.freed.notified() => {}
            () = tokio::time::sleep_until(cut) => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection<E: Endpoint + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    ep: Arc<E>,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    mut stage: watch::Receiver<Stage>,
    limits: ConnectionLimits,
) {
    // Responses are small and written at once; Nagle would only delay them.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Tracked {
        stream,
        conn: conn.clone(),
    });
    let service = {
        let conn = conn.clone();
        let stage = stage.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let ep = ep.clone();
            let conn = conn.clone();
            let draining = *stage.borrow() != Stage::Serving;
            conn.enter(IN_REQUEST);
            let local = LocalAddr(local.map_or(Addr::Custom("tcp", "".into()), Addr::SocketAddr));
            let remote = RemoteAddr(Addr::SocketAddr(peer));
            let mut req = poem::Request::from((req, local, remote, http::uri::Scheme::HTTP));
            let inner: Boxed = req.take_body().into();
            req.set_body(poem::Body::from(Boxed::new(TimedBody {
                inner,
                deadline: Box::pin(tokio::time::sleep(limits.body_read_timeout)),
            })));
            async move {
                let mut resp = ep.get_response(req).await;
                if draining {
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                conn.enter(IDLE);
                Ok::<_, Infallible>(http::Response::<Boxed>::from(resp))
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None);
    // Boxed, so that dropping it below closes the socket before the slot is freed.
    let mut connection = Box::pin(builder.serve_connection(io, service));
    let mut closing = false;
    let mut watching = true;
    loop {
        let deadline = conn.deadline(&limits);
        tokio::select! {
            _ = connection.as_mut() => break,
            () = sleep_until(deadline) => {
                if conn.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "closing a connection: timed out waiting for the client");
                    break;
                }
            }
            () = conn.changed.notified() => {}
            changed = stage.changed(), if watching => match changed {
                Ok(()) => match *stage.borrow_and_update() {
                    Stage::Closing if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    Stage::Abort => break,
                    _ => {}
                },
                Err(_) => watching = false,
            },
        }
        if conn.evicted.load(Ordering::Acquire) {
            tracing::debug!(%peer, "closing a waiting connection to make room for a new one");
            break;
        }
    }
    drop(connection);
    registry.remove(&conn);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
