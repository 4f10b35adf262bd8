//! The tokio driver around the sync core ([`crate::sync::core::Core`]): it connects
//! to the center over mutual TLS, says Hello, streams the batches the core picks over
//! one bidirectional Push call fed from a channel, hands every `Ack` and every passed
//! deadline to the core, records acknowledgements and the last contact in the store,
//! and reconnects with backoff when the connection fails, to the next of the
//! center's addresses (fail-over, SPEC §11) as the core says. The core decides;
//! this moves bytes, does store I/O and sleeps until the core's next deadline.
//!
//! SQLite is synchronous: every store call runs on tokio's blocking pool, and each of
//! the three jobs has its own connection. Split by job:
//! - [`session`]: one connection (connect, Hello, push, acknowledgements);
//! - [`recorder`]: writes acknowledgements, coalesced;
//! - [`sealer`]: `station run`'s sealing of what other `station` processes recorded;
//! - [`outbox`]: batches read ahead for sending; [`clock`]: the core's `now_ms`;
//! - [`receipts`]: `station run`'s receipts of acknowledged batches;
//! - [`note`]: what the person at the station is told.
//!
//! Two ways to use it:
//! - [`run()`] (`station run`): seal every `seal_interval_ms`, push as batches appear,
//!   reconnect forever, until told to stop. A terminal rejection stops pushing but
//!   not sealing (G5: recording never stops), except when the center holds batches
//!   this device lacks: then sealing stops too, because new batches would fork.
//! - [`sync()`] (`station sync`): connect, compare heads, seal everything, push until
//!   the center has acknowledged it all; give up after a time without progress.

mod clock;
mod note;
mod outbox;
mod receipts;
mod recorder;
mod run;
mod sealer;
mod session;
mod sync;

use std::path::Path;
use std::sync::{Arc, Mutex};

use pollsync_proto::{ChainHead, pb, tls};
use tokio::sync::watch;

pub use self::note::{Log, Note};
pub use self::receipts::RECEIPT_INTERVAL_MS;
pub use self::run::run;
pub use self::sync::sync;
pub use crate::sync::core::ending::RunStop;
pub use crate::sync::core::{
    ACK_TIMEOUT_MS, CONNECT_TIMEOUT_MS, HELLO_TIMEOUT_MS, LAST_ATTEMPT_MS,
    MIN_HEARTBEAT_INTERVAL_MS, SHUTDOWN_GRACE_MS,
};

use self::clock::Clock;
use self::recorder::Recorder;
use self::session::Agent;
use super::connect::CenterLink;
use super::core::{Core, Goal};
use super::sender::Terminal;
use crate::error::StationError;
use crate::store::{Provisioned, Store};

/// HTTP/2 pings on an idle connection, to notice a dead one.
pub const KEEPALIVE_INTERVAL_MS: u64 = 10_000;
/// How long a ping may go unanswered.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 10_000;
/// Default time between seals in `station run`.
pub const DEFAULT_SEAL_INTERVAL_MS: u64 = 200;
/// Default time `station sync` keeps trying without progress.
pub const DEFAULT_SYNC_TIMEOUT_S: u64 = 60;
/// Beyond the grace period, how long a stop may take while connecting.
const STOP_MARGIN_MS: u64 = 500;
/// Least time between two progress lines in the log.
pub const PROGRESS_LOG_INTERVAL_MS: u64 = 5_000;
/// After the call ended while sending, how long to wait for the center's last words.
pub const CLOSE_DRAIN_MS: u64 = 1_000;
/// Wait before retrying a failed write of acknowledgements.
pub const RECORD_RETRY_MS: u64 = 500;

/// A store call that failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StationError),
    /// The blocking task running the call panicked or was cancelled; holds its error.
    #[error("a store task failed: {0}")]
    Task(String),
    /// An earlier store task panicked while holding the store.
    #[error("the store was left unusable by a failed task")]
    Poisoned,
}

/// Why `station sync` (or `station run`, at start) failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The station's store or enrollment could not be used.
    #[error(transparent)]
    Station(#[from] StationError),
    /// A store call on the blocking pool failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The center's address, or the TLS set-up to reach it, is unusable.
    #[error("center address '{address}' cannot be used: {reason}")]
    BadAddress {
        /// The center's address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The center rejected a batch, or the chains disagree, so pushing stopped.
    #[error("{0}")]
    Rejected(Terminal),
    /// The center refused this station outright (a gRPC status no retry can fix).
    #[error("the center at {center} refused this station ({code}): {message}")]
    Refused {
        /// The center's address.
        center: String,
        /// The gRPC status code's name.
        code: String,
        /// The center's words.
        message: String,
    },
    #[error(
        "gave up after {waited_s:.1} s: could not reach the center at {center} ({attempts} attempt(s)); last error: {last_error}"
    )]
    /// No Hello to the center succeeded before the timeout.
    Unreachable {
        /// The center's addresses tried, in order, comma-separated.
        center: String,
        /// Time spent trying, in seconds.
        waited_s: f64,
        /// Connection attempts made.
        attempts: u32,
        /// The last attempt's error.
        last_error: String,
    },
    #[error(
        "gave up after {waited_s:.1} s without progress from the center at {center} ({attempts} attempt(s)); last error: {last_error}"
    )]
    /// The center was reached but acknowledged nothing new before the timeout.
    NoProgress {
        /// The center's address.
        center: String,
        /// Time spent trying, in seconds.
        waited_s: f64,
        /// Connection attempts made.
        attempts: u32,
        /// The last attempt's error.
        last_error: String,
    },
    /// Recording the center's acknowledgements in the store failed; holds why.
    #[error("the center acknowledged everything, but recording that on this device failed: {0}")]
    Record(String),
}

impl SyncError {
    /// A short machine-readable name for `--json` output.
    pub fn kind(&self) -> String {
        match self {
            SyncError::Station(_) | SyncError::Local(_) | SyncError::Record(_) => "local".into(),
            SyncError::BadAddress { .. } => "bad_address".into(),
            SyncError::Rejected(t) => t.reason(),
            SyncError::Refused { code, .. } => format!("REFUSED_{}", code.to_uppercase()),
            SyncError::Unreachable { .. } => "unreachable".into(),
            SyncError::NoProgress { .. } => "no_progress".into(),
        }
    }
}

/// Options of `station run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Time between seals, in ms.
    pub seal_interval_ms: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seal_interval_ms: DEFAULT_SEAL_INTERVAL_MS,
        }
    }
}

/// Options of `station sync`.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Give up after this long without reaching the center or without progress.
    pub timeout_ms: u64,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            timeout_ms: DEFAULT_SYNC_TIMEOUT_S * 1_000,
        }
    }
}

/// Counters over the whole command.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Successful Hellos.
    pub connections: u64,
    /// Batches sent to the center, resends included.
    pub batches_sent: u64,
    /// Batches newly known to be held by the center.
    pub batches_acknowledged: u64,
    /// `DUPLICATE` answers (the center already had the batch).
    pub duplicates: u64,
    /// `GAP` answers that made the station send again.
    pub resends: u64,
}

/// What `station sync` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncSummary {
    /// The center's address that acknowledged everything.
    pub center: String,
    /// Batches sealed by this command.
    pub sealed_batches: u64,
    /// Ballots in the batches sealed by this command.
    pub sealed_ballots: u64,
    /// The highest sequence sealed on this device.
    pub local_head: u64,
    /// The center holds every batch up to this sequence (recorded on this device).
    pub acknowledged_through: u64,
    /// Counters over the command.
    #[serde(flatten)]
    pub counters: Counters,
    /// From the start of the command to everything acknowledged and recorded.
    pub elapsed_ms: u64,
    /// From the start of the last (successful) connection attempt to everything
    /// acknowledged: the catch-up time after reconnecting.
    pub catch_up_ms: u64,
}

/// What `station run` did before it was stopped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// The center's address in use at the stop (the last reached, if any).
    pub center: String,
    /// The highest sequence sealed on this device at the stop.
    pub local_head: u64,
    /// The center holds every batch up to this sequence (recorded on this device).
    pub acknowledged_through: u64,
    /// Counters over the command.
    #[serde(flatten)]
    pub counters: Counters,
    /// How long the command ran, in ms.
    pub running_ms: u64,
    /// Set if the center rejected this station and pushing stopped.
    pub stopped: Option<RunStop>,
}

type Shared = Arc<Mutex<Store>>;

/// Runs `f` on the store on tokio's blocking pool.
async fn with_store<T, F>(store: &Shared, f: F) -> Result<T, LocalError>
where
    T: Send + 'static,
    F: FnOnce(&mut Store) -> crate::Result<T> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().map_err(|_| LocalError::Poisoned)?;
        f(&mut guard).map_err(LocalError::from)
    })
    .await
    .map_err(|e| LocalError::Task(e.to_string()))?
}

/// Resolves once a stop is asked for (or nobody can ask any more).
async fn wait_stop(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The Hello of this station at `head`.
pub(crate) fn hello_request(prov: &Provisioned, head: ChainHead) -> pb::HelloRequest {
    pollsync_proto::chain::hello_of(&prov.bundle, head)
}

/// Opens the station in `dir` for a command with this goal: its store (one
/// connection to read batches, one for the recorder), its link to the center, and
/// the core from what the store says, on `clock`.
fn open_agent(
    dir: &Path,
    goal: Goal,
    clock: Clock,
    heads: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    log: Log,
) -> Result<Agent, SyncError> {
    tls::install_crypto_provider();
    let store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let links = CenterLink::for_station(&prov)?;
    let (count, first) = (links.len(), prov.first_center_index());
    let head = store.head()?.sequence;
    let acknowledged = store.acknowledged_through()?;
    let recorder = Recorder::start(
        Arc::new(Mutex::new(Store::open(dir)?)),
        acknowledged,
        log.clone(),
    );
    Ok(Agent {
        links,
        prov: Arc::new(prov),
        reader: Arc::new(Mutex::new(store)),
        recorder,
        // The clock started with the command: its time without progress too.
        core: Core::new(head, acknowledged, goal, 0).with_addresses(count, first),
        clock,
        heads,
        heads_open: true,
        shutdown,
        sealed: (0, 0),
        counters: Counters::default(),
        log,
    })
}
