//! [`FaultProxy`] (feature `fault-proxy`): a fault-injecting HTTP/1.1 proxy on `127.0.0.1:0`,
//! to test any HTTP adapter — ours or your own — against a real server over a bad network.
//!
//! Point the adapter at [`FaultProxy::url`] instead of the server. Each request is forwarded to
//! the upstream base URL unchanged, unless a fault is chosen for it: from a script
//! ([`FaultProxy::script`]), a fault applied to every request ([`FaultProxy::set_always`]), or
//! at random from a seeded generator ([`FaultProxy::set_random`]), in that order. Every request
//! is logged with its arrival time and fault, so tests can assert on the load a client puts on
//! the server ([`FaultProxy::max_in_window`]).
//!
//! ```no_run
//! # async fn doc() -> std::io::Result<()> {
//! use std::time::Duration;
//! use remote_cache_sync::testing::proxy::{FaultProxy, HttpFault};
//! let proxy = FaultProxy::start("http://127.0.0.1:8080").await?;
//! // The next request is applied by the server but its answer never arrives.
//! proxy.script([HttpFault::DropAfterForward]);
//! // Then one request in five fails at random, reproducibly.
//! proxy.set_random(7, 0.2, HttpFault::all_kinds());
//! // ... run the client against proxy.url() ...
//! proxy.clear_faults();
//! assert!(proxy.max_in_window(Duration::from_secs(1)) < 50);
//! # Ok(()) }
//! ```
//!
//! Responses are streamed through (server-sent events work). Hop-by-hop headers are not
//! forwarded; redirects are passed to the client, not followed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long [`HttpFault::Hang`] holds a request by default (longer than any sane client timeout
/// in a test; the client is expected to give up first).
pub const DEFAULT_HANG: Duration = Duration::from_secs(30);

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpFault {
    /// Close the connection without forwarding and without answering (the server never sees it).
    DropBeforeForward,
    /// Forward the request and wait for the whole answer, then close the connection without
    /// answering: the server applied the request, the client never hears.
    DropAfterForward,
    /// Wait this long, then forward normally (a slow network).
    Delay(Duration),
    /// Answer this status (e.g. 500, 502, 503, 504) with a JSON error body, without forwarding.
    Status(u16),
    /// Answer 429 without forwarding, with `Retry-After: <seconds>` when given.
    RateLimited {
        /// The `Retry-After` header in seconds (`None`: no header).
        retry_after: Option<u64>,
    },
    /// Hold the request without forwarding or answering (for [`FaultProxyBuilder::hang`],
    /// default [`DEFAULT_HANG`]), so the client's timeout fires; then close the connection.
    Hang,
    /// Forward the request (the server applies it), then hold the answer as [`Hang`](Self::Hang).
    HangAfterForward,
    /// Forward, then send the upstream status and headers (with its full `Content-Length`) but
    /// only the first half of the body, and close the connection.
    TruncatedBody,
    /// Forward, then answer `200` with a JSON content type and random bytes as the body.
    GarbageBody,
    /// Forward, send the upstream status and headers, then no body byte at all (a stalled
    /// stream: no event, no heartbeat) for the hang time, then close the connection. Not in
    /// [`all_kinds`](Self::all_kinds).
    StallBody,
}

impl HttpFault {
    /// One of each kind (a 0.2 s delay, a 503, and 429 with and without `Retry-After: 1`), for
    /// [`FaultProxy::set_random`].
    pub fn all_kinds() -> Vec<HttpFault> {
        vec![
            HttpFault::DropBeforeForward,
            HttpFault::DropAfterForward,
            HttpFault::Delay(Duration::from_millis(200)),
            HttpFault::Status(503),
            HttpFault::Status(500),
            HttpFault::RateLimited { retry_after: None },
            HttpFault::RateLimited {
                retry_after: Some(1),
            },
            HttpFault::Hang,
            HttpFault::HangAfterForward,
            HttpFault::TruncatedBody,
            HttpFault::GarbageBody,
        ]
    }

    /// Whether the upstream server receives the request under this fault.
    pub fn forwards(&self) -> bool {
        matches!(
            self,
            HttpFault::DropAfterForward
                | HttpFault::Delay(_)
                | HttpFault::HangAfterForward
                | HttpFault::TruncatedBody
                | HttpFault::GarbageBody
                | HttpFault::StallBody
        )
    }
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Arrival time, since the proxy started.
    pub at: Duration,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The fault applied, `None` when forwarded untouched.
    pub fault: Option<HttpFault>,
}

struct Random {
    rng: StdRng,
    rate: f64,
    faults: Vec<HttpFault>,
}

struct Plan {
    /// Path prefixes faults apply to (empty: every path).
    paths: Vec<String>,
    script: VecDeque<HttpFault>,
    always: Option<HttpFault>,
    random: Option<Random>,
    /// Random bytes for garbage bodies (seeded when random faults are).
    garbage: StdRng,
}

impl Plan {
    fn next(&mut self, path: &str) -> Option<HttpFault> {
        if !self.paths.is_empty() && !self.paths.iter().any(|p| path.starts_with(p.as_str())) {
            return None;
        }
        if let Some(f) = self.script.pop_front() {
            return Some(f);
        }
        if let Some(f) = self.always {
            return Some(f);
        }
        let r = self.random.as_mut()?;
        if r.faults.is_empty() || !r.rng.random_bool(r.rate.clamp(0.0, 1.0)) {
            return None;
        }
        let i = r.rng.random_range(0..r.faults.len());
        Some(r.faults[i])
    }
}

struct State {
    upstream: String,
    client: reqwest::Client,
    hang: Duration,
    started: Instant,
    plan: Mutex<Plan>,
    log: Mutex<Vec<RequestRecord>>,
    cancel: CancellationToken,
    /// Cancelled by [`FaultProxy::cut_streams`] (then replaced): ends the bodies streaming now.
    cut: Mutex<CancellationToken>,
}

/// Configures a [`FaultProxy`].
#[derive(Debug, Clone)]
pub struct FaultProxyBuilder {
    upstream: String,
    hang: Duration,
}

impl FaultProxyBuilder {
    /// How long [`HttpFault::Hang`] and [`HttpFault::HangAfterForward`] hold a request.
    pub fn hang(mut self, hang: Duration) -> Self {
        self.hang = hang;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> std::io::Result<FaultProxy> {
        let upstream = reqwest::Url::parse(&self.upstream)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the upstream must be an http(s):// URL",
                )
            })?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream: upstream.as_str().trim_end_matches('/').to_owned(),
            client,
            hang: self.hang,
            started: Instant::now(),
            plan: Mutex::new(Plan {
                paths: Vec::new(),
                script: VecDeque::new(),
                always: None,
                random: None,
                garbage: StdRng::seed_from_u64(0),
            }),
            log: Mutex::new(Vec::new()),
            cancel: CancellationToken::new(),
            cut: Mutex::new(CancellationToken::new()),
        });
        tokio::spawn(accept_loop(listener, state.clone()));
        Ok(FaultProxy { addr, state })
    }
}

/// A fault-injecting HTTP proxy in front of one upstream server. Stops when dropped (or on
/// [`shutdown`](Self::shutdown)), closing every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.cancel.cancel();
    }
}

impl FaultProxy {
    /// Starts configuring a proxy to `upstream` (a base URL such as `http://127.0.0.1:8080`;
    /// request paths are appended to it).
    pub fn builder(upstream: impl Into<String>) -> FaultProxyBuilder {
        FaultProxyBuilder {
            upstream: upstream.into(),
            hang: DEFAULT_HANG,
        }
    }

    /// A proxy with default settings and no faults yet.
    pub async fn start(upstream: impl Into<String>) -> std::io::Result<FaultProxy> {
        Self::builder(upstream).start().await
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's base URL (`http://127.0.0.1:<port>`), to give the client instead of the
    /// upstream's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.state.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues faults for the next requests, one each, before any other rule applies.
    pub fn script(&self, faults: impl IntoIterator<Item = HttpFault>) {
        self.plan().script.extend(faults);
    }

    /// Applies `fault` to every request (after the script) until changed; `None` stops it.
    pub fn set_always(&self, fault: Option<HttpFault>) {
        self.plan().always = fault;
    }

    /// Applies a fault to each request with probability `rate`, picked uniformly from `faults`,
    /// from a generator seeded with `seed` (garbage bodies are seeded from it too). The sequence
    /// of decisions is reproducible; which request gets which decision depends on the order
    /// requests arrive in.
    pub fn set_random(&self, seed: u64, rate: f64, faults: impl IntoIterator<Item = HttpFault>) {
        let mut plan = self.plan();
        plan.random = Some(Random {
            rng: StdRng::seed_from_u64(seed),
            rate,
            faults: faults.into_iter().collect(),
        });
        plan.garbage = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    }

    /// Applies faults only to requests whose path starts with one of `prefixes` (e.g.
    /// `["/v1/push"]`); other requests are forwarded untouched and consume no scripted fault or
    /// random draw. An empty list (the default) means every path; [`clear_faults`](Self::clear_faults)
    /// keeps the list.
    pub fn only_paths<S: Into<String>>(&self, prefixes: impl IntoIterator<Item = S>) {
        self.plan().paths = prefixes.into_iter().map(Into::into).collect();
    }

    /// Removes every fault: the script, the always-fault and random faults. Requests already
    /// held keep their fault.
    pub fn clear_faults(&self) {
        let mut plan = self.plan();
        plan.script.clear();
        plan.always = None;
        plan.random = None;
    }

    /// Breaks every response body streaming through the proxy right now (server-sent event
    /// streams, long downloads): the client sees its connection fail mid-body. Later requests
    /// are served normally.
    pub fn cut_streams(&self) {
        let old = std::mem::take(&mut *self.state.cut.lock().unwrap_or_else(|e| e.into_inner()));
        old.cancel();
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Number of requests that reached the upstream (forwarded, with or without a fault).
    pub fn forwarded_count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.fault.is_none_or(|f| f.forwards()))
            .count()
    }

    /// Number of requests received in the last `window`.
    pub fn count_in_last(&self, window: Duration) -> usize {
        let now = self.state.started.elapsed();
        self.requests()
            .iter()
            .filter(|r| now.saturating_sub(r.at) <= window)
            .count()
    }

    /// The most requests received within any span of length `window` (a sliding window over
    /// the whole log): the peak load the clients put on the proxy.
    pub fn max_in_window(&self, window: Duration) -> usize {
        max_in_window(&self.requests(), window)
    }

    /// Forgets the request log (e.g. after a warm-up).
    pub fn reset_log(&self) {
        self.state
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The time since the proxy started, on the clock of [`RequestRecord::at`].
    pub fn elapsed(&self) -> Duration {
        self.state.started.elapsed()
    }

    /// Stops accepting and closes every connection (also done on drop).
    pub fn shutdown(self) {
        self.state.cancel.cancel();
    }
}

/// The most records within any span of `window` (records must be in arrival order).
pub fn max_in_window(log: &[RequestRecord], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..log.len() {
        while log[end].at.saturating_sub(log[start].at) > window {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let stream = tokio::select! {
            _ = state.cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "fault proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let cancel = state.cancel.clone();
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = conn => {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "fault proxy: connection closed");
                    }
                }
            }
        });
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for DropConnection {}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body =
        serde_json::json!({ "error": { "code": code, "message": message }, "message": message });
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Hop-by-hop headers, never forwarded in either direction.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The upstream's answer: status, headers and the body still streaming.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: reqwest::Response,
}

async fn forward(state: &State, req: Request<Incoming>) -> Result<Upstream, Response<ProxyBody>> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "fault proxy: cannot read the request body");
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "proxy_bad_request",
                "the proxy could not read the request body",
            ));
        }
    };
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &parts.headers {
        if hop_by_hop(name) || name == header::CONTENT_LENGTH {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let sent = state
        .client
        .request(method, format!("{}{path}", state.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut out = HeaderMap::new();
            for (name, value) in resp.headers() {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_str().as_bytes()),
                    HeaderValue::from_bytes(value.as_bytes()),
                ) && !hop_by_hop(&n)
                {
                    out.append(n, v);
                }
            }
            Ok(Upstream {
                status,
                headers: out,
                body: resp,
            })
        }
        Err(e) => {
            tracing::debug!(error = %e.without_url(), "fault proxy: upstream unreachable");
            Err(json_error(
                StatusCode::BAD_GATEWAY,
                "proxy_upstream_unreachable",
                "the proxy could not reach the upstream server",
            ))
        }
    }
}

fn streamed(state: &State, up: Upstream) -> Response<ProxyBody> {
    let cut = state.cut.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let body = up
        .body
        .bytes_stream()
        .map(|r| r.map(Frame::data).map_err(|e| Box::new(e) as BoxError));
    // Once cut, the body fails: hyper closes the connection mid-body.
    let stream = body.take_until(cut.clone().cancelled_owned()).chain(
        futures::stream::once(async move { Err(Box::new(DropConnection) as BoxError) })
            .filter(move |_| std::future::ready(cut.is_cancelled())),
    );
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    *resp.status_mut() = up.status;
    copy_headers(&up.headers, resp.headers_mut());
    resp
}

async fn hold(state: &State) {
    tokio::select! {
        _ = tokio::time::sleep(state.hang) => {}
        _ = state.cancel.cancelled() => {}
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, DropConnection> {
    let fault = state
        .plan
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .next(req.uri().path());
    state
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RequestRecord {
            at: state.started.elapsed(),
            method: req.method().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
            fault,
        });
    if let Some(f) = fault {
        tracing::debug!(fault = ?f, path = %req.uri().path(), "fault proxy: injecting");
    }
    let forward_now = |req| {
        let state = state.clone();
        async move { forward(&state, req).await }
    };
    match fault {
        None => Ok(match forward_now(req).await {
            Ok(up) => streamed(&state, up),
            Err(resp) => resp,
        }),
        Some(HttpFault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(match forward_now(req).await {
                Ok(up) => streamed(&state, up),
                Err(resp) => resp,
            })
        }
        Some(HttpFault::DropBeforeForward) => Err(DropConnection),
        Some(HttpFault::DropAfterForward) => {
            if let Ok(up) = forward_now(req).await {
                let _ = up.body.bytes().await;
            }
            Err(DropConnection)
        }
        Some(HttpFault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Ok(json_error(
                status,
                "injected",
                "injected by the fault proxy",
            ))
        }
        Some(HttpFault::RateLimited { retry_after }) => {
            let mut resp = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "slow down (injected by the fault proxy)",
            );
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Ok(resp)
        }
        Some(HttpFault::Hang) => {
            hold(&state).await;
            Err(DropConnection)
        }
        Some(HttpFault::HangAfterForward) => {
            if let Ok(up) = forward_now(req).await {
                let _ = up.body.bytes().await;
            }
            hold(&state).await;
            Err(DropConnection)
        }
        Some(HttpFault::TruncatedBody) => {
            let up = match forward_now(req).await {
                Ok(up) => up,
                Err(resp) => return Ok(resp),
            };
            let (status, headers) = (up.status, up.headers.clone());
            let Ok(bytes) = up.body.bytes().await else {
                return Err(DropConnection);
            };
            let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                Ok(Frame::data(half)),
                Err(Box::new(DropConnection) as BoxError),
            ];
            let stream: Pin<Box<dyn Stream<Item = _> + Send>> =
                Box::pin(futures::stream::iter(frames));
            let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
            *resp.status_mut() = status;
            copy_headers(&headers, resp.headers_mut());
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Ok(resp)
        }
        Some(HttpFault::StallBody) => {
            let up = match forward_now(req).await {
                Ok(up) => up,
                Err(resp) => return Ok(resp),
            };
            let (status, headers) = (up.status, up.headers.clone());
            let hang = state.hang;
            let cancel = state.cancel.clone();
            // Hold the upstream answer unread, send nothing, then fail the body.
            let stream = futures::stream::once(async move {
                tokio::select! {
                    _ = tokio::time::sleep(hang) => {}
                    _ = cancel.cancelled() => {}
                }
                drop(up);
                Err::<Frame<Bytes>, BoxError>(Box::new(DropConnection))
            });
            let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
            *resp.status_mut() = status;
            copy_headers(&headers, resp.headers_mut());
            Ok(resp)
        }
        Some(HttpFault::GarbageBody) => {
            if let Ok(up) = forward_now(req).await {
                let _ = up.body.bytes().await;
            }
            let garbage = {
                let mut plan = state.plan.lock().unwrap_or_else(|e| e.into_inner());
                let len = plan.garbage.random_range(0..512);
                let mut bytes = vec![0u8; len];
                plan.garbage.fill_bytes(&mut bytes);
                bytes
            };
            let mut resp = Response::new(full(garbage));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ms: u64) -> RequestRecord {
        RequestRecord {
            at: Duration::from_millis(ms),
            method: "GET".into(),
            path: "/".into(),
            fault: None,
        }
    }

    #[test]
    fn sliding_window_counts_the_peak() {
        let log: Vec<_> = [0, 10, 20, 500, 1000, 1005, 1010, 1015, 3000]
            .into_iter()
            .map(rec)
            .collect();
        assert_eq!(max_in_window(&log, Duration::from_millis(20)), 4);
        assert_eq!(max_in_window(&log, Duration::from_millis(1000)), 6);
        assert_eq!(max_in_window(&[], Duration::from_secs(1)), 0);
    }

    #[test]
    fn plan_order_is_script_then_always_then_random() {
        let mut plan = Plan {
            paths: Vec::new(),
            script: [HttpFault::Hang].into(),
            always: Some(HttpFault::Status(503)),
            random: None,
            garbage: StdRng::seed_from_u64(1),
        };
        assert_eq!(plan.next("/"), Some(HttpFault::Hang));
        assert_eq!(plan.next("/"), Some(HttpFault::Status(503)));
        plan.paths = vec!["/v1/push".into()];
        assert_eq!(plan.next("/v1/pull"), None);
        assert_eq!(plan.next("/v1/push"), Some(HttpFault::Status(503)));
        plan.paths.clear();
        plan.always = None;
        assert_eq!(plan.next("/"), None);
        plan.random = Some(Random {
            rng: StdRng::seed_from_u64(3),
            rate: 1.0,
            faults: vec![HttpFault::GarbageBody],
        });
        assert_eq!(plan.next("/"), Some(HttpFault::GarbageBody));
    }
}
