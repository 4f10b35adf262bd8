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
//!    `BAD_SIGNATURE`, `WRONG_ELECTION`, `WRONG_STATION`, `WRONG_DEFINITION`,
//!    sequence and chain (`DUPLICATE`, `FORK`, `GAP`, `BROKEN_CHAIN`), then content
//!    (`INVALID_CONTENT`, `AFTER_CLOSE`). The first failure decides.
//!
//! [`StationState::advance`] and [`scan_past_ballots`] complete the model, so that a
//! test can run the whole ingest logic in memory (see the property test below).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pollsync_election::{BallotId, Contest, Station, StationEvent, TallySheet};
use pollsync_proto::convert::{ballot_from_pb, event_from_pb};
use pollsync_proto::envelope::{self, EnvelopeError, Placement};
use pollsync_proto::limits::{BALLOT_ID_BYTES, HASH_BYTES, MAX_BATCH_BYTES};
use pollsync_proto::pb;
use pollsync_proto::shape::{self, MARK_AGAINST, MARK_FOR};
use prost::Message as _;

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
    /// Over [`MAX_BATCH_BYTES`] or `MAX_BATCH_EVENTS`.
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
    /// ballot adds no votes.
    fn add_ballot(&mut self, contest: &Contest, marks: &[u8], write_ins: &[String], sign: i64) {
        let n = contest.candidates.len();
        if self.for_votes.len() < n {
            self.for_votes.resize(n, 0);
            self.against.resize(n, 0);
        }
        self.returned += sign;
        let for_marks = marks.iter().filter(|&&m| m == MARK_FOR).count();
        let votes = u64::try_from(for_marks.saturating_add(write_ins.len())).unwrap_or(u64::MAX);
        if votes > u64::from(contest.seats) {
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

impl StationState {
    /// The state after a rejection (a fork quarantines).
    pub fn reject(&mut self, rejection: &Rejection) {
        if rejection.quarantines() {
            self.quarantined = true;
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

/// The decision on one batch.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Apply it.
    Accept(Box<Effects>),
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

/// The stateless checks of one signed batch, with `key` the station's current
/// enrolled key (as the caller last saw it).
pub fn prepare(ctx: &Context, key: Option<&StationKey>, signed: pb::SignedBatch) -> Prepared {
    let stage = prepare_stage(ctx, key, &signed);
    Prepared { signed, stage }
}

fn prepare_stage(ctx: &Context, key: Option<&StationKey>, signed: &pb::SignedBatch) -> Stage {
    if signed.batch.len() > MAX_BATCH_BYTES {
        return Stage::TooLarge {
            sequence: 0,
            detail: format!(
                "the batch is {} bytes, more than the limit of {MAX_BATCH_BYTES} bytes",
                signed.batch.len()
            ),
        };
    }
    let batch = match envelope::decode_batch(signed) {
        Ok(batch) => batch,
        Err(e) => {
            let detail = e.to_string();
            return match e {
                EnvelopeError::TooLarge { .. } => Stage::TooLarge {
                    sequence: 0,
                    detail,
                },
                EnvelopeError::TooManyEvents { sequence, .. } => {
                    Stage::TooLarge { sequence, detail }
                }
                EnvelopeError::PrevHashLength { sequence, .. }
                | EnvelopeError::DefinitionDigestLength { sequence, .. } => {
                    Stage::Malformed { sequence, detail }
                }
                _ => Stage::Malformed {
                    sequence: 0,
                    detail,
                },
            };
        }
    };
    let hash = envelope::chain_hash(&signed.batch);
    let signature = check_signature(key, signed);
    let content = check_content(ctx, &batch);
    let header = BatchHeader {
        events: batch.events.len() as u64,
        election_id: batch.election_id,
        station_id: batch.station_id,
        sequence: batch.sequence,
        prev_hash: batch.prev_hash,
        definition_sha256: batch.definition_sha256,
    };
    // `batch.events` is freed here, on the pool thread, not by the writer.
    drop(batch.events);
    Stage::Decoded(Box::new(Decoded {
        header,
        hash,
        signature,
        content,
    }))
}

/// Verifies the signature with `key` (strictly).
pub fn check_signature(key: Option<&StationKey>, signed: &pb::SignedBatch) -> SignatureCheck {
    match key {
        None => SignatureCheck::NoKey,
        Some(k) => match envelope::verify_batch(&k.key, signed) {
            Ok(()) => SignatureCheck::Verified(k.key_no),
            Err(e) => SignatureCheck::Bad {
                key_no: k.key_no,
                detail: e.to_string(),
            },
        },
    }
}

impl Prepared {
    /// The batch's ballot ids, sorted (none if it did not decode or check).
    pub fn ballot_ids(&self) -> &[BallotKey] {
        match &self.stage {
            Stage::Decoded(d) => d.content.as_ref().map_or(&[], |c| c.ballot_ids()),
            _ => &[],
        }
    }

    /// The batch's sequence (0 if it could not be decoded).
    pub fn sequence(&self) -> u64 {
        match &self.stage {
            Stage::TooLarge { sequence, .. } | Stage::Malformed { sequence, .. } => *sequence,
            Stage::Decoded(d) => d.header.sequence,
        }
    }

    /// The enrolled key its signature verified with, if it did.
    pub fn verified_key(&self) -> Option<KeyNo> {
        match &self.stage {
            Stage::Decoded(d) => match d.signature {
                SignatureCheck::Verified(k) => Some(k),
                _ => None,
            },
            _ => None,
        }
    }

    /// Redoes the signature check if it was made with another key than `current`
    /// (the station was enrolled or re-enrolled meanwhile).
    pub fn recheck_signature(&mut self, current: Option<&StationKey>) {
        if let Stage::Decoded(d) = &mut self.stage
            && d.signature.key_no() != current.map(|k| k.key_no)
        {
            d.signature = check_signature(current, &self.signed);
        }
    }
}

/// Checks every event against the definition (the rules of `StationEvent::check`
/// for the batch's station) and aggregates ballots and issued counts per contest.
fn check_content(ctx: &Context, batch: &pb::Batch) -> Result<Content, String> {
    use pb::event::Kind;
    let station = ctx.station(&batch.station_id).ok_or_else(|| {
        format!(
            "station {} is not in election {}",
            shown(&batch.station_id),
            ctx.election_id()
        )
    })?;
    let mut content = Content::default();
    // Every ballot: id and event index (sorted below to find repeated ids).
    let mut ballots: Vec<(BallotKey, usize)> = Vec::new();
    // The contest of the previous ballot: ballots of one contest come in runs.
    let mut last: Option<(&str, &Contest)> = None;
    for (index, event) in batch.events.iter().enumerate() {
        shape::check_event_shape(index, event).map_err(|e| e.to_string())?;
        match &event.kind {
            Some(Kind::Ballot(b)) => {
                let contest = match last {
                    Some((id, c)) if id == b.contest => c,
                    _ => {
                        let c = served_contest(ctx, station, &b.contest)
                            .map_err(|e| format!("event #{index}: {e}"))?;
                        last = Some((b.contest.as_str(), c));
                        c
                    }
                };
                // Fast path: no write-ins and one (shape-checked) mark per candidate
                // is all `Ballot::check` asks of such a ballot; otherwise run it.
                if !(b.write_in.is_empty() && b.marks.len() == contest.candidates.len()) {
                    let ballot = ballot_from_pb(b).map_err(|e| format!("event #{index}: {e}"))?;
                    ballot
                        .check(contest)
                        .map_err(|e| format!("event #{index}: {e}"))?;
                }
                let mut id = [0u8; BALLOT_ID_BYTES];
                id.copy_from_slice(&b.id); // 16 bytes: checked by the shape check
                ballots.push((id, index));
                content.ballot_count += 1;
                match content.last_ballot_index.get_mut(b.contest.as_str()) {
                    Some(last) => *last = index,
                    None => {
                        content.last_ballot_index.insert(b.contest.clone(), index);
                    }
                }
                delta_of(&mut content.deltas, contest).add_ballot(
                    contest,
                    &b.marks,
                    &b.write_in,
                    1,
                );
            }
            Some(_) => {
                let ev = event_from_pb(event).map_err(|e| format!("event #{index}: {e}"))?;
                ev.check(&ctx.definition, station)
                    .map_err(|e| format!("event #{index}: {e}"))?;
                match ev {
                    StationEvent::Issued { contest, count } => {
                        if let Some(c) = ctx.contest(&contest) {
                            let d = delta_of(&mut content.deltas, c);
                            d.issued = d.issued.saturating_add(count);
                        }
                        content.others.push((index, Other::Issued { contest }));
                    }
                    StationEvent::Cancel { ballot_id, .. } => {
                        content.others.push((
                            index,
                            Other::Cancel {
                                ballot: *ballot_id.as_bytes(),
                                in_batch: None,
                            },
                        ));
                    }
                    StationEvent::Close { contest, sheet } => {
                        content
                            .others
                            .push((index, Other::Close { contest, sheet }));
                    }
                    StationEvent::Ballot(_) => {}
                }
            }
            None => return Err(format!("event #{index}: no event kind set")),
        }
    }
    ballots.sort_unstable();
    if let Some(w) = ballots.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!(
            "events #{} and #{}: ballot id {} appears twice in this batch",
            w[0].1.min(w[1].1),
            w[0].1.max(w[1].1),
            BallotId::from_bytes(w[0].0)
        ));
    }
    content.ballot_ids = ballots.iter().map(|(id, _)| *id).collect();
    for (_, other) in &mut content.others {
        if let Other::Cancel { ballot, in_batch } = other
            && let Ok(i) = ballots.binary_search_by(|(k, _)| k.cmp(ballot))
            && let Some(pb::event::Kind::Ballot(b)) =
                batch.events.get(ballots[i].1).and_then(|e| e.kind.as_ref())
        {
            *in_batch = Some(Box::new(b.clone()));
        }
    }
    Ok(content)
}

fn served_contest<'c>(
    ctx: &'c Context,
    station: &Station,
    id: &str,
) -> Result<&'c Contest, String> {
    let contest = ctx
        .contest(id)
        .ok_or_else(|| format!("contest {} is not in this election", shown(id)))?;
    if !station.contests.iter().any(|c| c == id) {
        return Err(format!(
            "station '{}' does not collect ballots for contest '{}'",
            station.id, contest.id
        ));
    }
    Ok(contest)
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

/// What [`judge`] will need looked up for this batch of a station in `state`.
pub fn needs(state: &StationState, prepared: &Prepared) -> Needs {
    let Stage::Decoded(d) = &prepared.stage else {
        return Needs::default();
    };
    let sequence = d.header.sequence;
    let next = sequence == state.head.next_sequence();
    Needs {
        stored_sequence: (sequence <= state.head.sequence).then_some(sequence),
        past_ballots: match &d.content {
            Ok(c) if next => c.external_cancel_targets(),
            _ => BTreeSet::new(),
        },
        earlier_ids: next && d.content.as_ref().is_ok_and(|c| c.ballot_count > 0),
    }
}

/// The decision on a batch pushed over a connection whose certificate's key is no
/// longer the station's usable key (replaced, or retired after a fork): rejected
/// `STALE_KEY`, never a fork or a quarantine, whatever the batch holds.
pub fn stale_key(peer: &str, state: &StationState, prepared: &Prepared) -> Rejection {
    let why = match (&state.current_key, &state.retired) {
        (Some(k), _) => format!("the device was replaced; key {k} is station {peer}'s current key"),
        (None, Some(_)) => {
            format!("station {peer}'s key was retired after a fork; the station must be replaced")
        }
        (None, None) => format!("station {peer} has no enrolled key"),
    };
    Rejection {
        sequence: prepared.sequence(),
        reason: pb::RejectReason::StaleKey,
        detail: format!(
            "batch {}: this connection's certificate is not station {peer}'s current key: {why}",
            prepared.sequence()
        ),
        expected_sequence: state.head.next_sequence(),
    }
}

/// The decision on one prepared batch pushed (or imported) as station `peer`, in
/// the order of docs/PROTOCOL.md §7.1.
pub fn judge(
    ctx: &Context,
    peer: &str,
    state: &StationState,
    prepared: &Prepared,
    lookups: &Lookups,
) -> Verdict {
    let expected = state.head.next_sequence();
    let reject = |sequence: u64, reason: pb::RejectReason, detail: String| {
        Verdict::Reject(Rejection {
            sequence,
            reason,
            detail,
            expected_sequence: expected,
        })
    };
    use pb::RejectReason as R;
    let d = match &prepared.stage {
        Stage::TooLarge { sequence, detail } => {
            return reject(*sequence, R::TooLarge, detail.clone());
        }
        Stage::Malformed { sequence, detail } => {
            return reject(*sequence, R::Malformed, detail.clone());
        }
        Stage::Decoded(d) => d,
    };
    let batch = &d.header;
    let sequence = batch.sequence;
    if state.revoked {
        return reject(
            sequence,
            R::Revoked,
            format!(
                "station {peer} was revoked by the center's operator; nothing more from it is applied"
            ),
        );
    }
    if state.quarantined {
        return reject(
            sequence,
            R::Quarantined,
            format!(
                "station {peer} is quarantined after a fork; nothing more from it is applied until an operator acts"
            ),
        );
    }
    // Byte for byte a batch already accepted (its signature verified then, with the
    // key of its time): counted once, whatever key verifies now.
    if sequence <= state.head.sequence
        && lookups.stored_at == Some(StoredAt::SameBytes)
        && !matches!(d.signature, SignatureCheck::Verified(k) if Some(k) == state.current_key)
    {
        return Verdict::Duplicate {
            sequence,
            expected_sequence: expected,
        };
    }
    match (&d.signature, state.current_key) {
        (SignatureCheck::Verified(k), Some(current)) if *k == current => {}
        (_, None) => {
            let why = if ctx.station(peer).is_none() {
                format!(
                    "station {} is not in election {}",
                    shown(peer),
                    ctx.election_id()
                )
            } else {
                format!("station {peer} is not enrolled at this center")
            };
            return reject(
                sequence,
                R::BadSignature,
                format!("{why}: no key to verify batch {sequence} with"),
            );
        }
        (SignatureCheck::Bad { detail, .. }, Some(_)) => {
            return reject(
                sequence,
                R::BadSignature,
                format!("batch {sequence}: {detail} (the key enrolled for station {peer})"),
            );
        }
        (_, Some(_)) => {
            return reject(
                sequence,
                R::BadSignature,
                format!(
                    "batch {sequence}: not verified with the key currently enrolled for station {peer}"
                ),
            );
        }
    }
    if batch.election_id != ctx.election_id() {
        return reject(
            sequence,
            R::WrongElection,
            format!(
                "batch {sequence} names election {}, this center counts election {}",
                shown(&batch.election_id),
                ctx.election_id()
            ),
        );
    }
    if batch.station_id != peer {
        return reject(
            sequence,
            R::WrongStation,
            format!(
                "batch {sequence} names station {}, but it came from station {peer}",
                shown(&batch.station_id)
            ),
        );
    }
    if batch.definition_sha256.as_slice() != ctx.definition_sha256.as_slice() {
        return reject(
            sequence,
            R::WrongDefinition,
            format!(
                "batch {sequence} was sealed under definition sha256 {}, the center's is {}",
                hex::encode(&batch.definition_sha256),
                hex::encode(ctx.definition_sha256)
            ),
        );
    }
    match state.head.place(sequence, &batch.prev_hash) {
        Placement::AtOrBelowHead => {
            return match lookups.stored_at {
                Some(StoredAt::SameBytes) => Verdict::Duplicate {
                    sequence,
                    expected_sequence: expected,
                },
                Some(StoredAt::OtherBytes { stored_hash }) => reject(
                    sequence,
                    R::Fork,
                    format!(
                        "fork at sequence {sequence}: the center holds another batch {sequence} (chain hash {}), this one hashes to {}; station {peer} is quarantined",
                        hex::encode(stored_hash),
                        hex::encode(d.hash)
                    ),
                ),
                None => reject(
                    sequence,
                    R::Fork,
                    format!(
                        "fork at sequence {sequence}: at or below the center's head {} but no stored batch to compare; station {peer} is quarantined",
                        state.head.sequence
                    ),
                ),
            };
        }
        Placement::Gap { expected } => {
            return reject(
                sequence,
                R::Gap,
                format!("gap: batch {sequence} arrived, the center expects batch {expected} first"),
            );
        }
        Placement::BrokenChain => {
            return reject(
                sequence,
                R::BrokenChain,
                format!(
                    "broken chain at sequence {sequence}: prev_hash {} is not the chain hash {} of the center's batch {}",
                    hex::encode(&batch.prev_hash),
                    hex::encode(state.head.hash),
                    state.head.sequence
                ),
            );
        }
        Placement::Next => {}
    }
    let content = match &d.content {
        Ok(c) => c,
        Err(detail) => {
            return reject(
                sequence,
                R::InvalidContent,
                format!("batch {sequence}: {detail}"),
            );
        }
    };
    if let Some((id, earlier)) = lookups.reused_id {
        return reject(
            sequence,
            R::InvalidContent,
            format!(
                "batch {sequence}: ballot {} is already in batch {earlier} of station {peer}; a ballot is counted once",
                BallotId::from_bytes(id)
            ),
        );
    }
    let key_no = state.current_key.unwrap_or_default();
    match effects_of(ctx, state, content, lookups) {
        Ok((deltas, closes)) => Verdict::Accept(Box::new(Effects {
            sequence,
            hash: d.hash,
            key_no,
            events: batch.events,
            ballots: content.ballot_count,
            deltas,
            closes,
        })),
        Err((reason, detail)) => reject(sequence, reason, format!("batch {sequence}: {detail}")),
    }
}

type ContentFailure = (pb::RejectReason, String);

/// The checks that depend on the station's log: nothing for a closed contest, a
/// cancel names a ballot recorded here and not cancelled yet. Returns the deltas
/// with cancels applied and the closes.
#[allow(clippy::type_complexity)]
fn effects_of(
    ctx: &Context,
    state: &StationState,
    content: &Content,
    lookups: &Lookups,
) -> Result<(BTreeMap<String, ContestDelta>, Vec<(String, TallySheet)>), ContentFailure> {
    use pb::RejectReason as R;
    let after_close = |what: String| (R::AfterClose, what);
    for contest in content.deltas.keys() {
        if state.closed.contains(contest) {
            return Err(after_close(format!(
                "contest '{contest}' was closed by this station in an earlier batch; this batch has ballots or issued counts for it"
            )));
        }
    }
    let mut deltas = content.deltas.clone();
    let mut closed: BTreeSet<&str> = state.closed.iter().map(String::as_str).collect();
    let mut cancelled_here: BTreeSet<BallotKey> = BTreeSet::new();
    let mut closes = Vec::new();
    for (index, other) in &content.others {
        match other {
            Other::Issued { contest } => {
                if closed.contains(contest.as_str()) {
                    return Err(after_close(format!(
                        "event #{index}: ballots issued for contest '{contest}' after its close"
                    )));
                }
            }
            Other::Close { contest, sheet } => {
                if closed.contains(contest.as_str()) {
                    return Err(after_close(format!(
                        "event #{index}: contest '{contest}' is closed a second time"
                    )));
                }
                if let Some(&last) = content.last_ballot_index.get(contest)
                    && last > *index
                {
                    return Err(after_close(format!(
                        "event #{last}: a ballot of contest '{contest}' after its close (event #{index})"
                    )));
                }
                closed.insert(contest.as_str());
                closes.push((contest.clone(), sheet.clone()));
            }
            Other::Cancel { ballot, in_batch } => {
                let id = BallotId::from_bytes(*ballot);
                if !cancelled_here.insert(*ballot) {
                    return Err((
                        R::InvalidContent,
                        format!("event #{index}: ballot {id} is cancelled twice in this batch"),
                    ));
                }
                let target: &pb::Ballot = if let Some(b) = in_batch {
                    b
                } else {
                    match lookups.past_ballots.get(ballot) {
                        Some(p) if p.cancelled => {
                            return Err((
                                R::InvalidContent,
                                format!(
                                    "event #{index}: ballot {id} was already cancelled in an earlier batch"
                                ),
                            ));
                        }
                        Some(p) => &p.ballot,
                        None => {
                            return Err((
                                R::InvalidContent,
                                format!(
                                    "event #{index}: cancel of ballot {id}, which this station never recorded"
                                ),
                            ));
                        }
                    }
                };
                if closed.contains(target.contest.as_str()) {
                    return Err(after_close(format!(
                        "event #{index}: cancel of ballot {id} of contest '{}' after its close",
                        target.contest
                    )));
                }
                let Some(contest) = ctx.contest(&target.contest) else {
                    return Err((
                        R::InvalidContent,
                        format!("event #{index}: cancel of ballot {id} of an unknown contest"),
                    ));
                };
                delta_of(&mut deltas, contest).add_ballot(
                    contest,
                    &target.marks,
                    &target.write_in,
                    -1,
                );
            }
        }
    }
    for d in deltas.values_mut() {
        d.write_in.retain(|_, v| *v != 0);
    }
    Ok((deltas, closes))
}

/// Every ballot id of a station's stored batches (raw `Batch` bytes), with the
/// sequence of the batch that holds it: what a new batch's ids are checked
/// against, so that no ballot is counted twice. Batches that do not decode are
/// skipped (they were checked when accepted).
pub fn scan_ballot_ids<'a>(batches: impl IntoIterator<Item = &'a [u8]>) -> HashMap<BallotKey, u64> {
    use pb::event::Kind;
    let mut ids = HashMap::new();
    for bytes in batches {
        let Ok(batch) = pb::Batch::decode(bytes) else {
            continue;
        };
        for event in batch.events {
            if let Some(Kind::Ballot(b)) = event.kind
                && let Ok(id) = BallotKey::try_from(b.id.as_slice())
            {
                ids.entry(id).or_insert(batch.sequence);
            }
        }
    }
    ids
}

/// Finds the `wanted` ballots in a station's earlier batches (raw `Batch` bytes, in
/// any order) and whether a cancel in them took each back already. Batches that
/// do not decode are skipped (they were checked when accepted).
pub fn scan_past_ballots<'a>(
    batches: impl IntoIterator<Item = &'a [u8]>,
    wanted: &BTreeSet<BallotKey>,
) -> HashMap<BallotKey, PastBallot> {
    use pb::event::Kind;
    let mut found: HashMap<BallotKey, PastBallot> = HashMap::new();
    let mut cancelled: BTreeSet<BallotKey> = BTreeSet::new();
    if wanted.is_empty() {
        return found;
    }
    for bytes in batches {
        let Ok(batch) = pb::Batch::decode(bytes) else {
            continue;
        };
        for event in batch.events {
            match event.kind {
                Some(Kind::Ballot(b)) => {
                    if let Ok(id) = BallotKey::try_from(b.id.as_slice())
                        && wanted.contains(&id)
                    {
                        found.entry(id).or_insert(PastBallot {
                            ballot: b,
                            cancelled: false,
                        });
                    }
                }
                Some(Kind::Cancel(c)) => {
                    if let Ok(id) = BallotKey::try_from(c.ballot_id.as_slice())
                        && wanted.contains(&id)
                    {
                        cancelled.insert(id);
                    }
                }
                _ => {}
            }
        }
    }
    for id in cancelled {
        if let Some(p) = found.get_mut(&id) {
            p.cancelled = true;
        }
    }
    found
}

#[cfg(test)]
mod tests;
