//! Queries answered by Supabase ([`RemoteStore::query`](crate::RemoteStore::query)): PostgREST
//! narrows, the client decides (see `remote::narrow`).
//!
//! Both modes keep the record in the `data` jsonb column, so one request shape serves both: a
//! `GET` of the table (`rcs_records` with `scope=eq.…` in exact mode, the scope's table with
//! its key columns in table mode), `deleted=is.false`, and one `or=(…)` per term, which
//! PostgREST joins with AND as it does every filter parameter (docs: "Horizontal Filtering",
//! "Logical operators", "JSON Columns"; supabase-js's `.or()` sends the same):
//! - `eq`/`in` on strings: `or=(data->>f.in.("a","b"),data->>f.like."[*")`;
//! - `contains`: `or=(data->>f.like."*…*",data->>f.like."[*")`, the text `LIKE`-escaped (`\`,
//!   `%`, `_`; a `*` in it becomes PostgREST's wildcard, which only widens the listing).
//!
//! `->>` reads a string as its text and an array as its JSON text, which starts with `[`: rows
//! holding an array pass (see `Narrow`). Nested paths become `data->a->>b`; the field `id` is
//! the `id` column. Values are quoted as everywhere in PostgREST logic trees. Pages follow
//! `id` (`order=id`, `id=gt.<last>`, both in the column's collation), decoded as pulls decode rows; the whole spec is
//! evaluated here. A 400 (a filter PostgREST will not take) is [`Error::Unsupported`].

use reqwest::Method;
use serde_json::Value;

use super::builder::Mode;
use super::client::{BACKEND, Client};
use super::decode::{self, row_id};
use super::filter::{quote, scope_filters};
use crate::error::{Error, Result};
use crate::query::QuerySpec;
use crate::record::Record;
use crate::remote::narrow::{self, Narrow, Plan, like_escape};
use crate::scope::SyncScope;

/// Rows per listing page.
const PAGE: usize = 1000;

/// The PostgREST column expression of a field path.
fn column(field: &str) -> String {
    if field == "id" {
        return "id".into();
    }
    let mut segments: Vec<&str> = field.split('.').collect();
    let last = segments.pop().expect("validated paths are not empty");
    let mut out = String::from("data");
    for s in segments {
        out.push_str("->");
        out.push_str(s);
    }
    out.push_str("->>");
    out.push_str(last);
    out
}

/// The `or=` value of one term.
fn condition(term: &Narrow<'_>) -> String {
    let col = column(term.field());
    let first = match term {
        Narrow::OneOf(_, values) => {
            let items: Vec<String> = values.iter().map(|v| quote(v)).collect();
            format!("{col}.in.({})", items.join(","))
        }
        Narrow::Contains(_, text) => {
            format!("{col}.like.{}", quote(&format!("*{}*", like_escape(text))))
        }
    };
    format!("({first},{col}.like.\"[*\")")
}

/// The answer of `spec` over the scope's live rows.
pub(crate) async fn query<T: Record>(
    client: &Client,
    mode: Mode,
    scope: &SyncScope,
    spec: &QuerySpec,
) -> Result<Vec<T>> {
    let terms = match narrow::plan(BACKEND, spec, true, |_| true)? {
        Plan::Empty => return Ok(Vec::new()),
        Plan::Narrow(terms) => terms,
    };
    let (table, mut base) = match mode {
        Mode::Exact => (
            super::exact::RECORDS,
            vec![("scope".to_owned(), format!("eq.{}", scope.canonical()))],
        ),
        Mode::Table => (scope.name(), scope_filters(scope)),
    };
    base.extend([
        ("select".to_owned(), "id,version,deleted,data".to_owned()),
        ("deleted".to_owned(), "is.false".to_owned()),
        ("order".to_owned(), "id.asc".to_owned()),
        ("limit".to_owned(), PAGE.to_string()),
    ]);
    base.extend(terms.iter().map(|t| ("or".to_owned(), condition(t))));
    let url = client.rest(&[table])?;
    let mut after: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let mut query = base.clone();
        if let Some(last) = &after {
            query.push(("id".to_owned(), format!("gt.{last}")));
        }
        let reply = client
            .send(Method::GET, url.clone(), &query, None, None, true)
            .await?;
        if reply.status.as_u16() == 400 {
            return Err(Error::Unsupported {
                backend: BACKEND,
                message: format!("a filter PostgREST refuses: {}", reply.error()),
            });
        }
        if !reply.status.is_success() {
            return Err(reply.error());
        }
        let rows: Vec<Value> = reply.json()?;
        let n = rows.len();
        for row in &rows {
            let id = row_id(row).ok_or_else(|| Error::MalformedResponse {
                backend: BACKEND,
                message: "a listed row has no id".into(),
            })?;
            match decode::live::<T>(row) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                // Pulls quarantine such a row: the cache does not hold it either.
                Err(e) => tracing::debug!(id, error = %e, "row left out of a query answer"),
            }
            after = Some(id.to_owned());
        }
        narrow::check_candidates(BACKEND, out.len())?;
        if n < PAGE {
            return narrow::answer(spec, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_address_data_and_quote_values() {
        assert_eq!(column("id"), "id");
        assert_eq!(column("title"), "data->>title");
        assert_eq!(column("meta.owner"), "data->meta->>owner");
        assert_eq!(
            condition(&Narrow::OneOf("title", vec!["a,b)", "c\"d"])),
            r#"(data->>title.in.("a,b)","c\"d"),data->>title.like."[*")"#
        );
        assert_eq!(
            condition(&Narrow::Contains("t", r"50%_\")),
            r#"(data->>t.like."*50\\%\\_\\\\*",data->>t.like."[*")"#
        );
    }
}
