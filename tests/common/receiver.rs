//! A webhook receiver for tests: a real HTTP server on a local port that
//! records every request, answers with a status the test sets (or never
//! answers), and verifies Standard Webhooks signatures with its own code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Route, handler, post};
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// The status it was answered with (none: it was left hanging).
    pub answered: Option<u16>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Checks the signature as the Standard Webhooks specification says.
    pub fn verify(&self, secret: &str) -> bool {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .expect("base64 secret");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
        mac.update(format!("{}.{}.", self.id, self.timestamp).as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        self.signature.split(' ').any(|s| s == expected)
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Answer(u16),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    mode: Option<Mode>,
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

#[handler]
async fn hook(
    req: &Request,
    body: Vec<u8>,
    Data(state): Data<&Arc<Mutex<State>>>,
) -> poem::Response {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mode = state.lock().unwrap().mode.unwrap_or(Mode::Answer(200));
    let answered = match mode {
        Mode::Answer(status) => Some(status),
        Mode::Hang => None,
    };
    state.lock().unwrap().received.push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        answered,
    });
    match answered {
        // A redirect points back here: following it would be a second delivery.
        Some(status) => poem::Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("location", "/hook")
            .finish(),
        None => {
            std::future::pending::<()>().await;
            poem::Response::default()
        }
    }
}

impl Receiver {
    /// A receiver on a free port.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A receiver on `port` (0: any free one).
    pub async fn start_on(port: u16) -> Self {
        let acceptor = TcpListener::bind(format!("127.0.0.1:{port}"))
            .into_acceptor()
            .await
            .expect("bind the receiver");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("address")
            .port();
        let state = Arc::new(Mutex::new(State::default()));
        let app = Route::new().at("/hook", post(hook)).data(state.clone());
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests answered 2xx, one per `webhook-id` (deduplicated as a
    /// receiver must), in arrival order.
    pub fn delivered(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
            .filter(|r| seen.insert(r.id.clone()))
            .collect()
    }

    /// Waits until `check` holds on what was received, at most `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        check: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if check(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received: {:?}",
                received
                    .iter()
                    .map(|r| (
                        r.id.clone(),
                        r.answered,
                        String::from_utf8_lossy(&r.body).to_string()
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
