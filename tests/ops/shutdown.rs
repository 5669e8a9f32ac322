//! SIGTERM: `/readyz` turns 503 while requests are still served for the
//! drain period, then stop accepting, let in-flight requests finish (within
//! the grace period), flush the audit trail, exit 0.

use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Server, TestDatabase, connect, unique};

/// A POST /api/patients/ on a raw connection, sent up to the middle of its
/// body. `Expect: 100-continue` makes the server say when the handler has
/// started reading the body: from then on the request is in flight.
async fn half_sent_create(server: &Server, token: &str, request_id: &str) -> (TcpStream, String) {
    let body = json!({"name": "Grace Period", "age": 64, "gender": "Female"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /api/patients/ HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\
         Authorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {len}\r\n\
         X-Request-Id: {request_id}\r\n\
         Expect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        port = server.port,
        len = body.len(),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut interim = Vec::new();
    let mut buf = [0u8; 256];
    while !interim.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("no 100 Continue within 10 s")
            .expect("read");
        assert!(n > 0, "connection closed before 100 Continue");
        interim.extend_from_slice(&buf[..n]);
    }
    let interim = String::from_utf8_lossy(&interim);
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "expected 100 Continue, got: {interim}"
    );
    stream
        .write_all(first.as_bytes())
        .await
        .expect("send first half");
    stream.flush().await.expect("flush");
    (stream, rest.to_string())
}

/// Reads a whole `Connection: close` response: status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("no response within 20 s")
        .expect("read response");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Polls until nothing accepts connections on `port` any more.
async fn wait_until_refused(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            // Reset: the listener closed with this attempt still in its backlog.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return;
            }
            Err(e) => panic!("unexpected connect error: {e}"),
            Ok(probe) => drop(probe),
        }
        assert!(
            Instant::now() < deadline,
            "still accepting connections {within:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_request_lets_it_complete_and_exits_zero() {
    let db = TestDatabase::new();
    let mut server = Server::start(&db.url, &[("SHUTDOWN_GRACE", "20")]).await;
    let user = server.user().await;
    let request_id = unique("graceful-");

    let (mut stream, rest) = half_sent_create(&server, &user.access, &request_id).await;
    server.terminate();

    // It stops accepting while our request is still waiting for its body.
    wait_until_refused(server.port, Duration::from_secs(10)).await;

    stream
        .write_all(rest.as_bytes())
        .await
        .expect("send the rest");
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 201, "{body}");
    let patient: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    let id = patient["id"].as_i64().expect("id");
    assert_eq!(patient["name"], "Grace Period");

    let exit = server.wait_exit(Duration::from_secs(20)).await;
    assert!(exit.success(), "exit status {exit}:\n{}", server.log());

    // What was answered is stored, and its audit record was flushed on the way out.
    let direct = connect(&db.url).await;
    let row = healthcare::entity::patient::Entity::find_by_id(id)
        .one(&direct)
        .await
        .expect("query patient")
        .expect("the patient answered 201 is stored");
    assert_eq!(row.created_by, user.id);
    use healthcare::entity::audit_event::{Column, Entity};
    let events = Entity::find()
        .filter(Column::RequestId.eq(request_id.as_str()))
        .all(&direct)
        .await
        .expect("query audit events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action, "create");
    assert_eq!(events[0].status, 201);
    assert_eq!(events[0].resource_id, Some(id));
    assert_eq!(events[0].actor_id, Some(user.id));
    let _ = direct.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_for_a_stalled_request_beyond_the_grace_period() {
    let db = TestDatabase::new();
    let mut server =
        Server::start(&db.url, &[("SHUTDOWN_GRACE", "1"), ("SHUTDOWN_DRAIN", "0")]).await;
    let user = server.user().await;
    let (mut stream, _rest) = half_sent_create(&server, &user.access, &unique("stalled-")).await;

    let signalled = Instant::now();
    server.terminate();
    let exit = server.wait_exit(Duration::from_secs(10)).await;
    assert!(exit.success(), "exit status {exit}:\n{}", server.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "took {:?} to stop with a 1 s grace period",
        signalled.elapsed()
    );
    // The stalled request was cut off: its connection is closed.
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("the stalled connection is closed");
    assert!(
        read.is_err() || !String::from_utf8_lossy(&raw).contains(" 201 "),
        "a request without its body was answered 201"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_503_at_once_and_serves_until_the_drain_period_ends() {
    let db = TestDatabase::new();
    let mut server = Server::start(&db.url, &[("SHUTDOWN_DRAIN", "3")]).await;
    assert_eq!(server.get("/readyz", None).await.status, 200);

    server.terminate();
    let signalled = Instant::now();
    // Not ready within a moment, on a listener that still accepts.
    loop {
        let ready = server
            .try_call(reqwest::Method::GET, "/readyz", None, None, &[])
            .await
            .expect("the listener closed before /readyz turned 503");
        if ready.status == 503 {
            ready.unavailable();
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(1),
            "/readyz still {} {:?} after SIGTERM",
            ready.status,
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let not_ready_after = signalled.elapsed();

    // Other requests are still served, each closing its connection so that
    // clients move elsewhere.
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("connection"), Some("close"));
    let user = server.user().await;
    let created = server.create_patient(&user.access, "Drained Dora").await;
    assert_eq!(created.status, 201, "{}", created.text);

    // Then the listener closes, once the drain period is over.
    wait_until_refused(server.port, Duration::from_secs(10)).await;
    let closed_after = signalled.elapsed();
    assert!(
        not_ready_after < closed_after,
        "/readyz turned 503 after {not_ready_after:?}, the listener closed after {closed_after:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(2_800),
        "the listener closed {closed_after:?} after SIGTERM, before SHUTDOWN_DRAIN (3 s)"
    );
    let exit = server.wait_exit(Duration::from_secs(20)).await;
    assert!(exit.success(), "exit status {exit}:\n{}", server.log());
}
