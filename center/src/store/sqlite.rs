//! The SQLite engine behind the store's traits ([`super::engine`]): the ingest
//! writer's connection, its transactions and savepoints; its operations are
//! [`super::apply`]'s, as on every engine.

use rusqlite::{Connection, Savepoint, Transaction, TransactionBehavior};

use super::Store;
use super::apply;
use super::engine::{IngestOps, IngestStore, IngestTx, Unit};
use crate::error::Result;

/// The ingest writer's SQLite connection. WAL checkpoints run when it is idle (or
/// past a size, see [`IngestStore::maintain`]), not inside a burst's commits.
pub struct SqliteIngest {
    conn: Connection,
}

impl SqliteIngest {
    /// Takes `store`'s connection over for the writer.
    pub fn new(store: Store) -> Result<SqliteIngest> {
        let location = store.location().describe();
        let conn = store
            .into_connection()
            .ok_or_else(|| crate::error::CenterError::Corrupt {
                detail: format!("{location} is not a SQLite store"),
            })?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(SqliteIngest { conn })
    }
}

impl IngestStore for SqliteIngest {
    type Tx<'t> = Transaction<'t>;

    fn write(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    fn read(&mut self) -> Result<Transaction<'_>> {
        Ok(self.conn.transaction()?)
    }

    fn ops(&self) -> &dyn IngestOps {
        &self.conn
    }

    /// Copies the WAL into the database file (PASSIVE: never waits for readers).
    fn maintain(&mut self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// One `center serve` per folder.
    fn shared(&self) -> bool {
        false
    }
}

impl Unit for Transaction<'_> {
    fn ops(&self) -> &dyn IngestOps {
        &**self
    }

    fn commit(self) -> Result<()> {
        Ok(Transaction::commit(self)?)
    }
}

impl IngestTx for Transaction<'_> {
    type Savepoint<'s>
        = Savepoint<'s>
    where
        Self: 's;

    fn savepoint(&mut self) -> Result<Savepoint<'_>> {
        Ok(Transaction::savepoint(self)?)
    }
}

impl Unit for Savepoint<'_> {
    fn ops(&self) -> &dyn IngestOps {
        &**self
    }

    fn commit(self) -> Result<()> {
        Ok(Savepoint::commit(self)?)
    }
}

impl apply::Engine for Connection {
    fn version(&self) -> Result<i64> {
        apply::data_version(self)
    }

    /// SQLite's data version moves by itself for every other connection and never
    /// for our own commits: nothing to write.
    fn mark_written(&self) -> Result<i64> {
        apply::data_version(self)
    }

    /// Nobody to tell: one `center serve` per folder.
    fn announce(&self, _channel: &'static str, _payload: &str) -> Result<()> {
        Ok(())
    }
}
