//! Connections that cannot wedge the server: request headers, idle
//! keep-alive connections and request bodies each have a time limit, and a
//! flood of slow connections under a low file limit never keeps a real
//! client waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Server, TestDatabase};

/// Raises this process's soft file limit to its hard limit: the test holds
/// thousands of sockets.
fn raise_file_limit(needed: u64) {
    let files = healthcare::config::raise_open_file_limit().unwrap_or(0);
    assert!(
        files >= needed,
        "this test needs {needed} open files; the limit is {files}"
    );
}

/// Sends one `GET path` on `stream` and reads its response (status, and
/// whether the server said it closes the connection).
async fn get_on(stream: &mut TcpStream, path: &str) -> Option<(u16, bool)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                return Some((status, head.contains("connection: close")));
            }
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Whether the server has closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_slow_connections_never_keep_a_real_client_waiting() {
    const SLOW: usize = 2_000;
    const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
    raise_file_limit(SLOW as u64 + 200);
    let db = TestDatabase::new();
    // 1,024 files: the server can hold fewer connections than are attempted.
    let server = Server::start_under(
        &["prlimit", "--nofile=1024"],
        &db.url,
        &[("HEADER_READ_TIMEOUT", "2")],
    )
    .await;

    // A real client, on a new connection every 100 ms throughout.
    let attacking = Arc::new(AtomicBool::new(true));
    let probe = {
        let url = format!("{}/healthz", server.base);
        let attacking = attacking.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut answers = Vec::new();
            while attacking.load(Ordering::Acquire) {
                let started = Instant::now();
                let status = client.get(&url).send().await.map(|r| r.status().as_u16());
                answers.push((status.map_err(|e| e.to_string()), started.elapsed()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers
        })
    };

    // 2,000 connections that send half a request line and nothing more.
    let attack_started = Instant::now();
    let mut slow = Vec::with_capacity(SLOW);
    let mut not_connected = 0;
    for _ in 0..SLOW {
        match tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(("127.0.0.1", server.port)),
        )
        .await
        {
            Ok(Ok(mut stream)) => {
                let _ = stream.write_all(b"GET /heal").await;
                slow.push(stream);
            }
            _ => not_connected += 1,
        }
    }
    let opened = attack_started.elapsed();

    // The server closes every one of them: none gets more than the header
    // time limit (plus scheduling slack) after the last was opened.
    let mut still_open = 0;
    for stream in &mut slow {
        if !closed_within(stream, HEADER_READ_TIMEOUT + Duration::from_secs(2)).await {
            still_open += 1;
        }
    }
    attacking.store(false, Ordering::Release);
    let answers = probe.await.expect("probe task");
    eprintln!(
        "{} slow connections opened in {opened:?} ({not_connected} not connected); \
         {still_open} still open after the header time limit; {} probes, slowest {:?}",
        slow.len(),
        answers.len(),
        answers.iter().map(|(_, t)| *t).max()
    );
    assert_eq!(still_open, 0, "slow connections the server did not close");
    assert!(answers.len() >= 10, "too few probes: {answers:?}");
    for (status, elapsed) in &answers {
        assert_eq!(status.as_ref().ok(), Some(&200), "{answers:?}");
        assert!(
            *elapsed < HEADER_READ_TIMEOUT + Duration::from_secs(2),
            "/healthz took {elapsed:?} during the attack: {answers:?}"
        );
    }

    // Once they are gone, answers are prompt again.
    drop(slow);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for _ in 0..10 {
        let started = Instant::now();
        let status = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "/healthz took {:?} after the attack",
            started.elapsed()
        );
    }
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_outlives_the_header_limit_and_closes_at_its_own() {
    let db = TestDatabase::new();
    let server = Server::start(
        &db.url,
        &[("HEADER_READ_TIMEOUT", "1"), ("KEEP_ALIVE_TIMEOUT", "3")],
    )
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    assert_eq!(get_on(&mut stream, "/healthz").await, Some((200, false)));
    // Idle for twice the header limit: still open, and reusable.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get_on(&mut stream, "/healthz").await, Some((200, false)));
    // Then idle past the keep-alive limit: closed by the server.
    let idle = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(6)).await,
        "an idle connection was kept beyond KEEP_ALIVE_TIMEOUT"
    );
    assert!(
        idle.elapsed() >= Duration::from_millis(2_500),
        "closed after {:?}, before KEEP_ALIVE_TIMEOUT",
        idle.elapsed()
    );

    // A connection that sends nothing is closed at the header limit.
    let mut silent = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let opened = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(4)).await);
    assert!(opened.elapsed() < Duration::from_millis(2_500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_400_and_its_connection_closed() {
    let db = TestDatabase::new();
    let server = Server::start(&db.url, &[("BODY_READ_TIMEOUT", "1")]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /api/auth/login/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 200\r\n\r\n{\"username\": ",
        )
        .await
        .expect("send");
    let sent = Instant::now();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("neither an answer nor a close within 10 s");
    assert!(read.is_ok(), "{read:?}");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(
        sent.elapsed() >= Duration::from_millis(900) && sent.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        sent.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_oldest_waiting_connection_makes_room() {
    let db = TestDatabase::new();
    let server = Server::start(&db.url, &[("MAX_CONNECTIONS", "8")]).await;
    let mut waiting = Vec::new();
    for _ in 0..8 {
        let stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("connect");
        waiting.push(stream);
        // Accepted in order, so "oldest" is well defined.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A ninth, real client is served at once...
    let reply = server.get("/healthz", None).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.elapsed < Duration::from_secs(1),
        "{:?}",
        reply.elapsed
    );
    // ...and the first of the waiting ones was closed to make room.
    assert!(closed_within(&mut waiting[0], Duration::from_secs(1)).await);
    assert!(!closed_within(&mut waiting[7], Duration::from_millis(200)).await);
}
