//! PostgREST's request cycle (docs: "Authentication", "Transactions", "Errors"):
//!
//! 1. the JWT of `Authorization: Bearer` is verified (HS256, see [`crate::jwt`]); none means the
//!    anonymous role (`db-anon-role`, `anon` in Supabase); a bad or expired one is a 401 with
//!    `PGRST301`/`PGRST303` and `WWW-Authenticate: Bearer error="invalid_token"`, never the
//!    anonymous role;
//! 2. one transaction per request, `READ ONLY` for GET ("Transactions": "the transaction access
//!    mode is READ ONLY for GET and HEAD"), in which PostgREST runs
//!    `set_config('role', <role claim>, true)` (that is `SET LOCAL ROLE`) and
//!    `set_config('request.jwt.claims', <claims>, true)`, then the role's own settings
//!    ("Impersonated Role Settings");
//! 3. the query: tables as `json_agg` of a `SELECT` with the URL's filters, `order`, `limit`,
//!    `offset` ("Tables and Views", "Horizontal Filtering", "Ordering", "Limits and
//!    Pagination"); inserts from `json_populate_recordset`, with `on_conflict` and
//!    `Prefer: resolution=merge-duplicates|ignore-duplicates` ("Upsert"); updates with filters;
//!    RPC with named arguments from the JSON body ("Functions as RPC");
//! 4. errors: `{code, message, details, hint}`, the status from the SQLSTATE by the docs' table
//!    ("HTTP Status Codes"; 42501 is 403 with a JWT, 401 without).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_postgres::IsolationLevel;

use crate::query::{self, ident};
use crate::{Shared, gateway, json_response};

/// A PostgREST error answer.
fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<&str>,
    hint: Option<&str>,
) -> Response {
    json_response(
        status,
        &json!({"code": code, "message": message, "details": details, "hint": hint}),
    )
}

fn parse_error(e: query::ParseError) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "PGRST100",
        "\"failed to parse filter\"",
        Some(&e.0),
        None,
    )
}

/// The docs' SQLSTATE → HTTP status table.
fn sqlstate_status(code: &str, authed: bool) -> StatusCode {
    let s = |n: u16| StatusCode::from_u16(n).expect("valid status");
    match code {
        "23503" | "23505" => s(409),
        "25006" => s(405),
        "53400" => s(500),
        "42883" | "42P01" => s(404),
        "42P17" => s(500),
        "42501" => s(if authed { 403 } else { 401 }),
        "P0001" => s(400),
        _ => match &code[..2] {
            "08" | "53" => s(503),
            "0L" | "0P" | "28" => s(403),
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0"
            | "HV" | "P0" | "XX" => s(500),
            _ => s(400),
        },
    }
}

fn db_error(e: &tokio_postgres::Error, authed: bool) -> Response {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let mut resp = error(
                sqlstate_status(code, authed),
                code,
                db.message(),
                db.detail(),
                db.hint(),
            );
            if resp.status() == StatusCode::UNAUTHORIZED {
                resp.headers_mut()
                    .insert("www-authenticate", "Bearer".parse().expect("header"));
            }
            resp
        }
        // PostgREST: a connection failure is 503 PGRST001/PGRST000.
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST001",
            "Database client error. Retrying the connection.",
            Some(&e.to_string()),
            None,
        ),
    }
}

/// Who the request runs as.
struct Auth {
    role: String,
    claims: Value,
    /// A JWT was given (PostgREST's `authed`, for 42501).
    authed: bool,
}

fn authenticate(app: &crate::App, headers: &HeaderMap) -> Result<Auth, Response> {
    let Some(h) = headers.get("authorization") else {
        return Ok(Auth {
            role: "anon".into(),
            claims: json!({"role": "anon"}),
            authed: false,
        });
    };
    let h = h.to_str().unwrap_or_default();
    let token = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    match crate::jwt::verify(token, &app.secret, jiff::Timestamp::now().as_second()) {
        Ok(claims) => Ok(Auth {
            role: claims
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("anon")
                .to_owned(),
            claims,
            authed: true,
        }),
        Err(e) => {
            let mut resp = error(StatusCode::UNAUTHORIZED, e.code, e.message, None, None);
            resp.headers_mut().insert(
                "www-authenticate",
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    e.message
                )
                .parse()
                .expect("header"),
            );
            Err(resp)
        }
    }
}

/// Runs `sql` (one statement returning one text column, or none) as the request's role, in one
/// transaction.
async fn run(
    app: &crate::App,
    auth: &Auth,
    method: &Method,
    path: &str,
    sql: &str,
    param: Option<&str>,
) -> Result<Option<String>, Response> {
    let mut client = app.pool.get().await.map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST000",
            "Could not connect with the database due to an incorrect db-uri or due to the PostgreSQL service not running.",
            Some(&e.to_string()),
            None,
        )
    })?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .read_only(method == Method::GET)
        .start()
        .await
        .map_err(|e| db_error(&e, auth.authed))?;
    let claims = auth.claims.to_string();
    tx.execute(
        "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
         set_config('request.method', $3, true), set_config('request.path', $4, true)",
        &[&auth.role, &claims, &method.as_str(), &path],
    )
    .await
    .map_err(|e| db_error(&e, auth.authed))?;
    for (k, v) in app.role_settings.get(&auth.role).into_iter().flatten() {
        tx.execute("SELECT set_config($1, $2, true)", &[k, v])
            .await
            .map_err(|e| db_error(&e, auth.authed))?;
    }
    let rows = match param {
        Some(p) => tx.query(sql, &[&p]).await,
        None => tx.query(sql, &[]).await,
    }
    .map_err(|e| db_error(&e, auth.authed))?;
    tx.commit().await.map_err(|e| db_error(&e, auth.authed))?;
    Ok(rows.first().and_then(|r| r.get::<_, Option<String>>(0)))
}

/// `Prefer` header values (`return=…`, `resolution=…`).
fn prefer(headers: &HeaderMap, key: &str) -> Option<String> {
    headers.get_all("prefer").iter().find_map(|v| {
        v.to_str().ok()?.split(',').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k == key).then(|| v.to_owned())
        })
    })
}

async fn table_exists(app: &crate::App, table: &str) -> Result<bool, Response> {
    let client = app.pool.get().await.map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST000",
            &e.to_string(),
            None,
            None,
        )
    })?;
    let row = client
        .query_opt(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind IN ('r','v','m','p','f')",
            &[&table],
        )
        .await
        .map_err(|e| db_error(&e, true))?;
    Ok(row.is_some())
}

fn no_table(table: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "PGRST205",
        &format!("Could not find the table 'public.{table}' in the schema cache"),
        None,
        None,
    )
}

/// The WHERE clause of the URL's filters (every parameter but the reserved ones).
fn where_clause(query: &str) -> Result<String, Response> {
    let mut conds = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let k = k.as_ref();
        if matches!(
            k,
            "select" | "order" | "limit" | "offset" | "on_conflict" | "columns" | "apikey"
        ) {
            continue;
        }
        let mut sql = String::new();
        if matches!(k, "or" | "and" | "not.or" | "not.and") {
            query::parse_logic(k, &v)
                .and_then(|l| l.sql(&mut sql))
                .map_err(parse_error)?;
        } else {
            query::parse_filter(k, &v)
                .and_then(|f| f.sql(&mut sql))
                .map_err(parse_error)?;
        }
        conds.push(sql);
    }
    Ok(if conds.is_empty() {
        "TRUE".into()
    } else {
        conds.join(" AND ")
    })
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The answer to a read or a returned representation: an array, or one object for
/// `Accept: application/vnd.pgrst.object+json` ("Singular or Plural").
fn rows_response(status: StatusCode, headers: &HeaderMap, body: String) -> Response {
    let single = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/vnd.pgrst.object+json"));
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    let range = if rows.is_empty() {
        "*/*".to_owned()
    } else {
        format!("0-{}/*", rows.len() - 1)
    };
    if single {
        if rows.len() != 1 {
            return error(
                StatusCode::NOT_ACCEPTABLE,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                Some(&format!("The result contains {} rows", rows.len())),
                None,
            );
        }
        return (
            status,
            [
                (
                    "content-type",
                    "application/vnd.pgrst.object+json; charset=utf-8".to_owned(),
                ),
                ("content-range", range),
            ],
            rows[0].to_string(),
        )
            .into_response();
    }
    (
        status,
        [
            ("content-type", "application/json; charset=utf-8".to_owned()),
            ("content-range", range),
        ],
        body,
    )
        .into_response()
}

/// `GET /rest/v1/<table>?select=…&<filters>&order=…&limit=…&offset=…`.
pub async fn read(
    State(app): State<Shared>,
    Path(table): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let q = q.unwrap_or_default();
    if let Err(r) = gateway(&app, &headers, Some(&q)) {
        return r;
    }
    let auth = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match table_exists(&app, &table).await {
        Ok(true) => {}
        Ok(false) => return no_table(&table),
        Err(r) => return r,
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let build = || -> Result<String, Response> {
        let select =
            query::parse_select(param(&pairs, "select").unwrap_or("*")).map_err(parse_error)?;
        let mut sql = format!(
            "SELECT coalesce(json_agg(_pgrst_t), '[]')::text FROM (SELECT {select} FROM \"public\".{} WHERE {}",
            ident(&table),
            where_clause(&q)?
        );
        if let Some(o) = param(&pairs, "order") {
            sql.push_str(" ORDER BY ");
            sql.push_str(&query::parse_order(o).map_err(parse_error)?);
        }
        for key in ["limit", "offset"] {
            if let Some(n) = param(&pairs, key) {
                let n: u64 = n.parse().map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "PGRST100",
                        &format!("\"failed to parse {key} parameter ({n})\""),
                        None,
                        None,
                    )
                })?;
                sql.push_str(&format!(" {} {n}", key.to_uppercase()));
            }
        }
        sql.push_str(") _pgrst_t");
        Ok(sql)
    };
    let sql = match build() {
        Ok(s) => s,
        Err(r) => return r,
    };
    match run(&app, &auth, &Method::GET, &format!("/{table}"), &sql, None).await {
        Ok(body) => rows_response(
            StatusCode::OK,
            &headers,
            body.unwrap_or_else(|| "[]".into()),
        ),
        Err(r) => r,
    }
}

fn bad_body(details: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "PGRST102",
        "Empty or invalid json",
        Some(details),
        None,
    )
}

/// The representation a write returns, by `Prefer: return=`.
fn write_response(headers: &HeaderMap, created: bool, body: Option<String>) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    match prefer(headers, "return").as_deref() {
        Some("representation") => {
            rows_response(status, headers, body.unwrap_or_else(|| "[]".into()))
        }
        _ if created => StatusCode::CREATED.into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `POST /rest/v1/<table>[?on_conflict=a,b]`, body an object or an array of objects with the
/// same keys ("Bulk Insert": "all the objects must have the same keys").
pub async fn insert(
    State(app): State<Shared>,
    Path(table): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let q = q.unwrap_or_default();
    if let Err(r) = gateway(&app, &headers, Some(&q)) {
        return r;
    }
    let auth = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match table_exists(&app, &table).await {
        Ok(true) => {}
        Ok(false) => return no_table(&table),
        Err(r) => return r,
    }
    let rows: Vec<serde_json::Map<String, Value>> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => vec![o],
        Ok(Value::Array(a)) => match a
            .into_iter()
            .map(|v| match v {
                Value::Object(o) => Ok(o),
                _ => Err(()),
            })
            .collect::<Result<Vec<_>, ()>>()
        {
            Ok(r) => r,
            Err(()) => return bad_body("all elements must be objects"),
        },
        _ => return bad_body("the body must be a JSON object or array"),
    };
    let Some(first) = rows.first() else {
        return write_response(&headers, true, Some("[]".into()));
    };
    let keys: Vec<&String> = first.keys().collect();
    if rows
        .iter()
        .any(|r| r.len() != keys.len() || keys.iter().any(|k| !r.contains_key(*k)))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "PGRST102",
            "All object keys must match",
            None,
            None,
        );
    }
    let cols: Vec<String> = keys.iter().map(|k| ident(k)).collect();
    let cols = cols.join(", ");
    let t = format!("\"public\".{}", ident(&table));
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let mut conflict = String::new();
    if let Some(oc) = param(&pairs, "on_conflict") {
        let targets: Vec<String> = oc.split(',').map(|c| ident(c.trim())).collect();
        match prefer(&headers, "resolution").as_deref() {
            Some("ignore-duplicates") => {
                conflict = format!(" ON CONFLICT ({}) DO NOTHING", targets.join(", "))
            }
            _ => {
                let sets: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{0} = EXCLUDED.{0}", ident(k)))
                    .collect();
                conflict = format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    targets.join(", "),
                    sets.join(", ")
                );
            }
        }
    }
    let sql = format!(
        "WITH pgrst_source AS (INSERT INTO {t} ({cols}) SELECT {cols} FROM \
         json_populate_recordset(NULL::{t}, $1::text::json) _{conflict} RETURNING {t}.*) \
         SELECT coalesce(json_agg(_pgrst_t), '[]')::text FROM pgrst_source _pgrst_t"
    );
    let body = Value::Array(rows.into_iter().map(Value::Object).collect()).to_string();
    match run(
        &app,
        &auth,
        &Method::POST,
        &format!("/{table}"),
        &sql,
        Some(&body),
    )
    .await
    {
        Ok(out) => write_response(&headers, true, out),
        Err(r) => r,
    }
}

/// `PATCH /rest/v1/<table>?<filters>`, body one object.
pub async fn update(
    State(app): State<Shared>,
    Path(table): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let q = q.unwrap_or_default();
    if let Err(r) = gateway(&app, &headers, Some(&q)) {
        return r;
    }
    let auth = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match table_exists(&app, &table).await {
        Ok(true) => {}
        Ok(false) => return no_table(&table),
        Err(r) => return r,
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&body) else {
        return bad_body("the body must be a JSON object");
    };
    if obj.is_empty() {
        return write_response(&headers, false, Some("[]".into()));
    }
    let cols: Vec<String> = obj.keys().map(|k| ident(k)).collect();
    let cols = cols.join(", ");
    let t = format!("\"public\".{}", ident(&table));
    let conds = match where_clause(&q) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let sql = format!(
        "WITH pgrst_source AS (UPDATE {t} SET ({cols}) = (SELECT {cols} FROM \
         json_populate_record(NULL::{t}, $1::text::json)) WHERE {conds} RETURNING {t}.*) \
         SELECT coalesce(json_agg(_pgrst_t), '[]')::text FROM pgrst_source _pgrst_t"
    );
    let body = Value::Object(obj).to_string();
    match run(
        &app,
        &auth,
        &Method::PATCH,
        &format!("/{table}"),
        &sql,
        Some(&body),
    )
    .await
    {
        Ok(out) => write_response(&headers, false, out),
        Err(r) => r,
    }
}

/// `POST /rest/v1/rpc/<function>`, body a JSON object of named arguments ("Functions as RPC").
/// The function is found by name and argument names (PostgREST's schema cache); arguments are
/// read with `json_to_record` typed by the function's own parameter types.
pub async fn rpc(
    State(app): State<Shared>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gateway(&app, &headers, None) {
        return r;
    }
    let auth = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let args = if body.is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) => o,
            _ => return bad_body("the body must be a JSON object"),
        }
    };
    let client = match app.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "PGRST000",
                &e.to_string(),
                None,
                None,
            );
        }
    };
    let found = client
        .query(
            "SELECT coalesce(p.proargnames[1:p.pronargs], '{}'::text[]),
                    array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i) ORDER BY i),
                    p.proretset
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' AND p.proname = $1",
            &[&function],
        )
        .await;
    drop(client);
    let found = match found {
        Ok(f) => f,
        Err(e) => return db_error(&e, auth.authed),
    };
    let mut keys: Vec<&String> = args.keys().collect();
    keys.sort();
    let matching = found.iter().find(|row| {
        let mut names: Vec<String> = row.get(0);
        names.sort();
        names.iter().collect::<Vec<_>>() == keys
    });
    let Some(row) = matching else {
        let list: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        return error(
            StatusCode::NOT_FOUND,
            "PGRST202",
            &format!(
                "Could not find the function public.{function}({}) in the schema cache",
                list.join(", ")
            ),
            None,
            Some(
                "If a new function was created in the database with this name and parameters, try reloading the schema cache.",
            ),
        );
    };
    let names: Vec<String> = row.get(0);
    let types: Vec<String> = row.get(1);
    let set: bool = row.get(2);
    let call_args: Vec<String> = names
        .iter()
        .map(|n| format!("{0} := _.{0}", ident(n)))
        .collect();
    let record: Vec<String> = names
        .iter()
        .zip(&types)
        .map(|(n, t)| format!("{} {t}", ident(n)))
        .collect();
    let call = format!("\"public\".{}({})", ident(&function), call_args.join(", "));
    let from = if names.is_empty() {
        String::new()
    } else {
        format!(
            " FROM json_to_record($1::text::json) AS _({})",
            record.join(", ")
        )
    };
    let sql = if set {
        let lateral = if names.is_empty() {
            " FROM "
        } else {
            ", LATERAL "
        };
        format!(
            "SELECT coalesce(json_agg(_pgrst_t), '[]')::text{}{lateral}{call} _pgrst_t",
            if names.is_empty() { "" } else { &from }
        )
    } else {
        format!("SELECT to_json({call})::text{from}")
    };
    let body = Value::Object(args).to_string();
    let param = (!names.is_empty()).then_some(body.as_str());
    match run(
        &app,
        &auth,
        &Method::POST,
        &format!("/rpc/{function}"),
        &sql,
        param,
    )
    .await
    {
        Ok(out) => (
            StatusCode::OK,
            [("content-type", "application/json; charset=utf-8")],
            out.unwrap_or_else(|| "null".into()),
        )
            .into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_docs_table() {
        for (code, authed, want) in [
            ("23505", true, 409),
            ("42501", true, 403),
            ("42501", false, 401),
            ("42P01", true, 404),
            ("40001", true, 500),
            ("08006", true, 503),
            ("53300", true, 503),
            ("22P02", true, 400),
            ("P0001", true, 400),
        ] {
            assert_eq!(sqlstate_status(code, authed).as_u16(), want, "{code}");
        }
    }
}
