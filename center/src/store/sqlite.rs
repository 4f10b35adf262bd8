//! The SQLite engine behind the store's traits ([`super::engine`]): the ingest
//! writer's connection, its transactions and savepoints, and its operations, each
//! one of the SQL functions of [`super::apply`].

use std::collections::HashMap;

use rusqlite::{Connection, Savepoint, Transaction, TransactionBehavior};

use super::apply::{self, Presence};
use super::engine::{IngestOps, IngestStore, IngestTx, Unit};
use super::state::{Effects, StationKey, StationState};
use super::{EvidenceBatch, ForkEvidence, Store};
use crate::context::Context;
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

impl IngestOps for Connection {
    fn version(&self) -> Result<i64> {
        apply::data_version(self)
    }

    fn load_states(&self) -> Result<(HashMap<String, StationState>, HashMap<String, StationKey>)> {
        apply::load_states(self)
    }

    fn station_batches(&self, station: &str) -> Result<Vec<Vec<u8>>> {
        apply::station_batches(self, station)
    }

    fn stored_batch_row(&self, station: &str, sequence: u64) -> Result<Option<EvidenceBatch>> {
        apply::stored_batch_row(self, station, sequence)
    }

    fn apply_effects(
        &self,
        ctx: &Context,
        station: &str,
        batch_bytes: &[u8],
        signature: &[u8],
        effects: &Effects,
        leaf: u64,
    ) -> Result<()> {
        apply::apply_effects(self, ctx, station, batch_bytes, signature, effects, leaf)
    }

    fn quarantine(&self, station: &str) -> Result<()> {
        apply::quarantine(self, station)
    }

    fn insert_fork_evidence(&self, evidence: &ForkEvidence) -> Result<()> {
        apply::insert_fork_evidence(self, evidence)
    }

    fn alert_counts(&self) -> Result<HashMap<String, u64>> {
        apply::alert_counts(self)
    }

    fn insert_alert(
        &self,
        station: &str,
        kind: &str,
        sequence: u64,
        detail: &str,
        unix_ms: u64,
    ) -> Result<()> {
        apply::insert_alert(self, station, kind, sequence, detail, unix_ms)
    }

    fn write_presence(&self, entries: &HashMap<String, Presence>) -> Result<()> {
        apply::write_presence(self, entries)
    }

    fn log_size(&self) -> Result<u64> {
        apply::log_size(self)
    }

    fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>> {
        apply::log_hashes(self, indexes)
    }

    fn log_put(&self, leaf: u64, entry: &[u8], first: u64, hashes: &[[u8; 32]]) -> Result<()> {
        apply::log_put(self, leaf, entry, first, hashes)
    }

    fn put_standing_record(&self, leaf: u64, station: &str, text: &str) -> Result<()> {
        apply::put_standing_record(self, leaf, station, text)
    }

    fn latest_checkpoint_size(&self) -> Result<Option<u64>> {
        apply::latest_checkpoint_size(self)
    }

    fn log_put_checkpoint(&self, size: u64, note: &[u8]) -> Result<()> {
        apply::log_put_checkpoint(self, size, note)
    }
}
