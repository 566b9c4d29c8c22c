//! [`RemoteStore::query`](crate::RemoteStore::query) for the PostgreSQL remote: a
//! [`QuerySpec`] compiled to one `SELECT` over the records table, with exactly the semantics
//! of [`QuerySpec::apply`].
//!
//! Nothing of the spec reaches the SQL text: each field path is validated and then **bound**
//! as a `text[]` (`data #> $n`), every operand is bound (numbers as `numeric` text, so
//! integers beyond 2^53 compare exactly), and the statement only ever reads rows of the bound
//! scope. How the reference semantics map onto `jsonb`:
//! - the type rank (missing/null < boolean, number < string < array, object) is spelled out
//!   with `jsonb_typeof`, because `jsonb`'s own order ranks types differently;
//! - numbers and booleans (as 1/0) compare as `numeric`; strings with `COLLATE "C"` (bytes of
//!   UTF-8, like the reference); `nocase` folds `A`-`Z` only, with `translate`;
//! - a scalar comparison meeting an array lets the row through and sets its `flag`; a flagged
//!   row in the answer fails the query with [`Error::InvalidQuery`], as in the reference;
//! - `contains` is `strpos` (no wildcards), `has` is `EXISTS` over `jsonb_array_elements`.
//!
//! Known differences (as for the SQLite stores): two arrays or objects sort by `jsonb`'s text,
//! not `serde_json`'s; an integer beyond 2^53 compared with a non-integer operand compares
//! exactly here but through `f64` in the reference; `-0.0` equals `0.0`. A string operand
//! holding NUL (which no `jsonb` value can hold) is [`Error::Unsupported`].

use tokio_postgres::types::ToSql;

use super::{BACKEND, PostgresRemoteStore};
use crate::error::{Error, Result};
use crate::query::{Direction, Filter, FilterOp, QuerySpec};
use crate::record::Record;
use crate::scope::SyncScope;
use serde_json::Value;

type Param = Box<dyn ToSql + Sync + Send>;

/// SQL text, its parameters (`$1` is the scope) and the `InvalidQuery` message of each `flag`.
pub(super) struct Compiled {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
    pub(super) errors: Vec<String>,
}

struct Builder {
    params: Vec<Param>,
}

impl Builder {
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    /// `data #> $n` for a validated field path, the path bound as `text[]`.
    fn field(&mut self, field: &str) -> String {
        let path: Vec<String> = field.split('.').map(str::to_owned).collect();
        format!("(data #> {}::text[])", self.param(Box::new(path)))
    }

    /// A bound operand: `("numeric", expr)` for numbers and booleans, `("string", expr)`.
    fn operand(&mut self, v: &Value) -> Result<(bool, String)> {
        match v {
            Value::Bool(b) => Ok((true, self.numeric(if *b { "1" } else { "0" }.into()))),
            Value::Number(n) => Ok((true, self.numeric(n.to_string()))),
            Value::String(s) if s.contains('\0') => Err(nul()),
            Value::String(s) => Ok((false, self.param(Box::new(s.clone())))),
            // `QuerySpec::validate` refuses null, array and object operands.
            _ => Err(Error::InvalidQuery("operands must be scalars".into())),
        }
    }

    fn numeric(&mut self, text: String) -> String {
        format!("CAST({}::text AS numeric)", self.param(Box::new(text)))
    }
}

fn nul() -> Error {
    Error::Unsupported {
        backend: BACKEND,
        message: "a string operand holding NUL (postgres text cannot hold it)".into(),
    }
}

fn ty(v: &str) -> String {
    format!("jsonb_typeof({v})")
}

/// The numeric value of a number or boolean (NULL otherwise).
fn num(v: &str) -> String {
    format!(
        "(CASE jsonb_typeof({v}) WHEN 'number' THEN ({v})::numeric \
         WHEN 'boolean' THEN CASE WHEN ({v})::boolean THEN 1 ELSE 0 END END)"
    )
}

/// The text of a string (NULL otherwise).
fn text(v: &str) -> String {
    format!("(CASE WHEN jsonb_typeof({v}) = 'string' THEN {v} #>> '{{}}' END)")
}

fn fold(e: &str) -> String {
    format!("translate({e}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

/// `v op x` with the reference's ranks, for a non-array `v` (missing or null: false).
fn compare(v: &str, op: &str, numeric: bool, x: &str) -> String {
    let t = ty(v);
    let (same, less, greater) = if numeric {
        (
            format!("({t} IN ('number', 'boolean') AND {} {op} {x})", num(v)),
            None,
            Some(format!("{t} IN ('string', 'object')")),
        )
    } else {
        (
            format!("({t} = 'string' AND {} COLLATE \"C\" {op} {x})", text(v)),
            Some(format!("{t} IN ('number', 'boolean')")),
            Some(format!("{t} = 'object'")),
        )
    };
    let mut out = same;
    if let Some(less) = less.filter(|_| matches!(op, "<>" | "<" | "<=")) {
        out = format!("{out} OR {less}");
    }
    if let Some(greater) = greater.filter(|_| matches!(op, "<>" | ">" | ">=")) {
        out = format!("{out} OR {greater}");
    }
    format!("COALESCE(({out}), false)")
}

fn condition(b: &mut Builder, f: &Filter) -> Result<String> {
    if matches!(&f.op, FilterOp::In(xs) if xs.is_empty()) {
        // Binds nothing: an unused parameter has no type PostgreSQL could infer.
        return Ok("false".to_owned());
    }
    let v = b.field(&f.field);
    let t = ty(&v);
    let cmp = |b: &mut Builder, op: &str, x: &Value| -> Result<String> {
        let (numeric, x) = b.operand(x)?;
        Ok(compare(&v, op, numeric, &x))
    };
    Ok(match &f.op {
        FilterOp::IsNull(true) => format!("({t} IS NULL OR {t} = 'null')"),
        FilterOp::IsNull(false) => format!("({t} IS NOT NULL AND {t} <> 'null')"),
        FilterOp::Eq(x) => cmp(b, "=", x)?,
        FilterOp::Ne(x) => cmp(b, "<>", x)?,
        FilterOp::Lt(x) => cmp(b, "<", x)?,
        FilterOp::Le(x) => cmp(b, "<=", x)?,
        FilterOp::Gt(x) => cmp(b, ">", x)?,
        FilterOp::Ge(x) => cmp(b, ">=", x)?,
        FilterOp::In(xs) => {
            let mut any = Vec::with_capacity(xs.len());
            for x in xs {
                any.push(cmp(b, "=", x)?);
            }
            format!("({})", any.join(" OR "))
        }
        FilterOp::Contains(s) if s.contains('\0') => return Err(nul()),
        FilterOp::Contains(s) => {
            let p = b.param(Box::new(s.clone()));
            format!("({t} = 'string' AND strpos({v} #>> '{{}}', {p}) > 0)")
        }
        FilterOp::Has(x) => {
            let (numeric, x) = b.operand(x)?;
            format!(
                "({t} = 'array' AND EXISTS (SELECT 1 FROM jsonb_array_elements({v}) AS e(v) \
                 WHERE {}))",
                compare("e.v", "=", numeric, &x)
            )
        }
    })
}

/// Compiles `spec` (validated here) into `SELECT data, flag` over `table` for the scope `$1`.
pub(super) fn compile(table: &str, scope: String, spec: &QuerySpec) -> Result<Compiled> {
    spec.validate()?;
    let mut b = Builder {
        params: vec![Box::new(scope)],
    };
    let mut conds = String::new();
    let mut flag = String::new();
    let mut errors = Vec::new();
    for f in &spec.filters {
        let cond = condition(&mut b, f)?;
        if f.op.compares_scalar() {
            let v = b.field(&f.field);
            flag.push_str(&format!(" WHEN {} = 'array' THEN {}", ty(&v), errors.len()));
            errors.push(f.array_field_message());
            conds.push_str(&format!(
                " AND CASE WHEN {} = 'array' THEN true ELSE {cond} END",
                ty(&v)
            ));
        } else {
            conds.push_str(&format!(" AND {cond}"));
        }
    }
    let flag = if flag.is_empty() {
        "NULL::int".to_owned()
    } else {
        format!("CASE{flag} END")
    };
    let mut order = String::new();
    for o in &spec.order_by {
        let dir = match o.direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        };
        let v = b.field(&o.field);
        let t = ty(&v);
        let (s, composite) = (
            text(&v),
            format!("(CASE WHEN {t} IN ('array', 'object') THEN ({v})::text END)"),
        );
        let (s, composite) = if o.nocase {
            (fold(&s), fold(&composite))
        } else {
            (s, composite)
        };
        order.push_str(&format!(
            "CASE {t} WHEN 'boolean' THEN 1 WHEN 'number' THEN 1 WHEN 'string' THEN 2 \
             WHEN 'array' THEN 3 WHEN 'object' THEN 3 ELSE 0 END {dir}, {n} {dir}, \
             {s} COLLATE \"C\" {dir}, {composite} COLLATE \"C\" {dir}, ",
            n = num(&v)
        ));
    }
    let limit = spec
        .limit
        .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let offset = i64::try_from(spec.offset.unwrap_or(0)).unwrap_or(i64::MAX);
    let l = b.param(Box::new(limit));
    let o = b.param(Box::new(offset));
    let sql = format!(
        "SELECT id, data, {flag} AS flag FROM {table} \
         WHERE scope = $1 AND NOT deleted AND data IS NOT NULL{conds} \
         ORDER BY {order}id COLLATE \"C\" ASC LIMIT {l} OFFSET {o}"
    );
    Ok(Compiled {
        sql,
        params: b.params,
        errors,
    })
}

impl<T: Record> PostgresRemoteStore<T> {
    /// Runs a compiled query (see the module docs).
    pub(super) async fn run_query(&self, scope: &SyncScope, spec: &QuerySpec) -> Result<Vec<T>> {
        let q = compile(&self.sql.records, scope.canonical(), spec)?;
        let client = self.client().await?;
        let broken = client.broken.clone();
        let params: Vec<&(dyn ToSql + Sync)> = q
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client
            .query(&q.sql, &params)
            .await
            .map_err(|e| self.fail(&broken, &e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let flag: Option<i32> = super::column(&row, "flag")?;
            if let Some(i) = flag {
                let message = usize::try_from(i)
                    .ok()
                    .and_then(|i| q.errors.get(i).cloned())
                    .unwrap_or_default();
                return Err(Error::InvalidQuery(message));
            }
            let id: String = super::column(&row, "id")?;
            let data: Value = super::record_column(&row, "data", &id)?;
            // A row that is not a record is quarantined by a pull; the query cannot answer
            // without it, so it declines (the orchestrator syncs instead).
            out.push(self.decode(&id, &data).map_err(|e| Error::Unsupported {
                backend: BACKEND,
                message: format!("{e}; sync instead"),
            })?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_and_values_never_reach_the_sql_text() {
        let spec = QuerySpec::new()
            .filter(Filter::eq("meta.owner", "x'; DROP TABLE t; --"))
            .filter(Filter::gt("n", 9_007_199_254_740_993_i64))
            .order_by("title", Direction::Desc);
        let q = compile("rcs_records", "s".into(), &spec).unwrap();
        assert!(!q.sql.contains("DROP"), "{}", q.sql);
        assert!(!q.sql.contains("owner"), "{}", q.sql);
        assert!(!q.sql.contains("9007199254740993"), "{}", q.sql);
        let bad = QuerySpec::new().filter(Filter::eq("a') OR true --", 1));
        assert!(matches!(
            compile("rcs_records", "s".into(), &bad),
            Err(Error::InvalidQuery(_))
        ));
        let nul = QuerySpec::new().filter(Filter::contains("title", "a\0b"));
        assert!(matches!(
            compile("rcs_records", "s".into(), &nul),
            Err(Error::Unsupported { .. })
        ));
    }
}
