//! The station's side of a sync session as a plain state machine: no sockets, no
//! clocks, no SQLite (in the style of quinn-proto). The driver (`sync::client`) feeds
//! it what happened — the center's Hello reply, batches newly sealed, every `Ack` as
//! it arrives, a lost connection — and asks it what to do: which sequence to send
//! next, what the center now holds (so it can be marked acknowledged), and when to
//! give up on the session or on pushing altogether.
//!
//! The rules are docs/PROTOCOL.md §7 and §7.1:
//!
//! - A session sends from `center_head_sequence + 1`, in increasing sequence, with at
//!   most `max_in_flight` batches sent and not yet answered.
//! - The center answers every batch with exactly one `Ack`, in the order sent. An
//!   answer for anything but the oldest unanswered batch is a protocol violation: the
//!   session ends and the driver reconnects (Hello says where to resume).
//! - `ACCEPTED` / `DUPLICATE` for sequence n: the center holds n and, the chain being
//!   contiguous, every batch before it; the Hello head means the same.
//! - `GAP`: resend from `expected_sequence`. Batches sent before that answer are
//!   answered `GAP` too; those later answers are stale and ignored (tracked by epoch).
//! - Any other rejection is terminal: stop pushing, report reason and detail.
//! - A center head beyond the local head, with the same hash at the local head,
//!   means this device lost sealed batches (a restored backup): terminal until
//!   `station recover` brings them back; nothing more may be sealed meanwhile.
//! - A chain that is not the center's (the center's `evidence_sequence`, or this
//!   device's own batch at the center's head differing from it): the session sends
//!   only this device's signed batch of that sequence, as evidence of the fork (the
//!   center declares the fork only on that signature), and whatever the answer,
//!   stops: pushing and sealing are over on this device.

use std::collections::VecDeque;

use pollsync_proto::limits::MAX_IN_FLIGHT;
use pollsync_proto::pb;

/// The most batches this station keeps in flight, whatever the center announces.
pub const MAX_WINDOW: usize = MAX_IN_FLIGHT;

/// What the driver knows right after a successful Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    /// `HelloReply.center_head_sequence`.
    pub center_head_sequence: u64,
    /// `HelloReply.center_head_hash` as received.
    pub center_head_hash: Vec<u8>,
    /// `HelloReply.max_in_flight` as received (clamped to `1..=MAX_WINDOW` here).
    pub max_in_flight: u32,
    /// This device's highest sealed sequence, read after the reply arrived (a
    /// batch sealed and sent by another process meanwhile is then included).
    pub local_head_sequence: u64,
    /// This device's chain hash of batch `center_head_sequence`, if it has it.
    pub local_hash_at_center_head: Option<[u8; 32]>,
    /// `HelloReply.evidence_sequence`: the center holds another batch at this
    /// sequence than the station's hello claimed (0: none).
    pub evidence_sequence: u64,
}

impl SessionStart {
    /// The start of a session from the center's `reply` and this device's own head
    /// and hash at the center's head, read after the reply arrived.
    pub fn of(
        reply: &pb::HelloReply,
        local_head: u64,
        local_hash: Option<[u8; 32]>,
    ) -> SessionStart {
        SessionStart {
            center_head_sequence: reply.center_head_sequence,
            center_head_hash: reply.center_head_hash.clone(),
            max_in_flight: reply.max_in_flight,
            local_head_sequence: local_head,
            local_hash_at_center_head: local_hash,
            evidence_sequence: reply.evidence_sequence,
        }
    }
}

/// How a session resumes after Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The first sequence this session sends.
    pub from: u64,
    /// Sealed batches the center still lacks.
    pub to_send: u64,
    /// Batches that may be in flight at once in this session.
    pub window: usize,
    /// The center holds every batch up to here and this is news: record it.
    pub newly_acknowledged_through: Option<u64>,
    /// The center holds fewer batches than it acknowledged before (it lost some,
    /// e.g. restored from a backup): they are sent again. The value is what it had
    /// acknowledged.
    pub center_regressed_from: Option<u64>,
    /// The chains differ at this sequence: the session sends only this device's
    /// batch of it, as evidence of the fork, then stops.
    pub evidence: Option<u64>,
}

/// What one `Ack` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The center holds every batch up to `through`; `advanced` if that is news
    /// (record it), `duplicate` if the answer was `DUPLICATE`.
    Acknowledged {
        /// The center holds every batch up to this sequence.
        through: u64,
        /// Whether `through` is further than the center had acknowledged before.
        advanced: bool,
        /// Whether the answer was `DUPLICATE` (the center already had the batch).
        duplicate: bool,
    },
    /// `GAP`: sending starts again at `from`.
    Resend {
        /// The first sequence to send again.
        from: u64,
    },
    /// A `GAP` answer to a batch sent before the last resend: already handled.
    Stale,
}

/// Why pushing stops for good until an operator acts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Terminal {
    /// The center rejected a batch for a reason a resend cannot fix.
    #[error(
        "the center rejected batch {sequence}: {} ({}){}; {}",
        reason_name(*reason, *code),
        reason_words(*reason),
        if detail.is_empty() { String::new() } else { format!(": {detail}") },
        next_step(*reason)
    )]
    Rejected {
        /// The batch answered (0 if the center could not decode it).
        sequence: u64,
        /// The reason ([`pb::RejectReason::Unspecified`] for an unknown code).
        reason: pb::RejectReason,
        /// The reason's number as received.
        code: i32,
        /// The center's words.
        detail: String,
    },
    /// The center holds batches this device does not have, on the same chain.
    #[error(
        "this device lost sealed batches: the center holds batches up to {center_head}, but this device has sealed only up to {local_head} (restored from an old backup?). Run `station recover` to bring them back from the center; until then nothing more is sealed or sent from this device, because new batches would conflict with the center's"
    )]
    CenterAhead {
        /// The highest sequence the center holds.
        center_head: u64,
        /// The highest sequence sealed on this device.
        local_head: u64,
    },
    /// The center's batch at its head is not this device's batch of that sequence.
    #[error(
        "the center holds a different batch {sequence} than this device (center's chain hash {center_hash}, this device's {local_hash}): the two copies have forked. Call an operator; nothing more is sent"
    )]
    HeadMismatch {
        /// The sequence of the center's head batch.
        sequence: u64,
        /// The center's chain hash at that sequence, hex.
        center_hash: String,
        /// This device's chain hash at that sequence, hex.
        local_hash: String,
    },
}

impl Terminal {
    /// The reject reason's short name (`FORK`, …), or what kind of stop this is.
    pub fn reason(&self) -> String {
        match self {
            Terminal::Rejected { reason, code, .. } => reason_name(*reason, *code),
            Terminal::CenterAhead { .. } => "CENTER_AHEAD".into(),
            Terminal::HeadMismatch { .. } => "HEAD_MISMATCH".into(),
        }
    }

    /// The center's detail text, if it sent one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Terminal::Rejected { detail, .. } if !detail.is_empty() => Some(detail),
            _ => None,
        }
    }

    /// Whether sealing must stop too (new batches would fork the center's copy).
    pub fn stops_sealing(&self) -> bool {
        matches!(
            self,
            Terminal::CenterAhead { .. }
                | Terminal::HeadMismatch { .. }
                | Terminal::Rejected {
                    reason: pb::RejectReason::Fork,
                    ..
                }
        )
    }
}

/// The center broke the protocol; the session ends and the driver reconnects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// An `Ack` arrived before Hello started a session.
    #[error("an acknowledgement arrived outside a session")]
    NoSession,
    /// An `Ack` arrived with no batch in flight.
    #[error("an acknowledgement for batch {got} arrived while no batch was waiting for one")]
    Unsolicited {
        /// The sequence the `Ack` answered.
        got: u64,
    },
    /// An `Ack` answered another batch than the oldest in flight.
    #[error(
        "an acknowledgement for batch {got} arrived while batch {expected} was the oldest unanswered one (acknowledgements must come in order)"
    )]
    OutOfOrder {
        /// The oldest batch in flight.
        expected: u64,
        /// The sequence the `Ack` answered.
        got: u64,
    },
    /// An `Ack` of a kind this station does not know.
    #[error("an acknowledgement of unknown kind {kind} arrived for batch {sequence}")]
    UnknownKind {
        /// The sequence the `Ack` answered.
        sequence: u64,
        /// The kind's number as received.
        kind: i32,
    },
    /// An acceptance carried sequence 0.
    #[error("an acceptance arrived without a sequence")]
    ZeroSequence,
    /// A `GAP` rejection asked to resend from a sequence not before the batch it
    /// answered.
    #[error(
        "a GAP rejection of batch {sequence} asks for sequence {expected}, which is not before it"
    )]
    BadGap {
        /// The batch the rejection answered.
        sequence: u64,
        /// The sequence the center expects next.
        expected: u64,
    },
}

/// Why [`Sender`] ends a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// Reconnect: Hello will say where to resume.
    #[error("protocol violation by the center: {0}")]
    Violation(#[from] Violation),
    /// Stop pushing until an operator acts.
    #[error(transparent)]
    Terminal(#[from] Terminal),
}

/// A batch sent and not yet answered, with the resend epoch it was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    sequence: u64,
    epoch: u64,
}

#[derive(Debug, Clone)]
struct Session {
    window: usize,
    /// What the center holds as far as this session knows: the Hello head, raised by
    /// acceptances, lowered by a GAP's expected sequence.
    center_holds: u64,
    /// Next sequence to send.
    next: u64,
    /// Sent, not yet answered, in the order sent.
    in_flight: VecDeque<InFlight>,
    /// Bumped at every resend; answers to batches of older epochs are stale.
    epoch: u64,
    /// Sending only this sequence, as evidence of a fork (see [`Resume::evidence`]).
    evidence: Option<u64>,
}

/// The sender: one per station agent, across reconnects.
#[derive(Debug, Clone)]
pub struct Sender {
    local_head: u64,
    acknowledged: u64,
    session: Option<Session>,
    stopped: Option<Terminal>,
}

impl Sender {
    /// A sender for a device whose highest sealed sequence is `local_head` and which
    /// knows the center holds every batch up to `acknowledged_through`.
    pub fn new(local_head: u64, acknowledged_through: u64) -> Self {
        Sender {
            local_head,
            acknowledged: acknowledged_through.min(local_head),
            session: None,
            stopped: None,
        }
    }

    /// Hello succeeded: compare heads and start a session, or stop for good.
    pub fn on_hello(&mut self, start: &SessionStart) -> Result<Resume, Terminal> {
        if let Some(t) = &self.stopped {
            return Err(t.clone());
        }
        self.session = None;
        self.local_head = self.local_head.max(start.local_head_sequence);
        let center = start.center_head_sequence;
        let asked = start.evidence_sequence;
        if asked > 0 && asked <= self.local_head {
            return Ok(self.start_evidence(asked));
        }
        if center > self.local_head {
            return Err(self.stop(Terminal::CenterAhead {
                center_head: center,
                local_head: self.local_head,
            }));
        }
        if center > 0
            && let (Some(local), Ok(theirs)) = (
                start.local_hash_at_center_head,
                <[u8; 32]>::try_from(start.center_head_hash.as_slice()),
            )
            && local != theirs
        {
            return Ok(self.start_evidence(center));
        }
        let center_regressed_from = (center < self.acknowledged).then_some(self.acknowledged);
        let newly_acknowledged_through = (center > self.acknowledged).then_some(center);
        self.acknowledged = self.acknowledged.max(center);
        let window = (start.max_in_flight as usize).clamp(1, MAX_WINDOW);
        self.session = Some(Session {
            window,
            center_holds: center,
            next: center + 1,
            in_flight: VecDeque::with_capacity(window),
            epoch: 0,
            evidence: None,
        });
        self.check_invariants();
        Ok(Resume {
            from: center + 1,
            to_send: self.local_head - center,
            window,
            newly_acknowledged_through,
            center_regressed_from,
            evidence: None,
        })
    }

    /// A session that sends only batch `sequence`, as evidence that this device's
    /// chain differs from the center's there.
    fn start_evidence(&mut self, sequence: u64) -> Resume {
        self.session = Some(Session {
            window: 1,
            center_holds: sequence - 1,
            next: sequence,
            in_flight: VecDeque::with_capacity(1),
            epoch: 0,
            evidence: Some(sequence),
        });
        self.check_invariants();
        Resume {
            from: sequence,
            to_send: 1,
            window: 1,
            newly_acknowledged_through: None,
            center_regressed_from: None,
            evidence: Some(sequence),
        }
    }

    /// Batches up to `local_head` are sealed now (a lower value is ignored).
    pub fn on_sealed(&mut self, local_head: u64) {
        self.local_head = self.local_head.max(local_head);
        self.check_invariants();
    }

    /// The next sequence to send now, if the window and the log allow one; it counts
    /// as in flight from this call on.
    pub fn poll_send(&mut self) -> Option<u64> {
        if self.stopped.is_some() {
            return None;
        }
        let session = self.session.as_mut()?;
        if session.in_flight.len() >= session.window || session.next > self.local_head {
            return None;
        }
        if session.evidence.is_some_and(|e| session.next != e) {
            return None;
        }
        let sequence = session.next;
        session.in_flight.push_back(InFlight {
            sequence,
            epoch: session.epoch,
        });
        session.next += 1;
        self.check_invariants();
        Some(sequence)
    }

    /// One `Ack` arrived.
    pub fn on_ack(&mut self, ack: &pb::Ack) -> Result<AckOutcome, Stop> {
        let session = self.session.as_mut().ok_or(Violation::NoSession)?;
        let Some(&front) = session.in_flight.front() else {
            return Err(self.violation(Violation::Unsolicited { got: ack.sequence }));
        };
        let kind = pb::AckKind::try_from(ack.kind).unwrap_or(pb::AckKind::Unspecified);
        // Sequence 0 is allowed only for a rejection of a batch the center could not decode.
        let matches =
            ack.sequence == front.sequence || (ack.sequence == 0 && kind == pb::AckKind::Rejected);
        if !matches {
            if ack.sequence == 0 {
                return Err(self.violation(Violation::ZeroSequence));
            }
            return Err(self.violation(Violation::OutOfOrder {
                expected: front.sequence,
                got: ack.sequence,
            }));
        }
        if let Some(sequence) = session.evidence {
            // Whatever the center made of the evidence, this device's chain is not
            // the center's: stop here.
            let reason =
                pb::RejectReason::try_from(ack.reason).unwrap_or(pb::RejectReason::Unspecified);
            let terminal = if kind == pb::AckKind::Rejected {
                Terminal::Rejected {
                    sequence,
                    reason,
                    code: ack.reason,
                    detail: ack.detail.clone(),
                }
            } else {
                Terminal::HeadMismatch {
                    sequence,
                    center_hash: "(the center answered the evidence as its own batch)".into(),
                    local_hash: "(this device's batch)".into(),
                }
            };
            return Err(Stop::Terminal(self.stop(terminal)));
        }
        let outcome = match kind {
            pb::AckKind::Accepted | pb::AckKind::Duplicate => {
                session.in_flight.pop_front();
                let through = front.sequence;
                let advanced = through > self.acknowledged;
                self.acknowledged = self.acknowledged.max(through);
                session.center_holds = session.center_holds.max(through);
                // Never send again what the center has just said it holds.
                session.next = session.next.max(session.center_holds + 1);
                AckOutcome::Acknowledged {
                    through: self.acknowledged,
                    advanced,
                    duplicate: kind == pb::AckKind::Duplicate,
                }
            }
            pb::AckKind::Rejected => {
                let reason =
                    pb::RejectReason::try_from(ack.reason).unwrap_or(pb::RejectReason::Unspecified);
                if reason != pb::RejectReason::Gap {
                    return Err(Stop::Terminal(self.stop(Terminal::Rejected {
                        sequence: front.sequence,
                        reason,
                        code: ack.reason,
                        detail: ack.detail.clone(),
                    })));
                }
                if front.epoch < session.epoch {
                    session.in_flight.pop_front();
                    AckOutcome::Stale
                } else {
                    let expected = ack.expected_sequence;
                    if expected == 0 || expected >= front.sequence {
                        return Err(self.violation(Violation::BadGap {
                            sequence: front.sequence,
                            expected,
                        }));
                    }
                    session.in_flight.pop_front();
                    session.epoch += 1;
                    session.next = expected;
                    session.center_holds = expected - 1;
                    AckOutcome::Resend { from: expected }
                }
            }
            pb::AckKind::Unspecified => {
                return Err(self.violation(Violation::UnknownKind {
                    sequence: ack.sequence,
                    kind: ack.kind,
                }));
            }
        };
        self.check_invariants();
        Ok(outcome)
    }

    /// The connection is gone: whatever was in flight is unanswered; the next Hello
    /// says where to resume.
    pub fn on_disconnected(&mut self) {
        self.session = None;
    }

    /// Highest sealed sequence known.
    pub fn local_head(&self) -> u64 {
        self.local_head
    }

    /// The center has acknowledged every batch up to here (never decreases: this is
    /// what the store records).
    pub fn acknowledged_through(&self) -> u64 {
        self.acknowledged
    }

    /// What the center holds now, as far as this session knows (outside a session,
    /// what it acknowledged). Lower than [`Sender::acknowledged_through`] only when
    /// the center lost batches it had acknowledged.
    pub fn center_holds_through(&self) -> u64 {
        self.session
            .as_ref()
            .map_or(self.acknowledged, |s| s.center_holds)
    }

    /// Sealed batches the center is not known to hold.
    pub fn sealed_unacknowledged(&self) -> u64 {
        self.local_head.saturating_sub(self.center_holds_through())
    }

    /// Batches sent and not yet answered in this session.
    pub fn in_flight(&self) -> usize {
        self.session.as_ref().map_or(0, |s| s.in_flight.len())
    }

    /// This session's window (0 outside a session).
    pub fn window(&self) -> usize {
        self.session.as_ref().map_or(0, |s| s.window)
    }

    /// In a session.
    pub fn connected(&self) -> bool {
        self.session.is_some()
    }

    /// In a session with nothing in flight and nothing left to send.
    pub fn is_idle(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.in_flight.is_empty() && s.next > self.local_head)
    }

    /// Why pushing stopped for good, if it did.
    pub fn stopped(&self) -> Option<&Terminal> {
        self.stopped.as_ref()
    }

    fn stop(&mut self, terminal: Terminal) -> Terminal {
        self.session = None;
        self.stopped = Some(terminal.clone());
        terminal
    }

    fn violation(&mut self, violation: Violation) -> Stop {
        self.session = None;
        Stop::Violation(violation)
    }

    fn check_invariants(&self) {
        debug_assert!(self.acknowledged <= self.local_head);
        if let Some(s) = &self.session {
            debug_assert!(s.center_holds <= self.local_head);
            debug_assert!((1..=MAX_WINDOW).contains(&s.window));
            debug_assert!(
                s.in_flight.len() <= s.window,
                "{} in flight, window {}",
                s.in_flight.len(),
                s.window
            );
            debug_assert!(s.next >= 1 && s.next <= self.local_head + 1);
            // What the center holds was sent (or held at Hello): never beyond the
            // next sequence to send.
            debug_assert!(
                s.center_holds < s.next,
                "the center holds {} but {} is next to send",
                s.center_holds,
                s.next
            );
            // Batches of the current epoch were sent in increasing order, ending
            // before `next` (contiguous but for skips over batches the center is
            // known to hold).
            let current: Vec<u64> = s
                .in_flight
                .iter()
                .filter(|f| f.epoch == s.epoch)
                .map(|f| f.sequence)
                .collect();
            debug_assert!(current.windows(2).all(|w| w[1] > w[0]));
            debug_assert!(current.last().is_none_or(|&last| last < s.next));
            debug_assert!(s.in_flight.iter().all(|f| f.sequence >= 1));
        }
    }
}

/// `FORK`, `GAP`, …: the reason without its `REJECT_REASON_` prefix.
pub fn reason_name(reason: pb::RejectReason, code: i32) -> String {
    if reason == pb::RejectReason::Unspecified && code != 0 {
        return format!("UNKNOWN_REASON_{code}");
    }
    reason.short_name().to_string()
}

/// What a reject reason means, in words.
pub fn reason_words(reason: pb::RejectReason) -> &'static str {
    use pb::RejectReason as R;
    match reason {
        R::Unspecified => "no reason given",
        R::BadSignature => "its signature does not verify with this station's key",
        R::WrongElection => "it names another election",
        R::WrongStation => "it names another station",
        R::WrongDefinition => "it was sealed under another election definition",
        R::Gap => "batches before it are missing",
        R::Fork => {
            "the center holds a different batch with this sequence; the station is quarantined"
        }
        R::BrokenChain => "it does not link to the center's previous batch",
        R::InvalidContent => "an event in it breaks the election's rules",
        R::AfterClose => "it records something for a contest already closed",
        R::TooLarge => "it is over the size limits",
        R::Malformed => "the center could not decode it",
        R::Revoked => "this station was revoked by the center's operator",
        R::Quarantined => "this station is quarantined after a fork",
        R::StaleKey => "this device's key is no longer the station's key (replaced or retired)",
        R::WrongMode => {
            "it belongs to a test election and the center counts an official one, or the other way round"
        }
    }
}

/// What the station does next, per PROTOCOL §7.1.
fn next_step(reason: pb::RejectReason) -> &'static str {
    match reason {
        pb::RejectReason::Revoked | pb::RejectReason::Quarantined => {
            "sending stopped; call an operator"
        }
        pb::RejectReason::Fork => {
            "sending and sealing stopped on this device; call an operator (the center keeps both signed batches as evidence)"
        }
        pb::RejectReason::StaleKey => {
            "sending stopped: this device was replaced; use the replacement device"
        }
        pb::RejectReason::TooLarge | pb::RejectReason::BadSignature => {
            "a resend cannot fix it; sending stopped; call an operator"
        }
        _ => "sending stopped; call an operator",
    }
}

#[cfg(test)]
mod tests;
