//! PostgreSQL's side of the store (SPEC §11): [`Sql`] over a `postgres` client
//! (tokio-postgres, driven by its own runtime on the calling thread), so that the
//! store's statements, written once ([`super::apply`], [`super::records`]), run
//! here unchanged. Placeholders `?N` become `$N`; a parameter is converted to
//! whatever type PostgreSQL inferred for it (an `i64` into `INT4` is refused if it
//! does not fit, never cut); prepared statements are kept per connection.
//!
//! The client blocks its thread: the ingest writer is a thread of its own and the
//! HTTP readers run on tokio's blocking pool; a call made on a worker of a
//! multi-threaded runtime (a station's Hello reading its state) first moves the
//! worker's other tasks away ([`blocking`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use super::apply;
use super::engine::{IngestOps, IngestStore, IngestTx, Unit};
use super::pg_link::{self, Link};
use super::sql::{Param, Sql, SqlRow};
use crate::error::{CenterError, Result};

/// Most prepared statements kept per connection (the store uses a few dozen).
pub const MAX_PREPARED_STATEMENTS: usize = 256;

/// Runs `f`, which blocks its thread on the database, so that it may be called
/// from anywhere: on a worker of a multi-threaded tokio runtime through
/// `block_in_place`, inside a current-thread runtime on a thread of its own (the
/// postgres client cannot run its own runtime on a runtime's thread), elsewhere
/// directly.
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(t) => t,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}

/// Environment variable read for the password when the URL has none (as libpq
/// does), so that it need not be on a command line.
pub const PASSWORD_ENV: &str = "PGPASSWORD";

/// Connects to `url` (its password, if it has none, from [`PASSWORD_ENV`]), over
/// TLS unless the database is on this machine (`store::pg_link`).
fn connect(url: &str) -> Result<Client> {
    let mut config: postgres::Config = pg_link::with_known_sslmode(url)
        .parse()
        .map_err(|e| pg_error("the store's URL", e))?;
    if config.get_password().is_none()
        && let Some(password) = std::env::var_os(PASSWORD_ENV)
    {
        config.password(password.as_encoded_bytes());
    }
    let link = pg_link::link_from_env(&mut config)?;
    blocking(|| match link {
        Link::Plain => config.connect(NoTls),
        Link::Tls(tls) => config.connect(tls),
    })
    .map_err(|e| pg_error("cannot connect", e))
}

/// One PostgreSQL connection of the store.
pub struct PgConn {
    /// The server, to connect again after it went away.
    url: String,
    /// Always `Some` until dropped (taken then, to close it off any runtime).
    client: RefCell<Option<Client>>,
    /// Whether a transaction is open: a connection lost inside one is never
    /// replaced until it ends (what follows would run outside the transaction).
    in_transaction: std::cell::Cell<bool>,
    prepared: RefCell<HashMap<String, Statement>>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn").finish_non_exhaustive()
    }
}

/// A PostgreSQL error as the center's error, with what was being run.
fn pg_error(what: &str, e: postgres::Error) -> CenterError {
    CenterError::Postgres {
        detail: format!("{what}: {}", pg_words(&e)),
    }
}

/// The server's own words when there are some (`ERROR: duplicate key …`).
fn pg_words(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match e.source() {
            // "invalid configuration: password missing", "error connecting to
            // server: Connection refused": the cause says what to mend.
            Some(cause) if !e.to_string().contains(&cause.to_string()) => {
                let hint = if cause.to_string().contains("password missing") {
                    format!(" (give it in {PASSWORD_ENV})")
                } else {
                    String::new()
                };
                format!("{e}: {cause}{hint}")
            }
            _ => e.to_string(),
        },
    }
}

/// `?N` placeholders as PostgreSQL's `$N` (the store's SQL has no `?` elsewhere:
/// no string literal holds one).
pub fn dollar_placeholders(sql: &str) -> String {
    debug_assert!(!sql.contains('\''), "no string literals in the store's SQL");
    sql.replace('?', "$")
}

impl PgConn {
    /// Connects to `url` (`postgres://user@host:port/db`; over the network by TLS
    /// only: `store::pg_link`).
    pub fn connect(url: &str) -> Result<PgConn> {
        let client = connect(url)?;
        Ok(PgConn {
            url: url.to_owned(),
            in_transaction: std::cell::Cell::new(false),
            client: RefCell::new(Some(client)),
            prepared: RefCell::new(HashMap::new()),
        })
    }

    /// The server restarted or the link broke: connect again, but only between
    /// transactions (statements prepared on the old connection are forgotten).
    fn reconnect_if_lost(&self) -> Result<()> {
        let mut slot = self.client.borrow_mut();
        if slot.as_ref().is_some_and(Client::is_closed) && !self.in_transaction.get() {
            let fresh = connect(&self.url)?;
            if let Some(old) = slot.replace(fresh) {
                blocking(|| drop(old));
            }
            self.prepared.borrow_mut().clear();
        }
        Ok(())
    }

    /// Runs `f` on the client, off any runtime worker ([`blocking`]).
    fn with<T: Send>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Client) -> std::result::Result<T, postgres::Error> + Send,
    ) -> Result<T> {
        self.reconnect_if_lost()?;
        let mut slot = self.client.borrow_mut();
        let client = slot.as_mut().ok_or_else(|| CenterError::Postgres {
            detail: "the connection is closed".into(),
        })?;
        blocking(|| f(client)).map_err(|e| pg_error(what, e))
    }

    /// Opens a transaction: a write one takes the store's one write lock (the
    /// row lock of the store version's row, what SQLite's `BEGIN IMMEDIATE`
    /// gives: see [`WRITE_LOCK_SQL`]), a read one sees one snapshot. Every writer of a store,
    /// the ingest writer and the offline commands alike, opens its transactions
    /// here.
    pub fn begin(&self, write: bool) -> Result<()> {
        if !write {
            return self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        }
        self.batch("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        if let Err(e) = self.exec(
            WRITE_LOCK_SQL,
            &[Param::Text(apply::STORE_VERSION_KEY), Param::Blob(b"0")],
        ) {
            let _ = self.batch("ROLLBACK");
            return Err(e);
        }
        Ok(())
    }

    /// Runs `statement` (prepared from `sql`) with `params` bound, on the client.
    fn run<T: Send>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: impl FnOnce(
            &mut Client,
            &Statement,
            &[&(dyn ToSql + Sync)],
        ) -> std::result::Result<T, postgres::Error>
        + Send,
    ) -> Result<T> {
        let statement = self.statement(sql)?;
        let bound: Vec<Bound<'_>> = params.iter().copied().map(Bound).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        self.with(first_line(sql), |c| f(c, &statement, &refs))
    }

    /// Runs statements with no parameters and no result (`BEGIN`, DDL). A
    /// `BEGIN` opens a transaction, a `COMMIT` or `ROLLBACK` ends it.
    pub fn batch(&self, sql: &str) -> Result<()> {
        let word = sql.split_whitespace().next().unwrap_or("");
        if word == "COMMIT" || word == "ROLLBACK" {
            self.in_transaction.set(false);
        }
        let result = self.with(first_line(sql), |c| c.batch_execute(sql));
        if word == "BEGIN" && result.is_ok() {
            self.in_transaction.set(true);
        }
        result
    }

    fn statement(&self, sql: &str) -> Result<Statement> {
        self.reconnect_if_lost()?;
        if let Some(s) = self.prepared.borrow().get(sql) {
            return Ok(s.clone());
        }
        let statement = self.with(first_line(sql), |c| c.prepare(&dollar_placeholders(sql)))?;
        let mut prepared = self.prepared.borrow_mut();
        if prepared.len() >= MAX_PREPARED_STATEMENTS {
            prepared.clear();
        }
        prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Drop for PgConn {
    /// Closing the client blocks on its own runtime: done off any worker too.
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().take() {
            blocking(|| drop(client));
        }
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or("")
}

/// A [`Param`] bound to whatever type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct Bound<'a>(Param<'a>);

impl ToSql for Bound<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot go into a {ty} column").into()),
            },
            Param::Text(v) => v.to_sql(ty, out),
            Param::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl Sql for PgConn {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.run(sql, params, |c, statement, refs| c.execute(statement, refs))
    }

    fn each(
        &self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> Result<()>,
    ) -> Result<()> {
        let rows = self.run(sql, params, |c, statement, refs| c.query(statement, refs))?;
        for row in &rows {
            each(row)?;
        }
        Ok(())
    }
}

fn column(e: postgres::Error, i: usize) -> CenterError {
    CenterError::Postgres {
        detail: format!("column {i}: {e}"),
    }
}

impl SqlRow for postgres::Row {
    fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| CenterError::Postgres {
            detail: format!("column {i} is NULL"),
        })
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        let ty = self.columns().get(i).map(|c| c.type_().clone());
        match ty {
            Some(Type::INT4) => Ok(self
                .try_get::<_, Option<i32>>(i)
                .map_err(|e| column(e, i))?
                .map(i64::from)),
            Some(Type::INT2) => Ok(self
                .try_get::<_, Option<i16>>(i)
                .map_err(|e| column(e, i))?
                .map(i64::from)),
            _ => self.try_get(i).map_err(|e| column(e, i)),
        }
    }

    fn flag(&self, i: usize) -> Result<bool> {
        match self.columns().get(i).map(|c| c.type_()) {
            Some(&Type::BOOL) => self.try_get(i).map_err(|e| column(e, i)),
            _ => Ok(self.int(i)? != 0),
        }
    }

    fn text(&self, i: usize) -> Result<String> {
        self.try_get(i).map_err(|e| column(e, i))
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).map_err(|e| column(e, i))
    }

    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.try_get(i).map_err(|e| column(e, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_the_postgres_way() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c = ?2)"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $2)"
        );
    }
}

impl super::records::AsSql for PgConn {
    fn sql(&self) -> &dyn Sql {
        self
    }
}

// ---------------------------------------------------------------------------
// The ingest writer on PostgreSQL: transactions, savepoints, operations.

/// The ingest writer's PostgreSQL connection.
#[derive(Debug)]
pub struct PgIngest {
    conn: PgConn,
}

impl PgIngest {
    /// The writer on `conn`.
    pub fn new(conn: PgConn) -> PgIngest {
        PgIngest { conn }
    }
}

/// A transaction on a [`PgConn`]: rolled back when dropped without
/// [`Unit::commit`].
#[derive(Debug)]
pub struct PgTx<'c> {
    conn: &'c PgConn,
    done: bool,
    savepoints: u32,
}

/// A savepoint inside a [`PgTx`]: rolled back to when dropped without
/// [`Unit::commit`].
#[derive(Debug)]
pub struct PgSavepoint<'t> {
    conn: &'t PgConn,
    name: String,
    done: bool,
}

impl<'c> PgTx<'c> {
    fn begin(conn: &'c PgConn, write: bool) -> Result<PgTx<'c>> {
        conn.begin(write)?;
        Ok(PgTx {
            conn,
            done: false,
            savepoints: 0,
        })
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.batch("ROLLBACK");
        }
    }
}

impl Drop for PgSavepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.batch(&format!(
                "ROLLBACK TO SAVEPOINT {0}; RELEASE SAVEPOINT {0}",
                self.name
            ));
        }
    }
}

impl Unit for PgTx<'_> {
    fn ops(&self) -> &dyn IngestOps {
        self.conn
    }

    fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.batch("COMMIT")
    }
}

impl IngestTx for PgTx<'_> {
    type Savepoint<'s>
        = PgSavepoint<'s>
    where
        Self: 's;

    fn savepoint(&mut self) -> Result<PgSavepoint<'_>> {
        self.savepoints += 1;
        let name = format!("batch_{}", self.savepoints);
        self.conn.batch(&format!("SAVEPOINT {name}"))?;
        Ok(PgSavepoint {
            conn: self.conn,
            name,
            done: false,
        })
    }
}

impl Unit for PgSavepoint<'_> {
    fn ops(&self) -> &dyn IngestOps {
        self.conn
    }

    fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.batch(&format!("RELEASE SAVEPOINT {}", self.name))
    }
}

impl IngestStore for PgIngest {
    type Tx<'t> = PgTx<'t>;

    /// A write transaction. One writer at a time holds the store's write lock
    /// ([`WRITE_LOCK_SQL`]), as SQLite's `BEGIN IMMEDIATE` does.
    fn write(&mut self) -> Result<PgTx<'_>> {
        PgTx::begin(&self.conn, true)
    }

    fn read(&mut self) -> Result<PgTx<'_>> {
        PgTx::begin(&self.conn, false)
    }

    fn ops(&self) -> &dyn IngestOps {
        &self.conn
    }

    /// Nothing to do: PostgreSQL checkpoints and vacuums by itself.
    fn maintain(&mut self) -> Result<()> {
        Ok(())
    }

    /// Several `center serve` replicas may share one database.
    fn shared(&self) -> bool {
        true
    }
}

/// A connection of its own that waits for notifications on one channel (LISTEN):
/// how a replica hears what the others decided (`ingest::relay`).
pub struct PgListener {
    client: Client,
}

impl PgListener {
    /// Connects to `url` and listens on `channel` (a constant identifier of ours).
    pub fn listen(url: &str, channel: &'static str) -> Result<PgListener> {
        debug_assert!(channel.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        let mut client = connect(url)?;
        blocking(|| client.batch_execute(&format!("LISTEN {channel}")))
            .map_err(|e| pg_error("LISTEN", e))?;
        Ok(PgListener { client })
    }

    /// The next notification's payload, waiting at most `timeout_ms` (`None`:
    /// none came). An error means the connection is gone: listen again.
    pub fn next(&mut self, timeout_ms: u64) -> Result<Option<String>> {
        use postgres::fallible_iterator::FallibleIterator as _;
        if self.client.is_closed() {
            return Err(CenterError::Postgres {
                detail: "the listening connection is closed".into(),
            });
        }
        let mut notifications = self.client.notifications();
        let mut waiting = notifications.timeout_iter(Duration::from_millis(timeout_ms));
        let next =
            blocking(|| waiting.next()).map_err(|e| pg_error("waiting for notifications", e))?;
        Ok(next.map(|n| n.payload().to_owned()))
    }
}

/// The write lock every writer of a PostgreSQL store takes first in its
/// transaction: an upsert of the store version's row that changes nothing but
/// holds the row's lock until the transaction ends, so writers take turns. Plain
/// row locking, as every PostgreSQL-compatible engine has (no advisory locks);
/// READ COMMITTED then lets each later statement see what the previous writer
/// committed.
pub const WRITE_LOCK_SQL: &str = "INSERT INTO meta (key, value) VALUES (?1, ?2)
     ON CONFLICT (key) DO UPDATE SET value = meta.value";

impl apply::Engine for PgConn {
    /// The store's version: a counter every writer of the store moves in its
    /// transaction (`meta` key [`apply::STORE_VERSION_KEY`]; 0 until one does).
    fn version(&self) -> Result<i64> {
        apply::stored_version(self)
    }

    fn mark_written(&self) -> Result<i64> {
        apply::bump_version(self)
    }

    /// `pg_notify`: delivered to every listener when the transaction commits.
    fn announce(&self, channel: &'static str, payload: &str) -> Result<()> {
        self.each(
            "SELECT pg_notify(?1, ?2)",
            &[Param::Text(channel), Param::Text(payload)],
            &mut |_| Ok(()),
        )
    }
}
