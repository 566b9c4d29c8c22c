//! An Appwrite-compatible test server (feature `appwrite-standin`): the endpoints of Appwrite's
//! REST API that [`AppwriteRemoteStore`](crate::remote::appwrite::AppwriteRemoteStore) and the
//! guide use, on SQLite, for tests on machines where Appwrite itself (Docker, MariaDB, Redis)
//! cannot run. `scripts/start-appwrite.sh` runs it through `rcs appwrite-standin`.
//!
//! What it copies from Appwrite 1.8 (each handler cites the page it follows):
//! - headers `X-Appwrite-Project`, `X-Appwrite-Key` (permissions bypassed), `X-Appwrite-JWT`
//!   (the user's roles; an unknown or expired JWT is `401 user_jwt_invalid`);
//! - error bodies `{"message","code","type","version"}` with Appwrite's types and statuses;
//! - databases, collections (permissions, `documentSecurity`), attributes (string, integer,
//!   float, boolean, datetime; arrays; sizes; required), indexes;
//! - documents: list (JSON queries incl. `contains`, `startsWith` and `select`, `total`; string
//!   attributes compare case-folded, as MariaDB's default utf8mb4 collation does, ASCII only
//!   here), get, create, upsert, delete; custom id rules;
//!   `$updatedAt`/`$createdAt` stamped by the server in milliseconds; `$sequence`;
//!   permissions (`read("user:ID")`, roles `any`, `users`, `guests`, `user:ID`);
//! - transactions: create, stage operations, commit (409 `transaction_conflict` when a
//!   document changed after its operation was staged, as Appwrite's commit does), rollback;
//! - users (create) and `users.createJWT`, to make user JWTs;
//! - realtime (`GET /v1/realtime`, a WebSocket): `connected`, document events (also from
//!   committed transactions) filtered by read permissions, `ping`/`pong` (module `realtime`).
//!
//! What it leaves out: sessions and the account API, teams and labels, relationships,
//! bulk document endpoints, `cursorAfter`/`cursorBefore`, full-text search, atomic
//! numeric operations, realtime's session `authentication` message and its channels other than
//! documents', rate limits, attribute processing status (attributes are
//! available at once), and the TablesDB aliases of the same endpoints.
//!
//! One test knob that is not Appwrite's: a commit sent with the header
//! `X-Rcs-Standin-Commit-Delay-Ms: N` is stamped when it arrives and becomes visible N ms
//! later, like a slow write on a real server (for the late-visible-rows tests).

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, patch, post};
use rusqlite::Connection;

mod documents;
mod error;
pub mod query;
mod realtime;
mod schema;
mod store;
mod transactions;

pub use error::{AwError, AwResult, VERSION};
pub use store::AttrType;

use store::Identity;

/// The stand-in's settings.
#[derive(Clone)]
pub struct StandinConfig {
    /// The project id it answers for.
    pub project: String,
    /// The API key it accepts.
    pub api_key: String,
}

impl std::fmt::Debug for StandinConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandinConfig")
            .field("project", &self.project)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Shared state of the handlers.
pub(crate) struct Standin {
    pub config: StandinConfig,
    pub conn: Mutex<Connection>,
    /// Open realtime sockets' feed.
    pub realtime: realtime::Hub,
}

pub(crate) type State = Arc<Standin>;

impl Standin {
    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Who is calling (<https://appwrite.io/docs/apis/rest#headers>).
    pub(crate) fn identity(&self, headers: &HeaderMap) -> AwResult<Identity> {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        if h("x-appwrite-project") != Some(self.config.project.as_str()) {
            return Err(AwError::new(
                404,
                "project_not_found",
                "Project with the requested ID could not be found. Please check the value of the X-Appwrite-Project header to ensure the correct project ID is being used.",
            ));
        }
        if let Some(key) = h("x-appwrite-key") {
            return if key == self.config.api_key {
                Ok(Identity::Key)
            } else {
                Err(AwError::new(401, "user_unauthorized", "Invalid API key"))
            };
        }
        if let Some(jwt) = h("x-appwrite-jwt") {
            let now = jiff::Timestamp::now().as_second();
            let user: Option<String> = self
                .db()
                .query_row(
                    "SELECT user_id FROM jwts WHERE token = ? AND exp > ?",
                    rusqlite::params![jwt, now],
                    |r| r.get(0),
                )
                .ok();
            return user.map(Identity::User).ok_or_else(|| {
                AwError::new(
                    401,
                    "user_jwt_invalid",
                    "Failed to verify JWT. Invalid or expired token.",
                )
            });
        }
        Ok(Identity::Guest)
    }
}

/// The stand-in's router, its data in `path` (`None`: in memory).
pub fn router(config: StandinConfig, path: Option<&Path>) -> AwResult<Router> {
    let conn = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    conn.execute_batch(store::SCHEMA)?;
    let state: State = Arc::new(Standin {
        config,
        conn: Mutex::new(conn),
        realtime: realtime::Hub::default(),
    });
    let docs = "/v1/databases/{db}/collections/{coll}/documents";
    Ok(Router::new()
        .route("/v1/health/version", get(schema::version))
        .route("/v1/realtime", get(realtime::connect))
        .route("/v1/databases", post(schema::create_database))
        .route(
            "/v1/databases/{db}/collections",
            post(schema::create_collection),
        )
        .route(
            "/v1/databases/{db}/collections/{coll}/attributes/{kind}",
            post(schema::create_attribute),
        )
        .route(
            "/v1/databases/{db}/collections/{coll}/indexes",
            post(schema::create_index),
        )
        .route("/v1/users", post(schema::create_user))
        .route("/v1/users/{user}/jwts", post(schema::create_jwt))
        .route(docs, get(documents::list).post(documents::create))
        .route(
            &format!("{docs}/{{doc}}"),
            get(documents::get_one)
                .put(documents::upsert)
                .delete(documents::remove),
        )
        .route("/v1/databases/transactions", post(transactions::create))
        .route(
            "/v1/databases/transactions/{tx}",
            patch(transactions::finish)
                .delete(transactions::remove)
                .get(transactions::get_one),
        )
        .route(
            "/v1/databases/transactions/{tx}/operations",
            post(transactions::stage),
        )
        .fallback(|| async {
            AwError::new(
                404,
                "general_route_not_found",
                "The requested route was not found.",
            )
        })
        .with_state(state))
}

/// Serves the stand-in on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: StandinConfig,
    path: Option<&Path>,
) -> std::io::Result<()> {
    let app = router(config, path).map_err(|e| std::io::Error::other(e.message))?;
    axum::serve(listener, app).await
}

/// Starts the stand-in in this process on a free loopback port (in memory); returns its
/// endpoint (`http://127.0.0.1:PORT/v1`).
pub async fn spawn(config: StandinConfig) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, config, None).await {
            tracing::error!(error = %e, "appwrite stand-in stopped");
        }
    });
    Ok(format!("http://{addr}/v1"))
}
