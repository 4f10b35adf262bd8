//! The seam between the center and a storage engine: what the layers above the
//! store need of it, as traits, so that a second engine (PostgreSQL, SPEC §11) can
//! stand beside SQLite without touching them.
//!
//! - [`Records`]: reading what is stored (results, status, the overview, audit, the
//!   operators' API, and the ingest's reads off the writer: a station's state right
//!   now, a stored batch, batches for `station recover`).
//! - [`IngestStore`]: the single writer's connection. It opens write transactions
//!   ([`IngestTx`]), each batch inside its own savepoint, and says whether another
//!   process has committed since it last looked ([`IngestOps::version`]).
//! - [`IngestOps`]: the writer's operations inside a transaction or savepoint.
//!
//! The offline commands' writes (`init`, `enroll`, `revoke`, `release`) are still
//! [`super::Store`]'s own methods.

use std::collections::{BTreeMap, HashMap};

use pollsync_election::TallySheet;
use pollsync_proto::{ChainHead, pb};

use super::apply::Presence;
use super::state::{Effects, StationKey, StationState};
use super::{
    AlertRow, CenterMeta, EvidenceBatch, ForkEvidence, KeyRow, StationContestTally, StationRow,
    StoredBatch,
};
use crate::context::Context;
use crate::error::Result;

/// Reading the center's records.
pub trait Records {
    /// The configuration stored at `init`.
    fn meta(&self) -> Result<CenterMeta>;
    /// Every alert, oldest first.
    fn alerts(&self) -> Result<Vec<AlertRow>>;
    /// Every station of the election, in id order.
    fn stations(&self) -> Result<Vec<StationRow>>;
    /// A station's head (`None` if the station is not in the store).
    fn head(&self, station: &str) -> Result<Option<ChainHead>>;
    /// Every key ever enrolled for `station`, oldest first.
    fn keys_of(&self, station: &str) -> Result<Vec<KeyRow>>;
    /// Every fork's signed evidence, by station then sequence.
    fn fork_evidence(&self) -> Result<Vec<ForkEvidence>>;
    /// Every station's running tallies, by station then contest.
    fn tallies(&self) -> Result<Vec<StationContestTally>>;
    /// Every station's computed tally per contest, as `station → contest → sheet`.
    fn tally_map(&self) -> Result<BTreeMap<String, BTreeMap<String, TallySheet>>>;
    /// The stored batches of `station` (all stations if `None`), by station then
    /// sequence.
    fn batches(&self, station: Option<&str>) -> Result<Vec<StoredBatch>>;
    /// Number of accepted batches and ballots per station.
    fn batch_counts(&self) -> Result<HashMap<String, (u64, u64)>>;
    /// `station`'s state and current key as stored right now (`None`: no such
    /// station).
    fn station_now(&self, station: &str) -> Result<Option<(StationState, Option<StationKey>)>>;
    /// The chain hash of `station`'s stored batch `sequence`.
    fn stored_hash(&self, station: &str, sequence: u64) -> Result<Option<[u8; 32]>>;
    /// The raw bytes of `station`'s stored batch `sequence`.
    fn stored_batch(&self, station: &str, sequence: u64) -> Result<Option<Vec<u8>>>;
    /// `station`'s stored batches `from..=to`, in sequence, each with the
    /// certificate that signed it.
    fn fetch_batches(&self, station: &str, from: u64, to: u64) -> Result<Vec<pb::FetchedBatch>>;
    /// Leaves in the transparency log.
    fn log_size(&self) -> Result<u64>;
    /// The log leaf of `station`'s accepted batch `sequence`.
    fn batch_leaf(&self, station: &str, sequence: u64) -> Result<Option<u64>>;
    /// The log's stored hashes at `indexes`, in order (fewer if one is not stored).
    fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>>;
    /// The records of leaves `from..to`, in order.
    fn log_entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>>;
    /// The newest signed checkpoint: its size and note.
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>>;
    /// The signed checkpoint of `size` leaves, if one was published.
    fn checkpoint_of_size(&self, size: u64) -> Result<Option<Vec<u8>>>;
    /// Every standing change's text: leaf, station, text, by leaf.
    fn standing_records(&self) -> Result<Vec<(u64, String, String)>>;
}

/// The ingest writer's operations, inside its transaction (or a savepoint of it).
pub trait IngestOps {
    /// A number that changes whenever another process commits to the store.
    fn version(&self) -> Result<i64>;
    /// Tells other writers of a shared store (inside this transaction) that it
    /// changes what they keep in memory; returns the version this writer will
    /// know once it commits.
    fn mark_written(&self) -> Result<i64>;
    /// Sends `payload` on `channel` to the other replicas of a shared store once
    /// this transaction commits.
    fn announce(&self, channel: &'static str, payload: &str) -> Result<()>;
    /// Every station's presence as stored (what every replica last wrote).
    fn read_presence(&self) -> Result<HashMap<String, Presence>>;
    /// Every station's state and current key, as stored.
    fn load_states(&self) -> Result<(HashMap<String, StationState>, HashMap<String, StationKey>)>;
    /// Every stored batch (raw bytes) of `station`, in sequence order.
    fn station_batches(&self, station: &str) -> Result<Vec<Vec<u8>>>;
    /// `station`'s stored batch `sequence`, whole (as fork evidence would keep it).
    fn stored_batch_row(&self, station: &str, sequence: u64) -> Result<Option<EvidenceBatch>>;
    /// Writes an accepted batch: its raw bytes and signature, its log leaf, the
    /// station's new head, the tallies, the contests it closes.
    fn apply_effects(
        &self,
        ctx: &Context,
        station: &str,
        batch_bytes: &[u8],
        signature: &[u8],
        effects: &Effects,
        leaf: u64,
    ) -> Result<()>;
    /// Marks `station` quarantined.
    fn quarantine(&self, station: &str) -> Result<()>;
    /// Keeps the signed evidence of a fork.
    fn insert_fork_evidence(&self, evidence: &ForkEvidence) -> Result<()>;
    /// Alerts stored per station.
    fn alert_counts(&self) -> Result<HashMap<String, u64>>;
    /// Stores an alert.
    fn insert_alert(
        &self,
        station: &str,
        kind: &str,
        sequence: u64,
        detail: &str,
        unix_ms: u64,
    ) -> Result<()>;
    /// Records the stations' presence (last contact, connection, local heads).
    fn write_presence(&self, entries: &HashMap<String, Presence>) -> Result<()>;
    /// Leaves in the transparency log (the next leaf's index).
    fn log_size(&self) -> Result<u64>;
    /// The log's stored hashes at `indexes`, in order (fewer if one is not stored).
    fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>>;
    /// Stores leaf `leaf`'s record and the stored hashes it adds, from stored-hash
    /// index `first` on.
    fn log_put(&self, leaf: u64, entry: &[u8], first: u64, hashes: &[[u8; 32]]) -> Result<()>;
    /// Stores the text of the standing change that leaf `leaf` records.
    fn put_standing_record(&self, leaf: u64, station: &str, text: &str) -> Result<()>;
    /// The size of the newest stored checkpoint.
    fn latest_checkpoint_size(&self) -> Result<Option<u64>>;
    /// Stores a signed checkpoint of `size` leaves.
    fn log_put_checkpoint(&self, size: u64, note: &[u8]) -> Result<()>;
    /// The lease row of the replica that signs checkpoints (`ingest::lease`).
    fn log_lease(&self) -> Result<Option<String>>;
    /// Stores the lease row.
    fn set_log_lease(&self, row: &str) -> Result<()>;
}

/// A unit of work: a transaction or a savepoint. Dropped without [`Unit::commit`],
/// everything done through it is rolled back.
pub trait Unit {
    /// The operations, inside this unit.
    fn ops(&self) -> &dyn IngestOps;
    /// Makes what was done durable (a transaction) or part of the enclosing
    /// transaction (a savepoint).
    fn commit(self) -> Result<()>;
}

/// A write transaction, in which each batch gets a savepoint of its own.
pub trait IngestTx: Unit {
    /// A savepoint inside this transaction.
    type Savepoint<'s>: Unit
    where
        Self: 's;
    /// Opens a savepoint.
    fn savepoint(&mut self) -> Result<Self::Savepoint<'_>>;
}

/// The single writer's connection to the store.
pub trait IngestStore: Send + 'static {
    /// Its transactions.
    type Tx<'t>: IngestTx
    where
        Self: 't;
    /// Opens a write transaction; other writers wait until it ends.
    fn write(&mut self) -> Result<Self::Tx<'_>>;
    /// Opens a transaction for a consistent read of several tables.
    fn read(&mut self) -> Result<Self::Tx<'_>>;
    /// The operations outside any transaction (each its own).
    fn ops(&self) -> &dyn IngestOps;
    /// Housekeeping while idle or after many bytes (SQLite: a WAL checkpoint).
    fn maintain(&mut self) -> Result<()>;
    /// Whether other processes may serve the same store at once (PostgreSQL
    /// replicas): the writers then take turns signing the log (`ingest::lease`)
    /// and share presence and decisions through the store.
    fn shared(&self) -> bool;
}
