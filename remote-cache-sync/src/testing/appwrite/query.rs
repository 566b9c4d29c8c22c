//! Appwrite's JSON queries (<https://appwrite.io/docs/products/databases/queries>) turned into
//! SQL over the stand-in's `documents` table, every value bound.
//!
//! Supported: `equal`, `notEqual`, `lessThan`, `lessThanEqual`, `greaterThan`,
//! `greaterThanEqual`, `isNull`, `isNotNull`, `contains`, `startsWith`, `and`, `or`,
//! `orderAsc`, `orderDesc`, `limit`, `offset`, `select`. Limits as Appwrite's: at most 100
//! queries of at most 4096 characters each (`APP_LIMIT_ARRAY_PARAMS_SIZE`,
//! `APP_LIMIT_ARRAY_ELEMENT_SIZE`), at most 100 values per `equal`-style query is not enforced
//! (Appwrite allows more), the default `limit` is 25. Unknown attributes and methods are `400
//! general_query_invalid`, as on Appwrite. Not supported (also `400`): `cursorAfter`/
//! `cursorBefore`, `search`, spatial queries.
//!
//! The string methods and arrays follow Appwrite 1.8's query validator and MariaDB adapter
//! (utopia-php/database `src/Database/Validator/Query/Filter.php`, `Adapter/MariaDB.php`;
//! <https://appwrite.io/docs/products/databases/queries>):
//! - `contains` on a string attribute is a substring match (`LIKE '%v%'`, wildcards escaped),
//!   on an array attribute an element match; on any other attribute it is `400` ("Cannot query
//!   contains on attribute … because it is not an array, string, or object.");
//! - `startsWith` is `LIKE 'v%'`, wildcards escaped;
//! - on an array attribute only `contains`, `isNull` and `isNotNull` are allowed: anything else
//!   is `400` ("Cannot query equal on attribute … because it is an array.");
//! - comparisons on string attributes fold case, as MariaDB's default utf8mb4 collation
//!   (`utf8mb4_general_ci`) does: `equal("owner", ["bob"])` also finds `"Bob"` (ASCII folding
//!   here: SQLite's `NOCASE` and `LIKE`), so a client must treat answers as candidates, never
//!   as exact matches.
//!
//! `select` (<https://appwrite.io/docs/products/databases/queries#select>) lists the attributes
//! answered; the internal ones (`$id`, `$sequence`, `$createdAt`, `$updatedAt`,
//! `$permissions`, and the `$databaseId`/`$collectionId` Appwrite adds) always come back, as
//! utopia-php/database's `SQL::getAttributeProjection` always selects them. `*` selects all.

use std::collections::HashMap;

use rusqlite::types::Value as Sql;
use serde_json::Value;

use super::error::{AwError, AwResult};
use super::store::AttrType;

/// Most queries in one request.
pub const MAX_QUERIES: usize = 100;
/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;
/// `limit` when none is given.
pub const DEFAULT_LIMIT: i64 = 25;

/// What the planner knows of a collection's attributes: type and whether it is an array.
pub type Schema = HashMap<String, (AttrType, bool)>;

/// The internal attributes `select` may name (always answered anyway).
const INTERNAL: [&str; 5] = [
    "$id",
    "$sequence",
    "$createdAt",
    "$updatedAt",
    "$permissions",
];

/// A list request's queries as SQL pieces.
#[derive(Debug, Default)]
pub struct Plan {
    /// `AND`-joined conditions.
    pub conditions: Vec<String>,
    /// Bound values, in order.
    pub params: Vec<Sql>,
    /// `ORDER BY` terms.
    pub order: Vec<String>,
    /// `LIMIT`.
    pub limit: i64,
    /// `OFFSET`.
    pub offset: i64,
    /// The attributes `select` asked for (`None`: all of them).
    pub select: Option<Vec<String>>,
}

/// Parses `queries` (JSON strings) against a collection's attributes.
pub fn plan(queries: &[String], attrs: &Schema) -> AwResult<Plan> {
    if queries.len() > MAX_QUERIES {
        return Err(AwError::query(format!(
            "at most {MAX_QUERIES} queries are allowed"
        )));
    }
    let mut p = Plan {
        limit: DEFAULT_LIMIT,
        ..Plan::default()
    };
    for q in queries {
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(AwError::query(format!(
                "each query must be at most {MAX_QUERY_CHARS} characters"
            )));
        }
        let v: Value = serde_json::from_str(q)
            .map_err(|e| AwError::query(format!("invalid query JSON: {e}")))?;
        match method(&v)? {
            "orderAsc" | "orderDesc" => {
                let col = column(attribute(&v)?, attrs)?;
                let dir = if method(&v)? == "orderAsc" {
                    "ASC"
                } else {
                    "DESC"
                };
                p.order.push(format!("{col} {dir}"));
            }
            "select" => {
                let names = select(&v, attrs)?;
                if !names.iter().any(|n| n == "*") {
                    p.select.get_or_insert_with(Vec::new).extend(names);
                }
            }
            "limit" => p.limit = int_value(&v)?,
            "offset" => p.offset = int_value(&v)?,
            _ => {
                let cond = condition(&v, attrs, &mut p.params)?;
                p.conditions.push(cond);
            }
        }
    }
    if p.limit < 0 || p.offset < 0 {
        return Err(AwError::query("limit and offset must be positive"));
    }
    Ok(p)
}

fn method(v: &Value) -> AwResult<&str> {
    v.get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| AwError::query("a query has no method"))
}

fn attribute(v: &Value) -> AwResult<&str> {
    v.get("attribute")
        .and_then(Value::as_str)
        .ok_or_else(|| AwError::query(format!("{} needs an attribute", v["method"])))
}

fn values(v: &Value) -> AwResult<&Vec<Value>> {
    v.get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| AwError::query(format!("{} needs values", v["method"])))
}

fn int_value(v: &Value) -> AwResult<i64> {
    values(v)?
        .first()
        .and_then(Value::as_i64)
        .ok_or_else(|| AwError::query(format!("{} needs an integer value", v["method"])))
}

/// The attributes of a `select` (validated as Appwrite's `Select` validator does).
fn select(v: &Value, attrs: &Schema) -> AwResult<Vec<String>> {
    let names = values(v)?
        .iter()
        .map(|n| {
            n.as_str().map(str::to_owned).ok_or_else(|| {
                AwError::query(format!("Attribute selection must be a string, got {n}"))
            })
        })
        .collect::<AwResult<Vec<String>>>()?;
    if names.is_empty() {
        return Err(AwError::query("No attributes selected"));
    }
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        if !seen.insert(n) {
            return Err(AwError::query("Duplicate attributes selected"));
        }
        if n != "*" && !INTERNAL.contains(&n.as_str()) && !attrs.contains_key(n) {
            return Err(AwError::query(format!(
                "Attribute not found in schema: {n}"
            )));
        }
    }
    Ok(names)
}

/// The characters Appwrite escapes before building a `LIKE` pattern (utopia-php/database
/// `SQL::escapeWildcards`). The backslash itself is **not** escaped: in a pattern it escapes the
/// next character (MariaDB's default `LIKE` escape, `ESCAPE '\'` here), as on Appwrite.
const WILDCARDS: &[char] = &[
    '%', '_', '[', ']', '^', '-', '.', '*', '+', '?', '(', ')', '{', '}', '|',
];

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if WILDCARDS.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The SQL expression of an attribute. Attribute names were checked when they were created
/// (letters, digits, `_`, `.`, `-`), and the JSON path is bound anyway.
fn column(attr: &str, attrs: &Schema) -> AwResult<String> {
    Ok(match attr {
        "$id" => "id".into(),
        "$createdAt" => "created_at".into(),
        "$updatedAt" => "updated_at".into(),
        "$sequence" => "seq".into(),
        a if attrs.contains_key(a) => attr_sql(a),
        a => {
            return Err(AwError::query(format!(
                "Attribute not found in schema: {a}"
            )));
        }
    })
}

/// The expression of a user attribute (also used by indexes, so SQLite matches them).
fn attr_sql(a: &str) -> String {
    format!("json_extract(data, '$.\"{a}\"')")
}

/// [`column`] for index creation.
pub(crate) fn column_sql(attr: &str, attrs: &Schema) -> AwResult<String> {
    column(attr, attrs)
}

/// A value as SQL, typed like the attribute (dates normalised to the stored format).
fn sql_value(attr: &str, v: &Value, attrs: &Schema) -> AwResult<Sql> {
    let t = match attr {
        "$createdAt" | "$updatedAt" => AttrType::Datetime,
        "$sequence" => AttrType::Integer,
        "$id" => AttrType::String,
        a => attrs.get(a).map_or(AttrType::String, |(t, _)| *t),
    };
    match (t, v) {
        (AttrType::Datetime, Value::String(s)) => super::store::normalize_stamp(s)
            .map(Sql::Text)
            .ok_or_else(|| AwError::query(format!("invalid date {s:?} for {attr}"))),
        (AttrType::Integer | AttrType::Float, Value::Number(n)) => Ok(match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Real(n.as_f64().unwrap_or(0.0)),
        }),
        (AttrType::Boolean, Value::Bool(b)) => Ok(Sql::Integer(i64::from(*b))),
        (AttrType::String, Value::String(s)) => Ok(Sql::Text(s.clone())),
        _ => Err(AwError::query(format!(
            "query value {v} does not match the type of attribute {attr}"
        ))),
    }
}

fn condition(v: &Value, attrs: &Schema, params: &mut Vec<Sql>) -> AwResult<String> {
    let m = method(v)?;
    let op = match m {
        "and" | "or" => {
            let parts = values(v)?
                .iter()
                .map(|q| condition(q, attrs, params))
                .collect::<AwResult<Vec<_>>>()?;
            if parts.len() < 2 {
                return Err(AwError::query(format!("{m} needs at least two queries")));
            }
            let joiner = if m == "and" { " AND " } else { " OR " };
            return Ok(format!("({})", parts.join(joiner)));
        }
        "isNull" | "isNotNull" => {
            let col = column(attribute(v)?, attrs)?;
            let not = if m == "isNull" { "" } else { " NOT" };
            return Ok(format!("{col} IS{not} NULL"));
        }
        "contains" | "startsWith" => return string_match(v, attrs, params),
        "equal" => "=",
        "notEqual" => "!=",
        "lessThan" => "<",
        "lessThanEqual" => "<=",
        "greaterThan" => ">",
        "greaterThanEqual" => ">=",
        other => {
            return Err(AwError::query(format!(
                "method {other:?} is not supported by this server"
            )));
        }
    };
    let attr = attribute(v)?;
    let col = column(attr, attrs)?;
    if attrs.get(attr).is_some_and(|(_, array)| *array) {
        return Err(AwError::query(format!(
            "Cannot query {m} on attribute \"{attr}\" because it is an array."
        )));
    }
    let vals = values(v)?;
    if vals.is_empty() {
        return Err(AwError::query(format!("{m} needs at least one value")));
    }
    // A string attribute compares with its column's collation: Appwrite's MariaDB tables are
    // utf8mb4, whose default collation (`utf8mb4_general_ci`) folds case. SQLite's `NOCASE`
    // folds ASCII only (accents and trailing spaces still count here). Internal attributes
    // (`$id`, stamps) stay binary.
    let collate = match attrs.get(attr) {
        Some((AttrType::String, false)) => " COLLATE NOCASE",
        _ => "",
    };
    let mut parts = Vec::with_capacity(vals.len());
    for value in vals {
        params.push(sql_value(attr, value, attrs)?);
        parts.push(format!("{col} {op} ?{collate}"));
    }
    // Several values: any of them (equal) / none of them (notEqual).
    let joiner = if m == "notEqual" { " AND " } else { " OR " };
    Ok(format!("({})", parts.join(joiner)))
}

/// `contains` / `startsWith`: any of the values, as `LIKE` patterns (or array elements).
fn string_match(v: &Value, attrs: &Schema, params: &mut Vec<Sql>) -> AwResult<String> {
    let m = method(v)?;
    let attr = attribute(v)?;
    let col = column(attr, attrs)?;
    let (t, array) = match attr {
        "$id" => (AttrType::String, false),
        a => attrs
            .get(a)
            .copied()
            .ok_or_else(|| AwError::query(format!("Attribute not found in schema: {a}")))?,
    };
    if array && m == "startsWith" {
        return Err(AwError::query(format!(
            "Cannot query {m} on attribute \"{attr}\" because it is an array."
        )));
    }
    if !array && t != AttrType::String {
        return Err(AwError::query(format!(
            "Cannot query {m} on attribute \"{attr}\" because it is not an array, string, or object."
        )));
    }
    let vals = values(v)?;
    if vals.is_empty() {
        return Err(AwError::query(format!(
            "{} queries require at least one value.",
            if m == "contains" {
                "Contains"
            } else {
                "StartsWith"
            }
        )));
    }
    let mut parts = Vec::with_capacity(vals.len());
    for value in vals {
        if array {
            // Element match (the adapter's JSON_CONTAINS).
            params.push(sql_value(attr, value, attrs)?);
            parts.push(format!(
                "EXISTS (SELECT 1 FROM json_each({col}) e WHERE e.value = ?)"
            ));
            continue;
        }
        let Value::String(s) = value else {
            return Err(AwError::query(format!(
                "Query value is invalid for attribute \"{attr}\""
            )));
        };
        let pattern = if m == "contains" {
            format!("%{}%", like_escape(s))
        } else {
            format!("{}%", like_escape(s))
        };
        params.push(Sql::Text(pattern));
        parts.push(format!("{col} LIKE ? ESCAPE '\\'"));
    }
    Ok(format!("({})", parts.join(" OR ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Schema {
        [
            ("owner".to_owned(), (AttrType::String, false)),
            ("n".to_owned(), (AttrType::Integer, false)),
            ("tags".to_owned(), (AttrType::String, true)),
        ]
        .into()
    }

    #[test]
    fn plans_bind_every_value() {
        let qs = vec![
            r#"{"method":"equal","attribute":"owner","values":["a' OR 1=1 --"]}"#.to_owned(),
            r#"{"method":"or","values":[{"method":"greaterThan","attribute":"$updatedAt","values":["2026-01-01T00:00:00.000+00:00"]},{"method":"and","values":[{"method":"equal","attribute":"$updatedAt","values":["2026-01-01T00:00:00.000+00:00"]},{"method":"greaterThan","attribute":"$id","values":["x"]}]}]}"#.to_owned(),
            r#"{"method":"orderAsc","attribute":"$updatedAt"}"#.to_owned(),
            r#"{"method":"limit","values":[10]}"#.to_owned(),
        ];
        let p = plan(&qs, &attrs()).unwrap();
        assert_eq!(p.params.len(), 4);
        assert_eq!(p.limit, 10);
        assert!(!p.conditions.concat().contains("OR 1=1"));
        let p = plan(
            &[
                r#"{"method":"contains","attribute":"owner","values":["50%_."]}"#.to_owned(),
                r#"{"method":"contains","attribute":"tags","values":["x"]}"#.to_owned(),
                r#"{"method":"select","values":["owner","$id"]}"#.to_owned(),
            ],
            &attrs(),
        )
        .unwrap();
        assert_eq!(p.params[0], Sql::Text(r"%50\%\_\.%".into()));
        assert_eq!(p.select, Some(vec!["owner".to_owned(), "$id".to_owned()]));
        for bad in [
            r#"{"method":"equal","attribute":"nope","values":["x"]}"#,
            r#"{"method":"cursorAfter","values":["x"]}"#,
            r#"{"method":"equal","attribute":"n","values":["x"]}"#,
            r#"{"method":"equal","attribute":"tags","values":["x"]}"#,
            r#"{"method":"contains","attribute":"n","values":["1"]}"#,
            r#"{"method":"startsWith","attribute":"tags","values":["x"]}"#,
            r#"{"method":"select","values":["nope"]}"#,
            r#"{"method":"select","values":["owner","owner"]}"#,
            r#"not json"#,
        ] {
            let e = plan(&[bad.to_owned()], &attrs()).unwrap_err();
            assert_eq!((e.status, e.kind), (400, "general_query_invalid"), "{bad}");
        }
    }
}
