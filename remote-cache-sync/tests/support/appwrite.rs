//! Shared by the Appwrite tests: the server to test against (`RCS_TEST_APPWRITE_*`, else an
//! in-process stand-in set up with the guide's blocks, verbatim), stores, and raw REST calls.
#![allow(dead_code)] // Each test crate uses a part.

use std::sync::LazyLock;

use remote_cache_sync::remote::appwrite::{AppwriteRemoteStore, Credential};
use remote_cache_sync::testing::TestRecord;
use remote_cache_sync::testing::appwrite::{StandinConfig, spawn};
use serde_json::{Value, json};

pub const DB: &str = "rcs";

#[derive(Clone)]
pub struct Env {
    pub endpoint: String,
    pub project: String,
    pub key: String,
}

/// The `appwrite-request` blocks of the guide: (method, path, body).
pub fn guide_requests() -> Vec<(String, String, Value)> {
    let guide = include_str!("../../../docs/backends/appwrite.md");
    let mut out = Vec::new();
    let mut rest = guide;
    while let Some(start) = rest.find("```appwrite-request\n") {
        let block = &rest[start + "```appwrite-request\n".len()..];
        let end = block.find("```").expect("closed block");
        let (first, body) = block[..end].split_once('\n').expect("a request line");
        let (method, path) = first.split_once(' ').expect("METHOD PATH");
        let body = serde_json::from_str(body).expect("a JSON body");
        out.push((method.to_owned(), path.trim().to_owned(), body));
        rest = &block[end + 3..];
    }
    assert!(out.len() >= 5, "the guide's set-up blocks were not found");
    out
}

/// An in-process stand-in with the guide applied, on a runtime of its own (tests come and go).
pub static LOCAL: LazyLock<Env> = LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let key = format!("{:032x}", rand::random::<u128>());
            let config = StandinConfig {
                project: "rcs-test".into(),
                api_key: key.clone(),
            };
            let endpoint = spawn(config).await.unwrap();
            let host = endpoint.trim_end_matches("/v1").to_owned();
            let http = reqwest::Client::new();
            for (method, path, body) in guide_requests() {
                let resp = http
                    .request(method.parse().unwrap(), format!("{host}{path}"))
                    .header("X-Appwrite-Project", "rcs-test")
                    .header("X-Appwrite-Key", &key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    resp.status().is_success(),
                    "{method} {path}: {}",
                    resp.status()
                );
            }
            tx.send(Env {
                endpoint,
                project: "rcs-test".into(),
                key,
            })
            .unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
});

pub fn env() -> Option<Env> {
    Some(match std::env::var("RCS_TEST_APPWRITE_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Env {
            endpoint,
            project: std::env::var("RCS_TEST_APPWRITE_PROJECT").expect("RCS_TEST_APPWRITE_PROJECT"),
            key: std::env::var("RCS_TEST_APPWRITE_KEY").expect("RCS_TEST_APPWRITE_KEY"),
        },
        _ => LOCAL.clone(),
    })
}

pub fn store_at(e: &Env, endpoint: &str, c: Credential) -> AppwriteRemoteStore<TestRecord> {
    AppwriteRemoteStore::builder(endpoint, &e.project, DB)
        .credential(c)
        .build()
        .unwrap()
}

pub fn keyed(e: &Env) -> AppwriteRemoteStore<TestRecord> {
    store_at(e, &e.endpoint, Credential::api_key(&e.key))
}

/// Raw REST calls, for set-up (users, JWTs) and for writing as another app would.
pub struct Raw<'a> {
    e: &'a Env,
    http: reqwest::Client,
}

impl<'a> Raw<'a> {
    pub fn new(e: &'a Env) -> Self {
        Raw {
            e,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.e.endpoint))
            .header("X-Appwrite-Project", &self.e.project)
            .header("X-Appwrite-Key", &self.e.key);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A new user; returns its id and a JWT valid `secs` seconds.
    pub async fn user_with_jwt(&self, secs: i64) -> (String, String) {
        let id = format!("u{:016x}", rand::random::<u64>()); // Random: v7 ids of one millisecond share their head.
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/users",
                &[],
                Some(json!({"userId": id})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/users/{id}/jwts"),
                &[],
                Some(json!({"duration": secs})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        (id, v["jwt"].as_str().unwrap().to_owned())
    }
}
