//! Transactions (<https://appwrite.io/docs/products/databases/transactions>): create, stage
//! operations, commit or roll back.
//!
//! As on Appwrite: each staged operation is stamped with the time it was staged; a commit
//! replays the operations in order inside one database transaction, and fails with `409
//! transaction_conflict` when a document an operation writes was updated after that stamp
//! (operations on a document an earlier operation of the same commit wrote are not checked),
//! or when a `create` finds the id taken; `404 document_not_found` when an `update` or `delete`
//! finds no document. At most 100 operations per transaction (`transaction_limit_exceeded`).
//! Staging checks permissions as Appwrite's `createOperations` does: `create` (or `upsert` of a
//! missing document) needs the collection's create permission, `update`/`upsert`/`delete` of an
//! existing one the collection's or the document's; bulk actions need an API key.

use std::collections::HashSet;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State as Ext};
use axum::http::{HeaderMap, StatusCode};
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::State;
use super::error::{AwError, AwResult};
use super::store::{self, Identity};

type Answer = AwResult<(StatusCode, Json<Value>)>;

/// Most operations per transaction (`APP_LIMIT_DATABASE_TRANSACTION`).
pub const MAX_OPERATIONS: i64 = 100;

struct Tx {
    id: String,
    owner: String,
    status: String,
    operations: i64,
    created_at: String,
    expires_at: String,
}

impl Tx {
    fn json(&self) -> Value {
        json!({"$id": self.id, "$createdAt": self.created_at, "$updatedAt": store::now_stamp(),
            "status": self.status, "operations": self.operations, "expiresAt": self.expires_at})
    }
}

fn load(conn: &rusqlite::Connection, id: &str, who: &Identity) -> AwResult<Tx> {
    let tx = conn
        .query_row(
            "SELECT id, owner, status, operations, created_at, expires_at FROM transactions WHERE id = ?",
            [id],
            |r| {
                Ok(Tx {
                    id: r.get(0)?,
                    owner: r.get(1)?,
                    status: r.get(2)?,
                    operations: r.get(3)?,
                    created_at: r.get(4)?,
                    expires_at: r.get(5)?,
                })
            },
        )
        .optional()?;
    match tx {
        Some(t) if *who == Identity::Key || t.owner == who.tag() => Ok(t),
        _ => Err(AwError::not_found(
            "transaction_not_found",
            "Transaction",
            id,
        )),
    }
}

fn set_status(conn: &rusqlite::Connection, id: &str, status: &str) -> AwResult<()> {
    conn.execute(
        "UPDATE transactions SET status = ? WHERE id = ?",
        params![status, id],
    )?;
    Ok(())
}

#[derive(Deserialize, Default)]
pub(crate) struct NewTx {
    #[serde(default)]
    ttl: Option<i64>,
}

/// `POST /v1/databases/transactions` (`createTransaction`): `ttl` 60 to 3600 s, default 300.
pub(crate) async fn create(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    body: Option<Json<NewTx>>,
) -> Answer {
    let who = state.identity(&headers)?;
    if who == Identity::Guest {
        return Err(AwError::unauthorized());
    }
    let ttl = body.and_then(|b| b.0.ttl).unwrap_or(300);
    if !(60..=3600).contains(&ttl) {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            "Invalid `ttl` param: Value must be a valid range between 60 and 3,600",
        ));
    }
    let now = jiff::Timestamp::now();
    let tx = Tx {
        id: store::unique_id(),
        owner: who.tag(),
        status: "pending".into(),
        operations: 0,
        created_at: store::stamp_of(now),
        expires_at: store::stamp_of(now + jiff::SignedDuration::from_secs(ttl)),
    };
    state.db().execute(
        "INSERT INTO transactions (id, owner, status, operations, created_at, expires_at)
         VALUES (?, ?, ?, 0, ?, ?)",
        params![tx.id, tx.owner, tx.status, tx.created_at, tx.expires_at],
    )?;
    Ok((StatusCode::CREATED, Json(tx.json())))
}

/// `GET /v1/databases/transactions/{tx}`.
pub(crate) async fn get_one(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = state.identity(&headers)?;
    let tx = load(&state.db(), &id, &who)?;
    Ok((StatusCode::OK, Json(tx.json())))
}

fn usable(tx: &Tx) -> AwResult<()> {
    if tx.status != "pending" {
        return Err(AwError::bad_request("Invalid or non-pending transaction"));
    }
    if store::now_stamp() > tx.expires_at {
        return Err(AwError::new(
            400,
            "transaction_expired",
            "Transaction has expired.",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Operation {
    action: String,
    database_id: String,
    collection_id: String,
    #[serde(default)]
    document_id: Option<String>,
    #[serde(default)]
    data: Map<String, Value>,
}

#[derive(Deserialize)]
pub(crate) struct Operations {
    #[serde(default)]
    operations: Vec<Operation>,
}

/// `POST /v1/databases/transactions/{tx}/operations` (`createOperations`): `201` and the
/// transaction.
pub(crate) async fn stage(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Operations>,
) -> Answer {
    let who = state.identity(&headers)?;
    if body.operations.is_empty() {
        return Err(AwError::bad_request("Operations array cannot be empty"));
    }
    let mut conn = state.db();
    let mut tx = load(&conn, &id, &who)?;
    usable(&tx)?;
    if tx.operations + body.operations.len() as i64 > MAX_OPERATIONS {
        return Err(AwError::new(
            400,
            "transaction_limit_exceeded",
            format!(
                "Transaction already has {} operations, adding {} would exceed the maximum of {MAX_OPERATIONS}",
                tx.operations,
                body.operations.len()
            ),
        ));
    }
    let staged_at = store::now_stamp();
    let mut created: HashSet<(String, String, String)> = HashSet::new();
    let mut rows = Vec::new();
    for op in body.operations {
        if op.action.starts_with("bulk") && who != Identity::Key {
            return Err(AwError::unauthorized());
        }
        let c = store::collection(&conn, &op.database_id, &op.collection_id)?;
        let doc_id = match (&op.document_id, op.action.as_str()) {
            (Some(d), _) if store::valid_id(d) => d.clone(),
            (None, "create") => store::unique_id(),
            _ => {
                return Err(AwError::bad_request(format!(
                    "Document ID is required (and must be a valid id) for {} operations",
                    op.action
                )));
            }
        };
        let key = (c.db.clone(), c.id.clone(), doc_id.clone());
        let existing = store::get_doc(&conn, &c, &doc_id)?;
        let dependant = created.contains(&key);
        let permission = match op.action.as_str() {
            "create" => "create",
            "update" | "delete" => {
                if existing.is_none() && !dependant {
                    return Err(AwError::not_found(
                        "document_not_found",
                        "Document",
                        &doc_id,
                    ));
                }
                if op.action == "update" {
                    "update"
                } else {
                    "delete"
                }
            }
            "upsert" if existing.is_some() => "update",
            "upsert" => "create",
            other => return Err(AwError::bad_request(format!("Invalid action: {other}"))),
        };
        let perms =
            match op.data.get("$permissions") {
                None | Some(Value::Null) => None,
                Some(v) => Some(serde_json::from_value::<Vec<String>>(v.clone()).map_err(
                    |_| AwError::bad_request("$permissions must be an array of strings"),
                )?),
            };
        store::check_write(&who, &c, existing.as_ref(), permission, perms.as_deref())?;
        if op.action == "create" {
            created.insert(key);
        }
        rows.push((
            op.action,
            c.db,
            c.id,
            doc_id,
            Value::Object(op.data).to_string(),
        ));
    }
    let t = conn.transaction()?;
    for (action, db, coll, doc_id, data) in &rows {
        t.execute(
            "INSERT INTO transaction_logs (tx, action, db, coll, doc_id, data, staged_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![id, action, db, coll, doc_id, data, staged_at],
        )?;
    }
    t.execute(
        "UPDATE transactions SET operations = operations + ? WHERE id = ?",
        params![rows.len() as i64, id],
    )?;
    t.commit()?;
    tx.operations += rows.len() as i64;
    Ok((StatusCode::CREATED, Json(tx.json())))
}

#[derive(Deserialize)]
pub(crate) struct Finish {
    #[serde(default)]
    commit: bool,
    #[serde(default)]
    rollback: bool,
}

/// A commit failure.
enum CommitError {
    Conflict(String),
    NotFound(String),
    Other(AwError),
}

impl From<AwError> for CommitError {
    fn from(e: AwError) -> Self {
        CommitError::Other(e)
    }
}

impl From<rusqlite::Error> for CommitError {
    fn from(e: rusqlite::Error) -> Self {
        CommitError::Other(e.into())
    }
}

/// `PATCH /v1/databases/transactions/{tx}` (`updateTransaction`) with `commit` or `rollback`.
pub(crate) async fn finish(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Finish>,
) -> Answer {
    let who = state.identity(&headers)?;
    if body.commit == body.rollback {
        return Err(AwError::bad_request(if body.commit {
            "Cannot commit and rollback at the same time"
        } else {
            "Either commit or rollback must be true"
        }));
    }
    {
        let conn = state.db();
        let tx = load(&conn, &id, &who)?;
        usable(&tx)?;
        if body.rollback {
            set_status(&conn, &id, "failed")?;
            let mut tx = tx;
            tx.status = "failed".into();
            return Ok((StatusCode::OK, Json(tx.json())));
        }
        set_status(&conn, &id, "committing")?;
    }
    // Stamped under the database lock, so stamps follow commit order (no stamp-before-commit
    // window of its own); with the test knob, stamped now and visible only after the delay.
    let delay = headers
        .get("x-rcs-standin-commit-delay-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let early = delay.map(|_| store::now_stamp());
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut conn = state.db();
    let stamp = early.unwrap_or_else(store::now_stamp);
    let owner = match load(&conn, &id, &who)?.owner.strip_prefix("user:") {
        Some(u) => Identity::User(u.to_owned()),
        None => who.clone(),
    };
    let result = apply(&mut conn, &id, &owner, &stamp);
    // After the commit, one event per operation (`Transactions/Update.php`).
    if let Ok(events) = &result {
        for (c, doc, action) in events {
            state.realtime.document(c, doc, action);
        }
    }
    let status = if result.is_ok() {
        "committed"
    } else {
        "failed"
    };
    set_status(&conn, &id, status)?;
    match result {
        Ok(_) => {
            let tx = load(&conn, &id, &who)?;
            Ok((StatusCode::OK, Json(tx.json())))
        }
        Err(CommitError::Conflict(m)) => Err(AwError::new(
            409,
            "transaction_conflict",
            format!("Transaction conflict: {m}"),
        )),
        Err(CommitError::NotFound(d)) => {
            Err(AwError::not_found("document_not_found", "Document", &d))
        }
        Err(CommitError::Other(e)) => Err(e),
    }
}

/// A realtime event a commit makes: the collection, the document, the event's action.
type CommitEvent = (store::Collection, store::Doc, &'static str);

/// Replays the staged operations in one SQLite transaction; the realtime events to publish.
fn apply(
    conn: &mut rusqlite::Connection,
    id: &str,
    owner: &Identity,
    stamp: &str,
) -> Result<Vec<CommitEvent>, CommitError> {
    let t = conn.transaction()?;
    let logs: Vec<(String, String, String, String, String, String)> = {
        let mut stmt = t.prepare(
            "SELECT action, db, coll, doc_id, data, staged_at FROM transaction_logs
             WHERE tx = ? ORDER BY seq",
        )?;
        stmt.query_map([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    let mut touched: HashSet<(String, String, String)> = HashSet::new();
    let mut events: Vec<CommitEvent> = Vec::new();
    for (action, db, coll, doc_id, data, staged_at) in logs {
        let c = store::collection(&t, &db, &coll)?;
        let existing = store::get_doc(&t, &c, &doc_id)?;
        let key = (db, coll, doc_id.clone());
        if !touched.contains(&key)
            && let Some(d) = &existing
            && d.updated_at > staged_at
        {
            return Err(CommitError::Conflict(format!(
                "Document was updated after the request timestamp ({doc_id})"
            )));
        }
        let data: Map<String, Value> = serde_json::from_str(&data).unwrap_or_default();
        let (data, perms) = store::split_data(data)?;
        match action.as_str() {
            "delete" => {
                let Some(d) = existing else {
                    return Err(CommitError::NotFound(doc_id));
                };
                t.execute(
                    "DELETE FROM documents WHERE db = ? AND coll = ? AND id = ?",
                    params![c.db, c.id, doc_id],
                )?;
                events.push((c, d, "delete"));
            }
            _ => {
                match (action.as_str(), &existing) {
                    ("create", Some(_)) => {
                        return Err(CommitError::Conflict(format!(
                            "Document with the requested ID already exists ({doc_id})"
                        )));
                    }
                    ("update", None) => return Err(CommitError::NotFound(doc_id)),
                    _ => {}
                }
                let mut merged = existing
                    .as_ref()
                    .map(|d| d.data.clone())
                    .unwrap_or_default();
                merged.extend(data);
                store::validate(&c, &merged)?;
                let permissions = match (&existing, perms) {
                    (_, Some(p)) => p,
                    (Some(d), None) => d.permissions.clone(),
                    (None, None) => store::initial_permissions(owner, None),
                };
                store::put_doc(
                    &t,
                    &c,
                    &doc_id,
                    existing.as_ref(),
                    &merged,
                    &permissions,
                    stamp,
                )?;
                // Upserts in a transaction are reported as `update`, as Appwrite does.
                let event = if action == "create" {
                    "create"
                } else {
                    "update"
                };
                if let Some(d) = store::get_doc(&t, &c, &doc_id)? {
                    events.push((c, d, event));
                }
            }
        }
        touched.insert(key);
    }
    t.commit()?;
    Ok(events)
}

/// `DELETE /v1/databases/transactions/{tx}` (`deleteTransaction`): `204`.
pub(crate) async fn remove(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AwResult<StatusCode> {
    let who = state.identity(&headers)?;
    let conn = state.db();
    load(&conn, &id, &who)?;
    conn.execute("DELETE FROM transaction_logs WHERE tx = ?", [&id])?;
    conn.execute("DELETE FROM transactions WHERE id = ?", [&id])?;
    Ok(StatusCode::NO_CONTENT)
}
