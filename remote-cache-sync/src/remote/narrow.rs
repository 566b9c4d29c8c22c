//! Queries answered by remotes whose own filter language cannot carry our semantics exactly
//! (PocketBase, PostgREST, Appwrite): the remote **narrows**, the client **decides**.
//!
//! Our query semantics ([`crate::query`]) rank types, compare strings byte-wise, treat `true`
//! as `1`, keep numbers beyond 2^53 exact and fail a query that compares an array with a
//! scalar. No REST filter language says all that. What every one of them can say exactly enough
//! is a *superset*: "the field's text is one of these strings" keeps every record whose field
//! is one of those JSON strings (and perhaps a few more, e.g. a number whose text is the same),
//! "the field's text is like `%s%`" keeps every record whose string field contains `s` (and
//! perhaps more: `LIKE` folds ASCII case on some servers, `%`/`_` in `s` widen the match).
//!
//! So a backend sends the [`Narrow`] terms it can express, lists the live records that pass
//! them (ids and data only, never a page of the whole scope), and [`answer`] evaluates the whole
//! spec over those records with the reference [`QuerySpec::apply`]: filters, order, limit and
//! offset exact, the array error included. The answer equals what a sync followed by a cache
//! read would give, at the cost of the candidate rows.
//!
//! A spec with no term that narrows would list the whole scope without caching it: [`plan`]
//! refuses it with [`Error::Unsupported`] and the orchestrator syncs, then reads the cache; so
//! does a listing past [`MAX_CANDIDATES`] rows ([`check_candidates`]). A
//! term a backend cannot narrow on (numbers, ranges, `has`, `is_null`) is still applied exactly
//! on the client; it only does not reduce the transfer.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::query::{Filter, FilterOp, QuerySpec};
use crate::record::Record;

/// One condition a backend can send that keeps every record the filter it came from matches.
///
/// The backend's condition must also keep every row whose field holds an **array**: comparing
/// an array with a scalar fails the query when such a row would be returned (see
/// [`crate::query`]), so a listing without those rows could answer where the cache fails. An
/// array's JSON text starts with `[`, which every backend's `LIKE` can ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Narrow<'a> {
    /// The field (a dotted path) is one of these strings: from `eq`/`in` with string operands.
    OneOf(&'a str, Vec<&'a str>),
    /// The field's text contains this string: from `contains` (never empty).
    Contains(&'a str, &'a str),
}

impl Narrow<'_> {
    /// The field path the condition is on.
    pub(crate) fn field(&self) -> &str {
        match self {
            Narrow::OneOf(f, _) | Narrow::Contains(f, _) => f,
        }
    }
}

/// Most candidate rows a narrowed query lists (as many as our server answers a `/v1/query`).
/// Past it the query is [`Error::Unsupported`] and the orchestrator syncs instead: a term that
/// narrows poorly (`contains "e"`) must not list a large scope, uncached, on every read.
pub(crate) const MAX_CANDIDATES: usize = 5000;

/// Fails with [`Error::Unsupported`] once `listed` candidates are more than
/// [`MAX_CANDIDATES`]; backends call it after every page.
pub(crate) fn check_candidates(backend: &'static str, listed: usize) -> Result<()> {
    if listed > MAX_CANDIDATES {
        return Err(Error::Unsupported {
            backend,
            message: format!(
                "a query whose filters the remote can send leave more than {MAX_CANDIDATES} rows"
            ),
        });
    }
    Ok(())
}

/// What a backend does with a spec.
#[derive(Debug)]
pub(crate) enum Plan<'a> {
    /// Nothing can match (an `in` with no values): answer empty without asking the remote.
    Empty,
    /// List the live records passing every term (at least one), then [`answer`].
    Narrow(Vec<Narrow<'a>>),
}

/// Validates `spec` and picks the terms `backend` can send: `nested` says whether it can
/// address a dotted path (a JSON document) or only top-level fields, `accepts` may refuse more
/// (a field it cannot address, an operand it cannot escape). Fails with
/// [`Error::Unsupported`] when no term is left.
pub(crate) fn plan<'a>(
    backend: &'static str,
    spec: &'a QuerySpec,
    nested: bool,
    accepts: impl Fn(&Narrow<'_>) -> bool,
) -> Result<Plan<'a>> {
    spec.validate()?;
    let mut terms = Vec::new();
    for f in &spec.filters {
        if matches!(&f.op, FilterOp::In(xs) if xs.is_empty()) {
            return Ok(Plan::Empty);
        }
        if !nested && f.field.contains('.') {
            continue;
        }
        if let Some(term) = narrow(f).filter(&accepts) {
            terms.push(term);
        }
    }
    if terms.is_empty() {
        let ops: Vec<&str> = spec.filters.iter().map(|f| f.op.name()).collect();
        return Err(Error::Unsupported {
            backend,
            message: if ops.is_empty() {
                "a query without a filter it can send (eq/in on strings, contains)".into()
            } else {
                format!(
                    "a query without a filter it can send (eq/in on strings, contains); has {}",
                    ops.join(", ")
                )
            },
        });
    }
    Ok(Plan::Narrow(terms))
}

/// The term `f` narrows to, if any.
fn narrow(f: &Filter) -> Option<Narrow<'_>> {
    match &f.op {
        FilterOp::Eq(v) => Some(Narrow::OneOf(&f.field, vec![v.as_str()?])),
        FilterOp::In(xs) => {
            let strings: Option<Vec<&str>> = xs.iter().map(|v| v.as_str()).collect();
            Some(Narrow::OneOf(&f.field, strings?))
        }
        FilterOp::Contains(s) if !s.is_empty() => Some(Narrow::Contains(&f.field, s)),
        _ => None,
    }
}

/// The exact answer of `spec` over `candidates` (live records the remote listed for a
/// [`Plan::Narrow`]): every filter, the order, limit and offset, as [`QuerySpec::apply`].
pub(crate) fn answer<T: Record + Serialize>(
    spec: &QuerySpec,
    candidates: Vec<T>,
) -> Result<Vec<T>> {
    let json = candidates
        .iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let picked = spec.apply(
        candidates
            .iter()
            .enumerate()
            .zip(&json)
            .map(|((i, r), v)| (r.id(), i, v)),
    )?;
    let mut slots: Vec<Option<T>> = candidates.into_iter().map(Some).collect();
    Ok(picked.into_iter().filter_map(|i| slots[i].take()).collect())
}

#[cfg(any(feature = "pocketbase", feature = "supabase"))]
/// Escapes `s` for a SQL `LIKE` pattern whose escape character is `\` (PostgreSQL's default,
/// PocketBase's `~`): `\`, `%` and `_` stand for themselves.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::json_record::JsonRecord;
    use crate::query::Direction;

    fn rec(v: serde_json::Value) -> JsonRecord {
        JsonRecord::from_value(v).unwrap()
    }

    #[test]
    fn picks_string_terms_and_refuses_a_spec_without_one() {
        let spec = QuerySpec::new()
            .filter(Filter::gt("n", 2))
            .filter(Filter::is_in("title", ["a", "b"]))
            .filter(Filter::contains("body", "x"))
            .filter(Filter::contains("body", ""))
            .filter(Filter::eq("meta.owner", "al"));
        let Plan::Narrow(terms) = plan("t", &spec, false, |_| true).unwrap() else {
            panic!("narrows")
        };
        assert_eq!(
            terms,
            vec![
                Narrow::OneOf("title", vec!["a", "b"]),
                Narrow::Contains("body", "x")
            ]
        );
        let Plan::Narrow(nested) = plan("t", &spec, true, |n| n.field() != "body").unwrap() else {
            panic!("narrows")
        };
        assert_eq!(nested.len(), 2);
        assert_eq!(nested[1], Narrow::OneOf("meta.owner", vec!["al"]));

        for spec in [
            QuerySpec::new(),
            QuerySpec::new().filter(Filter::eq("n", 1)),
            QuerySpec::new().filter(Filter::is_in("t", [json!("a"), json!(1)])),
            QuerySpec::new().filter(Filter::has("tags", "x")),
        ] {
            let e = plan("pocketbase", &spec, true, |_| true).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Unsupported {
                        backend: "pocketbase",
                        ..
                    }
                ),
                "{e:?}"
            );
        }
        let empty = QuerySpec::new()
            .filter(Filter::gt("n", 1))
            .filter(Filter::is_in("n", Vec::<i64>::new()));
        assert!(matches!(
            plan("t", &empty, false, |_| true),
            Ok(Plan::Empty)
        ));
        // Invalid specs fail as invalid, before anything else.
        let bad = QuerySpec::new().filter(Filter::eq("a') OR 1=1 --", "x"));
        assert!(matches!(
            plan("t", &bad, true, |_| true),
            Err(Error::InvalidQuery(_))
        ));
    }

    #[test]
    fn answers_exactly_over_a_superset() {
        // The remote narrowed on the text "42": a number and a string both passed.
        let rows = vec![
            rec(json!({"id": "s", "updated_at": "2026-01-01T00:00:00Z", "t": "42"})),
            rec(json!({"id": "n", "updated_at": "2026-01-01T00:00:00Z", "t": 42})),
            rec(json!({"id": "s2", "updated_at": "2026-01-01T00:00:00Z", "t": "42", "k": 1})),
        ];
        let spec = QuerySpec::new()
            .filter(Filter::eq("t", "42"))
            .order_by("k", Direction::Desc)
            .limit(5);
        let got: Vec<String> = answer(&spec, rows.clone())
            .unwrap()
            .iter()
            .map(|r| r.id().to_owned())
            .collect();
        assert_eq!(got, ["s2", "s"]);
        let arrays = vec![rec(
            json!({"id": "a", "updated_at": "2026-01-01T00:00:00Z", "t": ["42"]}),
        )];
        let spec = QuerySpec::new().filter(Filter::eq("t", "42"));
        assert!(matches!(answer(&spec, arrays), Err(Error::InvalidQuery(_))));
    }

    #[test]
    fn candidates_are_capped() {
        assert!(check_candidates("t", MAX_CANDIDATES).is_ok());
        assert!(matches!(
            check_candidates("t", MAX_CANDIDATES + 1),
            Err(Error::Unsupported { backend: "t", .. })
        ));
    }

    #[cfg(any(feature = "pocketbase", feature = "supabase"))]
    #[test]
    fn like_patterns_escape_their_wildcards() {
        assert_eq!(like_escape(r"50%_a\b"), r"50\%\_a\\b");
        assert_eq!(like_escape("日本"), "日本");
    }
}
