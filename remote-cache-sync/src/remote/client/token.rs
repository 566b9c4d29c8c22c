//! Bearer tokens, written once: a [`TokenProvider`] says how a backend gets a first token and
//! renews one (login, refresh grant); the [`TokenCache`] keeps the current one, renews it before
//! it expires (its JWT `exp`), renews it when the server has not accepted it for a while (where
//! a backend answers a revoked token as a guest, [`TokenCache::with_revalidation`]), and renews
//! it once when the server refused it (a 401), so the request is retried once with a fresh
//! token and a second 401 is the caller's error.
//!
//! A token's value never appears in `Debug` output or errors.

use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;

use crate::error::{Error, Result};

/// A bearer token and what the cache needs to know of it.
#[derive(Clone)]
pub(crate) struct Token {
    /// The token itself (`Authorization: Bearer <value>`).
    pub value: String,
    /// Expiry (the JWT's `exp`, Unix seconds), when known.
    pub expires_at: Option<i64>,
    /// When this process got it (Unix seconds), to size the refresh margin to its lifetime.
    pub obtained: i64,
    /// A refresh token (or other renewal secret) that comes with it, if any.
    pub refresh: Option<String>,
    /// When the server last accepted it (Unix seconds: it came from a login or a refresh);
    /// `None` for a token never checked.
    pub validated: Option<i64>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Token {
    /// A token whose expiry is read from its JWT payload (none when it is not a JWT).
    pub fn from_jwt(value: String, refresh: Option<String>) -> Self {
        let expires_at = jwt_claims(&value).and_then(|c| c.get("exp").and_then(Value::as_i64));
        Token {
            value,
            expires_at,
            obtained: Timestamp::now().as_second(),
            refresh,
            validated: None,
        }
    }

    /// Whether it has expired at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Whether it should be renewed at `now`: `max_margin_s` before its expiry, or, for a
    /// short-lived token, once a quarter of its lifetime has passed (so requests a few seconds
    /// apart keep a 10-second token alive without renewing it on every request).
    pub fn due(&self, now: i64, max_margin_s: i64) -> bool {
        let Some(exp) = self.expires_at else {
            return false;
        };
        let lifetime = exp.saturating_sub(self.obtained);
        let margin = (lifetime.saturating_mul(3) / 4).clamp(0, max_margin_s);
        exp.saturating_sub(margin) <= now
    }

    /// Whether the server accepted it less than `max_age_s` seconds before `now`.
    pub fn validated_within(&self, now: i64, max_age_s: i64) -> bool {
        self.validated
            .is_some_and(|v| now.saturating_sub(v) < max_age_s)
    }
}

/// How a backend gets and renews tokens.
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
pub(crate) trait TokenProvider: Send + Sync {
    /// The first token (a login, or the configured token); `None` for no `Authorization`.
    async fn initial(&self) -> Result<Option<Token>>;

    /// A token replacing `current` (a refresh grant, a new login). `Ok(None)` when there is no
    /// way to renew it (a fixed token): the cache then keeps it until it expires.
    async fn renew(&self, current: &Token) -> Result<Option<Token>>;
}

/// The current token of a provider.
pub(crate) struct TokenCache<P> {
    provider: P,
    slot: tokio::sync::Mutex<Option<Token>>,
    backend: &'static str,
    max_margin_s: i64,
    revalidate_s: Option<i64>,
}

impl<P> fmt::Debug for TokenCache<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl<P: TokenProvider> TokenCache<P> {
    /// A cache renewing tokens up to `max_margin_s` seconds before they expire.
    pub fn new(provider: P, backend: &'static str, max_margin_s: i64) -> Self {
        TokenCache {
            provider,
            slot: tokio::sync::Mutex::new(None),
            backend,
            max_margin_s,
            revalidate_s: None,
        }
    }

    /// Renews a token the server has not accepted within `max_age_s` seconds (when the
    /// provider can renew it), for backends that answer a revoked but unexpired token as a guest.
    pub fn with_revalidation(mut self, max_age_s: i64) -> Self {
        self.revalidate_s = Some(max_age_s);
        self
    }

    /// The provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    fn expired(&self) -> Error {
        Error::Unauthorized {
            backend: self.backend,
            message: "the access token has expired and cannot be renewed".into(),
        }
    }

    /// The token to send now: the cached one, a first one, or a renewed one when the cached one
    /// is due (or not accepted by the server within the revalidation age). A token known to
    /// have expired is never returned ([`Error::Unauthorized`]).
    pub async fn get(&self) -> Result<Option<String>> {
        self.get_validated(self.revalidate_s).await
    }

    /// [`get`](Self::get), renewing (where the provider can) a token the server has not
    /// accepted within `max_age_s` seconds, so an empty answer is not a guest's answer. A
    /// renewal for that reason that fails is an error, never a pass.
    pub async fn get_validated(&self, max_age_s: Option<i64>) -> Result<Option<String>> {
        let mut slot = self.slot.lock().await;
        let now = Timestamp::now().as_second();
        let current = match slot.clone() {
            Some(t) => t,
            None => match self.provider.initial().await? {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        let stale = max_age_s.is_some_and(|a| !current.validated_within(now, a));
        let token = if stale || current.due(now, self.max_margin_s) {
            match self.provider.renew(&current).await {
                Ok(Some(t)) => t,
                Ok(None) if !current.expired(now) => current,
                Ok(None) => return Err(self.expired()),
                // A renewal that failed for a passing reason: the old token serves while valid.
                Err(e) if e.is_retryable() && !current.expired(now) && !stale => {
                    tracing::warn!(backend = self.backend, error = %e, "token renewal failed; using the current token");
                    current
                }
                Err(e) => return Err(e),
            }
        } else {
            current
        };
        if token.expired(now) {
            return Err(self.expired());
        }
        let value = token.value.clone();
        *slot = Some(token);
        Ok(Some(value))
    }

    /// After the server refused `rejected` (a 401): renews it once (unless another request
    /// already did) and returns the new token; [`Error::Unauthorized`] when it cannot.
    pub async fn after_refusal(&self, rejected: Option<&str>) -> Result<Option<String>> {
        let mut slot = self.slot.lock().await;
        let Some(current) = slot.clone() else {
            return Err(self.refused());
        };
        if Some(current.value.as_str()) != rejected {
            return Ok(Some(current.value));
        }
        match self.provider.renew(&current).await? {
            Some(t) => {
                let value = t.value.clone();
                *slot = Some(t);
                Ok(Some(value))
            }
            None => Err(self.refused()),
        }
    }

    fn refused(&self) -> Error {
        Error::Unauthorized {
            backend: self.backend,
            message: "the server refused the token and it cannot be renewed".into(),
        }
    }
}

/// The payload of a JWT as JSON (the signature is the server's business); `None` when `token`
/// is not a JWT.
pub(crate) fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn tok(value: &str, lifetime: i64) -> Token {
        let now = Timestamp::now().as_second();
        Token {
            value: value.into(),
            expires_at: Some(now + lifetime),
            obtained: now,
            refresh: Some("r".into()),
            validated: Some(now),
        }
    }

    struct Counting {
        first_lifetime: i64,
        renewals: AtomicUsize,
        can_renew: bool,
    }

    #[async_trait]
    impl TokenProvider for Counting {
        async fn initial(&self) -> Result<Option<Token>> {
            Ok(Some(tok("t0", self.first_lifetime)))
        }
        async fn renew(&self, _: &Token) -> Result<Option<Token>> {
            if !self.can_renew {
                return Ok(None);
            }
            let n = self.renewals.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Some(tok(&format!("t{n}"), 3600)))
        }
    }

    fn cache(first_lifetime: i64, can_renew: bool) -> TokenCache<Counting> {
        TokenCache::new(
            Counting {
                first_lifetime,
                renewals: AtomicUsize::new(0),
                can_renew,
            },
            "t",
            60,
        )
    }

    #[tokio::test]
    async fn renews_before_expiry_and_once_after_a_refusal() {
        let c = cache(3600, true);
        assert_eq!(c.get().await.unwrap().as_deref(), Some("t0"));
        assert_eq!(c.get().await.unwrap().as_deref(), Some("t0"), "cached");
        // A refusal renews once; a second caller holding the old token gets the new one.
        assert_eq!(
            c.after_refusal(Some("t0")).await.unwrap().as_deref(),
            Some("t1")
        );
        assert_eq!(
            c.after_refusal(Some("t0")).await.unwrap().as_deref(),
            Some("t1")
        );
        // Due (at its expiry): renewed before it is sent.
        let c = cache(0, true);
        assert_eq!(c.get().await.unwrap().as_deref(), Some("t1"));
    }

    #[tokio::test]
    async fn an_expired_fixed_token_is_unauthorized() {
        let c = cache(-5, false);
        assert!(c.get().await.unwrap_err().is_auth());
        let c = cache(1, false);
        assert_eq!(c.get().await.unwrap().as_deref(), Some("t0"), "valid, kept");
        assert!(c.after_refusal(Some("t0")).await.unwrap_err().is_auth());
    }

    #[tokio::test]
    async fn a_token_not_accepted_lately_is_renewed() {
        // `tok` marks tokens accepted now: a zero age makes every one stale.
        let c = cache(3600, true).with_revalidation(600);
        assert_eq!(c.get().await.unwrap().as_deref(), Some("t0"), "fresh");
        assert_eq!(
            c.get_validated(Some(0)).await.unwrap().as_deref(),
            Some("t1")
        );
        assert_eq!(c.get().await.unwrap().as_deref(), Some("t1"), "cached");
        // A fixed token (no renewal) is kept while valid.
        let c = cache(3600, false);
        assert_eq!(
            c.get_validated(Some(0)).await.unwrap().as_deref(),
            Some("t0")
        );
    }

    #[test]
    fn debug_redacts_and_claims_decode() {
        let t = tok("secret-token", 10);
        assert!(!format!("{t:?}").contains("secret"));
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjEyMywicm9sZSI6ImFub24ifQ.sig";
        let c = jwt_claims(jwt).unwrap();
        assert_eq!(c["exp"], 123);
        assert_eq!(Token::from_jwt(jwt.into(), None).expires_at, Some(123));
        assert!(jwt_claims("nope").is_none());
    }
}
