//! Running the real `healthcare` binary: processes with their own port, log
//! file and database, an HTTP client for them, and PostgreSQL databases
//! created for one test and dropped after it.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

pub use crate::common::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_healthcare");

/// How long a server may take to come up (migrations on a fresh database).
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A registered, logged-in user.
pub struct User {
    pub id: i64,
    pub username: String,
    pub access: String,
}

/// An HTTP client for one server; cheap to clone into tasks.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A hard bound: no test waits forever on a hung server.
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no response: {e}"));
        Reply::read(resp, started).await
    }

    /// Like [`call`](Self::call), but `None` when no answer came (the
    /// server died or refused the connection).
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Option<Reply> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let started = Instant::now();
        let resp = req.send().await.ok()?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.ok()?;
        Some(Reply {
            status,
            headers,
            text,
            elapsed: started.elapsed(),
        })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.call(Method::POST, path, token, Some(body), &[]).await
    }

    pub async fn create_patient(&self, token: &str, name: &str) -> Reply {
        let body = json!({"name": name, "age": 42, "gender": "Female"});
        self.post("/api/patients/", Some(token), &body).await
    }

    pub async fn register(&self, username: &str) -> i64 {
        let body = json!({
            "username": username,
            "email": format!("{username}@example.com"),
            "password": PASSWORD,
        });
        let reply = self.post("/api/auth/register/", None, &body).await;
        assert_eq!(reply.status, 201, "register: {}", reply.text);
        reply.json()["id"].as_i64().expect("user id")
    }

    pub async fn login(&self, username: &str) -> String {
        let body = json!({"username": username, "password": PASSWORD});
        let reply = self.post("/api/auth/login/", None, &body).await;
        assert_eq!(reply.status, 200, "login: {}", reply.text);
        reply.json()["access"]
            .as_str()
            .expect("access token")
            .to_string()
    }

    /// Registers and logs in a new user with a unique name.
    pub async fn user(&self) -> User {
        let username = unique("ops");
        let id = self.register(&username).await;
        let access = self.login(&username).await;
        User {
            id,
            username,
            access,
        }
    }
}

/// A `healthcare serve` process with its own port, working directory and
/// log file. Killed on drop if still running; on a failing test its log is
/// printed.
pub struct Server {
    pub api: Api,
    pub port: u16,
    child: Child,
    dir: PathBuf,
    exited: Option<ExitStatus>,
}

impl std::ops::Deref for Server {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Server {
    /// Starts `healthcare serve` on `database_url` with `env` added to a
    /// clean environment, without waiting for it.
    pub fn spawn(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_under(&[], database_url, env)
    }

    /// Like [`spawn`](Self::spawn), run under `wrapper` (such as
    /// `["prlimit", "--nofile=1024"]`).
    pub fn spawn_under(wrapper: &[&str], database_url: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("hc-ops-server-"));
        std::fs::create_dir_all(&dir).expect("server directory");
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.arg("serve")
            // Only what the test says: no JWT_SECRET, no .env from the repository.
            .env_clear()
            .current_dir(&dir)
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .env("PASSWORD_HASH_CONCURRENCY", "2")
            .env("DB_MAX_CONNECTIONS", "4")
            // On PostgreSQL every server shares the per-IP limit of
            // 127.0.0.1 through the database; tests of the limit set their own.
            .env("AUTH_RATE_PER_MINUTE", "1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = cmd.spawn().expect("start healthcare serve");
        Self {
            api: Api::new(port),
            port,
            child,
            dir,
            exited: None,
        }
    }

    /// Starts a server and waits until `/healthz` answers 200.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_under(&[], database_url, env).await
    }

    /// Like [`start`](Self::start), run under `wrapper`.
    pub async fn start_under(wrapper: &[&str], database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut attempt = 0;
        loop {
            let mut server = Self::spawn_under(wrapper, database_url, env);
            match server.wait_healthy().await {
                Ok(()) => return server,
                // Another test took the free port between our check and the bind.
                Err(log) if log.contains("cannot listen on") && attempt < 3 => attempt += 1,
                Err(log) => panic!("server did not come up:\n{log}"),
            }
        }
    }

    /// Polls `/healthz` until it answers 200; the log when the process
    /// exits first or takes too long.
    pub async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        loop {
            if let Some(status) = self.child.try_wait().expect("process status") {
                self.exited = Some(status);
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            let url = format!("{}/healthz", self.base);
            if let Ok(resp) = client.get(&url).send().await
                && resp.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not healthy after {START_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL): no shutdown of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exited = Some(status);
        }
    }

    /// Sends SIGTERM, as a process manager does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("process status") {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process still running {within:?} after being asked to stop:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then a clean exit (status 0) within `within`.
    pub async fn stop(&mut self, within: Duration) {
        self.terminate();
        let status = self.wait_exit(within).await;
        assert!(
            status.success(),
            "exit status {status} after SIGTERM:\n{}",
            self.log()
        );
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(200)..].join("\n");
            eprintln!(
                "--- log of the server on port {} ---\n{tail}\n---",
                self.port
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` until it holds, at most `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
