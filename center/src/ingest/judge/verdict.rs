//! The judge's second step: the decision on one prepared batch against the
//! station's state and what the writer looked up for it, in the order of
//! docs/PROTOCOL.md §7.1, with the log's rules taken from the election
//! (`election::log`); and the scans of a station's stored batches that the
//! lookups need.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pollsync_election::log::{self, LogError, Recorded};
use pollsync_election::{BallotId, TallySheet};
use pollsync_proto::envelope::Placement;
use pollsync_proto::pb;
use prost::Message as _;

use super::{
    Accepted, BallotKey, Content, ContestDelta, Context, Effects, Flag, Lookups, Needs, Other,
    PastBallot, Prepared, Rejection, SignatureCheck, Stage, StationState, StoredAt, Verdict,
    delta_of, shown,
};

impl StationState {
    /// The state after a rejection (a fork quarantines).
    pub fn reject(&mut self, rejection: &Rejection) {
        if rejection.quarantines() {
            self.quarantined = true;
        }
    }
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
    if batch.mode != ctx.mode().as_str() {
        return reject(
            sequence,
            R::WrongMode,
            format!(
                "batch {sequence} is of mode {}, this center counts the {} election {}: test and official elections never mix",
                shown(&batch.mode),
                ctx.mode().as_str(),
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
    // A ballot id once (`election::log`): an id of an earlier batch.
    if let Some((id, earlier)) = lookups.reused_id
        && log::check_new_ballot(BallotId::from_bytes(id), true).is_err()
    {
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
        Ok((deltas, closes)) => Verdict::Accept(Box::new(Accepted {
            effects: Effects {
                sequence,
                hash: d.hash,
                key_no,
                events: batch.events,
                ballots: content.ballot_count,
                deltas,
                closes,
            },
            flags: flags_of(sequence, content),
        })),
        Err((reason, detail)) => reject(sequence, reason, format!("batch {sequence}: {detail}")),
    }
}

/// What an accepted batch raises about its station: batch 1 (the start of the
/// station's log) that does not open with the zero report.
fn flags_of(sequence: u64, content: &Content) -> Vec<Flag> {
    if sequence == 1 && !content.starts_with_zero_report {
        return vec![Flag::NoZeroReport {
            first: content.first_kind,
        }];
    }
    Vec::new()
}

type ContentFailure = (pb::RejectReason, String);

/// A refusal by the log's rules, with the judge's words for it: `AFTER_CLOSE` for
/// what comes after a close, else `INVALID_CONTENT`.
fn refused(error: &LogError, detail: String) -> ContentFailure {
    if error.is_after_close() {
        (pb::RejectReason::AfterClose, detail)
    } else {
        (pb::RejectReason::InvalidContent, detail)
    }
}

/// The checks that depend on the station's log, with the election's rules
/// (`election::log`): nothing for a closed contest, a contest closed once, a cancel
/// names a ballot recorded here and not cancelled yet. The batch's ballots come as
/// per-contest deltas (the fast path over raw marks), so the rules are asked in the
/// order that needs no event-by-event replay: ballots and issued counts against the
/// contests closed in earlier batches, then the batch's other events in order, a
/// close against the batch's last ballot of its contest. Returns the deltas with
/// cancels applied and the closes.
#[allow(clippy::type_complexity)]
fn effects_of(
    ctx: &Context,
    state: &StationState,
    content: &Content,
    lookups: &Lookups,
) -> Result<(BTreeMap<String, ContestDelta>, Vec<(String, TallySheet)>), ContentFailure> {
    use pb::RejectReason as R;
    for contest in content.deltas.keys() {
        log::check_open(contest, state.closed.contains(contest)).map_err(|e| {
            refused(&e, format!(
                "contest '{contest}' was closed by this station in an earlier batch; this batch has ballots or issued counts for it"
            ))
        })?;
    }
    let mut deltas = content.deltas.clone();
    let mut closed: BTreeSet<&str> = state.closed.iter().map(String::as_str).collect();
    let mut cancelled_here: BTreeSet<BallotKey> = BTreeSet::new();
    let mut closes = Vec::new();
    for (index, other) in &content.others {
        match other {
            Other::Issued { contest } => {
                log::check_open(contest, closed.contains(contest.as_str())).map_err(|e| {
                    refused(
                        &e,
                        format!(
                            "event #{index}: ballots issued for contest '{contest}' after its close"
                        ),
                    )
                })?;
            }
            Other::Close { contest, sheet } => {
                log::check_first_close(contest, closed.contains(contest.as_str())).map_err(
                    |e| {
                        refused(
                            &e,
                            format!("event #{index}: contest '{contest}' is closed a second time"),
                        )
                    },
                )?;
                if let Some(&last) = content.last_ballot_index.get(contest) {
                    // The contest's last ballot of the batch, after this close or not.
                    log::check_open(contest, last > *index).map_err(|e| {
                        refused(&e, format!(
                            "event #{last}: a ballot of contest '{contest}' after its close (event #{index})"
                        ))
                    })?;
                }
                closed.insert(contest.as_str());
                closes.push((contest.clone(), sheet.clone()));
            }
            Other::Cancel { ballot, in_batch } => {
                let id = BallotId::from_bytes(*ballot);
                let twice_here = !cancelled_here.insert(*ballot);
                // The ballot it names: in this batch, or in an earlier one.
                let (target, earlier_cancel) = match in_batch {
                    Some(b) => (Some(b.as_ref()), false),
                    None => match lookups.past_ballots.get(ballot) {
                        Some(p) => (Some(&p.ballot), p.cancelled),
                        None => (None, false),
                    },
                };
                let recorded = target.map(|b| Recorded {
                    contest: b.contest.as_str(),
                    cancelled: twice_here || earlier_cancel,
                });
                if let Err(e) = log::check_cancel(id, recorded, |c| closed.contains(c)) {
                    let detail = match &e {
                        LogError::CancelledTwice { .. } if twice_here => {
                            format!("event #{index}: ballot {id} is cancelled twice in this batch")
                        }
                        LogError::CancelledTwice { .. } => format!(
                            "event #{index}: ballot {id} was already cancelled in an earlier batch"
                        ),
                        LogError::UnknownBallot { .. } => format!(
                            "event #{index}: cancel of ballot {id}, which this station never recorded"
                        ),
                        _ => format!(
                            "event #{index}: cancel of ballot {id} of contest '{}' after its close",
                            target.map_or("", |b| b.contest.as_str())
                        ),
                    };
                    return Err(refused(&e, detail));
                }
                let Some(target) = target else {
                    // `check_cancel` refused it above already.
                    return Err((
                        R::InvalidContent,
                        format!(
                            "event #{index}: cancel of ballot {id}, which this station never recorded"
                        ),
                    ));
                };
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
