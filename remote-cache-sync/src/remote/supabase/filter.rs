//! PostgREST's query syntax, with every value escaped by its rules (docs: "URL Grammar",
//! "Reserved characters"; PostgREST's `QueryParams.hs`):
//!
//! - a top-level filter `col=eq.VALUE` reads VALUE literally to its end: no quoting, it is only
//!   percent-encoded (a `"` there would become part of the value);
//! - inside `or=(…)`, `and=(…)` and `in.(…)` a value is double-quoted, with `\` before every `\`
//!   and `"`, so `,.:()` in it are data, never syntax.
//!
//! Table and column names are plain identifiers (`[A-Za-z_][A-Za-z0-9_]*`), checked, never
//! quoted.

use crate::error::{Error, Result};
use crate::scope::SyncScope;

/// Query parameters PostgREST reserves, and the columns the adapter owns: never scope keys.
const RESERVED: &[&str] = &[
    "select",
    "order",
    "limit",
    "offset",
    "or",
    "and",
    "not",
    "on_conflict",
    "columns",
    "apikey",
    "id",
    "version",
    "deleted",
    "data",
    "updated_at",
    "user_id",
];

/// Whether `s` is a plain identifier.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

/// Checks a scope for table mode: its name is the table, its keys are columns.
pub(crate) fn validate_table_scope(scope: &SyncScope) -> Result<()> {
    if !is_identifier(scope.name()) {
        return Err(Error::InvalidScope(format!(
            "supabase table mode: scope name {:?} must be a table name ([A-Za-z_][A-Za-z0-9_]*)",
            scope.name()
        )));
    }
    for k in scope.keys().keys() {
        if !is_identifier(k) || RESERVED.contains(&k.as_str()) {
            return Err(Error::InvalidScope(format!(
                "supabase table mode: scope key {k:?} must be a column name other than {RESERVED:?}"
            )));
        }
    }
    Ok(())
}

/// A value inside `or=(…)`/`and=(…)`/`in.(…)`: double-quoted, `\` and `"` escaped.
pub(crate) fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `col=eq.VALUE` (top level: the value is taken literally).
pub(crate) fn eq(column: &str, value: &str) -> (String, String) {
    (column.to_owned(), format!("eq.{value}"))
}

/// One `key=eq.value` filter per scope key.
pub(crate) fn scope_filters(scope: &SyncScope) -> Vec<(String, String)> {
    scope.keys().iter().map(|(k, v)| eq(k, v)).collect()
}

/// `in.("a","b")`.
pub(crate) fn in_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = values.into_iter().map(quote).collect();
    format!("in.({})", items.join(","))
}

/// The keyset "strictly after `(stamp, id)`" on `(updated_at, id)`.
pub(crate) fn after(stamp: &str, id: &str) -> (String, String) {
    let (s, i) = (quote(stamp), quote(id));
    (
        "or".to_owned(),
        format!("(updated_at.gt.{s},and(updated_at.eq.{s},id.gt.{i}))"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a,owner.neq.x"), "\"a,owner.neq.x\"");
        assert_eq!(quote("x)"), "\"x)\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(in_list(["a", "b,c"]), "in.(\"a\",\"b,c\")");
        assert_eq!(eq("owner", "a,owner.neq.x").1, "eq.a,owner.neq.x");
        assert_eq!(
            after("2026-01-01T00:00:00.000000Z", "x)").1,
            "(updated_at.gt.\"2026-01-01T00:00:00.000000Z\",and(updated_at.eq.\"2026-01-01T00:00:00.000000Z\",id.gt.\"x)\"))"
        );
    }

    #[test]
    fn table_scopes() {
        assert!(validate_table_scope(&SyncScope::new("notes", [("owner", "u")]).unwrap()).is_ok());
        for bad in [
            SyncScope::new("no tes", [("owner", "u")]).unwrap(),
            SyncScope::new("notes", [("or", "u")]).unwrap(),
            SyncScope::new("notes", [("id", "u")]).unwrap(),
            SyncScope::new("notes", [("ow.ner", "u")]).unwrap(),
        ] {
            assert!(validate_table_scope(&bad).is_err(), "{bad:?}");
        }
    }
}
