//! [`RemoteStore::query`](crate::RemoteStore::query) for Appwrite: Appwrite narrows, the client
//! decides ([`crate::remote::narrow`]).
//!
//! The spec's terms that narrow (`eq`/`in` with string operands, `contains`) become Appwrite
//! queries (<https://appwrite.io/docs/products/databases/queries>) on top-level fields, next to
//! the scope keys' `equal` and the live-record filter (`deleted_at` unset or empty, exactly what
//! a pull decodes as live). The candidates are listed by `$id` keyset, all pages, decoded as a
//! pull decodes them (a document a pull would quarantine is left out), and the whole spec is
//! evaluated over them.
//!
//! Each term keeps every record the filter it came from keeps, **array fields included** (a
//! filter comparing an array with a scalar fails the query when such a record would be
//! returned, so those records must be candidates too):
//! - field `id` is the `record_id` attribute, other fields the attribute of the same name;
//! - on a typed attribute, `eq`/`in` → `equal(attr, [values])` (a case-folding collation only
//!   adds candidates). Appwrite refuses `equal` on an array attribute, a value of another type,
//!   or an unknown attribute with `400 general_query_invalid`: the query is then
//!   [`Error::Unsupported`] and the orchestrator syncs instead. `contains` is not sent on typed
//!   attributes: on an array attribute Appwrite's `contains` is an element match, which would
//!   leave out arrays that must fail the query, and the collection's schema (which attribute
//!   is an array) is not readable with a user JWT;
//! - on a JSON attribute (a string holding the field's JSON text), `eq`/`in` →
//!   `or(equal(attr, [JSON texts]), startsWith(attr, "["))` and `contains(s)` →
//!   `or(contains(attr, [p]), startsWith(attr, "["))`, `p` the longest piece without a
//!   backslash of `s` as escaped inside a JSON string: the text of a string value is its
//!   `serde_json` text, escaping is per character, so a string containing `s` has a text
//!   containing every such piece. (Appwrite escapes `%`, `_` and other wildcards in a `contains`
//!   value but not `\`, which MariaDB's `LIKE` reads as an escape: a piece must not hold one.)

use serde_json::Value;

use super::client::BACKEND;
use super::decode::{RECORD_ID_ATTR, decode_doc, json_text};
use super::query::{self, MAX_QUERY_CHARS};
use super::store::AppwriteRemoteStore;
use crate::error::Result;
use crate::query::QuerySpec;
use crate::record::{Change, Record};
use crate::remote::narrow::{self, Narrow, Plan};
use crate::scope::SyncScope;

/// Most values Appwrite takes in one query (`APP_DATABASE_QUERY_MAX_VALUES`).
const MAX_QUERY_VALUES: usize = 500;

impl<T: Record> AppwriteRemoteStore<T> {
    /// The attribute a top-level field is stored in.
    fn attribute_of<'a>(&self, field: &'a str) -> &'a str {
        if field == "id" { RECORD_ID_ATTR } else { field }
    }

    fn is_json(&self, field: &str) -> bool {
        self.config.json_attributes.iter().any(|k| k == field)
    }

    /// The Appwrite query for one term, or `None` when it cannot be sent.
    fn term(&self, n: &Narrow<'_>) -> Option<Value> {
        let attr = self.attribute_of(n.field());
        if !super::store::attribute_name_ok(attr) {
            return None;
        }
        let json = self.is_json(attr);
        let q = match n {
            Narrow::OneOf(_, values) if json => {
                let texts: Vec<String> = values
                    .iter()
                    .map(|v| json_text(&Value::String((*v).to_owned())))
                    .collect();
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                query::or(vec![
                    query::equal(attr, &texts),
                    query::starts_with(attr, "["),
                ])
            }
            Narrow::OneOf(_, values) => query::equal(attr, values),
            Narrow::Contains(_, s) if json => {
                let text = json_text(&Value::String((*s).to_owned()));
                // Appwrite does not escape `\` in a `LIKE` pattern (it escapes the next
                // character there): send the longest piece of the escaped text without one.
                let piece = text[1..text.len() - 1]
                    .split('\\')
                    .max_by_key(|p| p.len())
                    .filter(|p| !p.is_empty())?;
                query::or(vec![
                    query::contains(attr, &[piece]),
                    query::starts_with(attr, "["),
                ])
            }
            Narrow::Contains(..) => return None,
        };
        let values = match n {
            Narrow::OneOf(_, v) => v.len(),
            Narrow::Contains(..) => 1,
        };
        (values <= MAX_QUERY_VALUES && q.to_string().chars().count() <= MAX_QUERY_CHARS)
            .then_some(q)
    }

    /// The live records of `scope` passing every term of a [`Plan::Narrow`], then the exact
    /// answer over them.
    pub(super) async fn query_remote(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>> {
        self.validate(scope)?;
        let terms = match narrow::plan(BACKEND, spec, false, |n| self.term(n).is_some())? {
            Plan::Empty => return Ok(Vec::new()),
            Plan::Narrow(terms) => terms,
        };
        let mut filters = query::scope_queries(scope);
        filters.push(query::or(vec![
            query::is_null("deleted_at"),
            query::equal("deleted_at", &[""]),
        ]));
        filters.extend(terms.iter().filter_map(|t| self.term(t)));
        let mut candidates = Vec::new();
        self.list_by_id(scope, &filters, None, |id, raw| {
            match decode_doc::<T>(raw, &self.config.json_attributes) {
                Ok(Change::Upsert(r)) if r.deleted_at().is_none() => candidates.push(r),
                Ok(_) => {}
                // A pull quarantines it: the cache would not hold it either.
                Err(e) => tracing::debug!(id = %id, error = %e, "document left out of a query"),
            }
            narrow::check_candidates(BACKEND, candidates.len())
        })
        .await?;
        narrow::answer(spec, candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::appwrite::Credential;
    use crate::testing::TestRecord;

    fn store(json: &[&str]) -> AppwriteRemoteStore<TestRecord> {
        AppwriteRemoteStore::builder("http://127.0.0.1:1/v1", "p", "d")
            .credential(Credential::api_key("k"))
            .json_attributes(json.iter().copied())
            .build()
            .unwrap()
    }

    #[test]
    fn terms_keep_arrays_and_stay_data() {
        let typed = store(&[]);
        let q = typed.term(&Narrow::OneOf("id", vec!["a\"b"])).unwrap();
        assert_eq!(q["attribute"], RECORD_ID_ATTR);
        assert_eq!(q["values"][0], "a\"b");
        assert!(typed.term(&Narrow::Contains("title", "x")).is_none());
        let json = store(&["title"]);
        let q = json.term(&Narrow::OneOf("title", vec!["é\"\\"])).unwrap();
        assert_eq!(q["method"], "or");
        assert_eq!(q["values"][0]["values"][0], r#""é\"\\""#);
        assert_eq!(q["values"][1]["method"], "startsWith");
        assert_eq!(q["values"][1]["values"][0], "[");
        let q = json.term(&Narrow::Contains("title", "a\"\nbcd")).unwrap();
        assert_eq!(q["values"][0]["method"], "contains");
        assert_eq!(q["values"][0]["values"][0], "nbcd");
        assert!(json.term(&Narrow::Contains("title", "\\")).is_none());
        let long = "x".repeat(MAX_QUERY_CHARS);
        assert!(typed.term(&Narrow::OneOf("title", vec![&long])).is_none());
    }
}
