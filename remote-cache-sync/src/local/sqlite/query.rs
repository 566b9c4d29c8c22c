//! Compiling a [`QuerySpec`] to SQL with exactly the semantics of [`QuerySpec::apply`].
//!
//! Field paths are validated first and become `json_extract(data, '$.path')` (the only text that
//! reaches the SQL string; see [`json_expr`]); every value is a bound parameter.
//!
//! How the reference semantics map onto SQLite:
//! - `json_extract` yields SQL `NULL` for missing fields and JSON `null`, integers/reals for
//!   numbers, 0/1 for booleans (which the reference also compares as 0/1), text for strings, and
//!   JSON text for arrays and objects. SQLite orders NULL < numbers < text, the reference's type
//!   ranks, except that arrays and objects (rank 3) would compare as text: `json_type` guards
//!   every comparison with a string operand and leads every sort key.
//! - Comparisons with NULL are never true, so a missing or null field fails every filter but
//!   `is_null`, as in the reference.
//! - Text compares with the `BINARY` collation (byte-wise), like the reference.
//! - `contains` is `instr` (case-sensitive, no wildcards) on values whose JSON type is text.
//! - `has` is `EXISTS` over `json_each` of a field whose JSON type is `array`.
//! - A scalar comparison meeting an array lets the row through and sets the row's `flag`
//!   column; reading a flagged row fails the query (see [`compile`]), so a record that another
//!   filter drops or that falls outside the page never fails it, as in the reference.
//! - [`OrderBy::nocase`](crate::OrderBy::nocase) adds `COLLATE NOCASE` to the sort key.
//! - Ordering: `ORDER BY` puts NULL first ascending and last descending, then `id` ascending.
//!
//! Known differences (unreachable for ordinary records): `-0.0` equals `0.0` in SQLite but not in
//! the reference's `total_cmp`; integers beyond 2^53 compared with a float operand compare exactly
//! in SQLite but through `f64` in the reference; and two array/object values sort by their stored
//! JSON text, where the reference sorts by the text of their parsed form (sorted object keys).

use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use super::schema::json_expr;
use crate::error::Result;
use crate::query::{Direction, Filter, FilterOp, QuerySpec};

/// SQL text and its positional parameters (`?1` is the scope).
pub(crate) struct Compiled {
    pub sql: String,
    pub params: Vec<SqlValue>,
    /// The `InvalidQuery` message for each value of the `flag` column.
    pub errors: Vec<String>,
}

fn bind(v: &Value) -> SqlValue {
    match v {
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        // `QuerySpec::validate` refuses null, array and object operands.
        Value::Null | Value::Array(_) | Value::Object(_) => SqlValue::Null,
    }
}

fn clamp(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

struct Builder {
    sql: String,
    params: Vec<SqlValue>,
}

impl Builder {
    /// Pushes a parameter and returns its placeholder.
    fn param(&mut self, v: SqlValue) -> String {
        self.params.push(v);
        format!("?{}", self.params.len())
    }
}

/// How well a filter can use an expression index on its field (higher is better), if at all.
/// Only forms compiled to a plain `field op ?` or `field IN (...)` conjunct qualify: `>`/`>=`
/// against a string also match arrays and objects (an `OR`), so no index range covers them.
fn index_use(op: &FilterOp) -> Option<u8> {
    match op {
        FilterOp::Eq(_) => Some(3),
        FilterOp::In(xs) if !xs.is_empty() => Some(2),
        FilterOp::Lt(_) | FilterOp::Le(_) => Some(1),
        FilterOp::Gt(x) | FilterOp::Ge(x) if !x.is_string() => Some(1),
        _ => None,
    }
}

/// Compiles `spec` (validated here) into `SELECT data, flag ...` for one scope: `flag` is NULL,
/// or the index into [`Compiled::errors`] of a filter that met an array (the query fails).
///
/// `indexed` lists the fields with an expression index. Without statistics SQLite prefers the
/// `(scope, id)` primary key of the `WITHOUT ROWID` table over them, so the best usable one is
/// named with `INDEXED BY`: the app asked for it by declaring the field.
///
/// Array fields under a scalar comparison must reach the result (to fail the query) without
/// costing the indexed path: the hinted filter keeps its plain, indexable form over non-array
/// values, and a `UNION ALL` arm reads the array values of that field from the same index (the
/// range of text from `[`, where `json_extract` puts arrays; usually empty). Every other such
/// filter lets arrays through with a `CASE` on `json_type`.
pub(crate) fn compile(scope: &str, spec: &QuerySpec, indexed: &[String]) -> Result<Compiled> {
    spec.validate()?;
    let mut b = Builder {
        sql: String::with_capacity(256),
        params: vec![SqlValue::Text(scope.to_owned())],
    };
    // A constant-false filter (`in` with no values) leaves SQLite no index access to plan.
    let always_false = spec
        .filters
        .iter()
        .any(|f| matches!(&f.op, FilterOp::In(xs) if xs.is_empty()));
    let hint = spec
        .filters
        .iter()
        .enumerate()
        .filter(|_| !always_false)
        .filter(|(_, f)| indexed.iter().any(|i| i == &f.field))
        .filter_map(|(i, f)| index_use(&f.op).map(|rank| (rank, i)))
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, i)| i);
    let mut others = String::new();
    let mut hinted = None;
    let mut flag = String::new();
    let mut errors = Vec::new();
    for (i, f) in spec.filters.iter().enumerate() {
        let ty = format!("json_type(data, '$.{}')", f.field);
        let cond = condition(&mut b, f);
        if f.op.compares_scalar() {
            flag.push_str(&format!(" WHEN {ty} = 'array' THEN {}", errors.len()));
            errors.push(f.array_field_message());
        }
        if hint == Some(i) {
            let field = json_expr(&f.field);
            hinted = Some((
                format!("{cond} AND {ty} IS NOT 'array'"),
                format!("{field} >= '[' AND {field} < '\\' AND {ty} = 'array'"),
            ));
        } else if f.op.compares_scalar() {
            others.push_str(&format!(
                " AND CASE WHEN {ty} = 'array' THEN 1 ELSE {cond} END"
            ));
        } else {
            others.push_str(&format!(" AND {cond}"));
        }
    }
    let flag = if flag.is_empty() {
        "NULL".to_owned()
    } else {
        format!("CASE{flag} END")
    };
    let base = " WHERE scope = ?1 AND deleted_at IS NULL";
    match (hinted, hint) {
        (Some((plain, arrays)), Some(i)) => {
            let index = super::schema::field_index_name(&spec.filters[i].field);
            let arm = |cond: &str| {
                format!(
                    "SELECT data, id, {flag} AS flag FROM items INDEXED BY {index}{base} \
                     AND {cond}{others}"
                )
            };
            b.sql.push_str(&format!(
                "SELECT data, flag FROM ({} UNION ALL {})",
                arm(&plain),
                arm(&arrays)
            ));
        }
        _ => b
            .sql
            .push_str(&format!("SELECT data, {flag} FROM items{base}{others}")),
    }
    b.sql.push_str(" ORDER BY ");
    for o in &spec.order_by {
        let dir = match o.direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        };
        let collate = if o.nocase { " COLLATE NOCASE" } else { "" };
        b.sql.push_str(&format!(
            "CASE WHEN json_type(data, '$.{f}') IN ('array', 'object') THEN 1 ELSE 0 END {dir}, {e}{collate} {dir}, ",
            f = o.field,
            e = json_expr(&o.field)
        ));
    }
    b.sql.push_str("id ASC");
    if spec.limit.is_some() || spec.offset.is_some() {
        let limit = spec.limit.map_or(-1, clamp);
        let offset = clamp(spec.offset.unwrap_or(0));
        let l = b.param(SqlValue::Integer(limit));
        let o = b.param(SqlValue::Integer(offset));
        b.sql.push_str(&format!(" LIMIT {l} OFFSET {o}"));
    }
    Ok(Compiled {
        sql: b.sql,
        params: b.params,
        errors,
    })
}

/// One filter's condition with the reference semantics on non-array values (arrays are the
/// caller's business for scalar comparisons).
fn condition(b: &mut Builder, f: &Filter) -> String {
    let field = json_expr(&f.field);
    let ty = format!("json_type(data, '$.{}')", f.field);
    let not_composite = format!("{ty} NOT IN ('array', 'object')");
    let composite = format!("{ty} IN ('array', 'object')");
    match &f.op {
        FilterOp::IsNull(true) => format!("{field} IS NULL"),
        FilterOp::IsNull(false) => format!("{field} IS NOT NULL"),
        FilterOp::Eq(x) | FilterOp::Lt(x) | FilterOp::Le(x) => {
            let op = match &f.op {
                FilterOp::Eq(_) => "=",
                FilterOp::Lt(_) => "<",
                _ => "<=",
            };
            let p = b.param(bind(x));
            if x.is_string() {
                format!("({field} {op} {p} AND {not_composite})")
            } else {
                // Array/object JSON text ranks above numbers in SQLite too.
                format!("{field} {op} {p}")
            }
        }
        FilterOp::Ne(x) | FilterOp::Gt(x) | FilterOp::Ge(x) => {
            let op = match &f.op {
                FilterOp::Ne(_) => "<>",
                FilterOp::Gt(_) => ">",
                _ => ">=",
            };
            let p = b.param(bind(x));
            if x.is_string() {
                format!("({field} {op} {p} OR {composite})")
            } else {
                format!("{field} {op} {p}")
            }
        }
        FilterOp::In(xs) if xs.is_empty() => "0".to_owned(),
        FilterOp::In(xs) => {
            let ps: Vec<String> = xs.iter().map(|x| b.param(bind(x))).collect();
            let list = ps.join(", ");
            if xs.iter().any(Value::is_string) {
                format!("({field} IN ({list}) AND {not_composite})")
            } else {
                format!("{field} IN ({list})")
            }
        }
        FilterOp::Contains(s) if s.is_empty() => format!("{ty} = 'text'"),
        FilterOp::Contains(s) => {
            let p = b.param(SqlValue::Text(s.clone()));
            format!("({ty} = 'text' AND instr({field}, {p}) > 0)")
        }
        // `json_each` of a scalar yields the scalar itself: only arrays qualify, and nested
        // arrays/objects (JSON text) never equal a scalar.
        FilterOp::Has(x) => {
            let p = b.param(bind(x));
            format!(
                "({ty} = 'array' AND EXISTS (SELECT 1 FROM json_each(data, '$.{f}') \
                 WHERE type NOT IN ('array', 'object') AND value = {p}))",
                f = f.field
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_inlined() {
        let spec = QuerySpec::new()
            .filter(Filter::eq("title", "x'); DROP TABLE items; --"))
            .filter(Filter::contains("meta.owner", "%_"))
            .limit(3);
        let c = compile("scope'", &spec, &[]).unwrap();
        assert!(!c.sql.contains("DROP"), "{}", c.sql);
        assert!(!c.sql.contains("%_"), "{}", c.sql);
        assert!(!c.sql.contains("scope'"), "{}", c.sql);
        assert!(
            c.sql.contains("json_extract(data, '$.meta.owner')"),
            "{}",
            c.sql
        );
        assert_eq!(c.params.len(), 5);
    }

    #[test]
    fn index_hints_only_where_the_index_applies() {
        let indexed = ["a".to_owned()];
        let hinted = |spec: QuerySpec| {
            compile("s", &spec, &indexed)
                .unwrap()
                .sql
                .contains("INDEXED BY")
        };
        assert!(hinted(QuerySpec::new().filter(Filter::eq("a", "x"))));
        assert!(hinted(QuerySpec::new().filter(Filter::lt("a", "x"))));
        assert!(hinted(QuerySpec::new().filter(Filter::gt("a", 3))));
        assert!(
            !hinted(QuerySpec::new().filter(Filter::gt("a", "x"))),
            "string > also matches arrays"
        );
        assert!(
            !hinted(QuerySpec::new().filter(Filter::eq("b", "x"))),
            "undeclared field"
        );
        assert!(!hinted(QuerySpec::new().filter(Filter::contains("a", "x"))));
        let empty_in = QuerySpec::new()
            .filter(Filter::is_in("a", Vec::<i64>::new()))
            .filter(Filter::eq("a", 1));
        assert!(
            !hinted(empty_in),
            "a constant-false filter leaves nothing to plan"
        );
    }

    #[test]
    fn invalid_fields_never_reach_sql() {
        let spec = QuerySpec::new().order_by("a') --", Direction::Asc);
        assert!(matches!(
            compile("s", &spec, &[]),
            Err(crate::Error::InvalidQuery(_))
        ));
    }
}
