//! Appwrite's JSON queries (<https://appwrite.io/docs/products/databases/queries>): each query is
//! a JSON object `{"method","attribute","values"}`, serialised by `serde_json`, so scope values
//! are always JSON-escaped data, never query syntax. The SDKs send them as `queries[0]=…`,
//! `queries[1]=…` URL parameters (node-appwrite's `Client.flatten`); so do we.

use serde_json::{Value, json};

use crate::scope::SyncScope;

/// Longest serialised query Appwrite accepts (`APP_LIMIT_ARRAY_ELEMENT_SIZE`, 4096 characters).
pub(crate) const MAX_QUERY_CHARS: usize = 4096;

pub(crate) fn equal(attribute: &str, values: &[&str]) -> Value {
    json!({"method": "equal", "attribute": attribute, "values": values})
}

pub(crate) fn greater_than(attribute: &str, value: &str) -> Value {
    json!({"method": "greaterThan", "attribute": attribute, "values": [value]})
}

pub(crate) fn greater_than_equal(attribute: &str, value: &str) -> Value {
    json!({"method": "greaterThanEqual", "attribute": attribute, "values": [value]})
}

pub(crate) fn is_null(attribute: &str) -> Value {
    json!({"method": "isNull", "attribute": attribute})
}

/// Substring match on a string attribute (`LIKE '%v%'`, wildcards escaped by the server), an
/// element match on an array attribute.
pub(crate) fn contains(attribute: &str, values: &[&str]) -> Value {
    json!({"method": "contains", "attribute": attribute, "values": values})
}

pub(crate) fn starts_with(attribute: &str, value: &str) -> Value {
    json!({"method": "startsWith", "attribute": attribute, "values": [value]})
}

/// The attributes to answer (the internal `$…` ones always come back).
pub(crate) fn select(attributes: &[&str]) -> Value {
    json!({"method": "select", "values": attributes})
}

pub(crate) fn and(queries: Vec<Value>) -> Value {
    json!({"method": "and", "values": queries})
}

pub(crate) fn or(queries: Vec<Value>) -> Value {
    json!({"method": "or", "values": queries})
}

pub(crate) fn order_asc(attribute: &str) -> Value {
    json!({"method": "orderAsc", "attribute": attribute})
}

pub(crate) fn limit(n: usize) -> Value {
    json!({"method": "limit", "values": [n]})
}

/// `equal` on every scope key.
pub(crate) fn scope_queries(scope: &SyncScope) -> Vec<Value> {
    scope
        .keys()
        .iter()
        .map(|(k, v)| equal(k, &[v.as_str()]))
        .collect()
}

/// The keyset after `(updated, id)`: `$updatedAt > u OR ($updatedAt = u AND $id > i)`.
pub(crate) fn after(updated: &str, id: &str) -> Value {
    or(vec![
        greater_than("$updatedAt", updated),
        and(vec![
            equal("$updatedAt", &[updated]),
            greater_than("$id", id),
        ]),
    ])
}

/// The URL parameters of a list request: `queries[0]=…` and `total=false`.
pub(crate) fn list_params(queries: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| (format!("queries[{i}]"), q.to_string()))
        .collect();
    // Skips the COUNT that a list otherwise runs (node-appwrite's `listDocuments(…, total)`).
    out.push(("total".into(), "false".into()));
    out
}

/// Ids split into `equal("$id", …)` queries that each stay under [`MAX_QUERY_CHARS`].
pub(crate) fn id_chunks<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<Vec<&'a str>> {
    let mut chunks: Vec<Vec<&str>> = Vec::new();
    let mut len = 0;
    for id in ids {
        let cost = id.len() + 4;
        match chunks.last_mut() {
            Some(c) if len + cost < MAX_QUERY_CHARS - 100 && c.len() < 100 => {
                c.push(id);
                len += cost;
            }
            _ => {
                chunks.push(vec![id]);
                len = cost;
            }
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_data() {
        let scope = SyncScope::new("records", [("owner", "a\"}],\"method\":\"notEqual")]).unwrap();
        let q = scope_queries(&scope);
        let text = q[0].to_string();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["method"], "equal");
        assert_eq!(back["values"][0], "a\"}],\"method\":\"notEqual");
        let p = list_params(&[after("2026-01-01T00:00:00.000+00:00", "x"), limit(5)]);
        assert_eq!(p[0].0, "queries[0]");
        assert_eq!(p[2], ("total".into(), "false".into()));
    }

    #[test]
    fn id_chunks_fit_the_query_limit() {
        let ids: Vec<String> = (0..450).map(|i| format!("{i:036}")).collect();
        let chunks = id_chunks(ids.iter().map(String::as_str));
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 450);
        for c in &chunks {
            assert!(equal("$id", c).to_string().len() <= MAX_QUERY_CHARS);
        }
    }
}
