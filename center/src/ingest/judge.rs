//! The per-batch decision of the center, sans I/O: no SQLite, no sockets, no clock.
//!
//! Two steps, both pure:
//! 1. [`prepare`] does the stateless, CPU-heavy work on one signed batch: size,
//!    decoding and canonical form, the Ed25519 signature against a given key, the
//!    chain hash, and every content check that needs only the definition
//!    (`StationEvent::check` rules), aggregating the batch's ballots into per-contest
//!    deltas. It runs on the verify pool, many batches at once.
//! 2. [`judge`] takes the station's state (enrolled key, revoked, quarantined, head,
//!    closed contests) plus what the writer looked up for it ([`Lookups`]: whether
//!    the stored batch at this sequence has the same bytes, the earlier ballots that
//!    cancels name) and returns the [`Verdict`], checking in exactly the order of
//!    docs/PROTOCOL.md §7.1: `TOO_LARGE`, `MALFORMED`, `REVOKED` / `QUARANTINED`,
//!    `BAD_SIGNATURE`, `WRONG_ELECTION`, `WRONG_MODE`, `WRONG_STATION`, `WRONG_DEFINITION`,
//!    sequence and chain (`DUPLICATE`, `FORK`, `GAP`, `BROKEN_CHAIN`), then content
//!    (`INVALID_CONTENT`, `AFTER_CLOSE`). The first failure decides.
//!
//! [`StationState::advance`] and [`scan_past_ballots`] complete the model, so that a
//! test can run the whole ingest logic in memory (see the property test below).
//!
//! An accepted batch may still raise a [`Flag`] about its station: the batch breaks
//! no rule and is counted, but operators must look (a station's batch 1 that does not
//! open with its zero report). The writer stores each flag as an alert charged to
//! the station, whose signature verified.
//!
//! This file holds the types both steps share and re-exports their functions; step 1
//! lives in `judge/prepare.rs`, step 2 in `judge/verdict.rs`. The log's rules and the
//! void rule are the election's (`election::log`, `election::ballot::validity_of`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pollsync_election::{Contest, TallySheet, Validity, validity_of};
use pollsync_proto::limits::{BALLOT_ID_BYTES, HASH_BYTES};
use pollsync_proto::pb;
use pollsync_proto::shape::{MARK_AGAINST, MARK_FOR};

pub use crate::context::Context;
pub use crate::store::state::{ContestDelta, Effects, KeyNo, StationKey, StationState};

/// A ballot id as raw bytes.
pub type BallotKey = [u8; BALLOT_ID_BYTES];

/// How the signature check went, and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Verified (`verify_strict`) with this enrolled key.
    Verified(KeyNo),
    /// Does not verify with this enrolled key.
    Bad {
        /// The key tried.
        key_no: KeyNo,
        /// Why.
        detail: String,
    },
    /// The station has no enrolled key (not in the election, or never enrolled).
    NoKey,
}

impl SignatureCheck {
    /// The key this check used, if any.
    pub fn key_no(&self) -> Option<KeyNo> {
        match self {
            SignatureCheck::Verified(k) | SignatureCheck::Bad { key_no: k, .. } => Some(*k),
            SignatureCheck::NoKey => None,
        }
    }
}

/// One signed batch after the stateless checks ([`prepare`]).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The envelope exactly as received (stored as is when accepted).
    pub signed: pb::SignedBatch,
    /// How far it got.
    pub stage: Stage,
}

/// The stateless outcome of a batch.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Over [`MAX_BATCH_BYTES`](pollsync_proto::limits::MAX_BATCH_BYTES) or `MAX_BATCH_EVENTS`.
    TooLarge {
        /// The batch's sequence if it could be read, else 0.
        sequence: u64,
        /// In words.
        detail: String,
    },
    /// Bad signature length, does not decode, not canonical, sequence 0, wrong
    /// hash length.
    Malformed {
        /// The batch's sequence if it could be read, else 0.
        sequence: u64,
        /// In words.
        detail: String,
    },
    /// Decoded; the signature and content verdicts wait for the state.
    Decoded(Box<Decoded>),
}

/// The header fields of a decoded batch (its events are summed up in [`Content`];
/// the decoded events themselves are dropped on the pool thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    /// `Batch.election_id`.
    pub election_id: String,
    /// `Batch.mode`.
    pub mode: String,
    /// `Batch.station_id`.
    pub station_id: String,
    /// `Batch.sequence`.
    pub sequence: u64,
    /// `Batch.prev_hash` (32 bytes).
    pub prev_hash: Vec<u8>,
    /// `Batch.definition_sha256` (32 bytes).
    pub definition_sha256: Vec<u8>,
    /// Number of events.
    pub events: u64,
}

/// A decoded batch and its stateless verdicts.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The batch's header.
    pub header: BatchHeader,
    /// Its chain hash (SHA-256 of the received bytes).
    pub hash: [u8; HASH_BYTES],
    /// The signature check.
    pub signature: SignatureCheck,
    /// The content checks that need only the definition, or why it is invalid.
    pub content: Result<Content, String>,
}

/// The content of a batch whose events each pass the definition's rules.
#[derive(Debug, Clone, Default)]
pub struct Content {
    /// Per contest, the index of its last ballot event.
    last_ballot_index: BTreeMap<String, usize>,
    /// Every other event in batch order, with its index.
    others: Vec<(usize, Other)>,
    /// Ballots and issued counts aggregated per contest (cancels not yet applied).
    deltas: BTreeMap<String, ContestDelta>,
    /// Ballot events in the batch.
    ballot_count: u64,
    /// Every ballot id of the batch, sorted (each once: repeats are refused).
    ballot_ids: Vec<BallotKey>,
    /// The kind of the batch's first event (`StationEvent::kind`), if it has one.
    first_kind: Option<&'static str>,
    /// Whether the batch's first event is a zero report
    /// (`election::log::starts_with_zero_report`).
    starts_with_zero_report: bool,
}

impl Content {
    /// The batch's ballot ids, sorted.
    pub fn ballot_ids(&self) -> &[BallotKey] {
        &self.ballot_ids
    }

    /// Ids named by cancels that are not ballots of this same batch (they must be
    /// found in the station's earlier batches).
    pub fn external_cancel_targets(&self) -> BTreeSet<BallotKey> {
        self.others
            .iter()
            .filter_map(|(_, o)| match o {
                Other::Cancel {
                    ballot,
                    in_batch: None,
                } => Some(*ballot),
                _ => None,
            })
            .collect()
    }
}

/// A non-ballot event, checked against the definition.
#[derive(Debug, Clone)]
enum Other {
    Issued {
        contest: String,
    },
    /// `in_batch`: the cancelled ballot when it is in this same batch.
    Cancel {
        ballot: BallotKey,
        in_batch: Option<Box<pb::Ballot>>,
    },
    Close {
        contest: String,
        sheet: TallySheet,
    },
}

impl ContestDelta {
    /// Counts (`sign` = 1) or takes back (`sign` = -1) one ballot, given as its mark
    /// bytes and write-in names, with the rules of `TallySheet::add_ballot`: a void
    /// ballot (the election's void rule, `election::ballot::validity_of`) adds no
    /// votes.
    fn add_ballot(&mut self, contest: &Contest, marks: &[u8], write_ins: &[String], sign: i64) {
        let n = contest.candidates.len();
        if self.for_votes.len() < n {
            self.for_votes.resize(n, 0);
            self.against.resize(n, 0);
        }
        self.returned += sign;
        let for_marks = marks.iter().filter(|&&m| m == MARK_FOR).count();
        if validity_of(for_marks.saturating_add(write_ins.len()), contest.seats) == Validity::Void {
            self.void += sign;
            return;
        }
        self.valid += sign;
        for (i, &mark) in marks.iter().take(n).enumerate() {
            if mark == MARK_FOR {
                self.for_votes[i] += sign;
            } else if mark == MARK_AGAINST {
                self.against[i] += sign;
            }
        }
        for name in write_ins {
            *self.write_in.entry(name.clone()).or_insert(0) += sign;
        }
    }
}

/// The stored batch at the incoming batch's sequence (only asked when that
/// sequence is at or below the head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAt {
    /// Byte-for-byte the same batch.
    SameBytes,
    /// Another batch, with this chain hash.
    OtherBytes {
        /// Chain hash of the stored batch.
        stored_hash: [u8; HASH_BYTES],
    },
}

/// An earlier ballot of the station named by a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastBallot {
    /// The ballot as stored.
    pub ballot: pb::Ballot,
    /// Cancelled already by an earlier batch.
    pub cancelled: bool,
}

/// What the writer must look up before [`judge`] can decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Compare with the stored batch at this sequence.
    pub stored_sequence: Option<u64>,
    /// Find these ballots in the station's earlier batches.
    pub past_ballots: BTreeSet<BallotKey>,
    /// Look the batch's ballot ids up among the station's earlier batches'.
    pub earlier_ids: bool,
}

/// What the writer looked up ([`Needs`]).
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// The stored batch at the batch's sequence, when that is ≤ the head
    /// (`None` there: nothing stored, which a sound store never has).
    pub stored_at: Option<StoredAt>,
    /// The earlier ballots found (ids not found are absent).
    pub past_ballots: HashMap<BallotKey, PastBallot>,
    /// A ballot id of this batch that an earlier batch of the station already
    /// holds, with that batch's sequence.
    pub reused_id: Option<(BallotKey, u64)>,
}

/// What an accepted batch raises about its station though it breaks no rule: an
/// alert charged to the station (its signature verified); the batch counts all the
/// same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    /// The station's chain does not start with a zero report (SPEC §3): its batch 1
    /// opens with something else, or holds nothing.
    NoZeroReport {
        /// The kind of batch 1's first event (`None`: the batch is empty).
        first: Option<&'static str>,
    },
}

impl Flag {
    /// The alert kind of [`Flag::NoZeroReport`].
    pub const NO_ZERO_REPORT: &'static str = "NO_ZERO_REPORT";

    /// The alert kind it is stored as.
    pub fn kind(&self) -> &'static str {
        match self {
            Flag::NoZeroReport { .. } => Flag::NO_ZERO_REPORT,
        }
    }

    /// The alert's detail, about `station`.
    pub fn detail(&self, station: &str) -> String {
        match self {
            Flag::NoZeroReport { first } => {
                let opens = first.map_or_else(
                    || "holds no event".to_owned(),
                    |kind| format!("opens with a {kind} event"),
                );
                format!(
                    "station {station}'s chain does not start with a zero report: its batch 1 {opens}, not with the signed report that every contest it serves stands at zero; the batch is counted"
                )
            }
        }
    }
}

/// An accepted batch: its effects (which it reads as, through `Deref`) and the flags
/// it raises about its station.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// What applying it changes.
    pub effects: Effects,
    /// What it raises about its station.
    pub flags: Vec<Flag>,
}

impl std::ops::Deref for Accepted {
    type Target = Effects;

    fn deref(&self) -> &Effects {
        &self.effects
    }
}

/// The decision on one batch.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Apply it (and raise its flags).
    Accept(Box<Accepted>),
    /// The same bytes as the stored batch with that sequence: counted once already.
    Duplicate {
        /// The batch's sequence.
        sequence: u64,
        /// What the center expects next.
        expected_sequence: u64,
    },
    /// Not applied.
    Reject(Rejection),
}

impl Verdict {
    /// The acknowledgement that answers the batch.
    pub fn ack(&self) -> pb::Ack {
        match self {
            Verdict::Accept(e) => pb::Ack::accepted(e.sequence),
            Verdict::Duplicate {
                sequence,
                expected_sequence,
            } => pb::Ack::duplicate(*sequence, *expected_sequence),
            Verdict::Reject(r) => r.ack(),
        }
    }
}

/// Why a batch is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The batch's sequence (0 if it could not be decoded).
    pub sequence: u64,
    /// The reason.
    pub reason: pb::RejectReason,
    /// In words.
    pub detail: String,
    /// The sequence the center expects next from the station.
    pub expected_sequence: u64,
}

impl Rejection {
    /// Every rejection but `GAP` raises an alert (`STALE_KEY` raises its own,
    /// rate-limited, by the caller).
    pub fn alerts(&self) -> bool {
        self.reason != pb::RejectReason::Gap && self.reason != pb::RejectReason::StaleKey
    }

    /// A fork quarantines the station.
    pub fn quarantines(&self) -> bool {
        self.reason == pb::RejectReason::Fork
    }

    /// The reason's short name, e.g. `FORK` (the alert kind).
    pub fn kind(&self) -> &'static str {
        reason_name(self.reason)
    }

    /// The acknowledgement.
    pub fn ack(&self) -> pb::Ack {
        pb::Ack::rejected(
            self.sequence,
            self.reason,
            &self.detail,
            self.expected_sequence,
        )
    }
}

/// A reject reason's short name: `REJECT_REASON_FORK` → `FORK`
/// ([`pb::RejectReason::short_name`]).
pub fn reason_name(reason: pb::RejectReason) -> &'static str {
    reason.short_name()
}

fn shown(text: &str) -> String {
    pollsync_proto::limits::truncate_chars(&format!("{text:?}"), 80)
}

fn delta_of<'d>(
    deltas: &'d mut BTreeMap<String, ContestDelta>,
    contest: &Contest,
) -> &'d mut ContestDelta {
    if !deltas.contains_key(&contest.id) {
        deltas.insert(contest.id.clone(), ContestDelta::for_contest(contest));
    }
    deltas
        .get_mut(&contest.id)
        .unwrap_or_else(|| unreachable!("inserted just above"))
}

mod prepare;
mod verdict;

pub use prepare::{check_signature, prepare};
pub use verdict::{judge, needs, scan_ballot_ids, scan_past_ballots, stale_key};

#[cfg(test)]
mod tests;
