//! One connection to the center, at the address the core picks: connect, Hello,
//! then the Push call, until the sync is done, the command is told to stop, or the
//! connection breaks. Every decision is
//! the sync core's ([`Core`]); this moves bytes between the core, the store and the
//! gRPC call, and sleeps until the deadline the core gives.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pollsync_proto::limits::MAX_MESSAGE_BYTES;
use pollsync_proto::pb;
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout_at};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::clock::{Clock, sleep_until};
use super::outbox::Outbox;
use super::recorder::Recorder;
use super::{
    CLOSE_DRAIN_MS, Counters, LocalError, Log, Note, PROGRESS_LOG_INTERVAL_MS, Shared,
    hello_request, wait_stop, with_store,
};
use crate::store::Provisioned;
use crate::sync::connect::CenterLink;
use crate::sync::core::ending::{self, RunStop, StatusClass};
use crate::sync::core::{Core, SessionEnd, Timeout};
use crate::sync::sender::{AckOutcome, SessionStart, Stop};

/// Room in the outgoing channel beyond the window (heartbeats).
const CHANNEL_SLACK: usize = 4;

/// Why one session ended badly.
#[derive(Debug)]
pub(super) enum SessionError {
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
    /// The error in words, for a note or the final report.
    pub(super) fn text(&self) -> String {
        match self {
            SessionError::Transport(t) | SessionError::NoProgress(t) => t.clone(),
            SessionError::Refused { code, message } => format!("{code:?}: {message}"),
            SessionError::Stop(s) => s.to_string(),
            SessionError::Local(e) => format!("this device's store: {e}"),
            SessionError::StreamClosed => "the center closed the stream".into(),
        }
    }

    /// A gRPC status from the center, by its class.
    fn from_status(status: &tonic::Status) -> SessionError {
        match ending::classify(status.code()) {
            StatusClass::Refused => SessionError::Refused {
                code: status.code(),
                message: status.message().to_string(),
            },
            StatusClass::Transient => SessionError::Transport(status_text(status)),
        }
    }

    /// A deadline the core says has passed.
    fn from_timeout(due: Timeout) -> Option<SessionError> {
        match due {
            Timeout::Dead(why) => Some(SessionError::Transport(why.to_string())),
            Timeout::NoProgress => Some(SessionError::NoProgress(
                "the center acknowledged nothing new in time".into(),
            )),
            Timeout::Heartbeat { .. } | Timeout::DrainOver => None,
        }
    }

    /// A rejection or refusal as a stop of `station run`.
    pub(super) fn run_stop(&self, center: &str) -> Option<RunStop> {
        match self {
            SessionError::Stop(Stop::Terminal(t)) => Some(RunStop::rejected(t)),
            SessionError::Refused { code, message } => {
                Some(RunStop::refused(center, *code, message))
            }
            _ => None,
        }
    }
}

impl From<LocalError> for SessionError {
    fn from(e: LocalError) -> Self {
        SessionError::Local(e)
    }
}

/// An error and its sources on one line.
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    append_sources(&mut text, e.source());
    text
}

/// A status's code, message and sources on one line.
fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{:?}", status.code());
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    append_sources(&mut text, std::error::Error::source(status));
    text
}

/// Appends each source not already said to `text`.
fn append_sources(text: &mut String, mut source: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
}

/// Session-local bookkeeping for progress notes.
struct Progress {
    acknowledged_at_start: u64,
    noted_through: u64,
    last_note: Instant,
    caught_up_noted: bool,
}

/// Runs `work` until it ends or a deadline of the core passes (then the core's
/// verdict, as an error).
async fn bounded<T>(
    core: &mut Core,
    clock: &Clock,
    work: impl Future<Output = T>,
) -> Result<T, SessionError> {
    tokio::pin!(work);
    loop {
        let deadline = core.next_deadline_ms().map(|at| clock.instant_at(at));
        tokio::select! {
            out = &mut work => return Ok(out),
            _ = sleep_until(deadline) => {
                if let Some(e) = core.on_timeout(clock.now_ms()).and_then(SessionError::from_timeout) {
                    return Err(e);
                }
            }
        }
    }
}

/// Everything one command keeps across sessions.
pub(super) struct Agent {
    /// One link per center address, in the station's order; the core says which
    /// one to dial.
    pub(super) links: Vec<CenterLink>,
    pub(super) prov: Arc<Provisioned>,
    pub(super) reader: Shared,
    pub(super) recorder: Recorder,
    pub(super) core: Core,
    pub(super) clock: Clock,
    pub(super) heads: watch::Receiver<u64>,
    pub(super) heads_open: bool,
    pub(super) shutdown: watch::Receiver<bool>,
    /// `station sync`: batches and ballots it sealed after its first good Hello.
    pub(super) sealed: (u64, u64),
    pub(super) counters: Counters,
    pub(super) log: Log,
}

impl Agent {
    pub(super) fn note(&self, note: Note) {
        (self.log)(&note);
    }

    /// The center address dialled now (or next), as the core says.
    pub(super) fn center(&self) -> &str {
        self.links
            .get(self.core.address())
            .map_or("", CenterLink::address)
    }

    /// Every center address, in the station's order, comma-separated.
    pub(super) fn all_centers(&self) -> String {
        self.links
            .iter()
            .map(CenterLink::address)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A session failed for the link's or the center's sake (not this device's
    /// store): the next attempt goes to the next address. Returns the address
    /// that failed.
    pub(super) fn on_link_failed(&mut self, error: &SessionError) -> String {
        let failed = self.center().to_owned();
        if !matches!(error, SessionError::Local(_)) {
            self.core.on_link_failed();
        }
        failed
    }

    async fn connect(&mut self) -> Result<StationSyncClient<Channel>, SessionError> {
        self.core.on_connecting(self.clock.now_ms());
        let link = self
            .links
            .get(self.core.address())
            .cloned()
            .ok_or_else(|| SessionError::Transport("no center address to dial".into()))?;
        let channel = bounded(&mut self.core, &self.clock, link.connect())
            .await?
            .map_err(|e| SessionError::Transport(error_chain(&e)))?;
        Ok(StationSyncClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Hello, then compare heads; returns the reply and what the core made of it.
    async fn hello(
        &mut self,
        client: &mut StationSyncClient<Channel>,
    ) -> Result<(pb::HelloReply, crate::sync::core::Started), SessionError> {
        let head = with_store(&self.reader, |s| s.head()).await?;
        let request = hello_request(&self.prov, head);
        self.core.on_connected(self.clock.now_ms());
        let reply = bounded(&mut self.core, &self.clock, client.hello(request))
            .await?
            .map_err(|s| SessionError::from_status(&s))?
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
        let started = self.core.on_hello(
            self.clock.now_ms(),
            &SessionStart::of(&reply, local_head, local_hash),
            reply.heartbeat_interval_ms,
        );
        if let Some(why) = self.core.poll_hold() {
            with_store(&self.reader, move |s| s.hold_sealing(&why)).await?;
        }
        let started = started.map_err(|t| SessionError::Stop(Stop::Terminal(t)))?;
        if let Some(sequence) = started.resume.evidence {
            self.note(Note::ForkEvidence { sequence });
        }
        Ok((reply, started))
    }

    /// Hands the core's picks to the stream; returns how many were sent.
    async fn fill(
        &mut self,
        tx: &mpsc::Sender<pb::PushMessage>,
        outbox: &mut Outbox,
    ) -> Result<u64, SessionError> {
        let mut sent = 0;
        while let Some(sequence) = self.core.poll_send(self.clock.now_ms()) {
            let batch = outbox.take(&self.reader, sequence).await?;
            tx.send(pb::PushMessage::batch(batch))
                .await
                .map_err(|_| SessionError::StreamClosed)?;
            sent += 1;
        }
        self.counters.batches_sent += sent;
        Ok(sent)
    }

    /// One `Ack` arrived: tell the core, record what it acknowledges, note progress.
    fn on_ack(&mut self, ack: &pb::Ack, progress: &mut Progress) -> Result<(), SessionError> {
        let before = self.core.sender().acknowledged_through();
        match self
            .core
            .on_ack(self.clock.now_ms(), ack)
            .map_err(SessionError::Stop)?
        {
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
                }
            }
            AckOutcome::Resend { from } => {
                self.counters.resends += 1;
                self.note(Note::Resending { from });
            }
            AckOutcome::Stale => {}
        }
        let sender = self.core.sender();
        let through = sender.acknowledged_through();
        let idle = sender.is_idle();
        let due = progress.last_note.elapsed() >= Duration::from_millis(PROGRESS_LOG_INTERVAL_MS);
        // A line when a catch-up ends, and at most one per interval otherwise.
        if through > progress.noted_through && (due || (idle && !progress.caught_up_noted)) {
            self.note(Note::Progress {
                acknowledged_through: through,
                local_head: sender.local_head(),
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
    ) -> SessionError {
        let until = Instant::now() + Duration::from_millis(CLOSE_DRAIN_MS);
        loop {
            match timeout_at(until, acks.next()).await {
                Ok(Some(Ok(ack))) => {
                    if let Err(e) = self.on_ack(&ack, progress) {
                        return e;
                    }
                }
                Ok(Some(Err(status))) => return SessionError::from_status(&status),
                Ok(None) | Err(_) => return SessionError::StreamClosed,
            }
        }
    }

    /// `station sync`, first good Hello: seal everything recorded; the sync is done
    /// once the center holds it all.
    async fn seal_for_sync(&mut self) -> Result<(), SessionError> {
        let prov = Arc::clone(&self.prov);
        let (made, head) = with_store(&self.reader, move |s| {
            let made = s.seal(&prov)?;
            Ok((made, s.head()?.sequence))
        })
        .await?;
        self.core.on_sync_sealed(head);
        let (batches, ballots) = (made.len() as u64, made.iter().map(|b| b.ballots).sum());
        if batches > 0 {
            self.note(Note::Sealed { batches, ballots });
        }
        self.sealed = (batches, ballots);
        Ok(())
    }

    /// One connection: Hello, then push until done, stopped, or broken.
    /// `hello_ok` tells the caller the center answered Hello (reset the backoff).
    pub(super) async fn session(
        &mut self,
        hello_ok: &mut bool,
    ) -> Result<SessionEnd, SessionError> {
        let mut client = self.connect().await?;
        let before = self.core.sender().acknowledged_through();
        let (reply, started) = self.hello(&mut client).await?;
        let resume = started.resume;
        *hello_ok = true;
        self.counters.connections += 1;
        self.recorder.reached(self.center());
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
        if started.seal_first {
            self.seal_for_sync().await?;
        }
        self.note(Note::Connected {
            center: self.center().to_owned(),
            center_head: reply.center_head_sequence,
            local_head: self.core.sender().local_head(),
            window: resume.window,
        });
        if self.core.is_done() {
            return Ok(SessionEnd::Done);
        }

        let (tx, rx) = mpsc::channel(resume.window + CHANNEL_SLACK);
        let mut outbox = Outbox::default();
        // Fill the first window before opening the call, so a center that waits for
        // the first message before answering the call is not kept waiting.
        if self.fill(&tx, &mut outbox).await? == 0 {
            let _ = tx.try_send(self.core.heartbeat());
        }
        self.core.on_opening(self.clock.now_ms());
        let mut acks = bounded(
            &mut self.core,
            &self.clock,
            client.push(ReceiverStream::new(rx)),
        )
        .await?
        .map_err(|s| SessionError::from_status(&s))?
        .into_inner();
        self.core.on_push_open(self.clock.now_ms());

        let mut progress = Progress {
            acknowledged_at_start: self.core.sender().acknowledged_through(),
            noted_through: self.core.sender().acknowledged_through(),
            last_note: Instant::now(),
            caught_up_noted: false,
        };
        loop {
            if let Some(end) = self.core.poll_end() {
                return Ok(end);
            }
            let draining = self.core.draining();
            if !draining {
                match self.fill(&tx, &mut outbox).await {
                    Ok(_) => {}
                    Err(SessionError::StreamClosed) => {
                        return Err(self.after_close(&mut acks, &mut progress).await);
                    }
                    Err(e) => return Err(e),
                }
            }
            let deadline = self
                .core
                .next_deadline_ms()
                .map(|at| self.clock.instant_at(at));
            let heads_open = self.heads_open;
            tokio::select! {
                biased;
                _ = wait_stop(&mut self.shutdown), if !draining => {
                    if let Some(end) = self.core.on_shutdown(self.clock.now_ms()) {
                        return Ok(end);
                    }
                }
                message = acks.next() => match message {
                    Some(Ok(ack)) => self.on_ack(&ack, &mut progress)?,
                    Some(Err(status)) => return Err(SessionError::from_status(&status)),
                    None => return Err(SessionError::Transport("the center ended the session".into())),
                },
                changed = self.heads.changed(), if heads_open => match changed {
                    Ok(()) => {
                        let head = *self.heads.borrow_and_update();
                        self.core.on_sealed(head);
                    }
                    Err(_) => self.heads_open = false,
                },
                _ = sleep_until(deadline) => {
                    while let Some(due) = self.core.on_timeout(self.clock.now_ms()) {
                        match due {
                            Timeout::Heartbeat { local_head, sealed_unacknowledged } => {
                                let _ = tx.try_send(pb::PushMessage::heartbeat(local_head, sealed_unacknowledged));
                                self.recorder.touch();
                            }
                            Timeout::DrainOver => return Ok(SessionEnd::Shutdown),
                            other => {
                                if let Some(e) = SessionError::from_timeout(other) {
                                    return Err(e);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
