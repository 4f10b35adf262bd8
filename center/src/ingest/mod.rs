//! Exactly-once ingest of signed batches, for the gRPC server and `center import`.
//!
//! ```text
//! submit(peer, batch) ──► verify pool: judge::prepare (decode, hash, signature, content)
//!        │                         │ (in parallel)
//!        └──► writer queue (call order) ──► writer thread: judge::judge against the
//!                                             station's state, apply, group commit,
//!                                             then answer every Ack of the group
//! ```
//!
//! One writer thread owns the store's write connection. It drains every queued
//! batch (from all stations) into one transaction, each batch inside its own
//! savepoint, commits once (WAL, `synchronous=FULL`), publishes the new heads and
//! only then answers the acknowledgements: `ACCEPTED` means durable. A rejected
//! batch writes only its alert (and a fork's quarantine); the rest of the group
//! commits (G7, G8). The writer re-reads the stations' state whenever another
//! process (`center revoke`, `center enroll`, `center import`) committed, checked at
//! every group and at least every [`REFRESH_INTERVAL_MS`] when idle. WAL
//! checkpoints run when the writer is idle, not inside a burst's commits. With
//! [`TRACE_ENV`] set, the writer logs each group's timings. Every decision is
//! logged once it is durable (`log::ingest_decision`), and so is an
//! operator's change made by another process once the writer notices it
//! (revoked, released, replaced).

pub mod alerts;
pub mod events;
pub mod judge;
pub mod lease;
mod log;
pub mod pool;
mod queue;
pub mod relay;
mod writer;

pub use writer::TRACE_ENV;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;

use pollsync_proto::limits::{
    HEARTBEAT_INTERVAL_MS, MAX_BATCH_EVENTS, MAX_IN_FLIGHT, MAX_MESSAGE_BYTES,
};
use pollsync_proto::tlog::LogKey;
use pollsync_proto::{ChainHead, pb};
use tokio::sync::oneshot;

use crate::error::{CenterError, Result};
use crate::store::Records;
use crate::store::apply::Presence;
use crate::store::sqlite::SqliteIngest;
use crate::store::{Store, StoreLocation, now_unix_ms};
use judge::{Context, Prepared, StationKey, StationState};
use pool::Pool;
use queue::QueueError;

/// Longest the writer waits, when idle, before re-reading state changed by other
/// processes (revocations, enrollments) and flushing presence.
pub const REFRESH_INTERVAL_MS: u64 = 500;
/// Shortest time between two STALE_KEY alerts about one station (a replaced or
/// revoked device retrying every few seconds raises one alert, not thousands).
pub const STALE_KEY_ALERT_INTERVAL_MS: u64 = 10 * 60 * 1_000;
/// Shortest time between two writes of the operators' presence view.
pub const PRESENCE_FLUSH_INTERVAL_MS: u64 = 1_000;
/// How often the writer signs a checkpoint of the transparency log while it grows
/// (SPEC §10: "at least every few seconds").
pub const LOG_CHECKPOINT_INTERVAL_MS: u64 = 1_000;
/// Most batches in one group commit.
pub const MAX_GROUP_BATCHES: usize = 4_096;
/// Most jobs waiting for the writer (each a batch, or an alert). The network's own
/// bound (`serve::MAX_PUSH_BYTES_IN_FLIGHT`, at least a kilobyte a batch) stays
/// under it, checked at compile time there; a job beyond it is refused at once
/// (its caller sees the center fail, and a station tries again later) rather than
/// queued without limit (`ingest::queue`).
pub const MAX_QUEUED_JOBS: usize = 262_144;
/// Most batch bytes in one group commit.
pub const MAX_GROUP_BYTES: usize = 256 * 1024 * 1024;
/// Batch bytes committed after which the writer checkpoints the WAL even while
/// busy (otherwise it checkpoints when idle, keeping bursts' commits short).
pub const MAX_WAL_BYTES_BEFORE_CHECKPOINT: usize = 256 * 1024 * 1024;

/// Who is at the other end of a connection, as its TLS client certificate proves:
/// the station the certificate names and the certificate's Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The certificate's CN (empty if there is no certificate).
    pub station: String,
    /// The certificate's public key.
    pub key: [u8; 32],
}

/// The gRPC status with which a Hello is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// No usable client certificate.
    Unauthenticated,
    /// Not this station's certificate, not in the election, not enrolled, revoked,
    /// or not the station's current key (STALE_KEY).
    PermissionDenied,
    /// Other election, other definition digest, or quarantined.
    FailedPrecondition,
    /// Nothing of that name (a receipt of a batch the center does not hold).
    NotFound,
    /// Not yet (a receipt before a checkpoint covers the batch): ask again soon.
    Unavailable,
}

impl RefusalCode {
    /// The gRPC code's name, as logs show it.
    pub fn name(self) -> &'static str {
        match self {
            RefusalCode::Unauthenticated => "UNAUTHENTICATED",
            RefusalCode::PermissionDenied => "PERMISSION_DENIED",
            RefusalCode::FailedPrecondition => "FAILED_PRECONDITION",
            RefusalCode::NotFound => "NOT_FOUND",
            RefusalCode::Unavailable => "UNAVAILABLE",
        }
    }
}

/// Why a Hello is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloRefusal {
    /// The gRPC status code to answer.
    pub code: RefusalCode,
    /// In words (goes into the status message).
    pub detail: String,
}

/// What the writer publishes about a station for the server's threads.
#[derive(Debug, Clone, Default)]
struct ViewStation {
    head: ChainHead,
    revoked: bool,
    quarantined: bool,
    /// The usable key: current and not retired.
    key: Option<StationKey>,
    /// Why the current key was retired (after a fork), if it was.
    retired: Option<String>,
}

/// A station as the operators see it right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStation {
    /// Station id.
    pub station: String,
    /// Last batch durably applied.
    pub head: ChainHead,
    /// Revoked.
    pub revoked: bool,
    /// Quarantined.
    pub quarantined: bool,
    /// Has an enrolled key.
    pub enrolled: bool,
    /// Presence (last seen, local head, open connections).
    pub presence: Presence,
}

#[derive(Default)]
struct PresenceBook {
    entries: HashMap<String, Presence>,
    dirty: bool,
}

struct Shared {
    ctx: Arc<Context>,
    /// A read connection for the rare lookups off the writer (a Hello behind the
    /// center's head, a Fetch).
    reader: Mutex<Box<dyn Records + Send>>,
    /// When each station's last STALE_KEY alert was queued (Unix ms).
    stale_alerts: Mutex<HashMap<String, u64>>,
    view: RwLock<HashMap<String, ViewStation>>,
    presence: Mutex<PresenceBook>,
    /// Every station's presence as stored, written by every replica of a shared
    /// store (empty otherwise); read by the writer while idle.
    stored_presence: RwLock<HashMap<String, Presence>>,
    /// This process's name among the replicas of a shared store.
    replica: String,
    pool: Pool,
    /// The writer's queue, bounded by [`MAX_QUEUED_JOBS`]; dropped at shutdown,
    /// which the writer sees once it has taken everything queued before.
    jobs: Mutex<Option<queue::Sender<writer::Job>>>,
    closed: AtomicBool,
    publisher: events::Publisher,
}

impl Shared {
    /// Queues `job` for the writer. False if the queue is closed, or full
    /// ([`MAX_QUEUED_JOBS`]): the job is dropped, and with it a batch's reply, so
    /// that its caller learns it was not applied.
    fn queue(&self, job: writer::Job) -> bool {
        let jobs = lock(&self.jobs);
        let Some(jobs) = jobs.as_ref() else {
            return false;
        };
        match jobs.try_send(job) {
            Ok(()) => true,
            Err(QueueError::Closed) => false,
            Err(QueueError::Full { .. }) => {
                self.publisher
                    .metrics
                    .queue_full
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    max = MAX_QUEUED_JOBS,
                    "the writer's queue is full: a job is refused"
                );
                false
            }
        }
    }
}

/// The ingest front: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct IngestHandle {
    shared: Arc<Shared>,
}

/// A station's presence: this process's own, or what the store holds (another
/// replica's) if that is newer.
fn newest_presence(own: Option<Presence>, stored: Option<Presence>) -> Presence {
    match (own, stored) {
        (Some(own), Some(stored)) if stored.last_seen_unix_ms > own.last_seen_unix_ms => stored,
        (Some(own), _) => own,
        (None, stored) => stored.unwrap_or_default(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the single writer thread that owns the store's write connection (and
/// the verify pool feeding it).
pub fn start(
    store: impl Into<StoreLocation>,
) -> Result<(IngestHandle, JoinHandle<()>), CenterError> {
    start_with(store, Pool::default_threads())
}

/// [`start`] with a chosen number of verify threads.
pub fn start_with(
    location: impl Into<StoreLocation>,
    verify_threads: usize,
) -> Result<(IngestHandle, JoinHandle<()>), CenterError> {
    let location = location.into();
    let store = Store::open_at(&location)?;
    let meta = store.meta()?;
    let definition = meta.definition()?;
    if pollsync_proto::definition_sha256(meta.election_toml.as_bytes()) != meta.definition_sha256 {
        return Err(CenterError::Corrupt {
            detail: "the stored definition digest does not match the stored definition".into(),
        });
    }
    let ctx = Arc::new(Context::new(definition, meta.definition_sha256));
    let (tx, rx) = queue::bounded(MAX_QUEUED_JOBS);
    let shared = Arc::new(Shared {
        ctx: Arc::clone(&ctx),
        reader: Mutex::new(Box::new(Store::open_at(&location)?)),
        stale_alerts: Mutex::default(),
        view: RwLock::new(HashMap::new()),
        presence: Mutex::new(PresenceBook::default()),
        stored_presence: RwLock::new(HashMap::new()),
        replica: replica_name(),
        // A task waits in the pool only while its job waits for the writer or is
        // in the writer's current group.
        pool: Pool::start(verify_threads, MAX_QUEUED_JOBS + MAX_GROUP_BATCHES)?,
        jobs: Mutex::new(Some(tx)),
        closed: AtomicBool::new(false),
        publisher: events::Publisher::new(),
    });
    let log_key =
        LogKey::from_signer_text(&meta.log_signer_key).map_err(|e| CenterError::Corrupt {
            detail: format!("the stored log key: {e}"),
        })?;
    let thread = match &location {
        StoreLocation::Folder(_) => {
            spawn_writer(SqliteIngest::new(store)?, ctx, &shared, log_key, rx)?
        }
        StoreLocation::Postgres(url) => {
            drop(store);
            let conn = crate::store::postgres::PgConn::connect(url)?;
            // Detached: it ends within a poll once the center shuts down.
            relay::spawn_listener(url.clone(), shared.replica.clone(), &shared)?;
            spawn_writer(
                crate::store::postgres::PgIngest::new(conn),
                ctx,
                &shared,
                log_key,
                rx,
            )?
        }
    };
    Ok((IngestHandle { shared }, thread))
}

/// This process's name among replicas: its process id and a random suffix (a
/// restarted replica is another one).
fn replica_name() -> String {
    let mut suffix = [0u8; 4];
    // Without randomness the process id alone still tells apart the replicas of
    // one machine; the name only decides who signs the log and whose decisions
    // are whose, never what is counted.
    let _ = getrandom::fill(&mut suffix);
    format!("{}-{}", std::process::id(), hex::encode(suffix))
}

/// The writer thread on `store`, whichever engine it is.
fn spawn_writer<S: crate::store::IngestStore>(
    store: S,
    ctx: Arc<Context>,
    shared: &Arc<Shared>,
    log_key: LogKey,
    rx: queue::Receiver<writer::Job>,
) -> Result<JoinHandle<()>, CenterError> {
    let writer = writer::Writer::new(store, ctx, Arc::clone(shared), log_key)?;
    std::thread::Builder::new()
        .name("center-ingest-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|source| CenterError::Thread {
            what: "ingest writer",
            source,
        })
}

impl Shared {
    /// Whether a STALE_KEY alert about `station` may be raised now (at most one per
    /// [`STALE_KEY_ALERT_INTERVAL_MS`]); if so, the time is taken.
    fn stale_alert_due(&self, station: &str) -> bool {
        let now = now_unix_ms();
        let mut last = lock(&self.stale_alerts);
        let at = last.entry(station.to_owned()).or_insert(0);
        if *at != 0 && now.saturating_sub(*at) < STALE_KEY_ALERT_INTERVAL_MS {
            return false;
        }
        *at = now;
        true
    }

    fn publish(&self, states: &HashMap<String, StationState>, keys: &HashMap<String, StationKey>) {
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        for (id, s) in states {
            let now = view_of(s, keys.get(id));
            if let Some(before) = view.get(id) {
                log_operator_change(id, before, &now);
            }
        }
        view.clear();
        for (id, s) in states {
            view.insert(id.clone(), view_of(s, keys.get(id)));
        }
    }

    fn publish_some<'a>(
        &self,
        stations: impl IntoIterator<Item = &'a String>,
        states: &HashMap<String, StationState>,
        keys: &HashMap<String, StationKey>,
    ) {
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        for id in stations {
            if let Some(s) = states.get(id) {
                view.insert(id.clone(), view_of(s, keys.get(id)));
            }
        }
    }

    fn touch(&self, station: &str, f: impl FnOnce(&mut Presence)) {
        if self.ctx.station(station).is_none() {
            return;
        }
        let mut book = lock(&self.presence);
        let entry = book.entries.entry(station.to_owned()).or_default();
        entry.last_seen_unix_ms = now_unix_ms();
        f(entry);
        book.dirty = true;
    }
}

/// Logs what an operator's command in another process (`center revoke`,
/// `release`, `enroll --replace`) changed about `station`, as the writer re-reads
/// it: the published view `before`, the store's state `now`.
fn log_operator_change(station: &str, before: &ViewStation, now: &ViewStation) {
    let station = crate::logging::text(station);
    if now.revoked && !before.revoked {
        tracing::info!(
            station = station.as_str(),
            "station revoked by the operator: refused from now on"
        );
    }
    if before.quarantined && !now.quarantined {
        tracing::info!(
            station = station.as_str(),
            retired_key = now.retired.is_some(),
            reason = crate::logging::text(now.retired.as_deref().unwrap_or("")),
            "station released from quarantine by the operator"
        );
    }
    match (before.key.map(|k| k.key_no), now.key.map(|k| k.key_no)) {
        (Some(old), Some(new)) if old != new => tracing::info!(
            station = station.as_str(),
            key_no = new,
            previous_key_no = old,
            "station's device replaced by the operator: its earlier keys are refused"
        ),
        (None, Some(new)) => tracing::info!(
            station = station.as_str(),
            key_no = new,
            "station enrolled by the operator"
        ),
        _ => {}
    }
}

fn view_of(s: &StationState, key: Option<&StationKey>) -> ViewStation {
    ViewStation {
        head: s.head,
        revoked: s.revoked,
        quarantined: s.quarantined,
        key: key.copied(),
        retired: s.retired.clone(),
    }
}

/// Why a connection's key is refused (`None`: it is the station's usable key).
fn key_refusal(peer: &Peer, station: &ViewStation) -> Option<String> {
    let id = &peer.station;
    match (&station.key, &station.retired) {
        (Some(k), _) if k.key.to_bytes() == peer.key => None,
        (Some(k), _) => Some(format!(
            "STALE_KEY: this certificate's key is not station {id}'s current key (key {}): the device was replaced (center enroll --replace); use the new device",
            k.key_no
        )),
        (None, Some(why)) => Some(format!(
            "STALE_KEY: station {id}'s key was retired after a fork (center release: {}); this device stays refused until the station is replaced (center enroll {id} --replace)",
            pollsync_proto::limits::truncate_chars(why, 200)
        )),
        (None, None) => Some(format!("station {id} is not enrolled at this center")),
    }
}

impl IngestHandle {
    /// The number of `station`'s usable key, as the writer last published it (for
    /// the logs of a Hello).
    pub fn key_no(&self, station: &str) -> Option<judge::KeyNo> {
        self.published(station)
            .and_then(|s| s.key)
            .map(|k| k.key_no)
    }

    /// The election this center counts.
    pub fn context(&self) -> &Context {
        &self.shared.ctx
    }

    /// Checks a Hello per docs/PROTOCOL.md §7 step 1, from the peer its TLS
    /// certificate proves.
    pub async fn hello(
        &self,
        peer: &Peer,
        req: pb::HelloRequest,
    ) -> Result<pb::HelloReply, HelloRefusal> {
        let station = self.admit(peer)?;
        self.hello_now(&peer.station, &station, &req)
    }

    /// The checks every station RPC makes of its peer before anything else: a
    /// certificate, a station of this election, enrolled, not revoked, and the
    /// certificate's key is the station's usable key. A refused key (replaced,
    /// retired, revoked station) raises one STALE_KEY alert per
    /// [`STALE_KEY_ALERT_INTERVAL_MS`], never a fork or a quarantine.
    fn admit(&self, peer: &Peer) -> Result<ViewStation, HelloRefusal> {
        let refuse = |code, detail: String| Err(HelloRefusal { code, detail });
        let id = peer.station.as_str();
        if id.is_empty() {
            return refuse(
                RefusalCode::Unauthenticated,
                "no usable client certificate on this connection".into(),
            );
        }
        let ctx = &self.shared.ctx;
        if ctx.station(id).is_none() {
            return refuse(
                RefusalCode::PermissionDenied,
                format!(
                    "station {} is not in election {}",
                    pollsync_proto::limits::truncate_chars(&format!("{id:?}"), 80),
                    ctx.election_id()
                ),
            );
        }
        // Read from the store, not the published view: a replacement, release or
        // revocation committed by another process a moment ago counts at once. (The
        // published view only if the store cannot be read.)
        let station = self
            .station_in_store(id)
            .or_else(|| self.published(id))
            .unwrap_or_default();
        if station.revoked {
            self.stale_key_alert(
                id,
                "a device of this revoked station tried to connect; refused",
            );
            return refuse(
                RefusalCode::PermissionDenied,
                format!("station {id} was revoked by the center's operator"),
            );
        }
        if let Some(why) = key_refusal(peer, &station) {
            if station.key.is_some() || station.retired.is_some() {
                self.stale_key_alert(
                    id,
                    &format!("a connection with a refused key was turned away: {why}"),
                );
            }
            return refuse(RefusalCode::PermissionDenied, why);
        }
        Ok(station)
    }

    /// The station as the store holds it right now, read off the writer: a command
    /// of another process (`center enroll --replace`, `release`, `revoke`) a moment
    /// ago counts before the writer's next refresh publishes it.
    fn station_in_store(&self, station: &str) -> Option<ViewStation> {
        let reader = lock(&self.shared.reader);
        match reader.station_now(station) {
            Ok(found) => found.map(|(state, key)| view_of(&state, key.as_ref())),
            Err(e) => {
                tracing::error!(
                    station = crate::logging::text(station),
                    error = %e,
                    "cannot read the station from the store"
                );
                None
            }
        }
    }

    /// The station as published, or as the store holds it if the published view
    /// would refuse `peer` (see [`IngestHandle::station_in_store`]).
    fn current_view(&self, peer: &Peer) -> Option<ViewStation> {
        let published = self.published(&peer.station)?;
        if published.revoked || published.quarantined || key_refusal(peer, &published).is_some() {
            return Some(self.station_in_store(&peer.station).unwrap_or(published));
        }
        Some(published)
    }

    /// The station as the writer last published it.
    fn published(&self, station: &str) -> Option<ViewStation> {
        let view = self.shared.view.read().unwrap_or_else(|p| p.into_inner());
        view.get(station).cloned()
    }

    /// Queues a STALE_KEY alert about `station` unless one was queued less than
    /// [`STALE_KEY_ALERT_INTERVAL_MS`] ago.
    fn stale_key_alert(&self, station: &str, detail: &str) {
        if !self.shared.stale_alert_due(station) {
            return;
        }
        self.shared.queue(writer::Job::Alert {
            station: station.to_owned(),
            kind: judge::reason_name(pb::RejectReason::StaleKey),
            detail: detail.to_owned(),
        });
    }

    /// Whether `peer` may use a station RPC right now (see [`IngestHandle::hello`]);
    /// `Err` holds the refusal in words. Also checks quarantine.
    pub fn check_peer(&self, peer: &Peer) -> Result<(), HelloRefusal> {
        let station = self.admit(peer)?;
        if station.quarantined {
            return Err(HelloRefusal {
                code: RefusalCode::FailedPrecondition,
                detail: format!(
                    "station {} is quarantined after a fork; an operator must act",
                    peer.station
                ),
            });
        }
        Ok(())
    }

    /// The chain hash of `station`'s stored batch `sequence`, read off the writer.
    fn stored_hash(&self, station: &str, sequence: u64) -> Option<[u8; 32]> {
        let reader = lock(&self.shared.reader);
        match reader.stored_hash(station, sequence) {
            Ok(hash) => hash,
            Err(e) => {
                tracing::error!(
                    station = crate::logging::text(station),
                    sequence,
                    error = %e,
                    "cannot read the station's stored batch"
                );
                None
            }
        }
    }

    /// Up to `limit` of `peer`'s stored batches from `from` to `to` (both included),
    /// each with the certificate that signed it, for `station recover`. Refused as
    /// any station RPC is.
    pub fn fetch(
        &self,
        peer: &Peer,
        from: u64,
        to: u64,
    ) -> Result<Vec<pb::FetchedBatch>, HelloRefusal> {
        self.check_peer(peer)?;
        let limit = pollsync_proto::limits::MAX_FETCH_BATCHES;
        let last = to.min(from.saturating_add(limit - 1));
        let reader = lock(&self.shared.reader);
        reader
            .fetch_batches(&peer.station, from.max(1), last)
            .map_err(|e| HelloRefusal {
                code: RefusalCode::FailedPrecondition,
                detail: format!("the center cannot read its store: {e}"),
            })
    }

    /// The receipt of `peer`'s accepted batch `sequence` (docs/PROTOCOL.md §13.5):
    /// the newest checkpoint, the batch's inclusion proof in it, and a consistency
    /// proof from the checkpoint of `known_size` leaves the station saw before.
    /// Refused as any station RPC is; `Unavailable` while no checkpoint covers the
    /// batch yet (one is signed within [`LOG_CHECKPOINT_INTERVAL_MS`]).
    pub fn prove(
        &self,
        peer: &Peer,
        sequence: u64,
        known_size: u64,
    ) -> Result<pb::ProveReply, HelloRefusal> {
        self.check_peer(peer)?;
        let refuse = |code, detail: String| HelloRefusal { code, detail };
        let store_error = |e: CenterError| {
            refuse(
                RefusalCode::FailedPrecondition,
                format!("the center cannot read its store: {e}"),
            )
        };
        let reader = lock(&self.shared.reader);
        let leaf = reader
            .batch_leaf(&peer.station, sequence)
            .map_err(store_error)?
            .ok_or_else(|| {
                refuse(
                    RefusalCode::NotFound,
                    format!("the center holds no batch {sequence} of this station"),
                )
            })?;
        let Some((size, note)) = reader.latest_checkpoint().map_err(store_error)? else {
            return Err(refuse(RefusalCode::Unavailable, "no checkpoint yet".into()));
        };
        if leaf >= size {
            return Err(refuse(
                RefusalCode::Unavailable,
                format!(
                    "batch {sequence} is not in a checkpoint yet; one is signed within {LOG_CHECKPOINT_INTERVAL_MS} ms"
                ),
            ));
        }
        if known_size > size {
            return Err(refuse(
                RefusalCode::FailedPrecondition,
                format!(
                    "the station saw a checkpoint of {known_size} leaves; the newest here has {size}"
                ),
            ));
        }
        let inclusion =
            crate::store::log::inclusion_proof(&**reader, size, leaf).map_err(store_error)?;
        let consistency = if known_size == 0 || known_size == size {
            Vec::new()
        } else {
            crate::store::log::consistency_proof(&**reader, size, known_size)
                .map_err(store_error)?
        };
        Ok(pb::ProveReply {
            checkpoint: note,
            leaf_index: leaf,
            inclusion: inclusion.into_iter().map(|h| h.0.to_vec()).collect(),
            consistency: consistency.into_iter().map(|h| h.0.to_vec()).collect(),
        })
    }

    fn hello_now(
        &self,
        peer: &str,
        station: &ViewStation,
        req: &pb::HelloRequest,
    ) -> Result<pb::HelloReply, HelloRefusal> {
        let refuse = |code, detail: String| Err(HelloRefusal { code, detail });
        let ctx = &self.shared.ctx;
        if peer.is_empty() {
            return refuse(
                RefusalCode::Unauthenticated,
                "no usable client certificate on this connection".into(),
            );
        }
        let shown = |s: &str| pollsync_proto::limits::truncate_chars(&format!("{s:?}"), 80);
        if req.station_id != peer {
            return refuse(
                RefusalCode::PermissionDenied,
                format!(
                    "hello names station {}, but the client certificate is station {}",
                    shown(&req.station_id),
                    shown(peer)
                ),
            );
        }
        if req.election_id != ctx.election_id() {
            return refuse(
                RefusalCode::FailedPrecondition,
                format!(
                    "hello is for election {}, this center counts election {}",
                    shown(&req.election_id),
                    ctx.election_id()
                ),
            );
        }
        if req.definition_sha256.as_slice() != ctx.definition_sha256.as_slice() {
            return refuse(
                RefusalCode::FailedPrecondition,
                format!(
                    "the station's election definition (sha256 {}) is not the center's (sha256 {})",
                    hex::encode(&req.definition_sha256),
                    hex::encode(ctx.definition_sha256)
                ),
            );
        }
        if station.quarantined {
            return refuse(
                RefusalCode::FailedPrecondition,
                format!("station {peer} is quarantined after a fork; an operator must act"),
            );
        }
        // A head at or behind the center's with another hash is only a claim: ask
        // for the signed batch of that sequence. A fork is declared (and the
        // station quarantined) only if that batch verifies and differs.
        let claimed = req.local_head_sequence;
        let mut evidence_sequence = 0;
        if claimed > 0 && claimed <= station.head.sequence {
            let ours = if claimed == station.head.sequence {
                Some(station.head.hash)
            } else {
                self.stored_hash(peer, claimed)
            };
            if ours.is_some_and(|h| h.as_slice() != req.local_head_hash.as_slice()) {
                evidence_sequence = claimed;
            }
        }
        self.shared.touch(peer, |p| {
            p.local_head_sequence = req.local_head_sequence;
        });
        Ok(pb::HelloReply {
            center_head_sequence: station.head.sequence,
            center_head_hash: station.head.hash.to_vec(),
            max_in_flight: MAX_IN_FLIGHT as u32,
            max_message_bytes: MAX_MESSAGE_BYTES as u32,
            max_batch_events: MAX_BATCH_EVENTS as u32,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS as u32,
            evidence_sequence,
        })
    }

    /// Enqueues one batch pushed over a connection authenticated as `peer` (see
    /// [`IngestHandle::submit`]); it is rejected STALE_KEY unless `peer.key` is the
    /// station's usable key when the writer judges it.
    pub fn submit_from(&self, peer: &Peer, batch: pb::SignedBatch) -> oneshot::Receiver<pb::Ack> {
        self.enqueue(&peer.station, Some(peer.key), batch)
    }

    /// Enqueues one batch now (in call order) and returns a receiver for its Ack,
    /// which resolves only once the transaction applying it is durable. If the
    /// receiver fails instead (sender dropped), the batch was not applied because
    /// the center failed or is shutting down: end the stream with an error. No
    /// connection vouches for it (`center import`): only its signature under the
    /// station's current key does.
    pub fn submit(&self, peer_station: &str, batch: pb::SignedBatch) -> oneshot::Receiver<pb::Ack> {
        self.enqueue(peer_station, None, batch)
    }

    fn enqueue(
        &self,
        peer_station: &str,
        peer_key: Option<[u8; 32]>,
        batch: pb::SignedBatch,
    ) -> oneshot::Receiver<pb::Ack> {
        let (reply, rx) = oneshot::channel();
        if self.shared.closed.load(Ordering::Acquire) {
            return rx;
        }
        let key = {
            let view = self.shared.view.read().unwrap_or_else(|p| p.into_inner());
            view.get(peer_station).and_then(|s| s.key)
        };
        let (prepared_tx, prepared_rx) = mpsc::sync_channel::<Prepared>(1);
        let ctx = Arc::clone(&self.shared.ctx);
        let queued = self.shared.queue(writer::Job::Batch {
            peer: peer_station.to_owned(),
            peer_key,
            prepared: prepared_rx,
            reply,
            received: std::time::Instant::now(),
        });
        if queued {
            // If the pool is closed (or full) the task is dropped, and with it
            // `prepared_tx`: the writer then drops the reply.
            self.shared.pool.run(Box::new(move || {
                let _ = prepared_tx.send(judge::prepare(&ctx, key.as_ref(), batch));
            }));
            self.shared.touch(peer_station, |_| {});
        }
        rx
    }

    /// Records one `BAD_FILE` alert about an imported file, charged to no station
    /// (its station field is empty).
    pub fn file_alert(&self, detail: &str) {
        self.shared.queue(writer::Job::FileAlert {
            detail: detail.to_owned(),
        });
    }

    /// Records a heartbeat for the operators' view (written in batches).
    pub fn heartbeat(&self, peer_station: &str, hb: &pb::Heartbeat) {
        self.shared.touch(peer_station, |p| {
            p.local_head_sequence = hb.local_head_sequence;
            p.sealed_unacknowledged = hb.sealed_unacknowledged;
        });
    }

    /// Records a sync connection opening or closing.
    pub fn connection(&self, peer_station: &str, open: bool) {
        self.shared.touch(peer_station, |p| {
            if open {
                p.connections = p.connections.saturating_add(1);
            } else {
                p.connections = p.connections.saturating_sub(1);
            }
        });
    }

    /// Revoked, quarantined, or no longer the station's key right now (as the
    /// writer last published, at most [`REFRESH_INTERVAL_MS`] behind another
    /// process's `center revoke` or `center enroll --replace`)?
    pub fn refused(&self, peer: &Peer) -> Option<pb::RejectReason> {
        let s = self.current_view(peer)?;
        if s.revoked {
            Some(pb::RejectReason::Revoked)
        } else if key_refusal(peer, &s).is_some() {
            Some(pb::RejectReason::StaleKey)
        } else if s.quarantined {
            Some(pb::RejectReason::Quarantined)
        } else {
            None
        }
    }

    /// The head durably applied for `station` (`None`: not in the store).
    pub fn head(&self, station: &str) -> Option<ChainHead> {
        let view = self.shared.view.read().unwrap_or_else(|p| p.into_inner());
        view.get(station).map(|s| s.head)
    }

    /// Every station of the election with its live state, in id order.
    pub fn live_stations(&self) -> Vec<LiveStation> {
        let presence: HashMap<String, Presence> = lock(&self.shared.presence).entries.clone();
        let stored = self
            .shared
            .stored_presence
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let view = self.shared.view.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<LiveStation> = self
            .shared
            .ctx
            .definition
            .stations
            .iter()
            .map(|s| {
                let v = view.get(&s.id).cloned().unwrap_or_default();
                LiveStation {
                    station: s.id.clone(),
                    head: v.head,
                    revoked: v.revoked,
                    quarantined: v.quarantined,
                    enrolled: v.key.is_some(),
                    presence: newest_presence(
                        presence.get(&s.id).copied(),
                        stored.get(&s.id).copied(),
                    ),
                }
            })
            .collect();
        out.sort_by(|a, b| a.station.cmp(&b.station));
        out
    }

    /// Every durable decision from now on, in commit order. A reader that falls
    /// more than [`events::EVENT_BUFFER`] events behind loses the oldest and is
    /// told how many (`RecvError::Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<events::IngestEvent> {
        self.shared.publisher.events.subscribe()
    }

    /// Batches and alerts waiting for the writer now (at most [`MAX_QUEUED_JOBS`]).
    pub fn queued_jobs(&self) -> usize {
        lock(&self.shared.jobs)
            .as_ref()
            .map_or(0, queue::Sender::len)
    }

    /// Running counters since this process started.
    pub fn metrics(&self) -> &events::Metrics {
        &self.shared.publisher.metrics
    }

    /// Stops the writer after it has applied and answered everything queued before
    /// this call; later submits are answered by a dropped sender.
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // The writer ends once it has taken every job queued before the queue closed.
        drop(lock(&self.shared.jobs).take());
        self.shared.pool.close();
    }
}
