//! The single writer thread: takes queued batches in call order, waits for their
//! stateless checks from the verify pool, judges each against the station's state
//! (kept in memory, re-read whenever another process committed), applies it inside
//! its own savepoint, commits the whole group once, publishes the new heads and
//! then answers every acknowledgement of the group.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};

use super::queue;
use std::time::{Duration, Instant};

use pollsync_proto::pb;
use pollsync_proto::tlog::{Leaf, LogKey};
use tokio::sync::oneshot;

use super::alerts::AlertBook;
use super::events::IngestEvent;
use super::judge::{self, Context, Lookups, Prepared, StationKey, StationState, StoredAt, Verdict};
use super::lease::{Decision, LeaseRow, LogLease};
use super::relay;
use super::{
    LOG_CHECKPOINT_INTERVAL_MS, MAX_GROUP_BATCHES, MAX_GROUP_BYTES,
    MAX_WAL_BYTES_BEFORE_CHECKPOINT, PRESENCE_FLUSH_INTERVAL_MS, REFRESH_INTERVAL_MS, Shared, lock,
};
use crate::error::{CenterError, Result};
use crate::store;
use crate::store::apply::Presence;
use crate::store::{EvidenceBatch, ForkEvidence, now_unix_ms};
use crate::store::{IngestOps, IngestStore, IngestTx as _, Unit as _};

/// A batch's answer to send once its group is durable (`None`: none, the caller
/// learns from the dropped sender), and when the batch was received.
type Reply = (oneshot::Sender<pb::Ack>, Option<pb::Ack>, Instant);

/// One entry of the writer's queue.
pub(super) enum Job {
    /// A batch pushed (over a connection whose certificate has `peer_key`) or
    /// imported (`peer_key` `None`) as station `peer`.
    Batch {
        peer: String,
        peer_key: Option<[u8; 32]>,
        prepared: mpsc::Receiver<Prepared>,
        reply: oneshot::Sender<pb::Ack>,
        /// When the batch was handed to the ingest (for the latency histogram).
        received: Instant,
    },
    /// An alert about a station that no batch carries (a refused stale key).
    Alert {
        station: String,
        kind: &'static str,
        detail: String,
    },
    /// An alert about an imported file, charged to no station.
    FileAlert { detail: String },
}

pub(super) struct Writer<S: IngestStore> {
    /// The store, through its engine.
    store: S,
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    /// Every station's state and key as this writer knows them.
    known: Known,
    data_version: i64,
    last_refresh: Instant,
    last_presence_flush: Instant,
    /// Log per-group timings ([`TRACE_ENV`] set).
    trace: bool,
    /// When the current group began (for the trace).
    group_started: Instant,
    /// Time the current group spent waiting for the pool, applying, committing.
    timings: [Duration; 3],
    /// Batch bytes committed since the last WAL checkpoint.
    uncheckpointed_bytes: usize,
    /// What the current group decided, published once it is durable.
    group_events: Vec<IngestEvent>,
    /// What the writer remembers per station beside its state.
    books: Books,
    /// Signs the transparency log's checkpoints.
    log_key: LogKey,
    /// When the writer last looked whether the log needs a new checkpoint.
    last_log_checkpoint: Instant,
    /// This replica's side of the log lease (a shared store only).
    lease: Option<LogLease>,
    /// Whether each group's decisions are announced to the other replicas.
    announce: bool,
    /// When the writer last read the presence other replicas wrote.
    last_presence_read: Instant,
}

/// The stations as the writer knows them: as stored at its last read, plus what
/// it applied since.
#[derive(Default)]
struct Known {
    states: HashMap<String, StationState>,
    keys: HashMap<String, StationKey>,
}

/// Per station, beside its state: what the writer remembers of the store, cleared
/// whenever the store may hold something else (a failed group, another process's
/// commit).
#[derive(Default)]
struct Books {
    /// Every ballot id its stored batches hold (loaded from them on the
    /// station's first batch, then kept current).
    ballot_ids: BallotIndex,
    /// Alerts stored, to hold each station to its limit.
    alerts: AlertBook,
}

impl Books {
    fn forget(&mut self) {
        self.ballot_ids.clear();
        self.alerts.forget();
    }
}

/// Station → ballot id → sequence of the batch holding it.
type BallotIndex = HashMap<String, HashMap<judge::BallotKey, u64>>;

/// Environment variable that makes the writer log per-group timings (at info).
pub const TRACE_ENV: &str = "POLLSYNC_INGEST_TRACE";

impl<S: IngestStore> Writer<S> {
    pub(super) fn new(
        store: S,
        ctx: Arc<Context>,
        shared: Arc<Shared>,
        log_key: LogKey,
    ) -> Result<Writer<S>> {
        let mut writer = Writer {
            store,
            ctx,
            shared,
            known: Known::default(),
            data_version: 0,
            last_refresh: Instant::now(),
            last_presence_flush: Instant::now(),
            trace: std::env::var_os(TRACE_ENV).is_some(),
            group_started: Instant::now(),
            timings: [Duration::ZERO; 3],
            uncheckpointed_bytes: 0,
            group_events: Vec::new(),
            books: Books::default(),
            log_key,
            last_log_checkpoint: Instant::now(),
            lease: None,
            announce: false,
            last_presence_read: Instant::now(),
        };
        if writer.store.shared() {
            writer.lease = Some(LogLease::new(&writer.shared.replica));
            // An engine without NOTIFY (some PostgreSQL-compatible distributed
            // engines) would fail every group that announces: find out once,
            // outside any transaction, and announce only where it works.
            match writer.store.ops().announce(relay::EVENTS_CHANNEL, "") {
                Ok(()) => writer.announce = true,
                Err(e) => tracing::warn!(
                    error = %e,
                    "this database has no NOTIFY: the event stream of each replica shows its own decisions only"
                ),
            }
        }
        writer.reload()?;
        // The log is published from the start, even before its first leaf.
        writer.publish_checkpoint()?;
        Ok(writer)
    }

    /// Re-reads every station's state in one read transaction and publishes it.
    fn reload(&mut self) -> Result<()> {
        let tx = self.store.read()?;
        let version = tx.ops().version()?;
        let (states, keys) = tx.ops().load_states()?;
        tx.commit()?;
        adopt(&mut self.known, &mut self.books, &self.shared, states, keys);
        self.data_version = version;
        Ok(())
    }

    pub(super) fn run(mut self, rx: queue::Receiver<Job>) {
        let tick = Duration::from_millis(REFRESH_INTERVAL_MS);
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    // Every handle dropped without a shutdown: nobody can submit.
                    if Arc::strong_count(&self.shared) == 1 {
                        break;
                    }
                    self.idle();
                    self.checkpoint_when_due();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.group_started = Instant::now();
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP_BATCHES {
                match rx.try_recv() {
                    Some(job) => jobs.push(job),
                    None => break,
                }
            }
            self.process_jobs(jobs);
            if self.last_refresh.elapsed() >= tick {
                self.idle();
            }
            self.checkpoint_when_due();
        }
        self.flush_presence_now();
    }

    /// Re-reads state another process changed; flushes presence when due.
    fn idle(&mut self) {
        self.last_refresh = Instant::now();
        match self.store.ops().version() {
            Ok(v) if v != self.data_version => {
                if let Err(e) = self.reload() {
                    tracing::error!(error = %e, "cannot re-read the store");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the store's version"),
        }
        if self.presence_due() {
            self.flush_presence_now();
        }
        if self.lease.is_some() {
            self.read_stored_presence();
        }
        if self.uncheckpointed_bytes > 0 {
            self.checkpoint();
        }
    }

    /// Signs a checkpoint of the log every [`LOG_CHECKPOINT_INTERVAL_MS`] while it
    /// grows (a standing change made by an offline command counts too).
    fn checkpoint_when_due(&mut self) {
        if self.last_log_checkpoint.elapsed() < Duration::from_millis(LOG_CHECKPOINT_INTERVAL_MS) {
            return;
        }
        if let Err(e) = self.publish_checkpoint() {
            tracing::error!(error = %e, "cannot publish a checkpoint of the transparency log");
        }
    }

    /// Signs and stores a checkpoint of the log as it stands, if it grew.
    fn publish_checkpoint(&mut self) -> Result<()> {
        self.last_log_checkpoint = Instant::now();
        // Nothing new since the newest checkpoint: no write transaction (it would
        // hold other writers back every second while idle).
        let ops = self.store.ops();
        if ops.latest_checkpoint_size()? == Some(ops.log_size()?) {
            return Ok(());
        }
        let tx = self.store.write()?;
        let lease_row = match &mut self.lease {
            None => None,
            Some(lease) => {
                let stored = tx.ops().log_lease()?;
                match lease.decide(stored.as_deref().and_then(LeaseRow::parse), Instant::now()) {
                    // Another replica signs; the transaction rolls back unused.
                    Decision::Wait => return Ok(()),
                    Decision::Sign(row) => Some(row),
                }
            }
        };
        // Nothing to sign (another writer just did): the transaction rolls back.
        let Some(size) = store::log::checkpoint(tx.ops(), &self.log_key)? else {
            return Ok(());
        };
        if let Some(row) = lease_row {
            tx.ops().set_log_lease(&row.to_text())?;
        }
        tx.commit()?;
        tracing::debug!(size, "transparency log checkpoint published");
        Ok(())
    }

    /// The store's housekeeping (SQLite: copies the WAL into the database file,
    /// never waiting for readers).
    fn checkpoint(&mut self) {
        match self.store.maintain() {
            Ok(()) => self.uncheckpointed_bytes = 0,
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }

    /// Reads what every replica of a shared store last wrote of the stations'
    /// presence, for the live view (at most every [`PRESENCE_FLUSH_INTERVAL_MS`]).
    fn read_stored_presence(&mut self) {
        if self.last_presence_read.elapsed() < Duration::from_millis(PRESENCE_FLUSH_INTERVAL_MS) {
            return;
        }
        self.last_presence_read = Instant::now();
        match self.store.ops().read_presence() {
            Ok(stored) => {
                *self
                    .shared
                    .stored_presence
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = stored;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the stations' presence"),
        }
    }

    fn presence_due(&self) -> bool {
        self.last_presence_flush.elapsed() >= Duration::from_millis(PRESENCE_FLUSH_INTERVAL_MS)
            && lock(&self.shared.presence).dirty
    }

    fn take_presence(&self) -> Option<HashMap<String, Presence>> {
        let mut book = lock(&self.shared.presence);
        if !book.dirty {
            return None;
        }
        book.dirty = false;
        Some(book.entries.clone())
    }

    fn flush_presence_now(&mut self) {
        let Some(entries) = self.take_presence() else {
            return;
        };
        self.last_presence_flush = Instant::now();
        let result = (|| -> Result<()> {
            let tx = self.store.write()?;
            tx.ops().write_presence(&entries)?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record station presence");
        }
        // Our own commit does not change our data_version; nothing to reload.
    }

    /// Handles `jobs` in order: one transaction per group (a new one when a group
    /// reaches [`MAX_GROUP_BYTES`]). Each batch is judged and applied as soon as
    /// the pool has prepared it, so the writer works while the pool still
    /// prepares the batches behind it.
    fn process_jobs(&mut self, jobs: Vec<Job>) {
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let presence = if self.presence_due() {
                self.take_presence()
            } else {
                None
            };
            let mut replies: Vec<Reply> = Vec::new();
            let mut touched = BTreeSet::new();
            let result = self.apply_group(&mut jobs, presence.as_ref(), &mut replies, &mut touched);
            match result {
                Ok(()) => {
                    if self.trace && !replies.is_empty() {
                        tracing::info!(
                            batches = replies.len(),
                            total_ms = self.group_started.elapsed().as_secs_f64() * 1e3,
                            pool_ms = self.timings[0].as_secs_f64() * 1e3,
                            apply_ms = self.timings[1].as_secs_f64() * 1e3,
                            commit_ms = self.timings[2].as_secs_f64() * 1e3,
                            "group applied and committed"
                        );
                    }
                    for event in &self.group_events {
                        super::log::ingest_decision(event);
                    }
                    self.shared
                        .publish_some(&touched, &self.known.states, &self.known.keys);
                    let metrics = &self.shared.publisher.metrics;
                    metrics.groups_committed.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .alerts_suppressed
                        .fetch_add(self.books.alerts.take_suppressed(), Ordering::Relaxed);
                    self.shared
                        .publisher
                        .committed(std::mem::take(&mut self.group_events), now_unix_ms());
                    if presence.is_some() {
                        self.last_presence_flush = Instant::now();
                    }
                    metrics
                        .histograms
                        .commit_seconds
                        .observe(self.timings[2].as_secs_f64());
                    for (reply, ack, received) in replies {
                        if let Some(ack) = ack {
                            metrics
                                .histograms
                                .ingest_seconds
                                .observe(received.elapsed().as_secs_f64());
                            let _ = reply.send(ack);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(
                        batches = replies.len(),
                        error = %e,
                        "group commit failed: none of its batches is acknowledged"
                    );
                    self.group_events.clear();
                    self.books.forget();
                    self.books.alerts.take_suppressed();
                    self.shared
                        .publisher
                        .metrics
                        .groups_failed
                        .fetch_add(1, Ordering::Relaxed);
                    if presence.is_some() {
                        lock(&self.shared.presence).dirty = true;
                    }
                    if let Err(e) = self.reload() {
                        tracing::error!(error = %e, "cannot re-read the store");
                    }
                    // Dropping the replies tells every caller the batch was not applied.
                    drop(replies);
                }
            }
            self.group_started = Instant::now();
            self.timings = [Duration::ZERO; 3];
            self.last_refresh = Instant::now();
            if self.uncheckpointed_bytes >= MAX_WAL_BYTES_BEFORE_CHECKPOINT {
                self.checkpoint();
            }
        }
    }

    /// One transaction: takes jobs until the group's bytes reach the cap or the
    /// jobs run out; judges and applies each in its own savepoint.
    fn apply_group(
        &mut self,
        jobs: &mut std::iter::Peekable<std::vec::IntoIter<Job>>,
        presence: Option<&HashMap<String, Presence>>,
        replies: &mut Vec<Reply>,
        touched: &mut BTreeSet<String>,
    ) -> Result<()> {
        let mut tx = self.store.write()?;
        let version = tx.ops().version()?;
        if version != self.data_version {
            let (states, keys) = tx.ops().load_states()?;
            adopt(&mut self.known, &mut self.books, &self.shared, states, keys);
            self.data_version = version;
        }
        let now = now_unix_ms();
        let mut bytes = 0usize;
        while bytes < MAX_GROUP_BYTES {
            let Some(job) = jobs.next() else { break };
            let (peer, peer_key, prepared, reply) = match job {
                Job::Alert {
                    station,
                    kind,
                    detail,
                } => {
                    if self.known.states.contains_key(&station) {
                        self.books
                            .alerts
                            .raise(tx.ops(), &station, kind, 0, &detail, now)?;
                    }
                    continue;
                }
                Job::FileAlert { detail } => {
                    self.books
                        .alerts
                        .raise(tx.ops(), "", "BAD_FILE", 0, &detail, now)?;
                    continue;
                }
                Job::Batch {
                    peer,
                    peer_key,
                    prepared,
                    reply,
                    received,
                } => (peer, peer_key, prepared, (reply, received)),
            };
            // A dropped sender (a panic in the pool) leaves the reply unanswered:
            // the caller sees that the center failed.
            let waiting = Instant::now();
            let Ok(mut prepared) = prepared.recv() else {
                continue;
            };
            let applying = Instant::now();
            self.timings[0] += applying - waiting;
            bytes = bytes.saturating_add(prepared.signed.batch.len());
            let known = self.known.states.contains_key(&peer);
            let mut state = self.known.states.get(&peer).cloned().unwrap_or_default();
            prepared.recheck_signature(self.known.keys.get(&peer));
            let current_key = self.known.keys.get(&peer).map(|k| k.key.to_bytes());
            if let Some(key) = peer_key
                && current_key != Some(key)
            {
                // The connection's key was replaced or retired after it was opened.
                let rejection = judge::stale_key(&peer, &state, &prepared);
                if self.shared.stale_alert_due(&peer) && known {
                    let detail = format!(
                        "a batch pushed with a refused key was rejected: {}",
                        rejection.detail
                    );
                    self.books.alerts.raise(
                        tx.ops(),
                        &peer,
                        rejection.kind(),
                        rejection.sequence,
                        &detail,
                        now,
                    )?;
                }
                let verdict = Verdict::Reject(rejection);
                self.group_events.push(event_of(&peer, &verdict));
                replies.push((reply.0, Some(verdict.ack()), reply.1));
                continue;
            }
            let sp = tx.savepoint()?;
            match judge_and_apply(
                sp.ops(),
                &self.ctx,
                &peer,
                &state,
                &prepared,
                now,
                &mut self.books,
            ) {
                Ok(verdict) => {
                    sp.commit()?;
                    self.group_events.push(event_of(&peer, &verdict));
                    match &verdict {
                        Verdict::Accept(effects) => state.advance(effects),
                        Verdict::Reject(r) => state.reject(r),
                        Verdict::Duplicate { .. } => {}
                    }
                    if known {
                        self.known.states.insert(peer.clone(), state);
                        touched.insert(peer);
                    }
                    replies.push((reply.0, Some(verdict.ack()), reply.1));
                }
                Err(e @ CenterError::HeadMoved { .. }) => {
                    // Another writer moved the head behind this one's back: the
                    // whole group is judged on stale state. Roll it all back; the
                    // writer reloads and the stations resend.
                    return Err(e);
                }
                Err(e) => {
                    // Rolled back as `sp` drops; this batch goes unanswered.
                    drop(sp);
                    tracing::error!(
                        station = crate::logging::text(&peer),
                        sequence = prepared.sequence(),
                        error = %e,
                        "batch not applied: it goes unanswered"
                    );
                    replies.push((reply.0, None, reply.1));
                }
            }
            self.timings[1] += applying.elapsed();
        }
        if let Some(entries) = presence {
            tx.ops().write_presence(entries)?;
        }
        // Other writers of a shared store re-read what this group changed, and
        // hear what it decided once it commits.
        let version = tx.ops().mark_written()?;
        if self.announce {
            for payload in relay::announcements(&self.shared.replica, &self.group_events) {
                tx.ops().announce(relay::EVENTS_CHANNEL, &payload)?;
            }
        }
        let committing = Instant::now();
        tx.commit()?;
        self.data_version = version;
        self.timings[2] += committing.elapsed();
        self.uncheckpointed_bytes = self.uncheckpointed_bytes.saturating_add(bytes);
        Ok(())
    }
}

/// Takes the stations' state as another writer left it, and publishes it. The
/// ballot ids remembered of a station whose head moved are forgotten (another
/// replica stored batches of it); those of the others still hold. Alert counts
/// are read again.
fn adopt(
    known: &mut Known,
    books: &mut Books,
    shared: &Shared,
    states: HashMap<String, StationState>,
    keys: HashMap<String, StationKey>,
) {
    let before = &known.states;
    books.ballot_ids.retain(|station, _| {
        before.get(station).map(|s| s.head) == states.get(station).map(|s| s.head)
    });
    books.alerts.forget();
    known.states = states;
    known.keys = keys;
    shared.publish(&known.states, &known.keys);
}

/// The operators' view of a verdict.
fn event_of(peer: &str, verdict: &Verdict) -> IngestEvent {
    let station = peer.to_owned();
    match verdict {
        Verdict::Accept(e) => IngestEvent::Accepted {
            station,
            sequence: e.sequence,
            ballots: e.ballots,
            counted: e.deltas.values().map(|d| d.returned).sum(),
            closed: e
                .closes
                .iter()
                .map(|(contest, _)| contest.clone())
                .collect(),
        },
        Verdict::Duplicate { sequence, .. } => IngestEvent::Duplicate {
            station,
            sequence: *sequence,
        },
        Verdict::Reject(r) => IngestEvent::Rejected {
            station,
            sequence: r.sequence,
            reason: r.kind(),
            detail: r.detail.clone(),
            alert: r.alerts(),
        },
    }
}

/// Looks up what the judge needs, judges, and writes the verdict's effects.
fn judge_and_apply(
    conn: &dyn IngestOps,
    ctx: &Context,
    peer: &str,
    state: &StationState,
    prepared: &Prepared,
    now: u64,
    books: &mut Books,
) -> Result<Verdict> {
    let Books { ballot_ids, alerts } = books;
    let needs = judge::needs(state, prepared);
    let mut lookups = Lookups::default();
    let mut stored_row = None;
    if needs.earlier_ids {
        if !ballot_ids.contains_key(peer) {
            let batches = conn.station_batches(peer)?;
            let known = judge::scan_ballot_ids(batches.iter().map(Vec::as_slice));
            ballot_ids.insert(peer.to_owned(), known);
        }
        if let Some(known) = ballot_ids.get(peer) {
            lookups.reused_id = prepared
                .ballot_ids()
                .iter()
                .find_map(|id| known.get(id).map(|earlier| (*id, *earlier)));
        }
    }
    if let Some(sequence) = needs.stored_sequence {
        stored_row = conn.stored_batch_row(peer, sequence)?;
        lookups.stored_at = stored_row.as_ref().map(|stored| {
            if stored.batch == prepared.signed.batch {
                StoredAt::SameBytes
            } else {
                StoredAt::OtherBytes {
                    stored_hash: stored.hash,
                }
            }
        });
    }
    if !needs.past_ballots.is_empty() {
        let batches = conn.station_batches(peer)?;
        lookups.past_ballots =
            judge::scan_past_ballots(batches.iter().map(Vec::as_slice), &needs.past_ballots);
    }
    let verdict = judge::judge(ctx, peer, state, prepared, &lookups);
    match &verdict {
        Verdict::Accept(effects) => {
            let leaf =
                store::log::append(conn, &Leaf::batch(peer, effects.sequence, effects.hash))?;
            conn.apply_effects(
                ctx,
                peer,
                &prepared.signed.batch,
                &prepared.signed.signature,
                effects,
                leaf,
            )?;
            alerts.raise_flags(conn, peer, effects, now)?;
            if let Some(known) = ballot_ids.get_mut(peer) {
                for id in prepared.ballot_ids() {
                    known.insert(*id, effects.sequence);
                }
            }
        }
        Verdict::Duplicate { .. } => {}
        Verdict::Reject(r) => {
            if r.alerts() {
                alerts.raise(conn, peer, r.kind(), r.sequence, &r.detail, now)?;
            }
            if r.quarantines() {
                conn.quarantine(peer)?;
                if let (Some(stored), Some(other_key_no)) = (stored_row, prepared.verified_key()) {
                    let other_hash = pollsync_proto::chain_hash(&prepared.signed.batch);
                    conn.insert_fork_evidence(&ForkEvidence {
                        station: peer.to_owned(),
                        sequence: r.sequence,
                        stored,
                        other: EvidenceBatch {
                            hash: other_hash,
                            batch: prepared.signed.batch.clone(),
                            signature: prepared.signed.signature.clone(),
                            key_no: other_key_no,
                        },
                        unix_ms: now,
                    })?;
                    store::log::append(conn, &Leaf::fork(peer, r.sequence, other_hash))?;
                }
            }
        }
    }
    Ok(verdict)
}
