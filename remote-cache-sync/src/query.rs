//! [`QuerySpec`]: filters, ordering and paging over record fields.
//!
//! The same spec is evaluated by every local store (compiled to SQL with bound parameters in
//! SQLite) and translated, escaped, by remotes that can filter. Semantics, identical everywhere:
//! - a field is a dotted path into the record's JSON (`title`, `meta.owner`);
//! - values compare by type rank first (null < bool/number < string < array/object), then by
//!   value: numbers numerically, strings byte-wise, `true`/`false` as 1/0;
//! - every comparison with a missing or null field is false, except [`FilterOp::IsNull`];
//! - [`FilterOp::Contains`] is a case-sensitive substring test on string fields;
//! - rows are ordered by the `order_by` fields (nulls first when ascending), then by id.

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

    /// Whether `record` (its JSON form) passes this filter.
    pub fn matches(&self, record: &Value) -> bool {
        let v = lookup(record, &self.field).filter(|v| !v.is_null());
        match (&self.op, v) {
            (FilterOp::IsNull(want), v) => v.is_none() == *want,
            (_, None) => false,
            (FilterOp::Eq(x), Some(v)) => compare_values(v, x) == Ordering::Equal,
            (FilterOp::Ne(x), Some(v)) => compare_values(v, x) != Ordering::Equal,
            (FilterOp::Lt(x), Some(v)) => compare_values(v, x) == Ordering::Less,
            (FilterOp::Le(x), Some(v)) => compare_values(v, x) != Ordering::Greater,
            (FilterOp::Gt(x), Some(v)) => compare_values(v, x) == Ordering::Greater,
            (FilterOp::Ge(x), Some(v)) => compare_values(v, x) != Ordering::Less,
            (FilterOp::In(xs), Some(v)) => {
                xs.iter().any(|x| compare_values(v, x) == Ordering::Equal)
            }
            (FilterOp::Contains(s), Some(Value::String(v))) => v.contains(s.as_str()),
            (FilterOp::Contains(_), Some(_)) => false,
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
    /// Adds a sort key.
    pub fn order_by(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.order_by.push(OrderBy {
            field: field.into(),
            direction,
        });
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
                | FilterOp::Ge(v) => std::slice::from_ref(v),
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

    /// Evaluates the spec over JSON records in memory (the reference semantics). `id_of` gives
    /// each record's id for the final tie-break.
    pub fn apply<'a, R>(
        &self,
        records: impl IntoIterator<Item = (&'a str, R, &'a Value)>,
    ) -> Vec<R> {
        let mut rows: Vec<(&str, R, &Value)> = records
            .into_iter()
            .filter(|(_, _, v)| self.filters.iter().all(|f| f.matches(v)))
            .collect();
        rows.sort_by(|a, b| {
            for o in &self.order_by {
                let ord = compare_fields(lookup(a.2, &o.field), lookup(b.2, &o.field));
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
            .map(|(_, r, _)| r)
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
        assert!(Filter::eq("n", 3).matches(&r));
        assert!(Filter::eq("n", 3.0).matches(&r));
        assert!(Filter::gt("s", "hell").matches(&r));
        assert!(Filter::eq("b", true).matches(&r));
        assert!(Filter::eq("b", 1).matches(&r));
        assert!(Filter::eq("meta.x", 1).matches(&r));
        assert!(!Filter::ne("missing", 1).matches(&r));
        assert!(!Filter::ne("z", 1).matches(&r));
        assert!(Filter::is_null("z", true).matches(&r));
        assert!(Filter::is_null("missing", true).matches(&r));
        assert!(Filter::is_null("n", false).matches(&r));
        assert!(Filter::contains("s", "ell").matches(&r));
        assert!(!Filter::contains("s", "ELL").matches(&r));
        assert!(Filter::is_in("n", [1, 3]).matches(&r));
        assert!(
            Filter::lt("n", "a").matches(&r),
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
        assert_eq!(got, ["a", "b"]);
    }
}
