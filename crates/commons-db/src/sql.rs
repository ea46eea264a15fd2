//! One query API over the two database engines Commons runs on: SQLite (embedded, the default)
//! and PostgreSQL (several servers on one database).
//!
//! The statements are the same text for both (`$n` placeholders, `ON CONFLICT`, `RETURNING`,
//! `TRUE`/`FALSE`, `CAST(… AS BIGINT)` where PostgreSQL would widen to `NUMERIC`); only the
//! schema (`migrations/sqlite`, `migrations/postgres`) and how a write transaction begins
//! differ. Each statement runs through the engine's own sqlx driver, so values are encoded and
//! decoded by that driver's rules (a SQLite `BOOLEAN` column is read as `bool`, which sqlx's
//! runtime-generic `Any` driver refuses).
//!
//! Arguments are collected as [`Arg`]s before the engine is known and bound when the statement
//! runs; rows come back as [`Row`], read with [`Row::try_get`] into any [`Value`].

use std::marker::PhantomData;

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{ColumnIndex, Postgres, SqlSafeStr, SqlStr, Sqlite};

pub use sqlx::AssertSqlSafe;

/// Which engine a [`Pool`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The function giving the 1-based position of a string in another (0 if absent):
    /// SQLite's `instr`, PostgreSQL's `strpos` (same arguments).
    pub fn position_function(self) -> &'static str {
        match self {
            Engine::Sqlite => "instr",
            Engine::Postgres => "strpos",
        }
    }
}

/// A connection pool on either engine. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub fn engine(&self) -> Engine {
        match self {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// A plain transaction (reads that must agree with one another). Writers use
    /// [`crate::Db::begin_write`], which also takes the engine's write lock.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// A connection of the pool, held until dropped.
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Conn::Postgres(p.acquire().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// A transaction on either engine; rolled back if dropped before [`Tx::commit`].
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// A connection taken from a [`Pool`].
pub enum Conn {
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

/// Where a statement runs: a pool (any free connection) or one connection (a transaction's).
pub enum Exec<'c> {
    SqlitePool(&'c SqlitePool),
    PostgresPool(&'c PgPool),
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Exec<'_> {
    /// The same place, borrowed again: several statements on one transaction.
    pub fn reborrow(&mut self) -> Exec<'_> {
        match self {
            Exec::SqlitePool(p) => Exec::SqlitePool(p),
            Exec::PostgresPool(p) => Exec::PostgresPool(p),
            Exec::Sqlite(c) => Exec::Sqlite(c),
            Exec::Postgres(c) => Exec::Postgres(c),
        }
    }
}

impl<'c> From<&'c Pool> for Exec<'c> {
    fn from(pool: &'c Pool) -> Self {
        match pool {
            Pool::Sqlite(p) => Exec::SqlitePool(p),
            Pool::Postgres(p) => Exec::PostgresPool(p),
        }
    }
}

impl<'c> From<&'c mut Tx> for Exec<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        match tx {
            Tx::Sqlite(tx) => Exec::Sqlite(tx),
            Tx::Postgres(tx) => Exec::Postgres(tx),
        }
    }
}

impl<'c> From<&'c mut Conn> for Exec<'c> {
    fn from(conn: &'c mut Conn) -> Self {
        match conn {
            Conn::Sqlite(c) => Exec::Sqlite(c),
            Conn::Postgres(c) => Exec::Postgres(c),
        }
    }
}

impl<'a, 'c: 'a> From<&'a mut Exec<'c>> for Exec<'a> {
    fn from(exec: &'a mut Exec<'c>) -> Self {
        exec.reborrow()
    }
}

impl<'c> From<&'c mut crate::WriteTx> for Exec<'c> {
    fn from(tx: &'c mut crate::WriteTx) -> Self {
        Exec::from(&mut **tx)
    }
}

/// A statement argument, held until the statement runs on an engine. A null keeps its type:
/// PostgreSQL declares every parameter's type.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// What can be bound as a statement argument.
pub trait IntoArg {
    /// This type's null, for `Option<Self>`.
    const NULL: Arg;
    fn into_arg(self) -> Arg;
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl IntoArg for $t {
            const NULL: Arg = Arg::Int(None);
            fn into_arg(self) -> Arg {
                Arg::Int(Some(i64::from(self)))
            }
        }
    )*};
}
int_arg!(i64, i32, u32, i16, u16, u8);

impl IntoArg for f64 {
    const NULL: Arg = Arg::Real(None);
    fn into_arg(self) -> Arg {
        Arg::Real(Some(self))
    }
}

impl IntoArg for bool {
    const NULL: Arg = Arg::Bool(None);
    fn into_arg(self) -> Arg {
        Arg::Bool(Some(self))
    }
}

impl IntoArg for String {
    const NULL: Arg = Arg::Text(None);
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self))
    }
}

impl IntoArg for &str {
    const NULL: Arg = Arg::Text(None);
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self.to_owned()))
    }
}

impl IntoArg for Vec<u8> {
    const NULL: Arg = Arg::Bytes(None);
    fn into_arg(self) -> Arg {
        Arg::Bytes(Some(self))
    }
}

impl IntoArg for &[u8] {
    const NULL: Arg = Arg::Bytes(None);
    fn into_arg(self) -> Arg {
        Arg::Bytes(Some(self.to_vec()))
    }
}

impl<T: IntoArg> IntoArg for Option<T> {
    const NULL: Arg = T::NULL;
    fn into_arg(self) -> Arg {
        match self {
            Some(v) => v.into_arg(),
            None => T::NULL,
        }
    }
}

/// Anything bound by reference is bound as a copy of its value (`&String`, `&i64`, `&&str`).
impl<T: IntoArg + Clone> IntoArg for &T {
    const NULL: Arg = T::NULL;
    fn into_arg(self) -> Arg {
        self.clone().into_arg()
    }
}

/// A row of either engine.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A column by name (`&str`) or position (`usize`), on either engine.
pub trait Index: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Copy + std::fmt::Debug {}
impl<I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Copy + std::fmt::Debug> Index for I {}

impl Row {
    /// Column `index` as a `T`; an error if it is missing or holds another type.
    pub fn try_get<T: Value, I: Index>(&self, index: I) -> Result<T, sqlx::Error> {
        match self {
            Row::Sqlite(row) => T::from_sqlite(row, index),
            Row::Postgres(row) => T::from_postgres(row, index),
        }
    }

    /// Text column `index`, borrowed from the row.
    pub fn try_get_str<I: Index>(&self, index: I) -> Result<&str, sqlx::Error> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, index),
            Row::Postgres(row) => sqlx::Row::try_get(row, index),
        }
    }

    pub fn len(&self) -> usize {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(row) => row.len(),
            Row::Postgres(row) => row.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a column can be read as.
pub trait Value: Sized {
    fn from_sqlite<I: Index>(row: &SqliteRow, index: I) -> Result<Self, sqlx::Error>;
    fn from_postgres<I: Index>(row: &PgRow, index: I) -> Result<Self, sqlx::Error>;
}

macro_rules! plain_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn from_sqlite<I: Index>(row: &SqliteRow, index: I) -> Result<Self, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn from_postgres<I: Index>(row: &PgRow, index: I) -> Result<Self, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
        }
        impl Value for Option<$t> {
            fn from_sqlite<I: Index>(row: &SqliteRow, index: I) -> Result<Self, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn from_postgres<I: Index>(row: &PgRow, index: I) -> Result<Self, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
        }
    )*};
}
plain_value!(String, Vec<u8>, bool, f64);

/// PostgreSQL types an integer expression by its operands (`LENGTH` and literals are
/// `INTEGER`, `COUNT` is `BIGINT`); SQLite has one integer type. An `i64` reads either.
fn postgres_int<I: Index>(row: &PgRow, index: I) -> Result<Option<i64>, sqlx::Error> {
    match sqlx::Row::try_get::<Option<i64>, _>(row, index) {
        Err(sqlx::Error::ColumnDecode { .. }) => match sqlx::Row::try_get::<Option<i32>, _>(row, index) {
            Ok(v) => Ok(v.map(i64::from)),
            Err(_) => Ok(sqlx::Row::try_get::<Option<i16>, _>(row, index)?.map(i64::from)),
        },
        other => other,
    }
}

impl Value for i64 {
    fn from_sqlite<I: Index>(row: &SqliteRow, index: I) -> Result<Self, sqlx::Error> {
        sqlx::Row::try_get(row, index)
    }
    fn from_postgres<I: Index>(row: &PgRow, index: I) -> Result<Self, sqlx::Error> {
        postgres_int(row, index)?.ok_or_else(|| sqlx::Error::ColumnDecode { index: format!("{index:?}"), source: "unexpected NULL".into() })
    }
}

impl Value for Option<i64> {
    fn from_sqlite<I: Index>(row: &SqliteRow, index: I) -> Result<Self, sqlx::Error> {
        sqlx::Row::try_get(row, index)
    }
    fn from_postgres<I: Index>(row: &PgRow, index: I) -> Result<Self, sqlx::Error> {
        postgres_int(row, index)
    }
}

/// A row read into a Rust value: tuples of [`Value`]s by position.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, sqlx::Error>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Value),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self, sqlx::Error> {
                Ok(($(row.try_get::<$t, usize>($i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, J 8);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, J 8, K 9);

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A statement and its arguments.
#[derive(Debug, Clone)]
pub struct Query {
    sql: SqlStr,
    args: Vec<Arg>,
}

/// A statement (see the module's note on portable SQL).
pub fn query(sql: impl SqlSafeStr) -> Query {
    Query { sql: sql.into_sql_str(), args: Vec::new() }
}

/// A statement whose rows are read as `T`s.
pub fn query_as<T: FromRow>(sql: impl SqlSafeStr) -> QueryAs<T> {
    QueryAs { query: query(sql), _row: PhantomData }
}

/// A statement whose rows' first column is read as a `T`.
pub fn query_scalar<T: Value>(sql: impl SqlSafeStr) -> QueryScalar<T> {
    QueryScalar { query: query(sql), _value: PhantomData }
}

fn sqlite_args(args: Vec<Arg>) -> sqlx::sqlite::SqliteArguments {
    use sqlx::Arguments as _;
    let mut out = sqlx::sqlite::SqliteArguments::default();
    out.reserve(args.len(), 0);
    for arg in args {
        // Adding a value of a type the driver encodes cannot fail.
        let _ = match arg {
            Arg::Int(v) => out.add(v),
            Arg::Real(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::Bytes(v) => out.add(v),
        };
    }
    out
}

fn postgres_args(args: Vec<Arg>) -> Result<sqlx::postgres::PgArguments, sqlx::Error> {
    use sqlx::Arguments as _;
    let mut out = sqlx::postgres::PgArguments::default();
    out.reserve(args.len(), 0);
    for arg in args {
        match arg {
            Arg::Int(v) => out.add(v),
            Arg::Real(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::Bytes(v) => out.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

impl Query {
    pub fn bind(mut self, value: impl IntoArg) -> Self {
        self.args.push(value.into_arg());
        self
    }

    /// Binds arguments collected beforehand, in order.
    pub fn args(mut self, args: Vec<Arg>) -> Self {
        self.args.extend(args);
        self
    }

    /// The statement text, for logs and tests.
    pub fn sql(&self) -> &str {
        self.sql.as_str()
    }

    pub async fn execute<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Done, sqlx::Error> {
        let Query { sql, args } = self;
        let rows = match exec.into() {
            Exec::SqlitePool(p) => sqlx::query_with(sql, sqlite_args(args)).execute(p).await?.rows_affected(),
            Exec::Sqlite(c) => sqlx::query_with(sql, sqlite_args(args)).execute(c).await?.rows_affected(),
            Exec::PostgresPool(p) => sqlx::query_with(sql, postgres_args(args)?).execute(p).await?.rows_affected(),
            Exec::Postgres(c) => sqlx::query_with(sql, postgres_args(args)?).execute(c).await?.rows_affected(),
        };
        Ok(Done { rows })
    }

    pub async fn fetch_all<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Vec<Row>, sqlx::Error> {
        let Query { sql, args } = self;
        Ok(match exec.into() {
            Exec::SqlitePool(p) => sqlx::query_with(sql, sqlite_args(args)).fetch_all(p).await?.into_iter().map(Row::Sqlite).collect(),
            Exec::Sqlite(c) => sqlx::query_with(sql, sqlite_args(args)).fetch_all(c).await?.into_iter().map(Row::Sqlite).collect(),
            Exec::PostgresPool(p) => {
                sqlx::query_with(sql, postgres_args(args)?).fetch_all(p).await?.into_iter().map(Row::Postgres).collect()
            }
            Exec::Postgres(c) => sqlx::query_with(sql, postgres_args(args)?).fetch_all(c).await?.into_iter().map(Row::Postgres).collect(),
        })
    }

    pub async fn fetch_optional<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Option<Row>, sqlx::Error> {
        let Query { sql, args } = self;
        Ok(match exec.into() {
            Exec::SqlitePool(p) => sqlx::query_with(sql, sqlite_args(args)).fetch_optional(p).await?.map(Row::Sqlite),
            Exec::Sqlite(c) => sqlx::query_with(sql, sqlite_args(args)).fetch_optional(c).await?.map(Row::Sqlite),
            Exec::PostgresPool(p) => sqlx::query_with(sql, postgres_args(args)?).fetch_optional(p).await?.map(Row::Postgres),
            Exec::Postgres(c) => sqlx::query_with(sql, postgres_args(args)?).fetch_optional(c).await?.map(Row::Postgres),
        })
    }

    pub async fn fetch_one<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Row, sqlx::Error> {
        self.fetch_optional(exec).await?.ok_or(sqlx::Error::RowNotFound)
    }
}

/// [`query_as`]'s statement.
pub struct QueryAs<T> {
    query: Query,
    _row: PhantomData<fn() -> T>,
}

impl<T: FromRow> QueryAs<T> {
    pub fn bind(mut self, value: impl IntoArg) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Vec<T>, sqlx::Error> {
        self.query.fetch_all(exec).await?.iter().map(T::from_row).collect()
    }

    pub async fn fetch_optional<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Option<T>, sqlx::Error> {
        self.query.fetch_optional(exec).await?.as_ref().map(T::from_row).transpose()
    }

    pub async fn fetch_one<'c>(self, exec: impl Into<Exec<'c>>) -> Result<T, sqlx::Error> {
        T::from_row(&self.query.fetch_one(exec).await?)
    }
}

/// [`query_scalar`]'s statement.
pub struct QueryScalar<T> {
    query: Query,
    _value: PhantomData<fn() -> T>,
}

impl<T: Value> QueryScalar<T> {
    pub fn bind(mut self, value: impl IntoArg) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Vec<T>, sqlx::Error> {
        self.query.fetch_all(exec).await?.iter().map(|row| row.try_get(0usize)).collect()
    }

    pub async fn fetch_optional<'c>(self, exec: impl Into<Exec<'c>>) -> Result<Option<T>, sqlx::Error> {
        self.query.fetch_optional(exec).await?.map(|row| row.try_get(0usize)).transpose()
    }

    pub async fn fetch_one<'c>(self, exec: impl Into<Exec<'c>>) -> Result<T, sqlx::Error> {
        self.query.fetch_one(exec).await?.try_get(0usize)
    }
}

/// Creates database `name` (UTF-8, collation C, as [`crate::Db::connect`] requires) on the
/// PostgreSQL server at `server_url` (any database of it) and
/// returns the URL of the new one. `name` is letters, digits and `_`.
pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String, sqlx::Error> {
    use sqlx::Connection as _;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(sqlx::Error::Protocol(format!("{name:?} is not a plain database name")));
    }
    let mut conn = PgConnection::connect(server_url).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let options: sqlx::postgres::PgConnectOptions = server_url.parse()?;
    let base = server_url.split('?').next().unwrap_or(server_url);
    let base = match options.get_database() {
        Some(db) => base.strip_suffix(db).unwrap_or(base).trim_end_matches('/'),
        None => base.trim_end_matches('/'),
    };
    Ok(format!("{base}/{name}"))
}

/// `VALUES ($a, $b, …), (…)` for `rows` rows of `columns` columns, numbered from `$first`:
/// the placeholders of a multi-row `INSERT`, whose arguments are bound row by row.
pub fn values_placeholders(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(7 + rows * columns * 6);
    out.push_str("VALUES ");
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + r * columns + c).to_string());
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_row_in_turn() {
        assert_eq!(values_placeholders(2, 3, 1), "VALUES ($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_placeholders(1, 1, 4), "VALUES ($4)");
    }
}
