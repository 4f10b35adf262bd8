//! Engine-neutral SQL: the store's statements are written once, with `?1, ?2, …`
//! placeholders and SQL that SQLite and PostgreSQL both run (`ON CONFLICT … DO
//! UPDATE`, `RETURNING`, `CAST(… AS BIGINT)`, table-qualified columns in upserts),
//! and run through [`Sql`] on either engine (SPEC §11). Every integer is an `i64`
//! (`BIGINT`), every flag an integer 0 or 1, every hash or key a byte string.
//!
//! This file holds the trait, the parameters and rows, and SQLite's side; an engine
//! adds its own implementation of [`Sql`] and [`SqlRow`].

use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::{CenterError, Result};

/// Which engine's words a text is rendered in (the schema: see
/// [`super::schema::schema`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A value bound to a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    /// An integer.
    Int(i64),
    /// A text.
    Text(&'a str),
    /// A byte string.
    Blob(&'a [u8]),
    /// NULL.
    Null,
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Blob(v)
    }
}

impl<'a> From<&'a [u8; 32]> for Param<'a> {
    fn from(v: &'a [u8; 32]) -> Self {
        Param::Blob(v)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Param::Null, Param::Text)
    }
}

/// The parameters of a statement: `sql_params![a, b, c]`.
macro_rules! sql_params {
    ($($p:expr),* $(,)?) => {
        &[$($crate::store::sql::Param::from($p)),*]
    };
}
pub(crate) use sql_params;

/// One row of a result, read by column index.
pub trait SqlRow {
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64>;
    /// An integer column that may be NULL.
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    /// A flag: an integer (0 or not) or a boolean.
    fn flag(&self, i: usize) -> Result<bool>;
    /// A text column.
    fn text(&self, i: usize) -> Result<String>;
    /// A text column that may be NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    /// A byte-string column.
    fn blob(&self, i: usize) -> Result<Vec<u8>>;
}

/// A connection (or a transaction on one) that runs statements.
pub trait Sql {
    /// Runs a statement; returns the rows it changed.
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64>;
    /// Runs a query, calling `each` on every row in order.
    fn each(
        &self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> Result<()>,
    ) -> Result<()>;
}

/// Conveniences over [`Sql`]: every row, the first row, exactly one row.
pub trait SqlExt: Sql {
    /// Every row, mapped.
    fn all<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        mut map: impl FnMut(&dyn SqlRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, params, &mut |r| {
            out.push(map(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, mapped, if there is one.
    fn first<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        map: impl FnOnce(&dyn SqlRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut map = Some(map);
        let mut out = None;
        self.each(sql, params, &mut |r| {
            if let Some(m) = map.take() {
                out = Some(m(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The one row a statement returns (an aggregate, an upsert's RETURNING).
    fn one<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        map: impl FnOnce(&dyn SqlRow) -> Result<T>,
    ) -> Result<T> {
        self.first(sql, params, map)?
            .ok_or_else(|| CenterError::Corrupt {
                detail: format!("no row from: {}", first_line(sql)),
            })
    }
}

impl<S: Sql + ?Sized> SqlExt for S {}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or("")
}

// ---------------------------------------------------------------------------
// SQLite.

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Int(v) => ValueRef::Integer(v),
            Param::Text(v) => ValueRef::Text(v.as_bytes()),
            Param::Blob(v) => ValueRef::Blob(v),
            Param::Null => ValueRef::Null,
        }))
    }
}

impl SqlRow for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }

    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.get::<_, i64>(i)? != 0)
    }

    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }

    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.get(i)?)
    }
}

impl Sql for rusqlite::Connection {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let changed = self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(changed as u64)
    }

    fn each(
        &self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_text_runs_with_every_kind_of_parameter() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER NOT NULL, b BLOB NOT NULL, o TEXT)",
        )
        .unwrap();
        let sql: &dyn Sql = &conn;
        let hash = [7u8; 32];
        assert_eq!(
            sql.exec(
                "INSERT INTO t (k, n, b, o) VALUES (?1, ?2, ?3, ?4)",
                sql_params!["a", 5i64, &hash, None::<&str>],
            )
            .unwrap(),
            1
        );
        let upserted = sql
            .one(
                "INSERT INTO t (k, n, b) VALUES (?1, ?2, ?3)
                 ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n RETURNING n",
                sql_params!["a", 2i64, &hash],
                |r| r.int(0),
            )
            .unwrap();
        assert_eq!(upserted, 7);
        let row = sql
            .first(
                "SELECT k, n, b, o, n > 6 FROM t WHERE k = ?1",
                sql_params!["a"],
                |r| {
                    Ok((
                        r.text(0)?,
                        r.int(1)?,
                        r.blob(2)?,
                        r.opt_text(3)?,
                        r.flag(4)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(row, Some(("a".into(), 7, hash.to_vec(), None, true)));
        assert_eq!(
            sql.first("SELECT n FROM t WHERE k = ?1", sql_params!["b"], |r| r
                .int(0))
                .unwrap(),
            None
        );
        assert!(matches!(
            sql.one("SELECT n FROM t WHERE k = ?1", sql_params!["b"], |r| r
                .int(0)),
            Err(CenterError::Corrupt { .. })
        ));
    }
}
