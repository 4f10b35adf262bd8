//! The judge's first step, stateless: the checks of one signed batch that need no
//! station state (size, decoding and canonical form, the Ed25519 signature against
//! a given key, the chain hash, every content check that needs only the
//! definition), aggregating the batch's ballots into per-contest deltas over raw
//! marks. It runs on the verify pool, many batches at once.

use pollsync_election::log;
use pollsync_election::{BallotId, Contest, Station, StationEvent};
use pollsync_proto::convert::{ballot_from_pb, event_from_pb};
use pollsync_proto::envelope::{self, EnvelopeError};
use pollsync_proto::limits::{BALLOT_ID_BYTES, MAX_BATCH_BYTES};
use pollsync_proto::pb;
use pollsync_proto::shape;

use super::{
    BallotKey, BatchHeader, Content, Context, Decoded, KeyNo, Other, Prepared, SignatureCheck,
    Stage, StationKey, delta_of, shown,
};

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
        mode: batch.mode,
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
        if index == 0 {
            // The log's name for it (one event converted, whatever the batch's size).
            content.first_kind = Some(event_from_pb(event).map_or("unreadable", |e| e.kind()));
        }
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
                if index == 0 {
                    content.starts_with_zero_report = log::starts_with_zero_report(Some(&ev));
                }
                match ev {
                    StationEvent::ZeroReport { .. } => {
                        // The first event of the station's log: batch 1's event #0.
                        log::check_zero_report_first(index == 0 && batch.sequence == 1).map_err(
                            |e| {
                                format!(
                                    "event #{index}: {e}: the first event of batch 1, not event #{index} of batch {}",
                                    batch.sequence
                                )
                            },
                        )?;
                    }
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
    // A ballot id once (`election::log`): a repeat inside the batch.
    if let Some(w) = ballots
        .windows(2)
        .find(|w| log::check_new_ballot(BallotId::from_bytes(w[1].0), w[0].0 == w[1].0).is_err())
    {
        return Err(format!(
            "events #{} and #{}: ballot id {} appears twice in this batch",
            w[0].1.min(w[1].1),
            w[0].1.max(w[1].1),
            BallotId::from_bytes(w[0].0)
        ));
    }
    content.ballot_ids = ballots.iter().map(|(id, _)| *id).collect();
    for (index, other) in &mut content.others {
        if let Other::Cancel { ballot, in_batch } = other
            && let Ok(i) = ballots.binary_search_by(|(k, _)| k.cmp(ballot))
        {
            // The log's order (`election::log`): a cancel names a ballot recorded
            // before it, in this batch as in an earlier one.
            let at = ballots[i].1;
            if at > *index {
                return Err(format!(
                    "event #{index}: cancel of ballot {}, which this station records only after it (event #{at})",
                    BallotId::from_bytes(*ballot)
                ));
            }
            if let Some(pb::event::Kind::Ballot(b)) =
                batch.events.get(at).and_then(|e| e.kind.as_ref())
            {
                *in_batch = Some(Box::new(b.clone()));
            }
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
