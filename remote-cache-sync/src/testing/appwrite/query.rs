//! Appwrite's JSON queries (<https://appwrite.io/docs/products/databases/queries>) turned into
//! SQL over the stand-in's `documents` table, every value bound.
//!
//! Supported: `equal`, `notEqual`, `lessThan`, `lessThanEqual`, `greaterThan`,
//! `greaterThanEqual`, `isNull`, `isNotNull`, `and`, `or`, `orderAsc`, `orderDesc`, `limit`,
//! `offset`. Limits as Appwrite's: at most 100 queries of at most 4096 characters each
//! (`APP_LIMIT_ARRAY_PARAMS_SIZE`, `APP_LIMIT_ARRAY_ELEMENT_SIZE`), at most 100 values per
//! `equal`-style query is not enforced (Appwrite allows more), the default `limit` is 25. Unknown
//! attributes and methods are `400 general_query_invalid`, as on Appwrite. Not supported (also
//! `400`): `cursorAfter`/`cursorBefore`, `search`, `contains`, `select`, spatial queries.

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
}

/// Parses `queries` (JSON strings) against a collection's attributes.
pub fn plan(queries: &[String], attrs: &HashMap<String, AttrType>) -> AwResult<Plan> {
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

/// The SQL expression of an attribute. Attribute names were checked when they were created
/// (letters, digits, `_`, `.`, `-`), and the JSON path is bound anyway.
fn column(attr: &str, attrs: &HashMap<String, AttrType>) -> AwResult<String> {
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
pub(crate) fn column_sql(attr: &str, attrs: &HashMap<String, AttrType>) -> AwResult<String> {
    column(attr, attrs)
}

/// A value as SQL, typed like the attribute (dates normalised to the stored format).
fn sql_value(attr: &str, v: &Value, attrs: &HashMap<String, AttrType>) -> AwResult<Sql> {
    let t = match attr {
        "$createdAt" | "$updatedAt" => AttrType::Datetime,
        "$sequence" => AttrType::Integer,
        "$id" => AttrType::String,
        a => attrs.get(a).copied().unwrap_or(AttrType::String),
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

fn condition(
    v: &Value,
    attrs: &HashMap<String, AttrType>,
    params: &mut Vec<Sql>,
) -> AwResult<String> {
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
    let vals = values(v)?;
    if vals.is_empty() {
        return Err(AwError::query(format!("{m} needs at least one value")));
    }
    let mut parts = Vec::with_capacity(vals.len());
    for value in vals {
        params.push(sql_value(attr, value, attrs)?);
        parts.push(format!("{col} {op} ?"));
    }
    // Several values: any of them (equal) / none of them (notEqual).
    let joiner = if m == "notEqual" { " AND " } else { " OR " };
    Ok(format!("({})", parts.join(joiner)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> HashMap<String, AttrType> {
        [
            ("owner".to_owned(), AttrType::String),
            ("n".to_owned(), AttrType::Integer),
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
        for bad in [
            r#"{"method":"equal","attribute":"nope","values":["x"]}"#,
            r#"{"method":"cursorAfter","values":["x"]}"#,
            r#"{"method":"equal","attribute":"n","values":["x"]}"#,
            r#"not json"#,
        ] {
            let e = plan(&[bad.to_owned()], &attrs()).unwrap_err();
            assert_eq!((e.status, e.kind), (400, "general_query_invalid"), "{bad}");
        }
    }
}
