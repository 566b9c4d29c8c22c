//! Set-up endpoints (API key only): databases, collections, attributes, indexes, users and
//! user JWTs. Shapes from Appwrite's server API reference
//! (<https://appwrite.io/docs/references/cloud/server-nodejs/databases>,
//! <https://appwrite.io/docs/references/cloud/server-nodejs/users#createJWT>).

use axum::Json;
use axum::extract::{Path, State as Ext};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use rusqlite::params;
use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use super::error::{AwError, AwResult, VERSION};
use super::store::{self, AttrType, Identity, valid_id};

type Answer = AwResult<(StatusCode, Json<Value>)>;

fn key_only(state: &State, headers: &HeaderMap, scope: &str) -> AwResult<()> {
    match state.identity(headers)? {
        Identity::Key => Ok(()),
        _ => Err(AwError::scope(scope)),
    }
}

fn check_id(id: &str, what: &str) -> AwResult<String> {
    if id == "unique()" {
        return Ok(store::unique_id());
    }
    if !valid_id(id) {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            format!(
                "Invalid `{what}` param: Parameter must contain at most 36 chars. Valid chars are a-z, A-Z, 0-9, period, hyphen, and underscore. Can't start with a special char"
            ),
        ));
    }
    Ok(id.to_owned())
}

fn conflict(kind: &'static str, what: &str) -> AwError {
    AwError::new(
        409,
        kind,
        format!("{what} with the requested ID already exists."),
    )
}

/// `GET /v1/health/version` (no credentials).
pub(crate) async fn version() -> Json<Value> {
    Json(json!({ "version": VERSION }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewDatabase {
    database_id: String,
    name: String,
}

/// `POST /v1/databases`.
pub(crate) async fn create_database(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Json(b): Json<NewDatabase>,
) -> Answer {
    key_only(&state, &headers, "databases.write")?;
    let id = check_id(&b.database_id, "databaseId")?;
    let n = state.db().execute(
        "INSERT OR IGNORE INTO databases (id, name) VALUES (?, ?)",
        params![id, b.name],
    )?;
    if n == 0 {
        return Err(conflict("database_already_exists", "Database"));
    }
    let now = store::now_stamp();
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"$id": id, "name": b.name, "$createdAt": now, "$updatedAt": now, "enabled": true}),
        ),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewCollection {
    collection_id: String,
    name: String,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    document_security: bool,
}

/// `POST /v1/databases/{db}/collections`.
pub(crate) async fn create_collection(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path(db): Path<String>,
    Json(b): Json<NewCollection>,
) -> Answer {
    key_only(&state, &headers, "collections.write")?;
    let id = check_id(&b.collection_id, "collectionId")?;
    if let Some(bad) = b
        .permissions
        .iter()
        .find(|p| store::parse_permission(p).is_none())
    {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            format!("Invalid permissions: {bad:?}"),
        ));
    }
    let conn = state.db();
    let exists: bool =
        conn.query_row("SELECT count(*) FROM databases WHERE id = ?", [&db], |r| {
            r.get(0)
        })?;
    if !exists {
        return Err(AwError::not_found("database_not_found", "Database", &db));
    }
    let n = conn.execute(
        "INSERT OR IGNORE INTO collections (db, id, name, permissions, document_security)
         VALUES (?, ?, ?, ?, ?)",
        params![
            db,
            id,
            b.name,
            serde_json::to_string(&b.permissions).expect("json"),
            b.document_security
        ],
    )?;
    if n == 0 {
        return Err(conflict("collection_already_exists", "Collection"));
    }
    let now = store::now_stamp();
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"$id": id, "databaseId": db, "name": b.name, "$permissions": b.permissions,
            "documentSecurity": b.document_security, "enabled": true, "attributes": [], "indexes": [],
            "$createdAt": now, "$updatedAt": now}),
        ),
    ))
}

#[derive(Deserialize)]
pub(crate) struct NewAttribute {
    key: String,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    array: bool,
}

/// `POST /v1/databases/{db}/collections/{coll}/attributes/{string|integer|float|boolean|datetime}`.
/// Appwrite answers `202` and processes the attribute asynchronously; here it is available at
/// once.
pub(crate) async fn create_attribute(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path((db, coll, kind)): Path<(String, String, String)>,
    Json(b): Json<NewAttribute>,
) -> Answer {
    key_only(&state, &headers, "collections.write")?;
    let t = AttrType::parse(&kind).ok_or_else(|| {
        AwError::new(
            404,
            "general_route_not_found",
            "The requested route was not found.",
        )
    })?;
    let key_ok = b.key.len() <= 36
        && b.key
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && b.key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if !key_ok {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            "Invalid `key` param",
        ));
    }
    let size = match t {
        AttrType::String => b.size.ok_or_else(|| {
            AwError::new(
                400,
                "general_argument_invalid",
                "Param \"size\" is not optional.",
            )
        })?,
        _ => 0,
    };
    let conn = state.db();
    store::collection(&conn, &db, &coll)?;
    let n = conn.execute(
        "INSERT OR IGNORE INTO attributes (db, coll, key, type, size, required, array)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![db, coll, b.key, kind, size, b.required, b.array],
    )?;
    if n == 0 {
        return Err(conflict("attribute_already_exists", "Attribute"));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"key": b.key, "type": kind, "status": "available", "required": b.required,
            "array": b.array, "size": size}),
        ),
    ))
}

#[derive(Deserialize)]
pub(crate) struct NewIndex {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    attributes: Vec<String>,
}

/// `POST /v1/databases/{db}/collections/{coll}/indexes` (`key` or `unique`). Made a real SQLite
/// index over the same expressions the query planner uses.
pub(crate) async fn create_index(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path((db, coll)): Path<(String, String)>,
    Json(b): Json<NewIndex>,
) -> Answer {
    key_only(&state, &headers, "collections.write")?;
    if !matches!(b.kind.as_str(), "key" | "unique") {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            "Invalid `type` param: only key and unique indexes here",
        ));
    }
    let conn = state.db();
    let c = store::collection(&conn, &db, &coll)?;
    let types = c.types();
    let mut exprs = vec!["db".to_owned(), "coll".to_owned()];
    for a in &b.attributes {
        exprs.push(super::query::column_sql(a, &types).map_err(|_| {
            AwError::new(400, "attribute_unknown", format!("Unknown attribute: {a}"))
        })?);
    }
    let n = conn.execute(
        "INSERT OR IGNORE INTO indexes (db, coll, key, type, attributes) VALUES (?, ?, ?, ?, ?)",
        params![
            db,
            coll,
            b.key,
            b.kind,
            serde_json::to_string(&b.attributes).expect("json")
        ],
    )?;
    if n == 0 {
        return Err(conflict("index_already_exists", "Index"));
    }
    let name = format!("idx_{}", uuid::Uuid::now_v7().simple());
    conn.execute_batch(&format!(
        "CREATE INDEX {name} ON documents ({})",
        exprs.join(", ")
    ))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"key": b.key, "type": b.kind, "status": "available", "attributes": b.attributes}),
        ),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewUser {
    user_id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /v1/users` (`users.create`).
pub(crate) async fn create_user(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Json(b): Json<NewUser>,
) -> Answer {
    key_only(&state, &headers, "users.write")?;
    let id = check_id(&b.user_id, "userId")?;
    let n = state.db().execute(
        "INSERT OR IGNORE INTO users (id, email, name) VALUES (?, ?, ?)",
        params![id, b.email, b.name],
    )?;
    if n == 0 {
        return Err(conflict("user_already_exists", "User"));
    }
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"$id": id, "email": b.email, "name": b.name.unwrap_or_default(), "status": true}),
        ),
    ))
}

#[derive(Deserialize, Default)]
pub(crate) struct NewJwt {
    #[serde(default)]
    duration: Option<i64>,
}

/// `POST /v1/users/{user}/jwts` (`users.createJWT`): a JWT valid `duration` seconds (default
/// 900, at most 3600). Its payload carries `userId`, `sessionId` and `exp`; the stand-in checks
/// tokens by looking them up.
pub(crate) async fn create_jwt(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: Option<Json<NewJwt>>,
) -> Answer {
    key_only(&state, &headers, "users.write")?;
    let duration = body.and_then(|b| b.0.duration).unwrap_or(900);
    if !(0..=3600).contains(&duration) {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            "Invalid `duration` param",
        ));
    }
    let conn = state.db();
    let exists: bool = conn.query_row("SELECT count(*) FROM users WHERE id = ?", [&user], |r| {
        r.get(0)
    })?;
    if !exists {
        return Err(AwError::not_found("user_not_found", "User", &user));
    }
    let exp = jiff::Timestamp::now().as_second() + duration;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let jwt = format!(
        "{}.{}.{:032x}",
        b64(&json!({"typ": "JWT", "alg": "HS256"})),
        b64(&json!({"userId": user, "sessionId": "", "exp": exp})),
        rand::random::<u128>()
    );
    conn.execute(
        "INSERT INTO jwts (token, user_id, exp) VALUES (?, ?, ?)",
        params![jwt, user, exp],
    )?;
    Ok((StatusCode::CREATED, Json(json!({ "jwt": jwt }))))
}
