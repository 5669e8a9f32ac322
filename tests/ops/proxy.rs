//! A TCP proxy the test controls, between the server and its database, to
//! take the database away and give it back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: SocketAddr,
    upstream: String,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Listens on a free local port and forwards every connection to `upstream`.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let proxy = Self {
            addr: listener.local_addr().expect("proxy address"),
            upstream,
            acceptor: Mutex::new(None),
            links: Arc::default(),
        };
        proxy.listen(listener);
        proxy
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn listen(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let links = self.links.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    let mut client = client;
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut links = links.lock().expect("links");
                links.retain(|l| !l.is_finished());
                links.push(link);
            }
        });
        *self.acceptor.lock().expect("acceptor") = Some(acceptor);
    }

    /// The database goes away: every live connection is closed and new ones
    /// are refused (nothing listens on the port any more). Returns once
    /// that is so.
    pub async fn cut(&self) {
        let acceptor = self.acceptor.lock().expect("acceptor").take();
        if let Some(acceptor) = acceptor {
            acceptor.abort();
            // Resolves once the task, and with it the listener, is dropped.
            let _ = acceptor.await;
        }
        let links = std::mem::take(&mut *self.links.lock().expect("links"));
        for link in links {
            link.abort();
            let _ = link.await;
        }
    }

    /// The database comes back on the same address.
    pub async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot listen on {} again: {e}",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.listen(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(acceptor) = self.acceptor.lock().map(|mut a| a.take()).ok().flatten() {
            acceptor.abort();
        }
        if let Ok(links) = self.links.lock() {
            for link in links.iter() {
                link.abort();
            }
        }
    }
}
