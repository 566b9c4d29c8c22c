//! Queries answered by PocketBase ([`RemoteStore::query`](crate::RemoteStore::query)): the
//! server narrows, the client decides (see `remote::narrow`).
//!
//! The filter sent is the scope's keys, `deleted_at = ""` (live rows), and one condition per
//! term that narrows: `eq`/`in` on strings become `(f = "a" || f = "b" || f ~ "[%")`,
//! `contains` becomes `(f ~ "%…%" || f ~ "[%")` (arrays pass: see `Narrow`) with `\`, `%` and `_` escaped (PocketBase passes a pattern holding `%` through
//! as it is, with `\` as the `LIKE` escape; SQLite's `LIKE` folds ASCII case, which only
//! widens the listing). Literals are quoted as in pulls. The field `id` is the `record_id`
//! field; fields the adapter owns are never narrowed on; nested paths are not (PocketBase's
//! JSON paths follow its own typing). The rows are listed in `id` order, page by page, decoded
//! as pulls decode them, and the whole spec is evaluated here.
//!
//! A field the collection does not have makes PocketBase answer 400: the query is then
//! [`Error::Unsupported`], and the orchestrator answers it from the cache after a sync.

use super::RECORD_ID_FIELD;
use super::client::BACKEND;
use super::decode::decode_row;
use super::filter::{self, RESERVED_FIELDS, quote, scope_filter, validate_scope};
use super::store::PocketBaseRemoteStore;
use crate::error::{Error, Result};
use crate::query::QuerySpec;
use crate::record::{Change, Record};
use crate::remote::narrow::{self, Narrow, Plan, like_escape};
use crate::scope::SyncScope;

/// The field a term addresses, or `None` when the adapter owns it.
fn field_name(field: &str) -> Option<&str> {
    match field {
        "id" => Some(RECORD_ID_FIELD),
        "updated_at" => Some(field),
        f if RESERVED_FIELDS.contains(&f) => None,
        f => Some(f),
    }
}

/// The filter condition of one term; rows holding an array in the field pass too (a `json`
/// field compares as its JSON text, which starts with `[`; see `Narrow`).
fn condition(term: &Narrow<'_>) -> String {
    let field = field_name(term.field()).expect("accepted terms name a field");
    let mut alternatives: Vec<String> = match term {
        Narrow::OneOf(_, values) => values
            .iter()
            .map(|v| format!("{field} = {}", quote(v)))
            .collect(),
        Narrow::Contains(_, text) => {
            vec![format!(
                "{field} ~ {}",
                quote(&format!("%{}%", like_escape(text)))
            )]
        }
    };
    alternatives.push(format!(r#"{field} ~ "[%""#));
    format!("({})", alternatives.join(" || "))
}

impl<T: Record> PocketBaseRemoteStore<T> {
    /// The answer of `spec` over the scope's live rows.
    pub(super) async fn query_narrowed(
        &self,
        scope: &SyncScope,
        spec: &QuerySpec,
    ) -> Result<Vec<T>> {
        validate_scope(scope)?;
        let terms = match narrow::plan(BACKEND, spec, false, |t| field_name(t.field()).is_some())? {
            Plan::Empty => return Ok(Vec::new()),
            Plan::Narrow(terms) => terms,
        };
        let mut conditions: Vec<Option<String>> =
            vec![scope_filter(scope), Some(r#"deleted_at = """#.to_owned())];
        conditions.extend(terms.iter().map(|t| Some(condition(t))));
        let base = filter::and(conditions);
        if base.len() > filter::MAX_FILTER_CHARS {
            return Err(Error::Unsupported {
                backend: BACKEND,
                message: format!(
                    "a query whose filter is longer than {} characters",
                    filter::MAX_FILTER_CHARS
                ),
            });
        }
        let candidates = self.list_live(scope, base).await?;
        narrow::answer(spec, candidates)
    }

    /// Every row passing `base`, decoded (rows that do not decode are left out, as pulls
    /// quarantine them).
    async fn list_live(&self, scope: &SyncScope, base: String) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.list_by_id(scope, Some(base), None, |pb_id, raw| {
            match decode_row::<T>(raw) {
                Ok(Change::Upsert(r)) if r.deleted_at().is_none() => out.push(r),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(id = %pb_id, error = %e, "row left out of a query answer")
                }
            }
            narrow::check_candidates(BACKEND, out.len())
        })
        .await
        .map_err(|e| match e {
            // An unknown field (or a filter the server will not take): not a verdict on
            // anything, and not an answer.
            Error::Rejected {
                status: Some(400),
                message,
                ..
            } => Error::Unsupported {
                backend: BACKEND,
                message: format!("a filter the collection refuses: {message}"),
            },
            e => e,
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_quote_and_escape() {
        assert_eq!(
            condition(&Narrow::OneOf("id", vec!["a\"b", "c\\"])),
            r#"(record_id = "a\"b" || record_id = "c\\" || record_id ~ "[%")"#
        );
        assert_eq!(
            condition(&Narrow::Contains("title", "50%_\\")),
            r#"(title ~ "%50\\%\\_\\\\%" || title ~ "[%")"#
        );
        assert_eq!(field_name("collectionId"), None);
        assert_eq!(field_name("record_id"), None);
        assert_eq!(field_name("updated_at"), Some("updated_at"));
    }
}
