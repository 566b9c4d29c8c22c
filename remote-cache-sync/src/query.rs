//! [`QuerySpec`]: filters, ordering and paging over record fields.
//!
//! The same spec is evaluated by every local store (compiled to SQL with bound parameters in
//! SQLite) and translated, escaped, by remotes that can filter. Semantics, identical everywhere:
//! - a field is a dotted path into the record's JSON (`title`, `meta.owner`);
//! - values compare by type rank first (null < bool/number < string < array/object), then by
//!   value: numbers numerically, strings **byte-wise** (UTF-8 bytes, so `"Zebra"` sorts before
//!   `"apple"` and `"é"` after `"z"`), `true`/`false` as 1/0;
//! - every comparison with a missing or null field is false, except [`FilterOp::IsNull`];
//! - [`FilterOp::Contains`] is a case-sensitive substring test on string fields;
//! - [`FilterOp::Has`] is array membership: true when the field is an array with an element
//!   equal to the value (by the rules above); false on anything that is not an array;
//! - comparing an **array** field with a scalar (`eq`, `ne`, `lt`, `le`, `gt`, `ge`, `in`,
//!   `contains`) is a mistake, never a silent non-match: a query fails with
//!   [`Error::InvalidQuery`] when a record it would return (one that passes every other
//!   filter and falls within `limit`/`offset`) holds an array in a field such a filter
//!   compares. Use [`Filter::has`] for membership. (`in` with no values matches nothing and
//!   never fails; object fields keep the type-rank order above.)
//! - rows are ordered by the `order_by` fields (nulls first when ascending), then by id.
//!   Strings sort byte-wise, which puts every upper-case ASCII letter before every lower-case
//!   one; [`OrderBy::nocase`] folds ASCII `A`-`Z` to `a`-`z` for one sort key (SQLite's
//!   `NOCASE`: ASCII only, so `"É"` and `"é"` still differ; there is no locale-aware
//!   collation).
//!
//! ```
//! use remote_cache_sync::{Direction, Filter, OrderBy, QuerySpec};
//! use serde_json::json;
//!
//! let notes = [
//!     json!({"id": "1", "title": "banana", "tags": ["fruit", "yellow"]}),
//!     json!({"id": "2", "title": "Apple", "tags": ["fruit"]}),
//!     json!({"id": "3", "title": "carrot", "tags": []}),
//! ];
//! let rows = || notes.iter().map(|n| (n["id"].as_str().unwrap(), n["id"].as_str().unwrap(), n));
//!
//! // Membership in an array field.
//! let fruit = QuerySpec::new().filter(Filter::has("tags", "fruit")).sort_by(OrderBy::asc("title"));
//! assert_eq!(fruit.apply(rows()).unwrap(), ["2", "1"]); // byte-wise: "A" < "b"
//!
//! // `eq` on an array field is an error, not an empty result.
//! let wrong = QuerySpec::new().filter(Filter::eq("tags", "fruit"));
//! assert!(wrong.apply(rows()).is_err());
//!
//! // Case-insensitive (ASCII) ordering.
//! let by_title = QuerySpec::new().sort_by(OrderBy::asc("title").nocase());
//! assert_eq!(by_title.apply(rows()).unwrap(), ["2", "1", "3"]);
//! let desc = QuerySpec::new().order_by("title", Direction::Desc);
//! assert_eq!(desc.apply(rows()).unwrap(), ["3", "1", "2"]);
//! ```

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// One comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "value")]
pub enum FilterOp {
    /// `field == value`
    Eq(Value),
    /// `field != value` (field present)
    Ne(Value),
    /// `field < value`
    Lt(Value),
    /// `field <= value`
    Le(Value),
    /// `field > value`
    Gt(Value),
    /// `field >= value`
    Ge(Value),
    /// `field` equals one of the values.
    In(Vec<Value>),
    /// String `field` contains the text.
    Contains(String),
    /// `true`: field missing or null; `false`: field present and not null.
    IsNull(bool),
    /// Array `field` has an element equal to the value (false on non-array fields).
    Has(Value),
}

impl FilterOp {
    /// The operator's name, as in the serialized form (`eq`, `has`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            FilterOp::Eq(_) => "eq",
            FilterOp::Ne(_) => "ne",
            FilterOp::Lt(_) => "lt",
            FilterOp::Le(_) => "le",
            FilterOp::Gt(_) => "gt",
            FilterOp::Ge(_) => "ge",
            FilterOp::In(_) => "in",
            FilterOp::Contains(_) => "contains",
            FilterOp::IsNull(_) => "is_null",
            FilterOp::Has(_) => "has",
        }
    }

    /// Whether the operator compares the field itself with a scalar, which is an error on an
    /// array field (`in` with no values matches nothing, so it never compares).
    pub(crate) fn compares_scalar(&self) -> bool {
        match self {
            FilterOp::In(xs) => !xs.is_empty(),
            FilterOp::IsNull(_) | FilterOp::Has(_) => false,
            _ => true,
        }
    }
}

/// How one filter judges one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Passes.
    Match,
    /// Fails.
    NoMatch,
    /// Compares an array field with a scalar: the query fails if the record would be returned.
    ArrayField,
}

/// A filter on one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Dotted path into the record's JSON.
    pub field: String,
    /// The comparison.
    #[serde(flatten)]
    pub op: FilterOp,
}

macro_rules! filter_ctor {
    ($($(#[$doc:meta])* $name:ident => $variant:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(field: impl Into<String>, value: impl Into<Value>) -> Self {
            Filter { field: field.into(), op: FilterOp::$variant(value.into()) }
        }
    )*};
}

impl Filter {
    filter_ctor! {
        /// `field == value`
        eq => Eq;
        /// `field != value`
        ne => Ne;
        /// `field < value`
        lt => Lt;
        /// `field <= value`
        le => Le;
        /// `field > value`
        gt => Gt;
        /// `field >= value`
        ge => Ge;
        /// Array `field` has an element equal to `value` (membership; false on non-arrays).
        ///
        /// ```
        /// use remote_cache_sync::Filter;
        /// use serde_json::json;
        /// assert!(Filter::has("tags", "x").matches(&json!({"tags": ["x", "y"]})).unwrap());
        /// assert!(!Filter::has("tags", "x").matches(&json!({"tags": "x"})).unwrap());
        /// ```
        has => Has;
    }

    /// `field` is one of `values`.
    pub fn is_in(
        field: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<Value>>,
    ) -> Self {
        Filter {
            field: field.into(),
            op: FilterOp::In(values.into_iter().map(Into::into).collect()),
        }
    }

    /// String `field` contains `text`.
    pub fn contains(field: impl Into<String>, text: impl Into<String>) -> Self {
        Filter {
            field: field.into(),
            op: FilterOp::Contains(text.into()),
        }
    }

    /// `field` is missing or null (`true`), or present (`false`).
    pub fn is_null(field: impl Into<String>, null: bool) -> Self {
        Filter {
            field: field.into(),
            op: FilterOp::IsNull(null),
        }
    }

    /// Whether `record` (its JSON form) passes this filter; [`Error::InvalidQuery`] when the
    /// filter compares an array field with a scalar (see the module docs).
    pub fn matches(&self, record: &Value) -> Result<bool> {
        match self.verdict(record) {
            Verdict::Match => Ok(true),
            Verdict::NoMatch => Ok(false),
            Verdict::ArrayField => Err(self.array_field_error()),
        }
    }

    /// The error for a record whose field is an array where this filter compares a scalar.
    pub(crate) fn array_field_error(&self) -> Error {
        Error::InvalidQuery(self.array_field_message())
    }

    pub(crate) fn array_field_message(&self) -> String {
        format!(
            "filter `{}` on {:?} compares an array field with a scalar; use Filter::has for \
             array membership",
            self.op.name(),
            self.field
        )
    }

    pub(crate) fn verdict(&self, record: &Value) -> Verdict {
        let v = lookup(record, &self.field).filter(|v| !v.is_null());
        let yes = |b: bool| if b { Verdict::Match } else { Verdict::NoMatch };
        match (&self.op, v) {
            (FilterOp::IsNull(want), v) => yes(v.is_none() == *want),
            (_, None) => Verdict::NoMatch,
            (FilterOp::Has(x), Some(Value::Array(items))) => yes(items
                .iter()
                .any(|e| compare_values(e, x) == Ordering::Equal)),
            (FilterOp::Has(_), Some(_)) => Verdict::NoMatch,
            (op, Some(Value::Array(_))) if op.compares_scalar() => Verdict::ArrayField,
            (FilterOp::Eq(x), Some(v)) => yes(compare_values(v, x) == Ordering::Equal),
            (FilterOp::Ne(x), Some(v)) => yes(compare_values(v, x) != Ordering::Equal),
            (FilterOp::Lt(x), Some(v)) => yes(compare_values(v, x) == Ordering::Less),
            (FilterOp::Le(x), Some(v)) => yes(compare_values(v, x) != Ordering::Greater),
            (FilterOp::Gt(x), Some(v)) => yes(compare_values(v, x) == Ordering::Greater),
            (FilterOp::Ge(x), Some(v)) => yes(compare_values(v, x) != Ordering::Less),
            (FilterOp::In(xs), Some(v)) => {
                yes(xs.iter().any(|x| compare_values(v, x) == Ordering::Equal))
            }
            (FilterOp::Contains(s), Some(Value::String(v))) => yes(v.contains(s.as_str())),
            (FilterOp::Contains(_), Some(_)) => Verdict::NoMatch,
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderBy {
    /// Dotted path into the record's JSON.
    pub field: String,
    /// Direction.
    #[serde(default)]
    pub direction: Direction,
    /// Compare strings with ASCII case folded (see [`OrderBy::nocase`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocase: bool,
}

impl OrderBy {
    /// Ascending by `field`.
    pub fn asc(field: impl Into<String>) -> Self {
        OrderBy {
            field: field.into(),
            direction: Direction::Asc,
            nocase: false,
        }
    }

    /// Descending by `field`.
    pub fn desc(field: impl Into<String>) -> Self {
        OrderBy {
            direction: Direction::Desc,
            ..OrderBy::asc(field)
        }
    }

    /// Sorts strings case-insensitively, folding ASCII `A`-`Z` to `a`-`z` only (SQLite's
    /// `NOCASE` collation; other letters still compare byte-wise). Strings equal after folding
    /// fall through to the next key, then the id. It changes ordering only, never filters, and
    /// costs nothing extra: no sort key is served by an index.
    pub fn nocase(mut self) -> Self {
        self.nocase = true;
        self
    }
}

/// Filters (ANDed), ordering and paging for a local query.
///
/// ```
/// use remote_cache_sync::{Direction, Filter, QuerySpec};
/// let q = QuerySpec::new()
///     .filter(Filter::eq("status", "open"))
///     .filter(Filter::gt("priority", 2))
///     .order_by("priority", Direction::Desc)
///     .limit(20);
/// q.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QuerySpec {
    /// Filters, all of which must match.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Sort keys, applied in order, then by id.
    #[serde(default)]
    pub order_by: Vec<OrderBy>,
    /// Maximum number of rows.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Rows to skip.
    #[serde(default)]
    pub offset: Option<usize>,
}

/// Longest accepted field path.
const MAX_FIELD_LEN: usize = 128;

impl QuerySpec {
    /// Matches every live record, ordered by id.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a filter.
    pub fn filter(mut self, f: Filter) -> Self {
        self.filters.push(f);
        self
    }
    /// Adds a sort key (strings compare byte-wise; see [`QuerySpec::sort_by`] and
    /// [`OrderBy::nocase`] for case-insensitive ordering).
    pub fn order_by(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.order_by.push(OrderBy {
            direction,
            ..OrderBy::asc(field)
        });
        self
    }
    /// Adds a sort key built with [`OrderBy::asc`] or [`OrderBy::desc`].
    pub fn sort_by(mut self, key: OrderBy) -> Self {
        self.order_by.push(key);
        self
    }
    /// Caps the number of rows.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
    /// Skips rows.
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = Some(n);
        self
    }

    /// Checks field paths (`[A-Za-z_][A-Za-z0-9_]*` segments joined by `.`) and values (no
    /// nested arrays or objects as comparison operands; `In` lists at most 1000 values).
    pub fn validate(&self) -> Result<()> {
        for f in &self.filters {
            validate_field(&f.field)?;
            let operands: &[Value] = match &f.op {
                FilterOp::Eq(v)
                | FilterOp::Ne(v)
                | FilterOp::Lt(v)
                | FilterOp::Le(v)
                | FilterOp::Gt(v)
                | FilterOp::Ge(v)
                | FilterOp::Has(v) => std::slice::from_ref(v),
                FilterOp::In(vs) => {
                    if vs.len() > 1000 {
                        return Err(Error::InvalidQuery("`in` takes at most 1000 values".into()));
                    }
                    vs
                }
                FilterOp::Contains(_) | FilterOp::IsNull(_) => &[],
            };
            if operands
                .iter()
                .any(|v| v.is_array() || v.is_object() || v.is_null())
            {
                return Err(Error::InvalidQuery(format!(
                    "filter on {:?}: operands must be strings, numbers or booleans (use is_null for null)",
                    f.field
                )));
            }
        }
        for o in &self.order_by {
            validate_field(&o.field)?;
        }
        Ok(())
    }

    /// Evaluates the spec over JSON records in memory (the reference semantics). Each item is
    /// `(id, row, json)`: the id breaks ties, `row` is what is returned. Fails with
    /// [`Error::InvalidQuery`] when a returned record has an array where a filter compares a
    /// scalar (see the module docs); it does not [`validate`](Self::validate) the spec.
    pub fn apply<'a, R>(
        &self,
        records: impl IntoIterator<Item = (&'a str, R, &'a Value)>,
    ) -> Result<Vec<R>> {
        // A failing filter drops the record; otherwise the first filter that met an array is
        // remembered and fails the query if the record makes it into the page.
        let mut rows: Vec<(&str, R, &Value, Option<&Filter>)> = records
            .into_iter()
            .filter_map(|(id, r, v)| {
                let mut bad = None;
                for f in &self.filters {
                    match f.verdict(v) {
                        Verdict::Match => {}
                        Verdict::NoMatch => return None,
                        Verdict::ArrayField => {
                            bad.get_or_insert(f);
                        }
                    }
                }
                Some((id, r, v, bad))
            })
            .collect();
        rows.sort_by(|a, b| {
            for o in &self.order_by {
                let (x, y) = (lookup(a.2, &o.field), lookup(b.2, &o.field));
                let ord = match (x, y) {
                    (Some(Value::String(x)), Some(Value::String(y))) if o.nocase => {
                        cmp_nocase(x, y)
                    }
                    // Arrays and objects sort by their JSON text, folded too.
                    (Some(x), Some(y)) if o.nocase && rank(x) == 3 && rank(y) == 3 => {
                        cmp_nocase(&x.to_string(), &y.to_string())
                    }
                    _ => compare_fields(x, y),
                };
                let ord = if o.direction == Direction::Desc {
                    ord.reverse()
                } else {
                    ord
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            a.0.cmp(b.0)
        });
        rows.into_iter()
            .skip(self.offset.unwrap_or(0))
            .take(self.limit.unwrap_or(usize::MAX))
            .map(|(_, r, _, bad)| match bad {
                Some(f) => Err(f.array_field_error()),
                None => Ok(r),
            })
            .collect()
    }
}

/// Validates one dotted field path.
pub fn validate_field(field: &str) -> Result<()> {
    let ok = !field.is_empty()
        && field.len() <= MAX_FIELD_LEN
        && field.split('.').all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidQuery(format!("invalid field name {field:?}")))
    }
}

/// Follows a dotted path into a JSON value.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, seg| v.get(seg))
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) | Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Array(_) | Value::Object(_) => 3,
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Total order over JSON values used by filters and sorting (see the module docs).
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match rank(a).cmp(&rank(b)) {
        Ordering::Equal => match (a, b) {
            (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Value::Array(_) | Value::Object(_), _) => a.to_string().cmp(&b.to_string()),
            (Value::Null, _) => Ordering::Equal,
            _ => {
                if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                    x.cmp(&y)
                } else {
                    as_f64(a).total_cmp(&as_f64(b))
                }
            }
        },
        other => other,
    }
}

/// Byte-wise after folding ASCII `A`-`Z` to `a`-`z` (SQLite's `NOCASE`).
fn cmp_nocase(x: &str, y: &str) -> Ordering {
    x.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(y.bytes().map(|c| c.to_ascii_lowercase()))
}

fn compare_fields(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    compare_values(a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_follow_documented_semantics() {
        let r = json!({"id":"a","n":3,"s":"hello","b":true,"meta":{"x":1},"z":null});
        assert!(Filter::eq("n", 3).matches(&r).unwrap());
        assert!(Filter::eq("n", 3.0).matches(&r).unwrap());
        assert!(Filter::gt("s", "hell").matches(&r).unwrap());
        assert!(Filter::eq("b", true).matches(&r).unwrap());
        assert!(Filter::eq("b", 1).matches(&r).unwrap());
        assert!(Filter::eq("meta.x", 1).matches(&r).unwrap());
        assert!(!Filter::ne("missing", 1).matches(&r).unwrap());
        assert!(!Filter::ne("z", 1).matches(&r).unwrap());
        assert!(Filter::is_null("z", true).matches(&r).unwrap());
        assert!(Filter::is_null("missing", true).matches(&r).unwrap());
        assert!(Filter::is_null("n", false).matches(&r).unwrap());
        assert!(Filter::contains("s", "ell").matches(&r).unwrap());
        assert!(!Filter::contains("s", "ELL").matches(&r).unwrap());
        assert!(Filter::is_in("n", [1, 3]).matches(&r).unwrap());
        assert!(
            Filter::lt("n", "a").matches(&r).unwrap(),
            "numbers sort before strings"
        );
    }

    #[test]
    fn validate_rejects_injection_shaped_fields() {
        assert!(
            QuerySpec::new()
                .filter(Filter::eq("a') OR 1=1 --", 1))
                .validate()
                .is_err()
        );
        assert!(
            QuerySpec::new()
                .order_by("a b", Direction::Asc)
                .validate()
                .is_err()
        );
        assert!(
            QuerySpec::new()
                .filter(Filter::eq("a", json!([1])))
                .validate()
                .is_err()
        );
        assert!(
            QuerySpec::new()
                .filter(Filter::eq("a.b_c", 1))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn apply_orders_and_pages() {
        let rows = [
            json!({"id":"a","n":2}),
            json!({"id":"b","n":1}),
            json!({"id":"c"}),
        ];
        let q = QuerySpec::new().order_by("n", Direction::Desc).limit(2);
        let got = q.apply(
            rows.iter()
                .map(|v| (v["id"].as_str().unwrap(), v["id"].as_str().unwrap(), v)),
        );
        assert_eq!(got.unwrap(), ["a", "b"]);
    }

    #[test]
    fn has_is_array_membership_and_arrays_never_compare_with_scalars() {
        let r = json!({"tags":["x", 2, true, null, ["y"]], "s":"x", "e":[], "o":{"a":1}});
        assert!(Filter::has("tags", "x").matches(&r).unwrap());
        assert!(Filter::has("tags", 2.0).matches(&r).unwrap());
        assert!(Filter::has("tags", 1).matches(&r).unwrap(), "true is 1");
        assert!(!Filter::has("tags", "y").matches(&r).unwrap(), "not nested");
        assert!(!Filter::has("tags", "X").matches(&r).unwrap());
        assert!(!Filter::has("s", "x").matches(&r).unwrap(), "not an array");
        assert!(!Filter::has("e", "x").matches(&r).unwrap());
        assert!(!Filter::has("o", 1).matches(&r).unwrap());
        assert!(!Filter::has("missing", 1).matches(&r).unwrap());
        for f in [
            Filter::eq("tags", "x"),
            Filter::ne("tags", "x"),
            Filter::lt("tags", 1),
            Filter::le("tags", 1),
            Filter::gt("tags", "a"),
            Filter::ge("tags", "a"),
            Filter::is_in("tags", ["x"]),
            Filter::contains("tags", "x"),
            Filter::eq("e", 1),
        ] {
            match f.matches(&r) {
                Err(Error::InvalidQuery(m)) => {
                    assert!(m.contains("Filter::has"), "{m}");
                    assert!(m.contains(f.op.name()), "{m}");
                }
                other => panic!("{f:?} on an array: {other:?}"),
            }
        }
        assert!(
            !Filter::is_in("tags", Vec::<i64>::new())
                .matches(&r)
                .unwrap()
        );
        assert!(Filter::is_null("tags", false).matches(&r).unwrap());
        assert!(
            Filter::gt("o", "z").matches(&r).unwrap(),
            "objects keep the rank order"
        );
        assert!(
            QuerySpec::new()
                .filter(Filter::has("t", json!([1])))
                .validate()
                .is_err()
        );
        assert!(
            QuerySpec::new()
                .filter(Filter::has("t", json!(null)))
                .validate()
                .is_err()
        );
    }

    #[test]
    fn array_errors_only_for_records_that_would_be_returned() {
        let rows = [
            json!({"id":"a","t":["x"],"n":1}),
            json!({"id":"b","t":"x","n":2}),
        ];
        let run = |q: QuerySpec| q.apply(rows.iter().map(|v| (v["id"].as_str().unwrap(), 0, v)));
        let eq = || QuerySpec::new().filter(Filter::eq("t", "x"));
        assert!(run(eq()).is_err());
        assert!(
            run(eq().filter(Filter::ge("n", 2))).is_ok(),
            "another filter drops it"
        );
        assert_eq!(run(eq().offset(1)).unwrap().len(), 1, "paged out");
        assert!(run(eq().filter(Filter::is_in("n", Vec::<i64>::new()))).is_ok());
    }

    #[test]
    fn nocase_folds_ascii_only() {
        let rows = [
            json!({"id":"1","s":"b"}),
            json!({"id":"2","s":"B"}),
            json!({"id":"3","s":"a"}),
            json!({"id":"4","s":"É"}),
            json!({"id":"5","s":"é"}),
            json!({"id":"6","s":"Z"}),
        ];
        let run = |q: QuerySpec| {
            q.apply(
                rows.iter()
                    .map(|v| (v["id"].as_str().unwrap(), v["id"].as_str().unwrap(), v)),
            )
            .unwrap()
        };
        assert_eq!(
            run(QuerySpec::new().order_by("s", Direction::Asc)),
            ["2", "6", "3", "1", "4", "5"]
        );
        assert_eq!(
            run(QuerySpec::new().sort_by(OrderBy::asc("s").nocase())),
            ["3", "1", "2", "6", "4", "5"]
        );
        assert_eq!(
            run(QuerySpec::new().sort_by(OrderBy::desc("s").nocase())),
            ["5", "4", "6", "1", "2", "3"]
        );
    }
}
