//! PocketBase filter building: quoted, escaped literals; identifier checks; the exact date
//! format; id lists chunked under the server's filter limits.
//!
//! Facts (tested on 0.40.6): inside a `"…"` literal the lexer understands `\"` and `\\`; raw
//! newlines are fine; `\uXXXX` is not decoded. A filter longer than ~3500 characters or with
//! more than 200 expressions fails with a generic 400. Dates are TEXT compared as strings, so
//! `since` must be `YYYY-MM-DD HH:MM:SS.mmmZ` exactly.

use jiff::Timestamp;

use crate::error::{Error, Result};
use crate::scope::SyncScope;

/// Longest filter the adapter sends (the server's limit is about 3500 characters).
pub(crate) const MAX_FILTER_CHARS: usize = 3400;
/// Most `||`/`&&`-joined expressions in one filter (the server accepts 200).
pub(crate) const MAX_FILTER_EXPRS: usize = 150;

/// Field names the adapter owns, which scope keys must not use.
pub(crate) const RESERVED_FIELDS: &[&str] = &[
    "id",
    "created",
    "updated",
    "collectionId",
    "collectionName",
    "expand",
    "updated_at",
    "deleted_at",
    "record_id",
];

/// A double-quoted, escaped filter literal.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `s` is a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes): the only
/// shape accepted for collection and field names that are spliced into filters and URLs.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a scope maps to a collection and field filters: the name and every key must be
/// identifiers, and keys must not be fields the adapter owns.
pub(crate) fn validate_scope(scope: &SyncScope) -> Result<()> {
    if !is_identifier(scope.name()) {
        return Err(Error::InvalidScope(format!(
            "pocketbase: scope name {:?} is not a collection name ([A-Za-z_][A-Za-z0-9_]*)",
            scope.name()
        )));
    }
    for k in scope.keys().keys() {
        if !is_identifier(k) {
            return Err(Error::InvalidScope(format!(
                "pocketbase: scope key {k:?} is not a field name ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
        if RESERVED_FIELDS.contains(&k.as_str()) {
            return Err(Error::InvalidScope(format!(
                "pocketbase: scope key {k:?} is a field the adapter manages"
            )));
        }
    }
    Ok(())
}

/// `k1 = "v1" && k2 = "v2"` for the scope's keys (`None` for a scope without keys).
pub(crate) fn scope_filter(scope: &SyncScope) -> Option<String> {
    if scope.keys().is_empty() {
        return None;
    }
    Some(
        scope
            .keys()
            .iter()
            .map(|(k, v)| format!("{k} = {}", quote(v)))
            .collect::<Vec<_>>()
            .join(" && "),
    )
}

/// Joins optional filter parts with `&&`, each in parentheses.
pub(crate) fn and(parts: impl IntoIterator<Item = Option<String>>) -> String {
    parts
        .into_iter()
        .flatten()
        .map(|p| format!("({p})"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Formats a timestamp exactly as PocketBase stores dates: `2026-11-22 01:30:20.840Z`
/// (truncated to milliseconds).
pub(crate) fn format_date(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

/// Parses a PocketBase date (`2026-11-22 01:30:20.840Z`) or an RFC 3339 timestamp.
pub(crate) fn parse_date(s: &str) -> Option<Timestamp> {
    if s.len() > 10 && s.as_bytes()[10] == b' ' {
        let mut fixed = s.to_owned();
        fixed.replace_range(10..11, "T");
        fixed.parse().ok()
    } else {
        s.parse().ok()
    }
}

/// Splits `ids` into filters `(id = "a" || id = "b" …)` that each stay under the length and
/// expression limits together with `base` (the scope part, ANDed in front).
pub(crate) fn id_chunks<'a>(
    base: Option<&str>,
    ids: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let base_len = base.map_or(0, |b| b.len() + 8);
    let base_exprs = base.map_or(0, |b| b.matches("&&").count() + 1);
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_len = base_len;
    let flush = |cur: &mut Vec<String>, out: &mut Vec<String>| {
        if !cur.is_empty() {
            let ors = cur.join(" || ");
            out.push(match base {
                Some(b) => format!("({b}) && ({ors})"),
                None => ors,
            });
            cur.clear();
        }
    };
    for id in ids {
        let term = format!("id = {}", quote(id));
        if !cur.is_empty()
            && (cur_len + term.len() + 4 > MAX_FILTER_CHARS
                || cur.len() + 1 + base_exprs > MAX_FILTER_EXPRS)
        {
            flush(&mut cur, &mut out);
            cur_len = base_len;
        }
        cur_len += term.len() + 4;
        cur.push(term);
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny || 1"), "\"x\ny || 1\"");
        assert_eq!(quote(r#"\""#), r#""\\\"""#);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("records"));
        assert!(is_identifier("_a1"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier("a\"||1"));
        assert!(!is_identifier(""));
        let bad = SyncScope::new("records", [("owner = \"x\" ||", "v")]).unwrap();
        assert!(matches!(validate_scope(&bad), Err(Error::InvalidScope(_))));
        let reserved = SyncScope::new("records", [("updated", "v")]).unwrap();
        assert!(validate_scope(&reserved).is_err());
        assert!(validate_scope(&SyncScope::named("records/x").unwrap()).is_err());
    }

    #[test]
    fn dates() {
        let t: Timestamp = "2026-11-22T01:30:20.840123Z".parse().unwrap();
        assert_eq!(format_date(t), "2026-11-22 01:30:20.840Z");
        let whole: Timestamp = "2026-11-22T01:30:20Z".parse().unwrap();
        assert_eq!(format_date(whole), "2026-11-22 01:30:20.000Z");
        assert_eq!(
            parse_date("2026-11-22 01:30:20.840Z").unwrap(),
            "2026-11-22T01:30:20.840Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_date("2026-11-22T01:30:20.840Z"),
            Some("2026-11-22T01:30:20.840Z".parse().unwrap())
        );
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn chunks_stay_under_limits() {
        let ids: Vec<String> = (0..1000).map(|i| format!("{:036}", i)).collect();
        let base = "owner = \"u1\"";
        let chunks = id_chunks(Some(base), ids.iter().map(String::as_str));
        assert!(chunks.len() > 1);
        let mut seen = 0;
        for c in &chunks {
            assert!(c.len() <= MAX_FILTER_CHARS, "{}", c.len());
            let n = c.matches("id = ").count();
            assert!(n < MAX_FILTER_EXPRS);
            assert!(c.starts_with("(owner = \"u1\") && ("));
            seen += n;
        }
        assert_eq!(seen, 1000);
        assert!(id_chunks(None, std::iter::empty()).is_empty());
    }
}
