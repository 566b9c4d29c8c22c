//! GoTrue's (Supabase Auth's) endpoints that clients use for email/password sessions (docs:
//! Supabase Auth API, `POST /signup`, `POST /token?grant_type=password|refresh_token`,
//! `GET /user`, `POST /logout`):
//! - a session is `{access_token, token_type: "bearer", expires_in, expires_at, refresh_token,
//!   user}`; the access token is an HS256 JWT with `sub`, `role: "authenticated"`,
//!   `aud: "authenticated"`, `exp`, `session_id`;
//! - refresh tokens rotate: a refresh answers a new refresh token and revokes the old one; using
//!   a revoked one fails with `refresh_token_already_used` (the stand-in has no reuse interval);
//! - errors are `{code, error_code, msg}` with 400 for bad grants, 401/403 for bad JWTs.
//!
//! Sign-ups are confirmed at once (`GOTRUE_MAILER_AUTOCONFIRM`, as in local development).
//! Passwords are stored salted and hashed with SHA-256 (GoTrue uses bcrypt; irrelevant here).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{App, Shared, gateway, json_response};

fn auth_error(status: u16, error_code: &str, msg: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).expect("status"),
        &json!({"code": status, "error_code": error_code, "msg": msg}),
    )
}

fn internal(e: impl std::fmt::Display) -> Response {
    auth_error(500, "unexpected_failure", &e.to_string())
}

fn hash(salt: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{salt}${digest}")
}

fn user_json(id: &uuid::Uuid, email: &str) -> Value {
    json!({
        "id": id, "aud": "authenticated", "role": "authenticated", "email": email, "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
        "identities": [], "is_anonymous": false,
    })
}

/// A new session for `user`: an access token and a new refresh token (in `session_id`).
async fn session(
    app: &App,
    user: uuid::Uuid,
    email: &str,
    session_id: uuid::Uuid,
) -> Result<Value, Response> {
    let now = jiff::Timestamp::now().as_second();
    let exp = now + app.jwt_exp;
    let claims = json!({
        "aud": "authenticated", "exp": exp, "iat": now, "iss": app.issuer, "sub": user,
        "email": email, "phone": "", "role": "authenticated", "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}], "session_id": session_id,
        "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
        "is_anonymous": false,
    });
    let access_token = crate::jwt::sign(&claims, &app.secret);
    let refresh_token = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let client = app.pool.get().await.map_err(internal)?;
    client
        .execute(
            "INSERT INTO auth.refresh_tokens (token, user_id, session_id) VALUES ($1, $2, $3)",
            &[&refresh_token, &user, &session_id],
        )
        .await
        .map_err(internal)?;
    Ok(json!({
        "access_token": access_token, "token_type": "bearer", "expires_in": app.jwt_exp,
        "expires_at": exp, "refresh_token": refresh_token, "user": user_json(&user, email),
    }))
}

fn credentials(body: &Bytes) -> Result<(String, String), Response> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| auth_error(400, "bad_json", "Could not parse request body as JSON"))?;
    let email = v.get("email").and_then(Value::as_str).unwrap_or_default();
    let password = v
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if email.is_empty() || password.is_empty() {
        return Err(auth_error(
            400,
            "validation_failed",
            "email and password are required",
        ));
    }
    Ok((email.to_owned(), password.to_owned()))
}

/// `POST /auth/v1/signup {email, password}` → a session.
pub async fn signup(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = gateway(&app, &headers, None) {
        return r;
    }
    let (email, password) = match credentials(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if password.len() < 6 {
        return auth_error(
            422,
            "weak_password",
            "Password should be at least 6 characters.",
        );
    }
    let salt = uuid::Uuid::new_v4().simple().to_string();
    let client = match app.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let row = client
        .query_opt(
            "INSERT INTO auth.users (email, encrypted_password) VALUES ($1, $2)
             ON CONFLICT (email) DO NOTHING RETURNING id",
            &[&email, &hash(&salt, &password)],
        )
        .await;
    drop(client);
    match row {
        Ok(Some(r)) => match session(&app, r.get(0), &email, uuid::Uuid::new_v4()).await {
            Ok(s) => json_response(StatusCode::OK, &s),
            Err(r) => r,
        },
        Ok(None) => auth_error(422, "user_already_exists", "User already registered"),
        Err(e) => internal(e),
    }
}

/// `POST /auth/v1/token?grant_type=password|refresh_token`.
pub async fn token(
    State(app): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = gateway(&app, &headers, None) {
        return r;
    }
    let grant = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let client = match app.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    match grant.as_str() {
        "password" => {
            let (email, password) = match credentials(&body) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let row = match client
                .query_opt(
                    "SELECT id, encrypted_password FROM auth.users WHERE email = $1",
                    &[&email],
                )
                .await
            {
                Ok(r) => r,
                Err(e) => return internal(e),
            };
            drop(client);
            let ok = row.as_ref().is_some_and(|r| {
                let stored: String = r.get(1);
                let salt = stored.split('$').next().unwrap_or_default();
                hash(salt, &password) == stored
            });
            let Some(row) = row.filter(|_| ok) else {
                return auth_error(400, "invalid_credentials", "Invalid login credentials");
            };
            match session(&app, row.get(0), &email, uuid::Uuid::new_v4()).await {
                Ok(s) => json_response(StatusCode::OK, &s),
                Err(r) => r,
            }
        }
        "refresh_token" => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(rt) = v.get("refresh_token").and_then(Value::as_str) else {
                return auth_error(400, "validation_failed", "refresh_token required");
            };
            // Revoke and read in one statement: two refreshes with one token cannot both win.
            let row = client
                .query_opt(
                    "WITH old AS (SELECT token, revoked FROM auth.refresh_tokens WHERE token = $1 FOR UPDATE),
                     upd AS (UPDATE auth.refresh_tokens r SET revoked = true FROM old
                             WHERE r.token = old.token AND NOT old.revoked RETURNING r.user_id, r.session_id)
                     SELECT old.revoked, upd.user_id, upd.session_id, u.email
                     FROM old LEFT JOIN upd ON true LEFT JOIN auth.users u ON u.id = upd.user_id",
                    &[&rt],
                )
                .await;
            drop(client);
            match row {
                Err(e) => internal(e),
                Ok(None) => auth_error(
                    400,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                ),
                Ok(Some(r)) if r.get::<_, bool>(0) => auth_error(
                    400,
                    "refresh_token_already_used",
                    "Invalid Refresh Token: Already Used",
                ),
                Ok(Some(r)) => {
                    match session(&app, r.get(1), &r.get::<_, String>(3), r.get(2)).await {
                        Ok(s) => json_response(StatusCode::OK, &s),
                        Err(r) => r,
                    }
                }
            }
        }
        other => auth_error(
            400,
            "unsupported_grant_type",
            &format!("unsupported_grant_type: {other}"),
        ),
    }
}

/// The verified claims of the request's bearer JWT, or GoTrue's 403 `bad_jwt`.
fn claims(app: &App, headers: &HeaderMap) -> Result<Value, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.is_empty() {
        return Err(auth_error(
            401,
            "no_authorization",
            "This endpoint requires a Bearer token",
        ));
    }
    // GoTrue allows no clock skew.
    let now = jiff::Timestamp::now().as_second();
    let claims = crate::jwt::verify(token, &app.secret, now)
        .map_err(|e| auth_error(403, "bad_jwt", &format!("invalid JWT: {}", e.message)))?;
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_some_and(|e| e <= now)
    {
        return Err(auth_error(403, "bad_jwt", "invalid JWT: token is expired"));
    }
    Ok(claims)
}

/// `GET /auth/v1/user`.
pub async fn user(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = gateway(&app, &headers, None) {
        return r;
    }
    let claims = match claims(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(sub) = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<uuid::Uuid>().ok())
    else {
        return auth_error(403, "bad_jwt", "invalid claim: missing sub claim");
    };
    let client = match app.pool.get().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    match client
        .query_opt("SELECT email FROM auth.users WHERE id = $1", &[&sub])
        .await
    {
        Ok(Some(r)) => json_response(StatusCode::OK, &user_json(&sub, &r.get::<_, String>(0))),
        Ok(None) => auth_error(
            403,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        ),
        Err(e) => internal(e),
    }
}

/// `POST /auth/v1/logout`: revokes the session's refresh tokens.
pub async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = gateway(&app, &headers, None) {
        return r;
    }
    let claims = match claims(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let session: Option<uuid::Uuid> = claims
        .get("session_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    if let Some(s) = session
        && let Ok(client) = app.pool.get().await
    {
        let _ = client
            .execute(
                "UPDATE auth.refresh_tokens SET revoked = true WHERE session_id = $1",
                &[&s],
            )
            .await;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /auth/v1/health`.
pub async fn health(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = gateway(&app, &headers, None) {
        return r;
    }
    json_response(
        StatusCode::OK,
        &json!({"version": "stand-in", "name": "GoTrue", "description": "stand-in"}),
    )
}
