//! Credentials and the token cache: password login, refresh before expiry, `exp` read from the
//! JWT itself (PocketBase answers a list made with an expired token as a guest, with an empty
//! `200`, so the adapter must know the token is stale before it asks).

use std::fmt;

use jiff::Timestamp;
use serde_json::Value;

use crate::error::{Error, Result};

/// How the adapter authenticates. `Debug` never prints a password or token.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// No `Authorization` header (collections whose rules allow guests).
    #[default]
    Anonymous,
    /// A superuser (`_superusers` collection): bypasses API rules, so compare-and-set rules do not
    /// apply (see the guide).
    Superuser {
        /// Login email.
        email: String,
        /// Password.
        password: String,
    },
    /// A record of an auth collection (usually `users`): API rules apply.
    User {
        /// The auth collection (`users`).
        collection: String,
        /// Email or username.
        identity: String,
        /// Password.
        password: String,
    },
    /// A ready-made token (from your own login flow, or `impersonate`). Refreshed through
    /// `auth-refresh` while it is refreshable and valid; once it expires every call fails with
    /// [`Error::Unauthorized`].
    Token(String),
}

impl Credentials {
    /// Superuser credentials.
    pub fn superuser(email: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Superuser {
            email: email.into(),
            password: password.into(),
        }
    }

    /// User credentials in the auth collection `collection`.
    pub fn user(
        collection: impl Into<String>,
        identity: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Credentials::User {
            collection: collection.into(),
            identity: identity.into(),
            password: password.into(),
        }
    }

    /// A fixed token.
    pub fn token(token: impl Into<String>) -> Self {
        Credentials::Token(token.into())
    }

    /// The auth collection a login goes to, if any.
    pub(crate) fn login(&self) -> Option<(&str, &str, &str)> {
        match self {
            Credentials::Superuser { email, password } => Some(("_superusers", email, password)),
            Credentials::User {
                collection,
                identity,
                password,
            } => Some((collection, identity, password)),
            _ => None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Superuser { email, .. } => f
                .debug_struct("Superuser")
                .field("email", email)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::User {
                collection,
                identity,
                ..
            } => f
                .debug_struct("User")
                .field("collection", collection)
                .field("identity", identity)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// The claims the adapter needs from a PocketBase JWT.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claims {
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Whether `auth-refresh` accepts the token.
    pub refreshable: bool,
    /// The auth collection's id.
    pub collection_id: String,
    /// The auth record's id.
    pub record_id: String,
}

/// A token with its decoded claims.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub claims: Claims,
    /// When the server last accepted it (login or refresh); `None` for a token never checked.
    pub validated: Option<Timestamp>,
    /// When this process got it (to size the refresh margin to its lifetime).
    pub obtained: Timestamp,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("claims", &self.claims)
            .finish()
    }
}

impl Token {
    /// Decodes a token's claims (the signature is the server's business).
    pub fn parse(value: String) -> Result<Self> {
        let claims = decode_claims(&value)?;
        Ok(Token {
            value,
            claims,
            validated: None,
            obtained: Timestamp::now(),
        })
    }

    /// Whether the token expires within `margin_s` seconds of `now`.
    pub fn expires_within(&self, now: Timestamp, margin_s: i64) -> bool {
        self.claims.exp.saturating_sub(margin_s) <= now.as_second()
    }

    /// How long before expiry to refresh: `max_s`, or three quarters of the lifetime for short
    /// tokens (refreshed once a quarter of it has passed, so requests a few seconds apart keep
    /// a 10-second token alive without refreshing on every request).
    pub fn refresh_margin(&self, max_s: i64) -> i64 {
        let lifetime = self.claims.exp.saturating_sub(self.obtained.as_second());
        (lifetime.saturating_mul(3) / 4).clamp(0, max_s)
    }

    /// Whether the server accepted the token less than `max_age_s` seconds before `now`.
    pub fn validated_within(&self, now: Timestamp, max_age_s: i64) -> bool {
        self.validated
            .is_some_and(|v| now.as_second().saturating_sub(v.as_second()) < max_age_s)
    }

    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.claims.exp <= now.as_second()
    }
}

fn unauthorized(message: impl Into<String>) -> Error {
    Error::Unauthorized {
        backend: "pocketbase",
        message: message.into(),
    }
}

/// Reads the payload of a JWT. Errors never include the token.
pub(crate) fn decode_claims(token: &str) -> Result<Claims> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthorized("the token is not a JWT"));
    };
    let bytes = base64url_decode(payload)
        .ok_or_else(|| unauthorized("the token payload is not base64url"))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| unauthorized("the token payload is not JSON"))?;
    let exp = v
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| unauthorized("the token has no `exp` claim"))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Claims {
        exp,
        refreshable: v
            .get("refreshable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        collection_id: text("collectionId"),
        record_id: text("id"),
    })
}

pub(crate) use crate::remote::client::token::base64url_decode;

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn decodes_claims() {
        let payload = r#"{"collectionId":"pbc_1","exp":1795311329,"id":"u1","refreshable":true,"type":"auth"}"#;
        let tok = format!("{}.{}.sig", b64("{}"), b64(payload));
        let c = decode_claims(&tok).unwrap();
        assert_eq!(c.exp, 1_795_311_329);
        assert!(c.refreshable);
        assert_eq!(c.record_id, "u1");
        assert_eq!(c.collection_id, "pbc_1");
    }

    #[test]
    fn refresh_margin_follows_the_lifetime() {
        let now = Timestamp::now().as_second();
        let mk = |exp: i64| Token {
            value: String::new(),
            claims: Claims {
                exp,
                refreshable: true,
                collection_id: String::new(),
                record_id: String::new(),
            },
            validated: None,
            obtained: Timestamp::from_second(now).unwrap(),
        };
        assert_eq!(mk(now + 10).refresh_margin(120), 7);
        assert_eq!(mk(now + 86_400).refresh_margin(120), 120);
        assert_eq!(mk(now - 5).refresh_margin(120), 0);
    }

    #[test]
    fn rejects_garbage_without_echoing_it() {
        let e = decode_claims("secret-garbage").unwrap_err();
        assert!(e.is_auth());
        assert!(!e.to_string().contains("secret-garbage"));
        assert!(decode_claims("a.!!!.c").unwrap_err().is_auth());
    }

    #[test]
    fn debug_redacts() {
        let s = format!(
            "{:?} {:?} {:?}",
            Credentials::superuser("a@b.c", "hunter2"),
            Credentials::user("users", "u", "hunter3"),
            Credentials::token("tok-secret")
        );
        assert!(
            !s.contains("hunter2") && !s.contains("hunter3") && !s.contains("tok-secret"),
            "{s}"
        );
    }
}
