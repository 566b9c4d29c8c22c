//! Who the adapter acts as: a server API key or a user JWT, always with the project id.
//!
//! Appwrite's REST API authenticates a server with `X-Appwrite-Key` (the key's scopes apply, and
//! it bypasses document permissions) and a user with `X-Appwrite-JWT` (a JWT made by
//! `account.createJWT` or `users.createJWT`, valid 15 minutes by default, which acts as the user:
//! document permissions apply). Both are sent with `X-Appwrite-Project`. See Appwrite's REST
//! docs (<https://appwrite.io/docs/apis/rest#headers>).
//!
//! Secrets never appear in `Debug`, errors or logs: `Debug` prints `<redacted>`, and errors name
//! the kind of credential only.

use std::fmt;

use crate::remote::client::token::jwt_claims;
use jiff::Timestamp;
use serde_json::Value;

use crate::error::{Error, Result};

use super::client::BACKEND;

/// The credential an [`AppwriteRemoteStore`](super::AppwriteRemoteStore) sends.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A server API key (`X-Appwrite-Key`): needs the `documents.read` and `documents.write`
    /// scopes; bypasses document permissions, so set them with
    /// [`AppwriteConfig::owner_key`](super::AppwriteConfig::owner_key).
    ApiKey(String),
    /// A user JWT (`X-Appwrite-JWT`): the user's permissions apply. Its `exp` claim is checked
    /// before every request: an expired JWT fails with [`Error::Unauthorized`] without a request
    /// being sent (replace it with [`AppwriteRemoteStore::set_jwt`](super::AppwriteRemoteStore::set_jwt)).
    Jwt(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::Jwt(_) => f.write_str("Jwt(<redacted>)"),
        }
    }
}

impl Credential {
    /// A server API key.
    pub fn api_key(key: impl Into<String>) -> Self {
        Credential::ApiKey(key.into())
    }

    /// A user JWT.
    pub fn jwt(jwt: impl Into<String>) -> Self {
        Credential::Jwt(jwt.into())
    }

    /// The header carrying this credential (lower case, as HTTP/2 sends it), and its value.
    pub(crate) fn header(&self) -> (&'static str, &str) {
        match self {
            Credential::ApiKey(k) => ("x-appwrite-key", k),
            Credential::Jwt(t) => ("x-appwrite-jwt", t),
        }
    }

    /// Fails with [`Error::Unauthorized`] when the credential cannot be used at `now`: an empty
    /// value, a JWT that does not decode or whose `exp` has passed.
    pub(crate) fn check(&self, now: Timestamp) -> Result<()> {
        match self {
            Credential::ApiKey(k) if k.is_empty() => Err(unauthorized("the API key is empty")),
            Credential::ApiKey(_) => Ok(()),
            Credential::Jwt(t) => {
                let exp = jwt_expiry(t)?;
                if exp <= now.as_second() {
                    return Err(unauthorized(
                        "the JWT has expired (Appwrite JWTs last 15 minutes): set a new one",
                    ));
                }
                Ok(())
            }
        }
    }
}

fn unauthorized(message: &str) -> Error {
    Error::Unauthorized {
        backend: BACKEND,
        message: message.to_owned(),
    }
}

/// The `exp` claim (Unix seconds) of a JWT. Errors never include the token.
pub(crate) fn jwt_expiry(token: &str) -> Result<i64> {
    jwt_claims(token)
        .ok_or_else(|| unauthorized("the JWT is not a JWT (three base64url parts, JSON claims)"))?
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| unauthorized("the JWT has no `exp` claim"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn jwt(exp: i64) -> String {
        let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.c2ln",
            b(&serde_json::json!({"alg":"HS256","typ":"JWT"})),
            b(&serde_json::json!({"userId":"u1","exp":exp}))
        )
    }

    #[test]
    fn expired_jwts_and_empty_keys_are_unauthorized() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        assert!(Credential::jwt(jwt(1_000_100)).check(now).is_ok());
        for bad in [
            Credential::jwt(jwt(1_000_000)),
            Credential::jwt("not-a-jwt"),
            Credential::jwt("a.%%%.c"),
            Credential::api_key(""),
        ] {
            let e = bad.check(now).unwrap_err();
            assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let k = Credential::api_key("s3cret-key");
        let j = Credential::jwt(jwt(5));
        assert!(!format!("{k:?}{j:?}").contains("s3cret"));
        assert!(!format!("{j:?}").contains("eyJ"));
        let e = j.check(Timestamp::now()).unwrap_err().to_string();
        assert!(!e.contains("eyJ"), "{e}");
    }
}
