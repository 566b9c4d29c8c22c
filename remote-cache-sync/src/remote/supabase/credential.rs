//! Who the adapter is, and how its tokens are got and renewed through GoTrue (Supabase Auth):
//! `POST /auth/v1/token?grant_type=password` to sign in, `…?grant_type=refresh_token` to renew a
//! session (refresh tokens rotate: each refresh answers a new one, which replaces the old).

use std::fmt;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{BACKEND, Http};
use crate::error::{Error, Result};
use crate::remote::client::token::{Token, TokenProvider};

/// How the adapter authenticates. The anon key always goes in the `apikey` header; this says
/// what goes in `Authorization: Bearer`. `Debug` never prints a key, token or password.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// A user session from your own sign-in: the access token is sent and renewed through the
    /// refresh token before it expires.
    Session {
        /// The user's access token (a JWT).
        access_token: String,
        /// Its refresh token.
        refresh_token: String,
    },
    /// Email and password: the adapter signs in, then renews the session.
    Password {
        /// Email.
        email: String,
        /// Password.
        password: String,
    },
    /// A fixed user JWT, used until it expires; then every call fails with
    /// [`Error::Unauthorized`].
    Token(String),
    /// The `service_role` key: bypasses row-level security (server-side tools only).
    ServiceRole(String),
    /// No user: the anon key as bearer. With the guide's grants every sync call is refused.
    Anonymous,
}

impl Credentials {
    /// A session from an access token and its refresh token.
    pub fn session(access_token: impl Into<String>, refresh_token: impl Into<String>) -> Self {
        Credentials::Session {
            access_token: access_token.into(),
            refresh_token: refresh_token.into(),
        }
    }

    /// Email and password sign-in.
    pub fn password(email: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Password {
            email: email.into(),
            password: password.into(),
        }
    }

    /// A fixed user JWT.
    pub fn token(jwt: impl Into<String>) -> Self {
        Credentials::Token(jwt.into())
    }

    /// The service-role key.
    pub fn service_role(key: impl Into<String>) -> Self {
        Credentials::ServiceRole(key.into())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Session { .. } => f.write_str("Session(<redacted>)"),
            Credentials::Password { email, .. } => f
                .debug_struct("Password")
                .field("email", email)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
            Credentials::ServiceRole(_) => f.write_str("ServiceRole(<redacted>)"),
            Credentials::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// GoTrue as a [`TokenProvider`].
pub(crate) struct GoTrue {
    pub http: Http,
    pub credentials: Credentials,
}

fn unauthorized(message: String) -> Error {
    Error::Unauthorized {
        backend: BACKEND,
        message,
    }
}

impl GoTrue {
    /// `POST /auth/v1/token?grant_type=…`; a refused grant (400/401/403/422) is
    /// [`Error::Unauthorized`] with GoTrue's `msg`, never the secret.
    async fn grant(&self, grant: &str, body: Value) -> Result<Token> {
        let url = self.http.url(&["auth", "v1", "token"])?;
        let req = self
            .http
            .request(Method::POST, url)
            .query(&[("grant_type", grant)])
            .json(&body);
        let reply = self.http.transport.send(&req).await?;
        if matches!(reply.status.as_u16(), 400 | 401 | 403 | 404 | 422) {
            let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let why = text("msg")
                .or_else(|| text("error_description"))
                .or_else(|| text("message"))
                .unwrap_or_else(|| format!("HTTP {}", reply.status));
            return Err(unauthorized(format!("{grant} grant refused: {why}")));
        }
        if reply.status != StatusCode::OK {
            return Err(reply.error());
        }
        let v: Value = reply.json()?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Error::MalformedResponse {
                    backend: BACKEND,
                    message: format!("auth answer without `{k}`"),
                })
        };
        let mut t = Token::from_jwt(field("access_token")?, Some(field("refresh_token")?));
        if t.expires_at.is_none() {
            t.expires_at = v.get("expires_at").and_then(Value::as_i64);
        }
        tracing::debug!(grant, "supabase session renewed");
        Ok(t)
    }

    async fn login(&self) -> Result<Option<Token>> {
        match &self.credentials {
            Credentials::Password { email, password } => self
                .grant("password", json!({"email": email, "password": password}))
                .await
                .map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl TokenProvider for GoTrue {
    async fn initial(&self) -> Result<Option<Token>> {
        Ok(Some(match &self.credentials {
            Credentials::Session {
                access_token,
                refresh_token,
            } => Token::from_jwt(access_token.clone(), Some(refresh_token.clone())),
            Credentials::Password { .. } => return self.login().await,
            Credentials::Token(t) | Credentials::ServiceRole(t) => Token::from_jwt(t.clone(), None),
            Credentials::Anonymous => Token::from_jwt(self.http.anon_key.clone(), None),
        }))
    }

    async fn renew(&self, current: &Token) -> Result<Option<Token>> {
        if let Some(refresh) = &current.refresh {
            match self
                .grant("refresh_token", json!({"refresh_token": refresh}))
                .await
            {
                Ok(t) => return Ok(Some(t)),
                // A revoked or used refresh token: sign in again when we can.
                Err(e) if e.is_auth() => {
                    return match self.login().await? {
                        Some(t) => Ok(Some(t)),
                        None => Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        self.login().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = format!(
            "{:?} {:?} {:?} {:?}",
            Credentials::session("acc-secret", "ref-secret"),
            Credentials::password("a@b.c", "pw-secret"),
            Credentials::token("tok-secret"),
            Credentials::service_role("svc-secret"),
        );
        assert!(!s.contains("secret"), "{s}");
        assert!(s.contains("a@b.c"));
    }
}
