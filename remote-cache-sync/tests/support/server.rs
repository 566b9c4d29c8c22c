//! Our sync server over SQLite storage on an ephemeral loopback port, as `rcs serve` runs it,
//! with one token granted every scope; and the HTTP client of it.
#![allow(dead_code)] // Each test crate uses a part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use remote_cache_sync::JsonRecord;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens, serve};
use remote_cache_sync::testing::TestRecord;
use tokio::sync::oneshot;

/// The token the server grants every scope.
pub const TOKEN: &str = "fault-test-token";

/// Our sync server over SQLite storage on an ephemeral loopback port; stops on drop.
pub struct TestServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with empty storage.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteRemoteStore::<JsonRecord>::open(dir.path().join("server.sqlite"))
            .await
            .unwrap();
        let mut tokens = StaticTokens::new();
        tokens.grant(TOKEN, ScopePattern::any()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel();
        // As `rcs serve` runs it: the raw pull fast path over the same storage.
        let router = Server::from_arcs(Arc::new(storage.clone()), Arc::new(tokens))
            .raw_feed(Arc::new(storage))
            .into_router();
        tokio::spawn(serve(listener, router, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            _stop: stop,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A client of the server at `url` with [`TOKEN`].
pub fn http_remote(url: &str, timeout: Duration) -> HttpRemoteStore<TestRecord> {
    HttpRemoteStore::builder(url)
        .token(TOKEN)
        .timeout(timeout)
        .build()
        .unwrap()
}
