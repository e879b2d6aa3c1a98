//! The shared queries' calls (`query(..).bind(..).fetch_one(conn)` and their kin),
//! carried out on a rusqlite connection by the thread that makes them.
//!
//! The queries in `sql/` are written once against sqlx's query API, which the
//! PostgreSQL backend uses as it is. On SQLite those same calls land here and run at
//! once, on the caller's thread: each returns a future that is already complete. A
//! statement touches SQLite's page cache and the operating system's, which takes
//! microseconds; what waits for the disk (a commit's fsync) or for another process
//! runs through `super::blocking`, which lets tokio move the runtime's other tasks to
//! another thread meanwhile. sqlx's SQLite driver hands every statement to a worker
//! thread and back instead: with a token create's six statements that cost about 40
//! context switches and 160 µs of CPU per create on a 2-core machine, more than the
//! create's own work (`scripts/bench-writes`, docs/benchmarks.md).

use std::future::{Ready, ready};
use std::marker::PhantomData;

use rusqlite::Result;
use rusqlite::types::{FromSql, ToSql, Value, ValueRef};

/// The connection the shared queries run on.
pub(crate) type Conn = rusqlite::Connection;

/// What the query calls run on: a connection borrowed for the call (sqlx's
/// `Executor`, which the shared code passes as `&mut *conn`).
pub(crate) trait Executor {
    /// The connection.
    fn conn(&self) -> &Conn;
}

impl Executor for &mut Conn {
    fn conn(&self) -> &Conn {
        self
    }
}

/// A result row: its values, owned.
#[derive(Debug)]
pub(crate) struct DbRow(Vec<Value>);

/// What the shared queries ask of a row (sqlx's `Row::try_get` by position).
pub(crate) trait Row {
    /// The value in column `i`, as `T`.
    fn try_get<T: FromSql>(&self, i: usize) -> Result<T>;
}

impl Row for DbRow {
    fn try_get<T: FromSql>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or(rusqlite::Error::InvalidColumnIndex(i))?;
        let kind = ValueRef::from(v).data_type();
        T::column_result(ValueRef::from(v)).map_err(|e| match e {
            rusqlite::types::FromSqlError::InvalidType => {
                rusqlite::Error::InvalidColumnType(i, String::new(), kind)
            }
            other => rusqlite::Error::FromSqlConversionFailure(i, kind, Box::new(other)),
        })
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    rows: u64,
}

impl Done {
    /// Rows inserted, changed or deleted.
    pub(crate) fn rows_affected(self) -> u64 {
        self.rows
    }
}

/// The arguments bound so far, or why one could not be.
#[derive(Debug, Default)]
struct Args {
    values: Vec<Value>,
    bad: Option<rusqlite::Error>,
}

impl Args {
    fn push<T: ToSql>(&mut self, v: T) {
        let value = match v.to_sql() {
            Ok(rusqlite::types::ToSqlOutput::Borrowed(r)) => match Value::try_from(r) {
                Ok(v) => v,
                Err(e) => {
                    self.bad.get_or_insert(rusqlite::Error::from(e));
                    Value::Null
                }
            },
            Ok(rusqlite::types::ToSqlOutput::Owned(v)) => v,
            Ok(_) => {
                self.bad
                    .get_or_insert(rusqlite::Error::ToSqlConversionFailure(
                        "a kind of value keygate does not bind".into(),
                    ));
                Value::Null
            }
            Err(e) => {
                self.bad.get_or_insert(e);
                Value::Null
            }
        };
        self.values.push(value);
    }
}

/// Runs `sql` with `args` and hands each row to `each`; returns the rows changed.
fn run(
    conn: &Conn,
    sql: &str,
    args: Args,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
) -> Result<u64> {
    if let Some(e) = args.bad {
        return Err(e);
    }
    let mut stmt = conn.prepare_cached(sql)?;
    let numbers = parameter_numbers(sql, &stmt)?;
    for (i, &n) in numbers.iter().enumerate() {
        let v = n
            .checked_sub(1)
            .and_then(|n| args.values.get(n))
            .ok_or(rusqlite::Error::InvalidParameterCount(n, args.values.len()))?;
        stmt.raw_bind_parameter(i + 1, v)?;
    }
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        each(row)?;
    }
    drop(rows);
    Ok(conn.changes())
}

/// A statement text's parameter numbers, by the text's address and length.
type Numbers = std::collections::HashMap<(usize, usize), std::rc::Rc<[usize]>>;

thread_local! {
    /// Each statement text's parameter numbers, by the text's address and length
    /// (the texts are `'static`): worked out once per thread, since SQLite finds a
    /// parameter's name by walking its list, which over a multi-row insert's hundred
    /// parameters made binding cost more than the insert.
    static NUMBERS: std::cell::RefCell<Numbers> = std::cell::RefCell::default();
}

/// For each parameter of `stmt` (prepared from `sql`) in SQLite's order, the argument
/// it takes: `$N` the Nth, as sqlx and PostgreSQL bind (SQLite itself numbers named
/// parameters in the order they first appear); a bare `?` the one at its position.
fn parameter_numbers(sql: &str, stmt: &rusqlite::Statement<'_>) -> Result<std::rc::Rc<[usize]>> {
    let key = (sql.as_ptr() as usize, sql.len());
    if let Some(found) = NUMBERS.with(|m| m.borrow().get(&key).cloned()) {
        return Ok(found);
    }
    let mut numbers = Vec::with_capacity(stmt.parameter_count());
    for i in 1..=stmt.parameter_count() {
        numbers.push(match stmt.parameter_name(i) {
            None => i,
            Some(name) => name
                .strip_prefix(['$', '?'])
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_owned()))?,
        });
    }
    let numbers: std::rc::Rc<[usize]> = numbers.into();
    NUMBERS.with(|m| m.borrow_mut().insert(key, numbers.clone()));
    Ok(numbers)
}

fn owned(row: &rusqlite::Row<'_>) -> Result<DbRow> {
    let n = row.as_ref().column_count();
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(Value::try_from(row.get_ref(i)?)?);
    }
    Ok(DbRow(values))
}

/// A query whose rows are read as [`DbRow`]s.
#[derive(Debug)]
pub(crate) struct Query {
    sql: &'static str,
    args: Args,
}

/// A statement, as `sqlx::query` takes it.
pub(crate) fn query(sql: &'static str) -> Query {
    Query {
        sql,
        args: Args::default(),
    }
}

impl Query {
    /// Binds the next `$N`.
    pub(crate) fn bind<T: ToSql>(mut self, v: T) -> Self {
        self.args.push(v);
        self
    }

    /// Up to `limit` rows, each read with `read` (the statement runs to its end).
    fn collect<T>(
        self,
        conn: &Conn,
        limit: usize,
        mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        run(conn, self.sql, self.args, |r| {
            if out.len() < limit {
                out.push(read(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn rows(self, conn: &Conn, limit: usize) -> Result<Vec<DbRow>> {
        self.collect(conn, limit, owned)
    }

    /// Every row.
    pub(crate) fn fetch_all(self, conn: impl Executor) -> Ready<Result<Vec<DbRow>>> {
        ready(self.rows(conn.conn(), usize::MAX))
    }

    /// The first row, if any (the statement runs to its end).
    pub(crate) fn fetch_optional(self, conn: impl Executor) -> Ready<Result<Option<DbRow>>> {
        ready(self.rows(conn.conn(), 1).map(|r| r.into_iter().next()))
    }

    /// The first row; no row is an error.
    pub(crate) fn fetch_one(self, conn: impl Executor) -> Ready<Result<DbRow>> {
        ready(
            self.rows(conn.conn(), 1)
                .and_then(|r| r.into_iter().next().ok_or_else(not_found)),
        )
    }

    /// Hands each row to `each` as it is read.
    pub(crate) fn for_each(
        self,
        conn: &Conn,
        each: &mut (dyn FnMut(&DbRow) -> crate::Result<()> + Send),
    ) -> crate::Result<()> {
        let mut failed = None;
        run(conn, self.sql, self.args, |r| {
            if failed.is_none() {
                failed = each(&owned(r)?).err();
            }
            Ok(())
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Runs the statement for its effect.
    pub(crate) fn execute(self, conn: impl Executor) -> Ready<Result<Done>> {
        ready(run(conn.conn(), self.sql, self.args, |_| Ok(())).map(|rows| Done { rows }))
    }
}

fn not_found() -> rusqlite::Error {
    rusqlite::Error::QueryReturnedNoRows
}

/// A query read as the first column of each row, as `sqlx::query_scalar` takes it.
#[derive(Debug)]
pub(crate) struct Scalar<O> {
    query: Query,
    out: PhantomData<fn() -> O>,
}

/// A statement whose first column is the answer.
pub(crate) fn query_scalar<O: FromSql>(sql: &'static str) -> Scalar<O> {
    Scalar {
        query: query(sql),
        out: PhantomData,
    }
}

impl<O: FromSql> Scalar<O> {
    /// Binds the next `$N`.
    pub(crate) fn bind<T: ToSql>(mut self, v: T) -> Self {
        self.query = self.query.bind(v);
        self
    }

    fn values(self, conn: &Conn, limit: usize) -> Result<Vec<O>> {
        self.query.collect(conn, limit, |r| r.get::<_, O>(0))
    }

    /// The first column of every row.
    pub(crate) fn fetch_all(self, conn: impl Executor) -> Ready<Result<Vec<O>>> {
        ready(self.values(conn.conn(), usize::MAX))
    }

    /// The first row's first column, if there is a row.
    pub(crate) fn fetch_optional(self, conn: impl Executor) -> Ready<Result<Option<O>>> {
        ready(self.values(conn.conn(), 1).map(|v| v.into_iter().next()))
    }

    /// The first row's first column; no row is an error.
    pub(crate) fn fetch_one(self, conn: impl Executor) -> Ready<Result<O>> {
        ready(
            self.values(conn.conn(), 1)
                .and_then(|v| v.into_iter().next().ok_or_else(not_found)),
        )
    }
}

/// Rows read as tuples, as `sqlx::query_as` takes it.
#[derive(Debug)]
pub(crate) struct As<O> {
    query: Query,
    out: PhantomData<fn() -> O>,
}

/// A statement whose rows are read as tuples.
pub(crate) fn query_as<O: FromRow>(sql: &'static str) -> As<O> {
    As {
        query: query(sql),
        out: PhantomData,
    }
}

/// A tuple read from a row, column by column.
pub(crate) trait FromRow: Sized {
    /// Reads the row.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: FromSql),+> FromRow for ($($t,)+) {
            fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);

impl<O: FromRow> As<O> {
    /// Binds the next `$N`.
    pub(crate) fn bind<T: ToSql>(mut self, v: T) -> Self {
        self.query = self.query.bind(v);
        self
    }

    /// Every row.
    pub(crate) fn fetch_all(self, conn: impl Executor) -> Ready<Result<Vec<O>>> {
        ready(self.query.collect(conn.conn(), usize::MAX, O::from_row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parameters_are_bound_by_their_number_not_by_where_they_first_appear() {
        let mut conn = Conn::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        // SQLite numbers `$2` first here; sqlx and PostgreSQL bind it to the second value.
        let v: i64 = query_scalar("SELECT $2 - $1")
            .bind(10_i64)
            .bind(3_i64)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, -7);
        let v: i64 = query_scalar("SELECT $1 * 100 + $1")
            .bind(4_i64)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, 404, "a number used twice is one value");
        let missing = query_scalar::<i64>("SELECT $1 + $2")
            .bind(1_i64)
            .fetch_one(&mut conn)
            .await;
        assert!(
            matches!(missing, Err(rusqlite::Error::InvalidParameterCount(2, 1))),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn statements_report_rows_changed_and_fetch_one_of_none_is_not_found() {
        let mut conn = Conn::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch("CREATE TABLE t (v INTEGER)")
            .unwrap_or_else(|e| panic!("{e}"));
        for v in 1..=3_i64 {
            query("INSERT INTO t (v) VALUES ($1)")
                .bind(v)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let done = query("UPDATE t SET v = v + 1 WHERE v >= $1")
            .bind(2_i64)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.rows_affected(), 2);
        let none = query("SELECT v FROM t WHERE v = $1")
            .bind(99_i64)
            .fetch_one(&mut conn)
            .await;
        assert!(matches!(none, Err(rusqlite::Error::QueryReturnedNoRows)));
        let rows: Vec<(i64, String)> = query_as("SELECT v, 'x' || v FROM t ORDER BY v")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rows,
            vec![(1, "x1".into()), (3, "x3".into()), (4, "x4".into())]
        );
    }
}
