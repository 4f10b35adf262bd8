//! The station's sync core, sans-IO with time as an input (in the style of
//! quinn-proto): every event carries `now_ms`, a monotonic millisecond clock the
//! driver supplies (milliseconds since the driver started), and the core says when
//! it next needs to be woken ([`Core::next_deadline_ms`]) and what to do then
//! ([`Core::on_timeout`]). Around the [`Sender`] (what to send, what acks mean) it
//! owns the rest of a session's decisions:
//!
//! - the phases of a connection (connect, Hello, opening the Push call, pushing) and
//!   how long each may take;
//! - heartbeats when idle, and the longest silence from the center while batches are
//!   in flight before the connection counts as dead;
//! - `station sync`'s goal (everything sealed at the first Hello acknowledged) and
//!   its give-up for lack of progress, including when to make the last attempt;
//! - the seal hold: sealing stops on this device when the center holds batches this
//!   device lacks or the chains forked;
//! - draining on shutdown;
//! - which of the center's addresses to dial ([`addresses`]): the next one after
//!   a failure, the same one after a good Hello.
//!
//! What a refusal or a session's end means for the command is [`ending`].
//! The driver (`sync::client`) only moves bytes, does store I/O and sleeps until the
//! deadline it is given.

pub mod addresses;
pub mod ending;

use pollsync_proto::limits::HEARTBEAT_INTERVAL_MS;
use pollsync_proto::pb;

use self::addresses::Rotation;
use super::Sender;
use super::sender::{AckOutcome, Resume, SessionStart, Stop, Terminal};

/// How long one TCP + TLS connection attempt may take.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long Hello, or opening the Push stream, may take.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;
/// With batches in flight, the longest silence from the center before the
/// connection is considered dead.
pub const ACK_TIMEOUT_MS: u64 = 30_000;
/// Floor under the heartbeat interval a center announces.
pub const MIN_HEARTBEAT_INTERVAL_MS: u64 = 100;
/// On stop, how long `station run` waits for answers to batches in flight.
pub const SHUTDOWN_GRACE_MS: u64 = 1_000;
/// `station sync` makes its last attempt at least this long before giving up.
pub const LAST_ATTEMPT_MS: u64 = 250;

/// What the command wants from its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// `station run`: push whatever is sealed, forever, until told to stop.
    Run,
    /// `station sync`: seal once after the first good Hello, then push until the
    /// center holds all of it; give up after `no_progress_ms` without the center
    /// acknowledging anything new (or without reaching it at all).
    Sync {
        /// How long, in ms, to keep trying without progress.
        no_progress_ms: u64,
    },
}

/// Where the current connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No connection.
    Offline,
    /// TCP + TLS under way, until `until_ms`.
    Connecting { until_ms: u64 },
    /// Hello sent, until `until_ms`.
    Hello { until_ms: u64 },
    /// Hello answered; the driver seals (sync) and reads the first window. No timer
    /// runs here: only store work happens.
    Started { heartbeat_every_ms: u64 },
    /// The Push call is being opened, until `until_ms`.
    Opening {
        until_ms: u64,
        heartbeat_every_ms: u64,
    },
    /// The Push call is open.
    Pushing(Pushing),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pushing {
    heartbeat_every_ms: u64,
    next_heartbeat_ms: u64,
    /// The last answer from the center, or when sending began with nothing in
    /// flight: the ack-silence clock starts here.
    last_answer_ms: u64,
    /// Told to stop: answers to what is in flight are awaited until then.
    draining_until_ms: Option<u64>,
}

/// What a deadline that passed asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timeout {
    /// Nothing to send for a heartbeat interval: send a heartbeat with these values
    /// (and record the contact).
    Heartbeat {
        /// The highest sequence sealed on this device.
        local_head: u64,
        /// Batches sealed on this device that the center has not acknowledged.
        sealed_unacknowledged: u64,
    },
    /// The connection is dead: end the session (the driver reconnects).
    Dead(DeadLink),
    /// `station sync`: the center acknowledged nothing new in time; give up.
    NoProgress,
    /// Told to stop, and the grace period for answers is over: end the session.
    DrainOver,
}

/// Why the core declares a connection dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeadLink {
    /// TCP + TLS took longer than [`CONNECT_TIMEOUT_MS`].
    #[error("timed out connecting")]
    Connect,
    /// The center did not answer Hello within [`HELLO_TIMEOUT_MS`].
    #[error("timed out waiting for the Hello reply")]
    Hello,
    /// Opening the Push call took longer than [`HELLO_TIMEOUT_MS`].
    #[error("timed out opening the push stream")]
    OpenPush,
    /// With batches in flight, the center said nothing for [`ACK_TIMEOUT_MS`].
    #[error("no acknowledgement from the center for {} s", ACK_TIMEOUT_MS / 1_000)]
    AckSilence,
}

/// How a session ends without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// `station sync`: everything is acknowledged.
    Done,
    /// Told to stop, and nothing is (or may any longer be) awaited.
    Shutdown,
}

/// After a failed session, when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Connect again at this time (ms on the driver's clock).
    At {
        /// When to connect, in ms on the driver's clock.
        at_ms: u64,
    },
    /// `station sync`: no attempt left before its time without progress runs out.
    GiveUp,
}

/// What a good Hello asks of the driver besides sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Where sending resumes (see [`Resume`]).
    pub resume: Resume,
    /// `station sync`, first good Hello: seal everything now, then report the head
    /// with [`Core::on_sync_sealed`].
    pub seal_first: bool,
}

/// The sync core: one per command, across reconnects.
#[derive(Debug, Clone)]
pub struct Core {
    sender: Sender,
    goal: Goal,
    /// `station sync`: done once the center holds everything up to here.
    target: Option<u64>,
    phase: Phase,
    /// `station sync`: give up at this time unless the center acknowledges news.
    no_progress_deadline_ms: Option<u64>,
    /// Sealing must stop on this device; the reason, until the driver has stored it.
    hold_to_store: Option<String>,
    /// The latest `now_ms` seen (the clock never goes back).
    now_ms: u64,
    /// Which center address to dial.
    addresses: Rotation,
}

impl Core {
    /// A core for a device whose highest sealed sequence is `local_head` and which
    /// knows the center holds every batch up to `acknowledged_through`, starting at
    /// `now_ms`.
    pub fn new(local_head: u64, acknowledged_through: u64, goal: Goal, now_ms: u64) -> Self {
        let no_progress_deadline_ms = match goal {
            Goal::Run => None,
            Goal::Sync { no_progress_ms } => Some(now_ms.saturating_add(no_progress_ms)),
        };
        Core {
            sender: Sender::new(local_head, acknowledged_through),
            goal,
            target: None,
            phase: Phase::Offline,
            no_progress_deadline_ms,
            hold_to_store: None,
            now_ms,
            addresses: Rotation::default(),
        }
    }

    /// The same core over a list of `count` center addresses, dialling `first`
    /// first (a new core has one address).
    pub fn with_addresses(mut self, count: usize, first: usize) -> Self {
        self.addresses = Rotation::new(count, first);
        self
    }

    /// The index of the center address to dial now (or in use).
    pub fn address(&self) -> usize {
        self.addresses.current()
    }

    /// The index of the center address that last answered Hello in this
    /// command, if any.
    pub fn reached_address(&self) -> Option<usize> {
        self.addresses.reached()
    }

    /// The attempt failed or the connection was lost because of the link or the
    /// center (not this device's store): the next attempt goes to the next address
    /// (round robin), after the wait [`Core::retry`] gives. Returns its index.
    pub fn on_link_failed(&mut self) -> usize {
        self.addresses.on_failed()
    }

    /// The sender inside (what is sent, acknowledged, in flight).
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Connecting starts now.
    pub fn on_connecting(&mut self, now_ms: u64) {
        self.tick(now_ms);
        self.sender.on_disconnected();
        self.phase = Phase::Connecting {
            until_ms: now_ms.saturating_add(CONNECT_TIMEOUT_MS),
        };
    }

    /// The connection is up; Hello is sent now.
    pub fn on_connected(&mut self, now_ms: u64) {
        self.tick(now_ms);
        self.phase = Phase::Hello {
            until_ms: now_ms.saturating_add(HELLO_TIMEOUT_MS),
        };
    }

    /// Hello succeeded (`heartbeat_interval_ms` as the center announced it):
    /// compare heads and start a session, or stop for good. A fork (evidence to
    /// send) or a terminal stop that must stop sealing puts a hold on sealing, to
    /// be stored by the driver ([`Core::poll_hold`]).
    pub fn on_hello(
        &mut self,
        now_ms: u64,
        start: &SessionStart,
        heartbeat_interval_ms: u32,
    ) -> Result<Started, Terminal> {
        self.tick(now_ms);
        let resume = match self.sender.on_hello(start) {
            Ok(resume) => resume,
            Err(t) => {
                self.phase = Phase::Offline;
                if t.stops_sealing() {
                    // Stored, so that `station seal` and `station export` in other
                    // processes do not seal over it either.
                    self.hold_to_store = Some(t.to_string());
                }
                return Err(t);
            }
        };
        if let Some(sequence) = resume.evidence {
            // This device's chain is not the center's: nothing more is sealed here,
            // in any process; its batch `sequence` goes as evidence.
            self.hold_to_store = Some(format!(
                "this device's batch {sequence} is not the center's: the chains forked; its signed batch was sent to the center as evidence. Call an operator"
            ));
        }
        let heartbeat_every_ms = match u64::from(heartbeat_interval_ms) {
            0 => HEARTBEAT_INTERVAL_MS,
            n => n.max(MIN_HEARTBEAT_INTERVAL_MS),
        };
        self.phase = Phase::Started { heartbeat_every_ms };
        self.addresses.on_reached();
        let seal_first = matches!(self.goal, Goal::Sync { .. })
            && self.target.is_none()
            && resume.evidence.is_none();
        Ok(Started { resume, seal_first })
    }

    /// `station sync` sealed after its first good Hello: batches up to `head` are
    /// sealed, and the sync is done once the center holds them all.
    pub fn on_sync_sealed(&mut self, head: u64) {
        self.sender.on_sealed(head);
        self.target = Some(head);
    }

    /// `station sync`: the head sealed after its first good Hello, once sealed.
    pub fn sync_target(&self) -> Option<u64> {
        self.target
    }

    /// Sealing must stop on this device for this reason: store it (once).
    pub fn poll_hold(&mut self) -> Option<String> {
        self.hold_to_store.take()
    }

    /// The Push call is being opened now.
    pub fn on_opening(&mut self, now_ms: u64) {
        self.tick(now_ms);
        let heartbeat_every_ms = match self.phase {
            Phase::Started { heartbeat_every_ms } => heartbeat_every_ms,
            _ => HEARTBEAT_INTERVAL_MS,
        };
        self.phase = Phase::Opening {
            until_ms: now_ms.saturating_add(HELLO_TIMEOUT_MS),
            heartbeat_every_ms,
        };
    }

    /// The Push call is open now.
    pub fn on_push_open(&mut self, now_ms: u64) {
        self.tick(now_ms);
        let heartbeat_every_ms = match self.phase {
            Phase::Opening {
                heartbeat_every_ms, ..
            }
            | Phase::Started { heartbeat_every_ms } => heartbeat_every_ms,
            _ => HEARTBEAT_INTERVAL_MS,
        };
        self.phase = Phase::Pushing(Pushing {
            heartbeat_every_ms,
            next_heartbeat_ms: now_ms.saturating_add(heartbeat_every_ms),
            last_answer_ms: now_ms,
            draining_until_ms: None,
        });
    }

    /// Batches up to `local_head` are sealed now (a lower value is ignored).
    pub fn on_sealed(&mut self, local_head: u64) {
        self.sender.on_sealed(local_head);
    }

    /// The next sequence to send now, if the window, the log and a shutdown allow
    /// one; it counts as in flight from this call on.
    pub fn poll_send(&mut self, now_ms: u64) -> Option<u64> {
        self.tick(now_ms);
        if let Phase::Pushing(p) = &self.phase
            && p.draining_until_ms.is_some()
        {
            return None;
        }
        let was_waiting = self.sender.in_flight() > 0;
        let sequence = self.sender.poll_send()?;
        if let Phase::Pushing(p) = &mut self.phase {
            p.next_heartbeat_ms = now_ms.saturating_add(p.heartbeat_every_ms);
            if !was_waiting {
                p.last_answer_ms = now_ms;
            }
        }
        self.check_invariants();
        Some(sequence)
    }

    /// The heartbeat's values now: the local head and what the center lacks.
    pub fn heartbeat(&self) -> pb::PushMessage {
        pb::PushMessage::heartbeat(
            self.sender.local_head(),
            self.sender.sealed_unacknowledged(),
        )
    }

    /// One `Ack` arrived now. News pushes `station sync`'s give-up back.
    pub fn on_ack(&mut self, now_ms: u64, ack: &pb::Ack) -> Result<AckOutcome, Stop> {
        self.tick(now_ms);
        if let Phase::Pushing(p) = &mut self.phase {
            p.last_answer_ms = now_ms;
        }
        let outcome = self.sender.on_ack(ack);
        match &outcome {
            Ok(AckOutcome::Acknowledged { advanced: true, .. }) => {
                if let Goal::Sync { no_progress_ms } = self.goal {
                    self.no_progress_deadline_ms = Some(now_ms.saturating_add(no_progress_ms));
                }
            }
            Ok(_) => {}
            Err(_) => self.phase = Phase::Offline,
        }
        self.check_invariants();
        outcome
    }

    /// Told to stop now. `Some(Shutdown)`: end the session at once (nothing in
    /// flight, or not pushing); `None`: answers to what is in flight are awaited
    /// for [`SHUTDOWN_GRACE_MS`] (nothing more is sent meanwhile).
    pub fn on_shutdown(&mut self, now_ms: u64) -> Option<SessionEnd> {
        self.tick(now_ms);
        match &mut self.phase {
            Phase::Pushing(p) if self.sender.in_flight() > 0 => {
                if p.draining_until_ms.is_none() {
                    p.draining_until_ms = Some(now_ms.saturating_add(SHUTDOWN_GRACE_MS));
                }
                None
            }
            _ => Some(SessionEnd::Shutdown),
        }
    }

    /// Whether told to stop and waiting for the last answers.
    pub fn draining(&self) -> bool {
        matches!(&self.phase, Phase::Pushing(p) if p.draining_until_ms.is_some())
    }

    /// The session is over without an error: `station sync` is done, or a drain
    /// has nothing left to wait for.
    pub fn poll_end(&self) -> Option<SessionEnd> {
        if self.is_done() {
            return Some(SessionEnd::Done);
        }
        if self.draining() && self.sender.in_flight() == 0 {
            return Some(SessionEnd::Shutdown);
        }
        None
    }

    /// `station sync`: the center holds everything sealed at its first good Hello.
    pub fn is_done(&self) -> bool {
        matches!(self.goal, Goal::Sync { .. })
            && self
                .target
                .is_some_and(|t| self.sender.center_holds_through() >= t)
    }

    /// When the driver must call [`Core::on_timeout`] next, if ever. Right after
    /// `on_timeout(now_ms)` has returned `None` it is after `now_ms`; another event
    /// may make something due at once (a session going idle after its heartbeat
    /// time passed owes a heartbeat), and then it is at or before `now_ms`.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let progress = self.no_progress_deadline_ms;
        match &self.phase {
            Phase::Offline | Phase::Started { .. } => None,
            Phase::Connecting { until_ms }
            | Phase::Hello { until_ms }
            | Phase::Opening { until_ms, .. } => Some(earliest(*until_ms, progress)),
            Phase::Pushing(p) => {
                let mut next = progress;
                if let Some(d) = p.draining_until_ms {
                    next = Some(earliest(d, next));
                }
                if self.sender.is_idle() {
                    next = Some(earliest(p.next_heartbeat_ms, next));
                }
                if self.sender.in_flight() > 0 {
                    next = Some(earliest(
                        p.last_answer_ms.saturating_add(ACK_TIMEOUT_MS),
                        next,
                    ));
                }
                next
            }
        }
    }

    /// Time passed: what is due now, if anything (the driver may wake early).
    /// Call again until it returns `None`: then the next deadline is in the future.
    pub fn on_timeout(&mut self, now_ms: u64) -> Option<Timeout> {
        self.tick(now_ms);
        let progress_over = self.no_progress_deadline_ms.is_some_and(|d| now_ms >= d);
        let dead = |until_ms: u64, why: DeadLink| {
            (now_ms >= until_ms || progress_over).then_some(Timeout::Dead(why))
        };
        let due = match &mut self.phase {
            Phase::Offline | Phase::Started { .. } => None,
            Phase::Connecting { until_ms } => dead(*until_ms, DeadLink::Connect),
            Phase::Hello { until_ms } => dead(*until_ms, DeadLink::Hello),
            Phase::Opening { until_ms, .. } => dead(*until_ms, DeadLink::OpenPush),
            Phase::Pushing(p) => {
                if p.draining_until_ms.is_some_and(|d| now_ms >= d) {
                    Some(Timeout::DrainOver)
                } else if self.sender.is_idle() && now_ms >= p.next_heartbeat_ms {
                    p.next_heartbeat_ms = now_ms.saturating_add(p.heartbeat_every_ms);
                    Some(Timeout::Heartbeat {
                        local_head: self.sender.local_head(),
                        sealed_unacknowledged: self.sender.sealed_unacknowledged(),
                    })
                } else if self.sender.in_flight() > 0
                    && now_ms >= p.last_answer_ms.saturating_add(ACK_TIMEOUT_MS)
                {
                    Some(Timeout::Dead(DeadLink::AckSilence))
                } else if progress_over {
                    Some(Timeout::NoProgress)
                } else {
                    None
                }
            }
        };
        if matches!(
            due,
            Some(Timeout::Dead(_) | Timeout::NoProgress | Timeout::DrainOver)
        ) {
            self.on_disconnected();
        }
        debug_assert!(
            due.is_some() || self.next_deadline_ms().is_none_or(|d| d > now_ms),
            "nothing due at {now_ms}, yet the next deadline is {:?}",
            self.next_deadline_ms()
        );
        due
    }

    /// The connection is gone: whatever was in flight is unanswered; the next Hello
    /// says where to resume.
    pub fn on_disconnected(&mut self) {
        self.phase = Phase::Offline;
        self.sender.on_disconnected();
    }

    /// A session failed now; the backoff proposes waiting `backoff_ms`. `station
    /// sync` makes its last attempt in time to have a chance before giving up, and
    /// gives up when even that time has passed.
    pub fn retry(&mut self, now_ms: u64, backoff_ms: u64) -> Retry {
        self.tick(now_ms);
        let at_ms = now_ms.saturating_add(backoff_ms);
        match self.no_progress_deadline_ms {
            None => Retry::At { at_ms },
            Some(deadline_ms) => {
                let last_try_ms = deadline_ms.saturating_sub(LAST_ATTEMPT_MS);
                if now_ms >= last_try_ms {
                    Retry::GiveUp
                } else {
                    Retry::At {
                        at_ms: at_ms.min(last_try_ms),
                    }
                }
            }
        }
    }

    /// The clock only goes forward.
    fn tick(&mut self, now_ms: u64) {
        debug_assert!(
            now_ms >= self.now_ms,
            "the clock went back from {} to {now_ms}",
            self.now_ms
        );
        self.now_ms = self.now_ms.max(now_ms);
    }

    fn check_invariants(&self) {
        let s = &self.sender;
        debug_assert!(s.acknowledged_through() <= s.local_head());
        debug_assert!(s.center_holds_through() <= s.local_head());
        debug_assert!(s.in_flight() <= s.window());
        if let Phase::Pushing(p) = &self.phase {
            debug_assert!(p.last_answer_ms <= self.now_ms);
            debug_assert!(p.heartbeat_every_ms >= MIN_HEARTBEAT_INTERVAL_MS);
        }
    }
}

fn earliest(a: u64, b: Option<u64>) -> u64 {
    b.map_or(a, |b| a.min(b))
}

#[cfg(test)]
mod tests;
