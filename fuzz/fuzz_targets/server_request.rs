//! Our sync server's request handling, in process: the first byte picks the endpoint and method,
//! the second the credentials, the rest is the body. Every answer is below 500 and is JSON, with
//! errors in the stable `{"error":{"code","message"}}` shape.
#![no_main]

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use remote_cache_sync::JsonRecord;
use remote_cache_sync::remote::sqlite::SqliteRemoteStore;
use remote_cache_sync::server::{ScopePattern, Server, StaticTokens};
use serde_json::Value;
use tower::ServiceExt;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

static ROUTER: LazyLock<axum::Router> = LazyLock::new(|| {
    let mut tokens = StaticTokens::new();
    tokens.grant("good", ScopePattern::any()).unwrap();
    tokens.grant_spec("narrow:records,owner=o1").unwrap();
    let storage = SqliteRemoteStore::<JsonRecord>::in_memory().unwrap();
    // As `rcs serve` runs it: with the raw pull fast path.
    Server::from_arcs(Arc::new(storage.clone()), Arc::new(tokens))
        .raw_feed(Arc::new(storage))
        .max_body_bytes(64 * 1024)
        .into_router()
});

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/pull"),
    ("POST", "/v1/push"),
    ("POST", "/v1/get"),
    ("GET", "/v1/time"),
    ("GET", "/v1/health"),
    ("GET", "/v1/pull"),
    ("PUT", "/v1/push"),
    ("POST", "/v1/nope"),
];

fuzz_target!(|data: &[u8]| {
    let (Some(&e), Some(&t)) = (data.first(), data.get(1)) else {
        return;
    };
    let (method, path) = ENDPOINTS[e as usize % ENDPOINTS.len()];
    let body = data[2..].to_vec();
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("content-type", "application/json");
    match t % 4 {
        0 => req = req.header("authorization", "Bearer good"),
        1 => req = req.header("authorization", "Bearer narrow"),
        2 => req = req.header("authorization", "Bearer wrong"),
        _ => {}
    }
    let req = req.body(Body::from(body)).unwrap();
    RT.block_on(async {
        let resp = ROUTER.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(status < 500, "{method} {path} answered {status}: {bytes:?}");
        let v: Value = serde_json::from_slice(&bytes).expect("the answer is JSON");
        if status >= 400 {
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{v}"
            );
        }
    });
});
