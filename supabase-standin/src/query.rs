//! PostgREST's URL grammar (the subset the adapter and the official client use), parsed as
//! PostgREST parses it (`src/library/PostgREST/ApiRequest/QueryParams.hs`; docs: "URL Grammar",
//! "Reserved characters"; "Horizontal Filtering", "Logical operators"), and turned into SQL.
//!
//! The rules that matter for escaping:
//! - a top-level filter `col=op.VALUE` takes VALUE literally, to the end (`pSingleVal = many
//!   anyChar`): no quoting there, a `"` is part of the value;
//! - inside `or=(…)`/`and=(…)` and `in.(…)` a value is either double-quoted, with `\` escaping
//!   the next character (`pQuotedValue`), and then must be followed by `,` or `)`, or it runs to
//!   the next `,` or `)` (`many (noneOf ",)")`);
//! - field names are identifiers (`[letters digits _ $ space]`, dash-separated) or quoted.
//! - a field may be followed by a JSON path, `->key` (jsonb) or `->>key` (text), keys being
//!   field names or array indexes (docs: "JSON Columns"; `pJsonPath`).
//!
//! Values become SQL string literals (`'…'` with `'` doubled, standard_conforming_strings on),
//! of unknown type, so PostgreSQL coerces them to the column's type, as PostgREST's own
//! literals are.

use std::fmt::Write;

/// A parse failure: PostgREST answers it with 400 `PGRST100`.
#[derive(Debug)]
pub struct ParseError(pub String);

type P<T> = Result<T, ParseError>;

fn err<T>(m: impl Into<String>) -> P<T> {
    Err(ParseError(m.into()))
}

/// A filter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    One(String),
    List(Vec<String>),
    Is(String),
}

/// `col=[not.]op.value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    /// A JSON path into the column (`data->meta->>owner`): `(text, key)` per arrow, `text` for
    /// `->>` (docs: "JSON Columns").
    pub path: Vec<(bool, String)>,
    pub not: bool,
    pub op: String,
    pub value: Value,
}

/// `or=(…)` / `and=(…)` trees.
#[derive(Debug, Clone, PartialEq)]
pub enum Logic {
    Stmt(Filter),
    Expr {
        not: bool,
        and: bool,
        children: Vec<Logic>,
    },
}

const SIMPLE_OPS: &[(&str, &str)] = &[
    ("eq", "="),
    ("neq", "<>"),
    ("gt", ">"),
    ("gte", ">="),
    ("lt", "<"),
    ("lte", "<="),
    ("like", "LIKE"),
    ("ilike", "ILIKE"),
];

struct Cursor<'a> {
    s: &'a [char],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.s.len() >= self.i + n && self.s[self.i..self.i + n].iter().copied().eq(s.chars()) {
            self.i += n;
            true
        } else {
            false
        }
    }
    fn spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.i += 1;
        }
    }
    fn rest(&mut self) -> String {
        let r: String = self.s[self.i..].iter().collect();
        self.i = self.s.len();
        r
    }
    /// `pQuotedValue`: `"` then chars, `\x` meaning `x`, then `"`.
    fn quoted(&mut self) -> P<String> {
        if !self.eat('"') {
            return err("expecting \"");
        }
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return err("unterminated quoted value"),
                Some('"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) => {
                            out.push(c);
                            self.i += 1;
                        }
                        None => return err("unterminated escape"),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
    /// `pLogicSingleVal` / `pListElement`: a quoted value followed by `,` or `)`, or the run
    /// of characters up to `,` or `)`.
    fn element(&mut self) -> String {
        let save = self.i;
        if self.peek() == Some('"')
            && let Ok(v) = self.quoted()
            && matches!(self.peek(), None | Some(',') | Some(')'))
        {
            return v;
        }
        self.i = save;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == ',' || c == ')' {
                break;
            }
            out.push(c);
            self.i += 1;
        }
        out
    }
    /// `pFieldName`: quoted, or identifier characters (letters, digits, `_`, `$`, space) joined
    /// by dashes not followed by `>`.
    fn field(&mut self) -> P<String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let mut out = String::new();
        while let Some(c) = self.peek() {
            let dash = c == '-' && self.s.get(self.i + 1) != Some(&'>');
            if c.is_alphanumeric() || c == '_' || c == '$' || c == ' ' || dash {
                out.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        let out = out.trim().to_owned();
        if out.is_empty() {
            return err("field name (* or [a..z0..9_$])");
        }
        Ok(out)
    }
}

/// A column and its JSON path.
type Column = (String, Vec<(bool, String)>);

impl Cursor<'_> {
    /// `pField`: a field name, then `pJsonPath`: any number of `->key` / `->>key` (a key is a
    /// field name or an array index).
    fn column(&mut self) -> P<Column> {
        let name = self.field()?;
        let mut path = Vec::new();
        while self.eat_str("->") {
            let text = self.eat('>');
            path.push((text, self.field()?));
        }
        Ok((name, path))
    }
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// `pOpExpr`: `[not.]op.value`, with `value` read by `single` (the top-level or the logic rule).
fn op_expr(c: &mut Cursor, (column, path): Column, logic: bool) -> P<Filter> {
    let not = c.eat_str("not.");
    let word: String = {
        let mut w = String::new();
        while let Some(ch) = c.peek().filter(|ch| ch.is_ascii_alphabetic()) {
            w.push(ch);
            c.i += 1;
        }
        w
    };
    if !c.eat('.') {
        return err(format!(
            "unknown operator {word:?} or missing delimiter (.)"
        ));
    }
    let value = match word.as_str() {
        "in" => {
            c.spaces();
            if !c.eat('(') {
                return err("expecting (");
            }
            let mut items = vec![c.element()];
            while c.eat(',') {
                items.push(c.element());
            }
            if !c.eat(')') {
                return err("expecting )");
            }
            c.spaces();
            Value::List(items)
        }
        "is" => {
            let v = if logic { c.element() } else { c.rest() };
            let v = v.to_ascii_lowercase();
            if !matches!(
                v.as_str(),
                "null" | "not_null" | "true" | "false" | "unknown"
            ) {
                return err("isVal: (null, not_null, true, false, unknown)");
            }
            Value::Is(v)
        }
        op if SIMPLE_OPS.iter().any(|(o, _)| *o == op) => {
            Value::One(if logic { c.element() } else { c.rest() })
        }
        _ => return err(format!("operator (eq, gt, ...): unknown {word:?}")),
    };
    Ok(Filter {
        column,
        path,
        not,
        op: word,
        value,
    })
}

/// A top-level `key=value` filter.
pub fn parse_filter(key: &str, value: &str) -> P<Filter> {
    let k = chars(key);
    let mut kc = Cursor { s: &k, i: 0 };
    let column = kc.column()?;
    if kc.peek().is_some() {
        return err(format!("unexpected characters in column {key:?}"));
    }
    let v = chars(value);
    let mut c = Cursor { s: &v, i: 0 };
    op_expr(&mut c, column, false)
}

/// `or=(…)` or `and=(…)` (`key` is `or`, `and`, `not.or`, `not.and`).
pub fn parse_logic(key: &str, value: &str) -> P<Logic> {
    let (not, op) = match key.strip_prefix("not.") {
        Some(op) => (true, op),
        None => (false, key),
    };
    let v = chars(value);
    let mut c = Cursor { s: &v, i: 0 };
    let children = logic_children(&mut c)?;
    if c.peek().is_some() {
        return err("unexpected characters after the logic tree");
    }
    Ok(Logic::Expr {
        not,
        and: op == "and",
        children,
    })
}

fn logic_children(c: &mut Cursor) -> P<Vec<Logic>> {
    c.spaces();
    if !c.eat('(') {
        return err("expecting (");
    }
    let mut out = vec![logic_tree(c)?];
    loop {
        c.spaces();
        if c.eat(',') {
            c.spaces();
            out.push(logic_tree(c)?);
        } else if c.eat(')') {
            c.spaces();
            return Ok(out);
        } else {
            return err("expecting , or )");
        }
    }
}

/// `pLogicTree`: a filter is tried first, then `[not.]and(…)`/`[not.]or(…)`.
fn logic_tree(c: &mut Cursor) -> P<Logic> {
    let save = c.i;
    let filter = (|| {
        let column = c.column()?;
        if !c.eat('.') {
            return err("delimiter (.)");
        }
        op_expr(c, column, true)
    })();
    if let Ok(f) = filter {
        return Ok(Logic::Stmt(f));
    }
    c.i = save;
    let not = c.eat_str("not.");
    let and = if c.eat_str("and") {
        true
    } else if c.eat_str("or") {
        false
    } else {
        return err("logic operator (and, or)");
    };
    Ok(Logic::Expr {
        not,
        and,
        children: logic_children(c)?,
    })
}

/// `"ident"` with `"` doubled.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A SQL string literal (standard_conforming_strings on: only `'` needs doubling). NUL cannot
/// be in PostgreSQL text.
pub fn literal(s: &str) -> P<String> {
    if s.contains('\0') {
        return err("a value contains a NUL character");
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

impl Filter {
    pub fn sql(&self, out: &mut String) -> P<()> {
        let mut col = ident(&self.column);
        for (text, key) in &self.path {
            col.push_str(if *text { "->>" } else { "->" });
            match key.parse::<i64>() {
                Ok(index) => write!(col, "{index}").unwrap(),
                Err(_) => col.push_str(&literal(key)?),
            }
        }
        let cond = match (&self.value, self.op.as_str()) {
            (Value::List(items), _) => {
                let lits: P<Vec<String>> = items.iter().map(|i| literal(i)).collect();
                format!("{col} IN ({})", lits?.join(", "))
            }
            (Value::Is(v), _) => {
                let what = match v.as_str() {
                    "null" => "NULL",
                    "not_null" => "NOT NULL",
                    "true" => "TRUE",
                    "false" => "FALSE",
                    _ => "UNKNOWN",
                };
                format!("{col} IS {what}")
            }
            (Value::One(v), op) => {
                let sql_op = SIMPLE_OPS
                    .iter()
                    .find(|(o, _)| *o == op)
                    .map(|(_, s)| *s)
                    .expect("parsed operator");
                let v = if matches!(op, "like" | "ilike") {
                    v.replace('*', "%")
                } else {
                    v.clone()
                };
                format!("{col} {sql_op} {}", literal(&v)?)
            }
        };
        if self.not {
            write!(out, "NOT ({cond})").unwrap();
        } else {
            out.push_str(&cond);
        }
        Ok(())
    }
}

impl Logic {
    pub fn sql(&self, out: &mut String) -> P<()> {
        match self {
            Logic::Stmt(f) => f.sql(out),
            Logic::Expr { not, and, children } => {
                if *not {
                    out.push_str("NOT ");
                }
                out.push('(');
                for (i, ch) in children.iter().enumerate() {
                    if i > 0 {
                        out.push_str(if *and { " AND " } else { " OR " });
                    }
                    ch.sql(out)?;
                }
                out.push(')');
                Ok(())
            }
        }
    }
}

/// `order=col.asc,col2.desc.nullslast`.
pub fn parse_order(value: &str) -> P<String> {
    let mut terms = Vec::new();
    for term in value.split(',') {
        let mut parts = term.split('.');
        let col = parts.next().unwrap_or_default();
        let k = chars(col);
        let mut c = Cursor { s: &k, i: 0 };
        let col = c.field()?;
        let mut sql = ident(&col);
        for p in parts {
            sql.push_str(match p {
                "asc" => " ASC",
                "desc" => " DESC",
                "nullsfirst" => " NULLS FIRST",
                "nullslast" => " NULLS LAST",
                _ => return err(format!("unexpected {p:?} in order")),
            });
        }
        terms.push(sql);
    }
    Ok(terms.join(", "))
}

/// `select=*` or `select=a,b`.
pub fn parse_select(value: &str) -> P<String> {
    if value.trim() == "*" || value.is_empty() {
        return Ok("*".into());
    }
    let mut cols = Vec::new();
    for item in value.split(',') {
        let k = chars(item);
        let mut c = Cursor { s: &k, i: 0 };
        if c.peek() == Some('*') && k.len() == 1 {
            cols.push("*".to_owned());
            continue;
        }
        let col = c.field()?;
        if c.peek().is_some() {
            return err(format!("unsupported select item {item:?}"));
        }
        cols.push(ident(&col));
    }
    Ok(cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(col: &str, op: &str, v: &str) -> Logic {
        Logic::Stmt(Filter {
            column: col.into(),
            path: Vec::new(),
            not: false,
            op: op.into(),
            value: Value::One(v.into()),
        })
    }

    #[test]
    fn top_level_values_are_literal() {
        let f = parse_filter("owner", "eq.a,owner.neq.x").unwrap();
        assert_eq!(f.value, Value::One("a,owner.neq.x".into()));
        let f = parse_filter("owner", "eq.\"x\"").unwrap();
        assert_eq!(f.value, Value::One("\"x\"".into()));
        let f = parse_filter("id", "in.(\"a,b\",c,\"d\\\"e\")").unwrap();
        assert_eq!(
            f.value,
            Value::List(vec!["a,b".into(), "c".into(), "d\"e".into()])
        );
    }

    #[test]
    fn logic_trees_quote_and_escape() {
        let t = parse_logic(
            "or",
            "(updated_at.gt.\"2026-01-01T00:00:00Z\",and(updated_at.eq.\"x\",id.gt.\"a\\\\b\\\"),c\"))",
        )
        .unwrap();
        assert_eq!(
            t,
            Logic::Expr {
                not: false,
                and: false,
                children: vec![
                    one("updated_at", "gt", "2026-01-01T00:00:00Z"),
                    Logic::Expr {
                        not: false,
                        and: true,
                        children: vec![one("updated_at", "eq", "x"), one("id", "gt", "a\\b\"),c")]
                    }
                ]
            }
        );
        // Unquoted, a `)` ends the value and the rest no longer parses.
        assert!(parse_logic("or", "(id.eq.x),owner.neq.y)").is_err());
    }

    #[test]
    fn sql() {
        let mut s = String::new();
        parse_filter("\"o\\\"wn\"", "eq.it's")
            .unwrap()
            .sql(&mut s)
            .unwrap();
        assert_eq!(s, "\"o\"\"wn\" = 'it''s'");
        let mut s = String::new();
        parse_filter("data->meta->>\"o'wner\"", "like.*a*")
            .unwrap()
            .sql(&mut s)
            .unwrap();
        assert_eq!(s, "\"data\"->'meta'->>'o''wner' LIKE '%a%'");
        let mut s = String::new();
        parse_logic(
            "and",
            "(or(data->>t.in.(\"a\"),data->>t.like.\"[*\"),data->0.eq.1)",
        )
        .unwrap()
        .sql(&mut s)
        .unwrap();
        assert_eq!(
            s,
            "((\"data\"->>'t' IN ('a') OR \"data\"->>'t' LIKE '[%') AND \"data\"->0 = '1')"
        );
        assert!(literal("a\0").is_err());
    }
}
