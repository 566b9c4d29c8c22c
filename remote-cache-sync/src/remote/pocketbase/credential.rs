//! Who the adapter is, and how its tokens are got and renewed ([`PocketBaseAuth`], a
//! [`TokenProvider`] for the shared token cache): password login
//! (`auth-with-password`), `auth-refresh` before expiry, `exp` read from the JWT itself
//! (PocketBase answers a list made with an expired token as a guest, with an empty `200`, so
//! the adapter must know the token is stale before it asks).

use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::client::BACKEND;
use crate::error::{Error, Result};
use crate::remote::client::token::{Token, TokenProvider, jwt_claims};
use crate::remote::client::transport::{Reply, Transport};

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

/// A token of the shared cache from a PocketBase JWT (its `exp` is required); `validated` when it
/// came from the server (a login or a refresh).
pub(crate) fn token(value: String, validated: bool) -> Result<Token> {
    let claims = decode_claims(&value)?;
    let now = Timestamp::now().as_second();
    Ok(Token {
        value,
        expires_at: Some(claims.exp),
        obtained: now,
        refresh: None,
        validated: validated.then_some(now),
    })
}

/// PocketBase's auth endpoints as a [`TokenProvider`].
pub(crate) struct PocketBaseAuth {
    pub transport: Transport,
    pub credentials: Credentials,
}

impl PocketBaseAuth {
    async fn login(&self) -> Result<Token> {
        let Some((collection, identity, password)) = self.credentials.login() else {
            return Err(unauthorized("no login credentials"));
        };
        let url = self
            .transport
            .url(&["api", "collections", collection, "auth-with-password"])?;
        let body = serde_json::json!({ "identity": identity, "password": password });
        let reply = self
            .transport
            .send(&self.transport.request(Method::POST, url).json(&body))
            .await?;
        if reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::NOT_FOUND {
            return Err(unauthorized(format!(
                "login to {collection:?} failed: {}",
                reply.message()
            )));
        }
        token_from(reply)
    }

    async fn refresh(&self, t: &Token, claims: &Claims) -> Result<Token> {
        // The token names its collection by id; the API accepts ids in place of names.
        let url =
            self.transport
                .url(&["api", "collections", &claims.collection_id, "auth-refresh"])?;
        let req = self
            .transport
            .authorize(self.transport.request(Method::POST, url), Some(&t.value));
        let reply = self.transport.send(&req).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(unauthorized("auth-refresh: the token's collection is gone"));
        }
        token_from(reply)
    }
}

fn token_from(reply: Reply) -> Result<Token> {
    let reply = reply.success()?;
    let v: Value = reply.json()?;
    let value = v
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::MalformedResponse {
            backend: BACKEND,
            message: "auth answer without a token".into(),
        })?;
    token(value.to_owned(), true)
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl TokenProvider for PocketBaseAuth {
    async fn initial(&self) -> Result<Option<Token>> {
        match &self.credentials {
            Credentials::Anonymous => Ok(None),
            Credentials::Token(fixed) => {
                let t = token(fixed.clone(), false)?;
                if t.expired(Timestamp::now().as_second()) {
                    return Err(unauthorized("the token has expired"));
                }
                let claims = decode_claims(&t.value)?;
                if claims.refreshable {
                    // Also proves the token valid: an invalid one would read lists as a guest.
                    self.refresh(&t, &claims).await.map(Some)
                } else {
                    Ok(Some(t))
                }
            }
            _ => self.login().await.map(Some),
        }
    }

    /// A refreshable token still valid is refreshed (a refused refresh falls back to a login
    /// when there are login credentials); any other is replaced by a login, or kept until it
    /// expires (`None`) when there are none (an impersonation token).
    async fn renew(&self, current: &Token) -> Result<Option<Token>> {
        let claims = decode_claims(&current.value)?;
        let can_login = self.credentials.login().is_some();
        if claims.refreshable && !current.expired(Timestamp::now().as_second()) {
            return match self.refresh(current, &claims).await {
                Ok(t) => Ok(Some(t)),
                Err(e) if (e.is_auth() || matches!(e, Error::Refused { .. })) && can_login => {
                    self.login().await.map(Some)
                }
                Err(e) => Err(e),
            };
        }
        if can_login {
            return self.login().await.map(Some);
        }
        Ok(None)
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
    let v = jwt_claims(token)
        .ok_or_else(|| unauthorized("the token is not a JWT with a JSON payload"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
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
    fn tokens_carry_their_expiry() {
        let payload = r#"{"collectionId":"pbc_1","exp":1795311329,"id":"u1","refreshable":true}"#;
        let t = token(format!("{}.{}.sig", b64("{}"), b64(payload)), true).unwrap();
        assert_eq!(t.expires_at, Some(1_795_311_329));
        assert!(t.validated.is_some());
        assert!(!format!("{t:?}").contains("sig"));
        assert!(token("not-a-jwt".into(), false).unwrap_err().is_auth());
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
