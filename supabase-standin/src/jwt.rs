//! HS256 JSON Web Tokens, signed and verified the way PostgREST and GoTrue do with a shared
//! secret (`jwt-secret` / `GOTRUE_JWT_SECRET`).
//!
//! Verification copies PostgREST's rules (`src/library/PostgREST/Auth/Jwt.hs`, and the docs'
//! "JWT claims validation"): three parts, HS256 only, signature checked, `exp`/`nbf`/`iat`
//! checked with 30 seconds of allowed clock skew; failures are `PGRST301` (decoding, signature)
//! or `PGRST303` (claims), both 401.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// PostgREST's `allowedSkewSeconds`.
const ALLOWED_SKEW_S: i64 = 30;

/// Why a token was refused: PostgREST's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError {
    pub code: &'static str,
    pub message: &'static str,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// Signs `claims` with HS256.
pub fn sign(claims: &Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies `token` at `now` (Unix seconds); returns its claims.
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Value, JwtError> {
    let decode = |message| JwtError {
        code: "PGRST301",
        message,
    };
    let claims_err = |message| JwtError {
        code: "PGRST303",
        message,
    };
    if token.is_empty() {
        return Err(decode("Empty JWT is sent in Authorization header"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(decode("Expected 3 parts in JWT; got another number"));
    }
    let header: Value = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(decode("JWT couldn't be decoded"))?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(decode("Wrong or unsupported encoding algorithm"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|_| decode("JWT couldn't be decoded"))?;
    let mut m = mac(secret);
    m.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| decode("JWT cryptographic operation failed"))?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(claims_err("Parsing claims failed"))?;
    if !claims.is_object() {
        return Err(claims_err("Parsing claims failed"));
    }
    let number = |k: &str, err: &'static str| match claims.get(k) {
        None => Ok(None),
        Some(v) => v.as_f64().map(|f| Some(f as i64)).ok_or(claims_err(err)),
    };
    if let Some(exp) = number("exp", "The JWT 'exp' claim must be a number")?
        && now - ALLOWED_SKEW_S > exp
    {
        return Err(claims_err("JWT expired"));
    }
    if let Some(nbf) = number("nbf", "The JWT 'nbf' claim must be a number")?
        && now + ALLOWED_SKEW_S < nbf
    {
        return Err(claims_err("JWT not yet valid"));
    }
    if let Some(iat) = number("iat", "The JWT 'iat' claim must be a number")?
        && now + ALLOWED_SKEW_S < iat
    {
        return Err(claims_err("JWT issued at future"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let s = b"0123456789abcdef0123456789abcdef";
        let t = sign(&json!({"role": "authenticated", "exp": 2_000}), s);
        assert_eq!(verify(&t, s, 1_000).unwrap()["role"], "authenticated");
        assert_eq!(verify(&t, s, 2_029).unwrap()["exp"], 2_000, "skew");
        assert_eq!(verify(&t, s, 2_031).unwrap_err().message, "JWT expired");
        assert_eq!(verify(&t, b"other", 1_000).unwrap_err().code, "PGRST301");
        assert_eq!(verify("a.b", s, 0).unwrap_err().code, "PGRST301");
        let mut forged = t.clone();
        forged.insert(forged.find('.').unwrap() + 2, 'x');
        assert!(verify(&forged, s, 1_000).is_err());
    }
}
