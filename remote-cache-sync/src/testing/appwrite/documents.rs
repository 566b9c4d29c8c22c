//! Document endpoints (<https://appwrite.io/docs/references/cloud/server-nodejs/databases>):
//! `listDocuments`, `getDocument`, `createDocument`, `upsertDocument`, `deleteDocument`.

use axum::Json;
use axum::extract::{Path, RawQuery, State as Ext};
use axum::http::{HeaderMap, StatusCode};
use rusqlite::types::Value as Sql;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::State;
use super::error::{AwError, AwResult};
use super::store::{self, Collection, DOC_COLUMNS, Doc, Identity};

type Answer = AwResult<(StatusCode, Json<Value>)>;

/// `queries[N]=…` (or `queries[]=…`) and `total` from a query string, in index order.
fn list_params(raw: Option<String>) -> AwResult<(Vec<String>, bool)> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", raw.unwrap_or_default()))
        .map_err(|e| AwError::bad_request(e.to_string()))?;
    let mut queries: Vec<(usize, String)> = Vec::new();
    let mut total = true;
    for (k, v) in url.query_pairs() {
        if let Some(rest) = k.strip_prefix("queries[").and_then(|r| r.strip_suffix(']')) {
            let n = if rest.is_empty() {
                queries.len()
            } else {
                rest.parse()
                    .map_err(|_| AwError::query(format!("bad parameter name {k}")))?
            };
            queries.push((n, v.into_owned()));
        } else if k == "total" {
            total = !matches!(v.as_ref(), "false" | "0");
        }
    }
    queries.sort_by_key(|(n, _)| *n);
    Ok((queries.into_iter().map(|(_, q)| q).collect(), total))
}

/// The read-permission condition for a list, or `401 user_unauthorized` when the caller can read
/// nothing of the collection.
fn read_filter(
    who: &Identity,
    coll: &Collection,
    params: &mut Vec<Sql>,
) -> AwResult<Option<String>> {
    if who.granted("read", &coll.permissions) {
        return Ok(None);
    }
    if !coll.document_security {
        return Err(AwError::unauthorized());
    }
    let roles = who.roles();
    let marks = vec!["?"; roles.len()].join(", ");
    for r in roles {
        params.push(Sql::Text(format!(
            "read({})",
            serde_json::to_string(&r).expect("json")
        )));
    }
    Ok(Some(format!(
        "EXISTS (SELECT 1 FROM json_each(documents.permissions) p WHERE p.value IN ({marks}))"
    )))
}

/// `GET …/documents`: the caller's readable documents matching the queries; rows it cannot
/// read are left out, as on Appwrite. `total=false` skips the count (`total` is then 0). A
/// `select` query narrows the attributes answered (the `$…` ones always come back).
pub(crate) async fn list(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path((db, coll)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let who = state.identity(&headers)?;
    let (queries, want_total) = list_params(raw)?;
    let conn = state.db();
    let c = store::collection(&conn, &db, &coll)?;
    let plan = super::query::plan(&queries, &c.types())?;
    let mut params: Vec<Sql> = vec![Sql::Text(db.clone()), Sql::Text(coll.clone())];
    let mut conds = vec!["db = ?".to_owned(), "coll = ?".to_owned()];
    if let Some(f) = read_filter(&who, &c, &mut params)? {
        conds.push(f);
    }
    params.extend(plan.params);
    conds.extend(plan.conditions);
    let select = plan.select;
    let mut order = plan.order;
    order.push("seq ASC".into());
    let where_sql = conds.join(" AND ");
    let sql = format!(
        "SELECT {DOC_COLUMNS} FROM documents WHERE {where_sql} ORDER BY {} LIMIT {} OFFSET {}",
        order.join(", "),
        plan.limit,
        plan.offset
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let docs: Vec<Value> = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), Doc::from_row)?
        .map(|d| d.map(|d| d.to_json_selected(&c, select.as_deref())))
        .collect::<rusqlite::Result<_>>()?;
    let total = if want_total {
        conn.query_row(
            &format!("SELECT count(*) FROM (SELECT 1 FROM documents WHERE {where_sql} LIMIT 5000)"),
            rusqlite::params_from_iter(params.iter()),
            |r| r.get::<_, i64>(0),
        )?
    } else {
        0
    };
    Ok((
        StatusCode::OK,
        Json(json!({"total": total, "documents": docs})),
    ))
}

/// `GET …/documents/{doc}`: `404 document_not_found` when missing or not readable.
pub(crate) async fn get_one(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path((db, coll, id)): Path<(String, String, String)>,
) -> Answer {
    let who = state.identity(&headers)?;
    let conn = state.db();
    let c = store::collection(&conn, &db, &coll)?;
    match store::get_doc(&conn, &c, &id)? {
        Some(d) if store::can_read(&who, &c, &d) => Ok((StatusCode::OK, Json(d.to_json(&c)))),
        _ => Err(AwError::not_found("document_not_found", "Document", &id)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewDocument {
    #[serde(default)]
    document_id: Option<String>,
    data: Map<String, Value>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// Writes one document outside a transaction: create (`409 document_already_exists` when the id
/// is taken) or upsert.
fn write_one(
    state: &State,
    headers: &HeaderMap,
    db: &str,
    coll: &str,
    id: &str,
    body: NewDocument,
    upsert: bool,
) -> Answer {
    let who = state.identity(headers)?;
    let id = if id == "unique()" {
        store::unique_id()
    } else if store::valid_id(id) {
        id.to_owned()
    } else {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            "Invalid `documentId` param: Parameter must contain at most 36 chars. Valid chars are a-z, A-Z, 0-9, period, hyphen, and underscore. Can't start with a special char",
        ));
    };
    let conn = state.db();
    let c = store::collection(&conn, db, coll)?;
    let existing = store::get_doc(&conn, &c, &id)?;
    let (data, perms_in_data) = store::split_data(body.data)?;
    let perms = body.permissions.or(perms_in_data);
    if existing.is_some() && !upsert {
        return Err(AwError::new(
            409,
            "document_already_exists",
            "Document with the requested ID already exists. Try again with a different ID or use ID.unique() to generate a unique ID.",
        ));
    }
    let action = if existing.is_some() {
        "update"
    } else {
        "create"
    };
    store::check_write(&who, &c, existing.as_ref(), action, perms.as_deref())?;
    let mut merged = existing
        .as_ref()
        .map(|d| d.data.clone())
        .unwrap_or_default();
    merged.extend(data);
    store::validate(&c, &merged)?;
    let permissions = match (&existing, perms) {
        (_, Some(p)) => p,
        (Some(d), None) => d.permissions.clone(),
        (None, None) => store::initial_permissions(&who, None),
    };
    let stamp = store::now_stamp();
    store::put_doc(
        &conn,
        &c,
        &id,
        existing.as_ref(),
        &merged,
        &permissions,
        &stamp,
    )?;
    let doc = store::get_doc(&conn, &c, &id)?.expect("just written");
    // Appwrite's `createDocument` event is `…create`, `upsertDocument`'s `…upsert`.
    let event = if upsert { "upsert" } else { "create" };
    state.realtime.document(&c, &doc, event);
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(doc.to_json(&c))))
}

/// `POST …/documents` (`createDocument`).
pub(crate) async fn create(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path((db, coll)): Path<(String, String)>,
    Json(body): Json<NewDocument>,
) -> Answer {
    let id = body
        .document_id
        .clone()
        .unwrap_or_else(|| "unique()".into());
    write_one(&state, &headers, &db, &coll, &id, body, false)
}

#[derive(Deserialize)]
pub(crate) struct UpsertBody {
    data: Map<String, Value>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// `PUT …/documents/{doc}` (`upsertDocument`): creates, or updates the given attributes.
pub(crate) async fn upsert(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path((db, coll, id)): Path<(String, String, String)>,
    Json(body): Json<UpsertBody>,
) -> Answer {
    let body = NewDocument {
        document_id: None,
        data: body.data,
        permissions: body.permissions,
    };
    write_one(&state, &headers, &db, &coll, &id, body, true)
}

/// `DELETE …/documents/{doc}` (`deleteDocument`): `204`.
pub(crate) async fn remove(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    Path((db, coll, id)): Path<(String, String, String)>,
) -> AwResult<StatusCode> {
    let who = state.identity(&headers)?;
    let conn = state.db();
    let c = store::collection(&conn, &db, &coll)?;
    let Some(d) = store::get_doc(&conn, &c, &id)? else {
        return Err(AwError::not_found("document_not_found", "Document", &id));
    };
    store::check_write(&who, &c, Some(&d), "delete", None)?;
    conn.execute(
        "DELETE FROM documents WHERE db = ? AND coll = ? AND id = ?",
        rusqlite::params![db, coll, id],
    )?;
    state.realtime.document(&c, &d, "delete");
    Ok(StatusCode::NO_CONTENT)
}
