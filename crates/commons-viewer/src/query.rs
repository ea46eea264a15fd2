//! `/search` and `/filter` over a table: words matched in its text cells, and the viewer's SQL
//! subset (`where`: comparisons of a column with a literal joined by `AND`, `OR`, `NOT` and
//! parentheses, `IS [NOT] NULL`; `orderby`: columns with `ASC`/`DESC`). Parsed here, by hand,
//! because the grammar is a dozen rules and no SQL engine is run on the caller's text.

use std::cmp::Ordering;

use serde_json::Value;

use crate::{Table, ViewerError};

/// Longest `where` or `orderby` accepted.
pub const QUERY_CHARS: usize = 4096;
/// Deepest nesting of parentheses and `NOT`s accepted.
const DEPTH: usize = 32;

fn invalid(message: impl Into<String>) -> ViewerError {
    ViewerError::Unsupported(message.into())
}

/// Indexes of the rows with every word of `query` (case-insensitive) in one of its text cells.
pub fn search(table: &Table, query: &str) -> Vec<usize> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return Vec::new();
    }
    table
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| {
            let text: Vec<String> = row.iter().filter_map(|c| c.as_str()).map(str::to_lowercase).collect();
            words.iter().all(|w| text.iter().any(|t| t.contains(w.as_str())))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Indexes of the rows that `where` admits (all when it is empty), in `orderby`'s order (the
/// table's when empty; ties keep it).
pub fn filter(table: &Table, condition: &str, orderby: &str) -> Result<Vec<usize>, ViewerError> {
    if condition.len() > QUERY_CHARS || orderby.len() > QUERY_CHARS {
        return Err(invalid(format!("'where' and 'orderby' are at most {QUERY_CHARS} characters")));
    }
    let expr = if condition.trim().is_empty() { None } else { Some(Parser::new(condition, table)?.whole()?) };
    let order = order_by(orderby, table)?;
    let mut rows: Vec<usize> = (0..table.rows.len()).filter(|&i| expr.as_ref().is_none_or(|e| e.admits(&table.rows[i]))).collect();
    if !order.is_empty() {
        rows.sort_by(|&a, &b| {
            order
                .iter()
                .map(|&(column, descending)| {
                    let o = compare(&table.rows[a][column], &table.rows[b][column]);
                    if descending { o.reverse() } else { o }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }
    Ok(rows)
}

/// Cells in order: nulls last, then booleans, numbers, text (each in its own order).
fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Bool(_) => 0,
            Value::Number(_) => 1,
            Value::String(_) => 2,
            Value::Null => 4,
            _ => 3,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap_or(f64::NAN).total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)).then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

fn order_by(text: &str, table: &Table) -> Result<Vec<(usize, bool)>, ViewerError> {
    let mut order = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut tokens = Tokens::new(part);
        let column = match tokens.next()? {
            Some(Token::Ident(name) | Token::Word(name)) => column_of(table, &name)?,
            other => return Err(invalid(format!("'orderby' names columns, not {other:?}"))),
        };
        let descending = match tokens.next()? {
            None => false,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("asc") => false,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("desc") => true,
            Some(other) => return Err(invalid(format!("'orderby': expected ASC or DESC after a column, found {other:?}"))),
        };
        if let Some(extra) = tokens.next()? {
            return Err(invalid(format!("'orderby': unexpected {extra:?}")));
        }
        order.push((column, descending));
    }
    Ok(order)
}

fn column_of(table: &Table, name: &str) -> Result<usize, ViewerError> {
    table.columns.iter().position(|c| c == name).ok_or_else(|| invalid(format!("no column {name:?}")))
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// A column: `"quoted"` (with `""` inside), or a bare name.
    Ident(String),
    /// A keyword or bare name, as written.
    Word(String),
    Text(String),
    Number(f64),
    Op(&'static str),
    Open,
    Close,
}

struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens { rest: text }
    }

    fn next(&mut self) -> Result<Option<Token>, ViewerError> {
        self.rest = self.rest.trim_start();
        let Some(c) = self.rest.chars().next() else { return Ok(None) };
        let quoted = |rest: &str, q: char| -> Result<(String, usize), ViewerError> {
            let mut out = String::new();
            let mut chars = rest.char_indices().skip(1).peekable();
            while let Some((i, c)) = chars.next() {
                if c == q {
                    if chars.peek().map(|p| p.1) == Some(q) {
                        out.push(q);
                        chars.next();
                        continue;
                    }
                    return Ok((out, i + 1));
                }
                out.push(c);
            }
            Err(invalid(format!("unclosed {q}")))
        };
        let (token, used) = match c {
            '"' => {
                let (name, used) = quoted(self.rest, '"')?;
                (Token::Ident(name), used)
            }
            '\'' => {
                let (text, used) = quoted(self.rest, '\'')?;
                (Token::Text(text), used)
            }
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            _ => {
                for op in ["<=", ">=", "!=", "<>", "=", "<", ">"] {
                    if self.rest.starts_with(op) {
                        self.rest = &self.rest[op.len()..];
                        return Ok(Some(Token::Op(if op == "<>" { "!=" } else { op })));
                    }
                }
                let end = self.rest.find(|c: char| !(c.is_alphanumeric() || "_.-+".contains(c))).unwrap_or(self.rest.len());
                if end == 0 {
                    return Err(invalid(format!("unexpected {c:?}")));
                }
                let word = &self.rest[..end];
                let token = match word.parse::<f64>() {
                    Ok(n) if word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') => Token::Number(n),
                    _ => Token::Word(word.to_string()),
                };
                (token, end)
            }
        };
        self.rest = &self.rest[used..];
        Ok(Some(token))
    }
}

enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(usize, &'static str, Value),
    IsNull(usize, bool),
}

impl Expr {
    fn admits(&self, row: &[Value]) -> bool {
        self.truth(row) == Some(true)
    }

    /// SQL's three-valued logic: a comparison with NULL is unknown (`None`), and so is `NOT` of
    /// it, so `NOT (city = 'Oslo')` does not admit a row without a city.
    fn truth(&self, row: &[Value]) -> Option<bool> {
        match self {
            Expr::And(a, b) => match (a.truth(row), b.truth(row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.truth(row), b.truth(row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.truth(row).map(|t| !t),
            Expr::IsNull(c, null) => Some(row[*c].is_null() == *null),
            Expr::Compare(c, op, literal) => {
                let cell = &row[*c];
                if cell.is_null() {
                    return None;
                }
                let cell_number = cell.as_f64().or_else(|| cell.as_bool().map(|b| f64::from(u8::from(b))));
                let ordering = match (literal, cell_number) {
                    (Value::Number(n), Some(x)) => x.total_cmp(&n.as_f64().unwrap_or(f64::NAN)),
                    (Value::Bool(b), _) if cell.is_boolean() => cell.as_bool().cmp(&Some(*b)),
                    (Value::String(s), _) => cell.as_str().map_or_else(|| cell.to_string(), str::to_string).as_str().cmp(s.as_str()),
                    _ => return Some(false),
                };
                Some(match *op {
                    "=" => ordering.is_eq(),
                    "!=" => ordering.is_ne(),
                    "<" => ordering.is_lt(),
                    "<=" => ordering.is_le(),
                    ">" => ordering.is_gt(),
                    _ => ordering.is_ge(),
                })
            }
        }
    }
}

struct Parser<'t> {
    tokens: Vec<Token>,
    at: usize,
    table: &'t Table,
}

impl<'t> Parser<'t> {
    fn new(text: &str, table: &'t Table) -> Result<Self, ViewerError> {
        let mut lexer = Tokens::new(text);
        let mut tokens = Vec::new();
        while let Some(t) = lexer.next()? {
            tokens.push(t);
        }
        Ok(Parser { tokens, at: 0, table })
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn take(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn whole(&mut self) -> Result<Expr, ViewerError> {
        let expr = self.or(0)?;
        match self.tokens.get(self.at) {
            None => Ok(expr),
            Some(t) => Err(invalid(format!("'where': unexpected {t:?}"))),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ViewerError> {
        let mut left = self.and(depth)?;
        while self.peek_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ViewerError> {
        let mut left = self.factor(depth)?;
        while self.peek_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.factor(depth)?));
        }
        Ok(left)
    }

    fn factor(&mut self, depth: usize) -> Result<Expr, ViewerError> {
        if depth > DEPTH {
            return Err(invalid(format!("'where' nests deeper than {DEPTH}")));
        }
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.factor(depth + 1)?)));
        }
        match self.take() {
            Some(Token::Open) => {
                let inner = self.or(depth + 1)?;
                match self.take() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(invalid("'where': a '(' is not closed")),
                }
            }
            Some(Token::Ident(name)) => self.comparison(&name),
            Some(Token::Word(name)) => self.comparison(&name),
            other => Err(invalid(format!("'where': expected a column, found {other:?}"))),
        }
    }

    fn comparison(&mut self, name: &str) -> Result<Expr, ViewerError> {
        let column = column_of(self.table, name)?;
        if self.peek_word("is") {
            self.at += 1;
            let negated = self.peek_word("not");
            if negated {
                self.at += 1;
            }
            if !self.peek_word("null") {
                return Err(invalid("'where': IS takes NULL or NOT NULL"));
            }
            self.at += 1;
            return Ok(Expr::IsNull(column, !negated));
        }
        let op = match self.take() {
            Some(Token::Op(op)) => op,
            other => return Err(invalid(format!("'where': expected a comparison after {name:?}, found {other:?}"))),
        };
        let literal = match self.take() {
            Some(Token::Text(t)) => Value::String(t),
            Some(Token::Number(n)) => serde_json::Number::from_f64(n).map(Value::Number).ok_or_else(|| invalid("not a finite number"))?,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            other => return Err(invalid(format!("'where': expected a value after {name:?} {op}, found {other:?}"))),
        };
        Ok(Expr::Compare(column, op, literal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        Table {
            columns: vec!["name".into(), "age".into(), "city".into()],
            rows: vec![
                vec![json!("Ann Lee"), json!(31), json!("Oslo")],
                vec![json!("Bob"), json!(25), Value::Null],
                vec![json!("Cy O'Neil"), json!(40), json!("Lima")],
                vec![json!("Dee"), json!(25), json!("Oslo")],
            ],
        }
    }

    #[test]
    fn where_and_orderby_follow_sql() {
        let t = table();
        assert_eq!(filter(&t, "\"city\"='Oslo'", "").unwrap(), [0, 3]);
        assert_eq!(filter(&t, "age >= 30 OR city IS NULL", "\"age\" DESC").unwrap(), [2, 0, 1]);
        assert_eq!(filter(&t, "NOT (city = 'Oslo') AND age < 100", "").unwrap(), [2], "NULL is neither Oslo nor not");
        assert_eq!(filter(&t, "name = 'Cy O''Neil'", "").unwrap(), [2]);
        assert_eq!(filter(&t, "", "age, name DESC").unwrap(), [3, 1, 0, 2]);
        assert_eq!(filter(&t, "city <> 'Oslo'", "").unwrap(), [2]);
        for bad in ["nope = 1", "age =", "(age = 1", "age = 1 1", "city IS 3", "age ~ 2", "name = 'open"] {
            assert!(filter(&t, bad, "").is_err(), "{bad}");
        }
        assert!(filter(&t, "", "age sideways").is_err());
        let deep = format!("{}age = 1{}", "(".repeat(100), ")".repeat(100));
        assert!(filter(&t, &deep, "").unwrap_err().to_string().contains("deeper"));
    }

    #[test]
    fn search_matches_every_word_in_text_cells() {
        let t = table();
        assert_eq!(search(&t, "oslo"), [0, 3]);
        assert_eq!(search(&t, "ann OSLO"), [0]);
        assert_eq!(search(&t, "25"), Vec::<usize>::new(), "numbers are not text");
        assert_eq!(search(&t, "  "), Vec::<usize>::new());
    }
}
