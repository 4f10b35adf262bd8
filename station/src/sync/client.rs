//! The tokio driver around [`Sender`]: it connects to the center over mutual TLS,
//! says Hello, streams the batches the sender picks over one bidirectional Push call
//! fed from a channel, hands every `Ack` to the sender, records acknowledgements and
//! the last contact in the store, sends heartbeats when idle, and reconnects with
//! backoff when the connection fails.
//!
//! SQLite is synchronous: every store call runs on tokio's blocking pool, and each of
//! the three jobs has its own connection — the session reads batches, the recorder
//! writes acknowledgements (coalesced: while one write is being made durable, newer
//! acknowledgements collect and go in the next one), the sealer (`station run`
//! only) seals what other `station` processes recorded.
//!
//! Two ways to use it:
//! - [`run`] (`station run`): seal every `seal_interval_ms`, push as batches appear,
//!   reconnect forever, until told to stop. A terminal rejection stops pushing but
//!   not sealing (G5: recording never stops), except when the center holds batches
//!   this device lacks: then sealing stops too, because new batches would fork.
//! - [`sync`] (`station sync`): connect, compare heads, seal everything, push until
//!   the center has acknowledged it all; give up after a time without progress.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pollsync_proto::limits::{HEARTBEAT_INTERVAL_MS, MAX_MESSAGE_BYTES};
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use pollsync_proto::tls;
use pollsync_proto::{ChainHead, pb};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::Sender;
use super::backoff::{Backoff, os_random};
use super::connect::CenterLink;
use super::sender::{AckOutcome, Resume, SessionStart, Stop, Terminal};
use crate::error::StationError;
use crate::store::{Provisioned, Store};

/// How long one TCP + TLS connection attempt may take.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long Hello, or opening the Push stream, may take.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;
/// With batches in flight, the longest silence from the center before the
/// connection is considered dead.
pub const ACK_TIMEOUT_MS: u64 = 30_000;
/// HTTP/2 pings on an idle connection, to notice a dead one.
pub const KEEPALIVE_INTERVAL_MS: u64 = 10_000;
/// How long a ping may go unanswered.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 10_000;
/// Floor under the heartbeat interval a center announces.
pub const MIN_HEARTBEAT_INTERVAL_MS: u64 = 100;
/// Default time between seals in `station run`.
pub const DEFAULT_SEAL_INTERVAL_MS: u64 = 200;
/// Default time `station sync` keeps trying without progress.
pub const DEFAULT_SYNC_TIMEOUT_S: u64 = 60;
/// On stop, how long `station run` waits for answers to batches in flight.
pub const SHUTDOWN_GRACE_MS: u64 = 1_000;
/// Beyond the grace period, how long a stop may take while connecting.
const STOP_MARGIN_MS: u64 = 500;
/// Least time between two progress lines in the log.
pub const PROGRESS_LOG_INTERVAL_MS: u64 = 5_000;
/// After the call ended while sending, how long to wait for the center's last words.
pub const CLOSE_DRAIN_MS: u64 = 1_000;
/// `station sync` makes its last attempt at least this long before giving up.
pub const LAST_ATTEMPT_MS: u64 = 250;
/// Wait before retrying a failed write of acknowledgements.
pub const RECORD_RETRY_MS: u64 = 500;
/// Batches read from the store at once for sending.
const PREFETCH_BATCHES: usize = super::sender::MAX_WINDOW;
/// Room in the outgoing channel beyond the window (heartbeats).
const CHANNEL_SLACK: usize = 4;

/// A state change worth telling the person at the station, printed by the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Connected {
        center: String,
        center_head: u64,
        local_head: u64,
        window: usize,
    },
    Progress {
        acknowledged_through: u64,
        local_head: u64,
        this_connection: u64,
    },
    Resending {
        from: u64,
    },
    CenterRegressed {
        acknowledged_before: u64,
        center_head: u64,
    },
    Unreachable {
        center: String,
        error: String,
        retry_in_ms: u64,
    },
    ConnectionLost {
        center: String,
        error: String,
        retry_in_ms: u64,
    },
    Stopped {
        message: String,
    },
    SealingStopped,
    Sealed {
        batches: u64,
        ballots: u64,
    },
    LocalProblem {
        error: String,
    },
    /// This device's chain differs from the center's at `sequence`: its batch goes
    /// to the center as evidence, and nothing more is sealed here.
    ForkEvidence {
        sequence: u64,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Connected {
                center,
                center_head,
                local_head,
                window,
            } => {
                let missing = local_head.saturating_sub(*center_head);
                if missing == 0 {
                    write!(
                        f,
                        "connected to the center at {center}; it holds all {local_head} sealed batch(es)"
                    )
                } else {
                    write!(
                        f,
                        "connected to the center at {center}; it holds {center_head} of {local_head} sealed batch(es); sending {missing}, up to {window} at a time"
                    )
                }
            }
            Note::Progress {
                acknowledged_through,
                local_head,
                this_connection,
            } => {
                if acknowledged_through >= local_head {
                    write!(
                        f,
                        "{this_connection} batch(es) acknowledged; the center holds all {local_head} sealed batch(es)"
                    )
                } else {
                    write!(
                        f,
                        "{this_connection} batch(es) acknowledged; the center holds {acknowledged_through} of {local_head} sealed batch(es)"
                    )
                }
            }
            Note::Resending { from } => write!(
                f,
                "the center is missing batches before the ones sent; sending again from batch {from}"
            ),
            Note::CenterRegressed {
                acknowledged_before,
                center_head,
            } => write!(
                f,
                "warning: the center now holds only {center_head} batch(es) although it had acknowledged {acknowledged_before}; sending them again"
            ),
            Note::Unreachable {
                center,
                error,
                retry_in_ms,
            } => write!(
                f,
                "center unreachable at {center} ({error}); retrying in {retry_in_ms} ms"
            ),
            Note::ConnectionLost {
                center,
                error,
                retry_in_ms,
            } => write!(
                f,
                "connection to the center at {center} lost ({error}); reconnecting in {retry_in_ms} ms"
            ),
            Note::Stopped { message } => write!(f, "rejected: {message}"),
            Note::SealingStopped => write!(
                f,
                "sealing stopped: ballots are still recorded on this device, but no new batches are made until an operator has looked at it"
            ),
            Note::Sealed { batches, ballots } => {
                write!(f, "sealed {batches} batch(es) ({ballots} ballot(s))")
            }
            Note::LocalProblem { error } => write!(f, "problem with this device's store: {error}"),
            Note::ForkEvidence { sequence } => write!(
                f,
                "this device's batch {sequence} differs from the center's: the chains forked; sending it to the center as signed evidence; sealing stops on this device"
            ),
        }
    }
}

/// Where notes go (the binary prints them to stderr).
pub type Log = Arc<dyn Fn(&Note) + Send + Sync>;

/// A store call that failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Store(#[from] StationError),
    #[error("a store task failed: {0}")]
    Task(String),
    #[error("the store was left unusable by a failed task")]
    Poisoned,
}

/// Why `station sync` (or `station run`, at start) failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Station(#[from] StationError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("center address '{address}' cannot be used: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("{0}")]
    Rejected(Terminal),
    #[error("the center at {center} refused this station ({code}): {message}")]
    Refused {
        center: String,
        code: String,
        message: String,
    },
    #[error(
        "gave up after {waited_s:.1} s: could not reach the center at {center} ({attempts} attempt(s)); last error: {last_error}"
    )]
    Unreachable {
        center: String,
        waited_s: f64,
        attempts: u32,
        last_error: String,
    },
    #[error(
        "gave up after {waited_s:.1} s without progress from the center at {center} ({attempts} attempt(s)); last error: {last_error}"
    )]
    NoProgress {
        center: String,
        waited_s: f64,
        attempts: u32,
        last_error: String,
    },
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
    pub center: String,
    /// Batches and ballots sealed by this command.
    pub sealed_batches: u64,
    pub sealed_ballots: u64,
    /// Highest sealed sequence, and the center holds all of them.
    pub local_head: u64,
    pub acknowledged_through: u64,
    #[serde(flatten)]
    pub counters: Counters,
    /// From the start of the command to everything acknowledged and recorded.
    pub elapsed_ms: u64,
    /// From the start of the last (successful) connection attempt to everything
    /// acknowledged: the catch-up time after reconnecting.
    pub catch_up_ms: u64,
}

/// Why pushing stopped during `station run`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunStop {
    pub reason: String,
    pub message: String,
    pub sealing_stopped: bool,
}

/// What `station run` did before it was stopped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub center: String,
    pub local_head: u64,
    pub acknowledged_through: u64,
    #[serde(flatten)]
    pub counters: Counters,
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

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An error and its sources on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{:?}", status.code());
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Why one session ended badly.
#[derive(Debug)]
enum SessionError {
    /// Network or center trouble: reconnect after a wait.
    Transport(String),
    /// The center refused this station with a gRPC status (PROTOCOL §7.1).
    Refused { code: tonic::Code, message: String },
    /// The sender ended the session (violation: reconnect; terminal: stop).
    Stop(Stop),
    /// The store failed: retry after a wait.
    Local(LocalError),
    /// `station sync`'s time without progress ran out.
    NoProgress(String),
    /// Sending failed because the call ended; what the center said last tells why.
    StreamClosed,
}

impl SessionError {
    fn text(&self) -> String {
        match self {
            SessionError::Transport(t) | SessionError::NoProgress(t) => t.clone(),
            SessionError::Refused { code, message } => format!("{code:?}: {message}"),
            SessionError::Stop(s) => s.to_string(),
            SessionError::Local(e) => format!("this device's store: {e}"),
            SessionError::StreamClosed => "the center closed the stream".into(),
        }
    }
}

impl From<LocalError> for SessionError {
    fn from(e: LocalError) -> Self {
        SessionError::Local(e)
    }
}

fn classify(status: &tonic::Status) -> SessionError {
    use tonic::Code;
    match status.code() {
        Code::Unauthenticated
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::InvalidArgument => SessionError::Refused {
            code: status.code(),
            message: status.message().to_string(),
        },
        _ => SessionError::Transport(status_text(status)),
    }
}

/// Session-local bookkeeping for progress notes.
struct Progress {
    acknowledged_at_start: u64,
    noted_through: u64,
    last_note: Instant,
    caught_up_noted: bool,
}

enum SessionEnd {
    /// `station sync`: everything is acknowledged.
    Done,
    /// Told to stop.
    Shutdown,
}

/// Writes acknowledgements and the last contact time, coalescing: it always writes
/// the latest wish, so a burst of acknowledgements costs one durable write.
struct Recorder {
    wish: watch::Sender<Contact>,
    task: JoinHandle<Result<u64, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contact {
    acknowledged_through: u64,
    unix_ms: u64,
}

impl Recorder {
    fn start(store: Shared, acknowledged_through: u64, log: Log) -> Self {
        let written = Contact {
            acknowledged_through,
            unix_ms: 0,
        };
        let (wish, rx) = watch::channel(written);
        let task = tokio::spawn(record_loop(store, rx, written, log));
        Recorder { wish, task }
    }

    fn acknowledge(&self, through: u64) {
        self.wish.send_modify(|c| {
            c.acknowledged_through = c.acknowledged_through.max(through);
            c.unix_ms = now_unix_ms();
        });
    }

    fn touch(&self) {
        self.wish.send_modify(|c| c.unix_ms = now_unix_ms());
    }

    /// Waits until everything wished is written; returns what the store holds as
    /// acknowledged.
    async fn finish(self) -> Result<u64, String> {
        drop(self.wish);
        self.task.await.map_err(|e| e.to_string())?
    }
}

async fn record_loop(
    store: Shared,
    mut rx: watch::Receiver<Contact>,
    mut written: Contact,
    log: Log,
) -> Result<u64, String> {
    let mut closed = false;
    loop {
        let want = *rx.borrow_and_update();
        if want != written {
            let newly = (want.acknowledged_through > written.acknowledged_through)
                .then_some(want.acknowledged_through);
            match with_store(&store, move |s| s.record_contact(newly, want.unix_ms)).await {
                Ok(()) => written = want,
                Err(e) => {
                    log(&Note::LocalProblem {
                        error: format!("recording acknowledgements: {e}"),
                    });
                    if closed {
                        return Err(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(RECORD_RETRY_MS)).await;
                    continue;
                }
            }
        }
        if closed {
            return Ok(written.acknowledged_through);
        }
        if rx.changed().await.is_err() {
            closed = true;
        }
    }
}

/// Resolves once a stop is asked for (or nobody can ask any more).
async fn wait_stop(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Batches read ahead from the store, in sequence from `first`.
#[derive(Default)]
struct Outbox {
    first: u64,
    batches: std::collections::VecDeque<pb::SignedBatch>,
}

impl Outbox {
    async fn take(
        &mut self,
        store: &Shared,
        sequence: u64,
    ) -> Result<pb::SignedBatch, SessionError> {
        let end = self.first + self.batches.len() as u64;
        if sequence < self.first || sequence >= end {
            let loaded =
                with_store(store, move |s| s.batches_from(sequence, PREFETCH_BATCHES)).await?;
            self.batches = loaded.into();
        } else {
            self.batches.drain(..(sequence - self.first) as usize);
        }
        self.first = sequence + 1;
        self.batches.pop_front().ok_or_else(|| {
            SessionError::Local(LocalError::Store(StationError::Corrupt {
                detail: format!("sealed batch {sequence} is missing"),
            }))
        })
    }
}

enum Mode {
    Run,
    /// Seal once after the first good Hello; done when `target` is acknowledged.
    Sync {
        target: Option<u64>,
        sealed_batches: u64,
        sealed_ballots: u64,
    },
}

/// Everything one command keeps across sessions.
struct Agent {
    center: String,
    link: CenterLink,
    prov: Arc<Provisioned>,
    reader: Shared,
    recorder: Recorder,
    sender: Sender,
    heads: watch::Receiver<u64>,
    heads_open: bool,
    shutdown: watch::Receiver<bool>,
    mode: Mode,
    counters: Counters,
    log: Log,
}

/// The Hello of this station at `head`.
pub(crate) fn hello_request(prov: &Provisioned, head: ChainHead) -> pb::HelloRequest {
    pollsync_proto::chain::hello_of(&prov.bundle, head)
}

impl Agent {
    fn open(
        dir: &Path,
        mode: Mode,
        heads: watch::Receiver<u64>,
        shutdown: watch::Receiver<bool>,
        log: Log,
    ) -> Result<Agent, SyncError> {
        tls::install_crypto_provider();
        let store = Store::open(dir)?;
        let prov = store.provisioned()?;
        let center = prov.center_address.clone();
        let link = CenterLink::for_station(&prov)?;
        let head = store.head()?.sequence;
        let acknowledged = store.acknowledged_through()?;
        let recorder = Recorder::start(
            Arc::new(Mutex::new(Store::open(dir)?)),
            acknowledged,
            log.clone(),
        );
        Ok(Agent {
            center,
            link,
            prov: Arc::new(prov),
            reader: Arc::new(Mutex::new(store)),
            recorder,
            sender: Sender::new(head, acknowledged),
            heads,
            heads_open: true,
            shutdown,
            mode,
            counters: Counters::default(),
            log,
        })
    }

    fn note(&self, note: Note) {
        (self.log)(&note);
    }

    async fn connect(
        &self,
        deadline: Option<Instant>,
    ) -> Result<StationSyncClient<Channel>, SessionError> {
        let until = earliest(
            Instant::now() + Duration::from_millis(CONNECT_TIMEOUT_MS),
            deadline,
        );
        let channel = timeout_at(until, self.link.connect())
            .await
            .map_err(|_| SessionError::Transport("timed out connecting".into()))?
            .map_err(|e| SessionError::Transport(error_chain(&e)))?;
        Ok(StationSyncClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Hello, then compare heads; returns the reply.
    async fn hello(
        &mut self,
        client: &mut StationSyncClient<Channel>,
        deadline: Option<Instant>,
    ) -> Result<(pb::HelloReply, Resume), SessionError> {
        let head = with_store(&self.reader, |s| s.head()).await?;
        let request = hello_request(&self.prov, head);
        let until = earliest(
            Instant::now() + Duration::from_millis(HELLO_TIMEOUT_MS),
            deadline,
        );
        let reply = timeout_at(until, client.hello(request))
            .await
            .map_err(|_| SessionError::Transport("timed out waiting for the Hello reply".into()))?
            .map_err(|s| classify(&s))?
            .into_inner();
        // Read the local head again now: a batch sealed and sent by another
        // process meanwhile must not look like a batch this device lost.
        let center_head = reply.center_head_sequence;
        let (local_head, local_hash) = with_store(&self.reader, move |s| {
            let head = s.head()?.sequence;
            let hash = if center_head > 0 && center_head <= head {
                s.hash_at(center_head)?
            } else {
                None
            };
            Ok((head, hash))
        })
        .await?;
        let resume = self.sender.on_hello(&SessionStart {
            center_head_sequence: center_head,
            center_head_hash: reply.center_head_hash.clone(),
            max_in_flight: reply.max_in_flight,
            local_head_sequence: local_head,
            local_hash_at_center_head: local_hash,
            evidence_sequence: reply.evidence_sequence,
        });
        let resume = match resume {
            Ok(resume) => {
                if let Some(sequence) = resume.evidence {
                    // This device's chain is not the center's: nothing more is sealed
                    // here, in any process; its batch `sequence` goes as evidence.
                    let why = format!(
                        "this device's batch {sequence} is not the center's: the chains forked; its signed batch was sent to the center as evidence. Call an operator"
                    );
                    with_store(&self.reader, move |s| s.hold_sealing(&why)).await?;
                    self.note(Note::ForkEvidence { sequence });
                }
                resume
            }
            Err(t) => {
                if t.stops_sealing() {
                    // Remember it in the store, so that `station seal` and
                    // `station export` in other processes do not seal over it either.
                    let why = t.to_string();
                    with_store(&self.reader, move |s| s.hold_sealing(&why)).await?;
                }
                return Err(SessionError::Stop(Stop::Terminal(t)));
            }
        };
        Ok((reply, resume))
    }

    /// Hands the sender's picks to the stream; returns how many were sent.
    async fn fill(
        &mut self,
        tx: &mpsc::Sender<pb::PushMessage>,
        outbox: &mut Outbox,
    ) -> Result<u64, SessionError> {
        let mut sent = 0;
        while let Some(sequence) = self.sender.poll_send() {
            let batch = outbox.take(&self.reader, sequence).await?;
            tx.send(pb::PushMessage::batch(batch))
                .await
                .map_err(|_| SessionError::StreamClosed)?;
            sent += 1;
        }
        self.counters.batches_sent += sent;
        Ok(sent)
    }

    fn heartbeat(&self) -> pb::PushMessage {
        pb::PushMessage::heartbeat(
            self.sender.local_head(),
            self.sender.sealed_unacknowledged(),
        )
    }

    /// One `Ack` arrived: tell the sender, record what it acknowledges, note progress.
    fn on_ack(
        &mut self,
        ack: &pb::Ack,
        progress: &mut Progress,
        deadline: &mut Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), SessionError> {
        let before = self.sender.acknowledged_through();
        match self.sender.on_ack(ack).map_err(SessionError::Stop)? {
            AckOutcome::Acknowledged {
                through,
                advanced,
                duplicate,
            } => {
                if duplicate {
                    self.counters.duplicates += 1;
                }
                if advanced {
                    self.counters.batches_acknowledged += through - before;
                    self.recorder.acknowledge(through);
                    if let Some(t) = timeout {
                        *deadline = Some(Instant::now() + t);
                    }
                }
            }
            AckOutcome::Resend { from } => {
                self.counters.resends += 1;
                self.note(Note::Resending { from });
            }
            AckOutcome::Stale => {}
        }
        let through = self.sender.acknowledged_through();
        let idle = self.sender.is_idle();
        let due = progress.last_note.elapsed() >= Duration::from_millis(PROGRESS_LOG_INTERVAL_MS);
        // A line when a catch-up ends, and at most one per interval otherwise.
        if through > progress.noted_through && (due || (idle && !progress.caught_up_noted)) {
            self.note(Note::Progress {
                acknowledged_through: through,
                local_head: self.sender.local_head(),
                this_connection: through - progress.acknowledged_at_start,
            });
            progress.noted_through = through;
            progress.last_note = Instant::now();
            progress.caught_up_noted |= idle;
        }
        Ok(())
    }

    /// The call ended while sending: take in what the center still answered (a
    /// rejection may explain why it ended), then its final status.
    async fn after_close(
        &mut self,
        acks: &mut tonic::Streaming<pb::Ack>,
        progress: &mut Progress,
        deadline: &mut Option<Instant>,
        timeout: Option<Duration>,
    ) -> SessionError {
        let until = Instant::now() + Duration::from_millis(CLOSE_DRAIN_MS);
        loop {
            match timeout_at(until, acks.next()).await {
                Ok(Some(Ok(ack))) => {
                    if let Err(e) = self.on_ack(&ack, progress, deadline, timeout) {
                        return e;
                    }
                }
                Ok(Some(Err(status))) => return classify(&status),
                Ok(None) | Err(_) => return SessionError::StreamClosed,
            }
        }
    }

    fn done(&self) -> bool {
        matches!(self.mode, Mode::Sync { target: Some(t), .. } if self.sender.center_holds_through() >= t)
    }

    /// One connection: Hello, then push until done, stopped, or broken.
    /// `hello_ok` tells the caller the center answered Hello (reset the backoff).
    /// `deadline` (sync only) is pushed back whenever the center acknowledges news.
    async fn session(
        &mut self,
        hello_ok: &mut bool,
        deadline: &mut Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<SessionEnd, SessionError> {
        let mut client = self.connect(*deadline).await?;
        let before = self.sender.acknowledged_through();
        let (reply, resume) = self.hello(&mut client, *deadline).await?;
        *hello_ok = true;
        self.counters.connections += 1;
        self.recorder.touch();
        if let Some(through) = resume.newly_acknowledged_through {
            self.counters.batches_acknowledged += through.saturating_sub(before);
            self.recorder.acknowledge(through);
        }
        if let Some(before) = resume.center_regressed_from {
            self.note(Note::CenterRegressed {
                acknowledged_before: before,
                center_head: reply.center_head_sequence,
            });
        }
        if let (Mode::Sync { target: None, .. }, None) = (&self.mode, resume.evidence) {
            let prov = Arc::clone(&self.prov);
            let (made, head) = with_store(&self.reader, move |s| {
                let made = s.seal(&prov)?;
                Ok((made, s.head()?.sequence))
            })
            .await?;
            self.sender.on_sealed(head);
            let (batches, ballots) = (made.len() as u64, made.iter().map(|b| b.ballots).sum());
            if batches > 0 {
                self.note(Note::Sealed { batches, ballots });
            }
            self.mode = Mode::Sync {
                target: Some(head),
                sealed_batches: batches,
                sealed_ballots: ballots,
            };
        }
        self.note(Note::Connected {
            center: self.center.clone(),
            center_head: reply.center_head_sequence,
            local_head: self.sender.local_head(),
            window: resume.window,
        });
        if self.done() {
            return Ok(SessionEnd::Done);
        }

        let heartbeat_every = Duration::from_millis(match u64::from(reply.heartbeat_interval_ms) {
            0 => HEARTBEAT_INTERVAL_MS,
            n => n.max(MIN_HEARTBEAT_INTERVAL_MS),
        });
        let (tx, rx) = mpsc::channel(resume.window + CHANNEL_SLACK);
        let mut outbox = Outbox::default();
        // Fill the first window before opening the call, so a center that waits for
        // the first message before answering the call is not kept waiting.
        if self.fill(&tx, &mut outbox).await? == 0 {
            let _ = tx.try_send(self.heartbeat());
        }
        let until = earliest(
            Instant::now() + Duration::from_millis(HELLO_TIMEOUT_MS),
            *deadline,
        );
        let mut acks = timeout_at(until, client.push(ReceiverStream::new(rx)))
            .await
            .map_err(|_| SessionError::Transport("timed out opening the push stream".into()))?
            .map_err(|s| classify(&s))?
            .into_inner();

        let mut progress = Progress {
            acknowledged_at_start: self.sender.acknowledged_through(),
            noted_through: self.sender.acknowledged_through(),
            last_note: Instant::now(),
            caught_up_noted: false,
        };
        let mut next_heartbeat = Instant::now() + heartbeat_every;
        let mut last_answer = Instant::now();
        let mut draining_until: Option<Instant> = None;
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        loop {
            if self.done() {
                return Ok(SessionEnd::Done);
            }
            if draining_until.is_some() && self.sender.in_flight() == 0 {
                return Ok(SessionEnd::Shutdown);
            }
            if draining_until.is_none() {
                let was_waiting = self.sender.in_flight() > 0;
                match self.fill(&tx, &mut outbox).await {
                    Ok(0) => {}
                    Ok(_) => {
                        next_heartbeat = Instant::now() + heartbeat_every;
                        if !was_waiting {
                            last_answer = Instant::now();
                        }
                    }
                    Err(SessionError::StreamClosed) => {
                        return Err(self
                            .after_close(&mut acks, &mut progress, deadline, timeout)
                            .await);
                    }
                    Err(e) => return Err(e),
                }
            }
            let idle = self.sender.is_idle();
            let waiting = self.sender.in_flight() > 0;
            let heads_open = self.heads_open;
            tokio::select! {
                biased;
                _ = wait_stop(&mut self.shutdown), if draining_until.is_none() => {
                    if self.sender.in_flight() == 0 {
                        return Ok(SessionEnd::Shutdown);
                    }
                    draining_until = Some(Instant::now() + Duration::from_millis(SHUTDOWN_GRACE_MS));
                }
                _ = sleep_until(draining_until.unwrap_or(far)), if draining_until.is_some() => {
                    return Ok(SessionEnd::Shutdown);
                }
                message = acks.next() => match message {
                    Some(Ok(ack)) => {
                        last_answer = Instant::now();
                        self.on_ack(&ack, &mut progress, deadline, timeout)?;
                    }
                    Some(Err(status)) => return Err(classify(&status)),
                    None => return Err(SessionError::Transport("the center ended the session".into())),
                },
                changed = self.heads.changed(), if heads_open => match changed {
                    Ok(()) => {
                        let head = *self.heads.borrow_and_update();
                        self.sender.on_sealed(head);
                    }
                    Err(_) => self.heads_open = false,
                },
                _ = sleep_until(next_heartbeat), if idle => {
                    let _ = tx.try_send(self.heartbeat());
                    self.recorder.touch();
                    next_heartbeat = Instant::now() + heartbeat_every;
                }
                _ = sleep_until(last_answer + Duration::from_millis(ACK_TIMEOUT_MS)), if waiting => {
                    return Err(SessionError::Transport(format!(
                        "no acknowledgement from the center for {} s",
                        ACK_TIMEOUT_MS / 1_000
                    )));
                }
                _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    return Err(SessionError::NoProgress(
                        "the center acknowledged nothing new in time".into(),
                    ));
                }
            }
        }
    }
}

fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}

/// A rejection or refusal as a stop of `station run`.
fn run_stop(e: &SessionError, center: &str) -> Option<RunStop> {
    match e {
        SessionError::Stop(Stop::Terminal(t)) => Some(RunStop {
            reason: t.reason(),
            message: t.to_string(),
            sealing_stopped: t.stops_sealing(),
        }),
        SessionError::Refused { code, message } => Some(RunStop {
            reason: format!("REFUSED_{}", format!("{code:?}").to_uppercase()),
            message: format!("the center at {center} refused this station ({code:?}): {message}"),
            sealing_stopped: false,
        }),
        _ => None,
    }
}

/// Seals every `interval` what any `station` process recorded, and publishes the
/// head of the sealed chain (batches sealed by other processes included).
async fn seal_loop(
    store: Shared,
    prov: Arc<Provisioned>,
    interval: Duration,
    heads: watch::Sender<u64>,
    allowed: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
    log: Log,
) {
    let mut last_error: Option<String> = None;
    let mut stopping = false;
    loop {
        if allowed.load(Ordering::SeqCst) {
            let prov = Arc::clone(&prov);
            match with_store(&store, move |s| {
                let made = s.seal(&prov)?;
                Ok((made, s.head()?.sequence))
            })
            .await
            {
                Ok((_, head)) => {
                    heads.send_if_modified(|h| {
                        let newer = head > *h;
                        *h = (*h).max(head);
                        newer
                    });
                    last_error = None;
                }
                Err(e) => {
                    let text = format!("sealing: {e}");
                    if last_error.as_ref() != Some(&text) {
                        log(&Note::LocalProblem {
                            error: text.clone(),
                        });
                    }
                    last_error = Some(text);
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wait_stop(&mut shutdown) => stopping = true,
        }
    }
}

/// `station run`: keep the station in touch with the center until `shutdown`
/// turns true. Returns what happened; `stopped` is set if the center rejected the
/// station (pushing stopped, recording did not).
pub async fn run(
    dir: &Path,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
    log: Log,
) -> Result<RunSummary, SyncError> {
    let started = Instant::now();
    let head = Store::open(dir)?.head()?.sequence;
    let (heads_tx, heads_rx) = watch::channel(head);
    let mut agent = Agent::open(dir, Mode::Run, heads_rx, shutdown.clone(), log.clone())?;
    let sealing = Arc::new(AtomicBool::new(true));
    let sealer = tokio::spawn(seal_loop(
        Arc::new(Mutex::new(Store::open(dir)?)),
        Arc::clone(&agent.prov),
        Duration::from_millis(options.seal_interval_ms.max(1)),
        heads_tx,
        Arc::clone(&sealing),
        shutdown.clone(),
        log.clone(),
    ));
    let mut stop_requested = shutdown.clone();
    let mut backoff = Backoff::default();
    let mut stopped: Option<RunStop> = None;
    loop {
        if *stop_requested.borrow() {
            break;
        }
        if stopped.is_some() {
            // Pushing is over until an operator acts; sealing goes on.
            wait_stop(&mut stop_requested).await;
            break;
        }
        let mut hello_ok = false;
        let mut stop_during = shutdown.clone();
        let mut no_deadline = None;
        let result = tokio::select! {
            result = agent.session(&mut hello_ok, &mut no_deadline, None) => result,
            // A session drains itself on a stop; this only bounds a stop that comes
            // while it is still connecting or saying Hello.
            _ = async {
                wait_stop(&mut stop_during).await;
                tokio::time::sleep(Duration::from_millis(SHUTDOWN_GRACE_MS + STOP_MARGIN_MS)).await;
            } => Ok(SessionEnd::Shutdown),
        };
        agent.sender.on_disconnected();
        if hello_ok {
            backoff.reset();
        }
        let error = match result {
            Ok(_) => break,
            Err(e) => e,
        };
        if let Some(stop) = run_stop(&error, &agent.center) {
            if stop.sealing_stopped {
                sealing.store(false, Ordering::SeqCst);
                agent.note(Note::SealingStopped);
            }
            agent.note(Note::Stopped {
                message: stop.message.clone(),
            });
            stopped = Some(stop);
            continue;
        }
        let retry_in_ms = backoff.next_delay_ms(os_random());
        let text = error.text();
        agent.note(match (&error, hello_ok) {
            (SessionError::Local(_), _) => Note::LocalProblem {
                error: format!("{text}; retrying in {retry_in_ms} ms"),
            },
            (_, true) => Note::ConnectionLost {
                center: agent.center.clone(),
                error: text,
                retry_in_ms,
            },
            (_, false) => Note::Unreachable {
                center: agent.center.clone(),
                error: text,
                retry_in_ms,
            },
        });
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(retry_in_ms)) => {}
            _ = wait_stop(&mut stop_requested) => break,
        }
    }
    let _ = sealer.await;
    let acknowledged = agent.recorder.finish().await.map_err(SyncError::Record)?;
    let local_head = with_store(&agent.reader, |s| s.head()).await?.sequence;
    Ok(RunSummary {
        center: agent.center,
        local_head,
        acknowledged_through: acknowledged,
        counters: agent.counters,
        running_ms: ms(started.elapsed()),
        stopped,
    })
}

/// `station sync`: connect, seal everything, push until the center has acknowledged
/// all of it. Gives up after `timeout_ms` without reaching the center or without
/// progress.
pub async fn sync(dir: &Path, options: SyncOptions, log: Log) -> Result<SyncSummary, SyncError> {
    let started = Instant::now();
    // Nothing asks `sync` to stop: Ctrl-C ends the process, and nothing is lost by it.
    let (_keep_shutdown, shutdown) = watch::channel(false);
    let (_keep_heads, heads) = watch::channel(0);
    let mode = Mode::Sync {
        target: None,
        sealed_batches: 0,
        sealed_ballots: 0,
    };
    let mut agent = Agent::open(dir, mode, heads, shutdown, log)?;
    let timeout = Duration::from_millis(options.timeout_ms);
    let mut deadline = Some(started + timeout);
    let mut backoff = Backoff::default();
    let mut attempts = 0u32;
    let mut ever_connected = false;
    let outcome: Result<Instant, SyncError> = loop {
        attempts += 1;
        let attempt_started = Instant::now();
        let mut hello_ok = false;
        let result = agent
            .session(&mut hello_ok, &mut deadline, Some(timeout))
            .await;
        agent.sender.on_disconnected();
        if hello_ok {
            backoff.reset();
            ever_connected = true;
        }
        let error = match result {
            Ok(_) => break Ok(attempt_started),
            Err(e) => e,
        };
        let give_up = |last_error: String| {
            let waited_s = started.elapsed().as_secs_f64();
            if ever_connected {
                SyncError::NoProgress {
                    center: agent.center.clone(),
                    waited_s,
                    attempts,
                    last_error,
                }
            } else {
                SyncError::Unreachable {
                    center: agent.center.clone(),
                    waited_s,
                    attempts,
                    last_error,
                }
            }
        };
        match error {
            SessionError::Stop(Stop::Terminal(t)) => break Err(SyncError::Rejected(t)),
            SessionError::Refused { code, message } => {
                break Err(SyncError::Refused {
                    center: agent.center.clone(),
                    code: format!("{code:?}"),
                    message,
                });
            }
            SessionError::NoProgress(text) => break Err(give_up(text)),
            other => {
                let text = other.text();
                let mut retry_at =
                    Instant::now() + Duration::from_millis(backoff.next_delay_ms(os_random()));
                // The last attempt is made in time to have a chance before the deadline.
                if let Some(d) = deadline {
                    let last_try = d
                        .checked_sub(Duration::from_millis(LAST_ATTEMPT_MS))
                        .unwrap_or(d);
                    if Instant::now() >= last_try {
                        break Err(give_up(text));
                    }
                    retry_at = retry_at.min(last_try);
                }
                let retry_in_ms = ms(retry_at.saturating_duration_since(Instant::now()));
                agent.note(if hello_ok {
                    Note::ConnectionLost {
                        center: agent.center.clone(),
                        error: text,
                        retry_in_ms,
                    }
                } else {
                    Note::Unreachable {
                        center: agent.center.clone(),
                        error: text,
                        retry_in_ms,
                    }
                });
                sleep_until(retry_at).await;
            }
        }
    };
    // Whatever happened, what the center acknowledged is recorded before returning.
    let done_at = Instant::now();
    let recorded = agent.recorder.finish().await;
    let catch_up_started = outcome?;
    let acknowledged = recorded.map_err(SyncError::Record)?;
    let Mode::Sync {
        target,
        sealed_batches,
        sealed_ballots,
    } = agent.mode
    else {
        return Err(SyncError::Record("not a sync".into()));
    };
    let target = target.unwrap_or(0);
    if acknowledged < target {
        return Err(SyncError::Record(format!(
            "only batches up to {acknowledged} of {target} are recorded as acknowledged"
        )));
    }
    Ok(SyncSummary {
        center: agent.center,
        sealed_batches,
        sealed_ballots,
        local_head: agent.sender.local_head(),
        acknowledged_through: acknowledged,
        counters: agent.counters,
        elapsed_ms: ms(started.elapsed()),
        catch_up_ms: ms(done_at - catch_up_started),
    })
}
