//! The Supabase stand-in (`scripts/start-supabase.sh`) as tests reach it: its URL and anon key,
//! and users signed up through its Auth API.
#![allow(dead_code)] // Each test crate uses a part.

use remote_cache_sync::testing::require_env;
use serde_json::{Value, json};

/// Where the stand-in listens, and its anon key.
pub struct Env {
    pub url: String,
    pub anon: String,
}

/// `None` when `RCS_TEST_SUPABASE_URL` is unset (a failure under `RCS_TEST_REQUIRE_SERVERS=1`).
pub fn env() -> Option<Env> {
    let url = require_env("RCS_TEST_SUPABASE_URL")?;
    let anon = std::env::var("RCS_TEST_SUPABASE_ANON_KEY").expect("RCS_TEST_SUPABASE_ANON_KEY");
    Some(Env { url, anon })
}

/// A new user's session: `(access token, refresh token)`.
pub async fn signup(e: &Env) -> (String, String) {
    let session: Value = reqwest::Client::new()
        .post(format!("{}/auth/v1/signup", e.url))
        .header("apikey", &e.anon)
        .json(&json!({
            "email": format!("u{}@example.com", uuid::Uuid::now_v7().simple()),
            "password": "password-123",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        session["access_token"].as_str().unwrap().to_owned(),
        session["refresh_token"].as_str().unwrap().to_owned(),
    )
}
