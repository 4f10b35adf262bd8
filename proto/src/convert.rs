//! Conversion between the election domain's events (`pollsync_election`) and their
//! wire form (`pb`). Both ends use it: the station to seal what it recorded, the
//! center and `center audit` to read back what a batch says.
//!
//! Decoding checks only what the wire form itself can get wrong (lengths, mark bytes,
//! a candidate counted twice in a sheet); whether an event fits the election is
//! `StationEvent::check`'s job.

use std::collections::BTreeMap;

use pollsync_election::{Ballot, BallotId, Mark, StationEvent, TallySheet};

use crate::limits::MAX_ZERO_REPORT_CONTESTS;
use crate::pb;
use crate::shape::{MARK_AGAINST, MARK_FOR, MARK_NONE};

/// What in a wire event cannot be an election event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The event has no kind (or one unknown to this version).
    #[error("event has no kind set (or one unknown to this version)")]
    EmptyEvent,
    /// A ballot id of the wrong length.
    #[error("ballot id is {len} bytes; it must be 16")]
    BallotIdLength {
        /// Its length in bytes.
        len: usize,
    },
    /// A mark byte that is none of none, FOR, AGAINST.
    #[error(
        "ballot {ballot}: mark #{index} is byte {byte}; only 0 (none), 1 (FOR), 2 (AGAINST) exist"
    )]
    BadMark {
        /// The ballot.
        ballot: BallotId,
        /// Which mark (from 0, in candidate order).
        index: usize,
        /// The byte found.
        byte: u8,
    },
    /// A close without its tally sheet.
    #[error("close of contest '{contest}' carries no tally sheet")]
    MissingSheet {
        /// The contest closed.
        contest: String,
    },
    /// A zero report naming more contests than [`MAX_ZERO_REPORT_CONTESTS`].
    #[error(
        "zero report names {count} contests, more than the {MAX_ZERO_REPORT_CONTESTS} a report may name"
    )]
    TooManyContests {
        /// Contests named.
        count: usize,
    },
    /// A tally sheet naming a candidate or write-in twice in one list.
    #[error("close of contest '{contest}': the tally sheet names '{name}' twice under {field}")]
    SheetRepeats {
        /// The contest closed.
        contest: String,
        /// The sheet's list that repeats it.
        field: &'static str,
        /// The name repeated.
        name: String,
    },
}

/// A mark's byte on the wire (`shape::MARK_*`).
pub fn mark_to_byte(mark: Mark) -> u8 {
    match mark {
        Mark::None => MARK_NONE,
        Mark::For => MARK_FOR,
        Mark::Against => MARK_AGAINST,
    }
}

/// A ballot as the wire carries it.
pub fn ballot_to_pb(ballot: &Ballot) -> pb::Ballot {
    pb::Ballot {
        id: ballot.id.as_bytes().to_vec(),
        contest: ballot.contest.clone(),
        marks: ballot.marks.iter().map(|m| mark_to_byte(*m)).collect(),
        write_in: ballot.write_ins.clone(),
    }
}

/// A tally sheet as the wire carries it (names in order, zeros left out as the
/// sheet leaves them out).
pub fn sheet_to_pb(sheet: &TallySheet) -> pb::TallySheet {
    let candidate_counts = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(candidate, votes)| pb::CandidateCount {
                candidate: candidate.clone(),
                votes: *votes,
            })
            .collect()
    };
    pb::TallySheet {
        issued: sheet.issued,
        returned: sheet.returned,
        valid: sheet.valid,
        void: sheet.void,
        for_votes: candidate_counts(&sheet.for_votes),
        against: candidate_counts(&sheet.against),
        write_in: sheet
            .write_in
            .iter()
            .map(|(name, votes)| pb::WriteInCount {
                name: name.clone(),
                votes: *votes,
            })
            .collect(),
    }
}

/// A station's event as the wire carries it.
pub fn event_to_pb(event: &StationEvent) -> pb::Event {
    use pb::event::Kind;
    let kind = match event {
        StationEvent::ZeroReport { contests } => Kind::ZeroReport(pb::ZeroReport {
            contests: contests.clone(),
        }),
        StationEvent::Ballot(b) => Kind::Ballot(ballot_to_pb(b)),
        StationEvent::Issued { contest, count } => Kind::Issued(pb::Issued {
            contest: contest.clone(),
            count: *count,
        }),
        StationEvent::Cancel { ballot_id, reason } => Kind::Cancel(pb::Cancel {
            ballot_id: ballot_id.as_bytes().to_vec(),
            reason: reason.clone(),
        }),
        StationEvent::Close { contest, sheet } => Kind::Close(pb::Close {
            contest: contest.clone(),
            sheet: Some(sheet_to_pb(sheet)),
        }),
    };
    pb::Event { kind: Some(kind) }
}

/// A ballot id from the wire's bytes (exactly 16).
pub fn ballot_id_from_bytes(bytes: &[u8]) -> Result<BallotId, ConvertError> {
    <[u8; 16]>::try_from(bytes)
        .map(BallotId::from_bytes)
        .map_err(|_| ConvertError::BallotIdLength { len: bytes.len() })
}

/// A ballot from the wire; its marks must be known bytes. The election's rules
/// (served contest, marks per candidate, write-ins) are checked elsewhere.
pub fn ballot_from_pb(ballot: &pb::Ballot) -> Result<Ballot, ConvertError> {
    let id = ballot_id_from_bytes(&ballot.id)?;
    let marks = ballot
        .marks
        .iter()
        .enumerate()
        .map(|(index, &byte)| match byte {
            MARK_NONE => Ok(Mark::None),
            MARK_FOR => Ok(Mark::For),
            MARK_AGAINST => Ok(Mark::Against),
            _ => Err(ConvertError::BadMark {
                ballot: id,
                index,
                byte,
            }),
        })
        .collect::<Result<_, _>>()?;
    Ok(Ballot {
        id,
        contest: ballot.contest.clone(),
        marks,
        write_ins: ballot.write_in.clone(),
    })
}

/// The tally sheet closing `contest`, from the wire; no name twice in a list.
pub fn sheet_from_pb(contest: &str, sheet: &pb::TallySheet) -> Result<TallySheet, ConvertError> {
    fn collect<'a>(
        contest: &str,
        field: &'static str,
        entries: impl Iterator<Item = (&'a String, u64)>,
    ) -> Result<BTreeMap<String, u64>, ConvertError> {
        let mut map = BTreeMap::new();
        for (name, votes) in entries {
            if map.insert(name.clone(), votes).is_some() {
                return Err(ConvertError::SheetRepeats {
                    contest: contest.to_string(),
                    field,
                    name: name.clone(),
                });
            }
        }
        Ok(map)
    }
    Ok(TallySheet {
        issued: sheet.issued,
        returned: sheet.returned,
        valid: sheet.valid,
        void: sheet.void,
        for_votes: collect(
            contest,
            "for",
            sheet.for_votes.iter().map(|c| (&c.candidate, c.votes)),
        )?,
        against: collect(
            contest,
            "against",
            sheet.against.iter().map(|c| (&c.candidate, c.votes)),
        )?,
        write_in: collect(
            contest,
            "write_in",
            sheet.write_in.iter().map(|c| (&c.name, c.votes)),
        )?,
    })
}

/// A station's event from the wire.
pub fn event_from_pb(event: &pb::Event) -> Result<StationEvent, ConvertError> {
    use pb::event::Kind;
    match event.kind.as_ref().ok_or(ConvertError::EmptyEvent)? {
        Kind::ZeroReport(z) => {
            if z.contests.len() > MAX_ZERO_REPORT_CONTESTS {
                return Err(ConvertError::TooManyContests {
                    count: z.contests.len(),
                });
            }
            Ok(StationEvent::ZeroReport {
                contests: z.contests.clone(),
            })
        }
        Kind::Ballot(b) => Ok(StationEvent::Ballot(ballot_from_pb(b)?)),
        Kind::Issued(i) => Ok(StationEvent::Issued {
            contest: i.contest.clone(),
            count: i.count,
        }),
        Kind::Cancel(c) => Ok(StationEvent::Cancel {
            ballot_id: ballot_id_from_bytes(&c.ballot_id)?,
            reason: c.reason.clone(),
        }),
        Kind::Close(c) => {
            let sheet = c.sheet.as_ref().ok_or_else(|| ConvertError::MissingSheet {
                contest: c.contest.clone(),
            })?;
            Ok(StationEvent::Close {
                contest: c.contest.clone(),
                sheet: sheet_from_pb(&c.contest, sheet)?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mark() -> impl Strategy<Value = Mark> {
        prop_oneof![Just(Mark::None), Just(Mark::For), Just(Mark::Against)]
    }

    fn event() -> impl Strategy<Value = StationEvent> {
        let ballot = (
            any::<[u8; 16]>(),
            "[A-Z]-[0-9]{3}",
            prop::collection::vec(mark(), 0..6),
            prop::collection::vec("[a-z张王]{1,5}", 0..3),
        )
            .prop_map(|(id, contest, marks, write_ins)| {
                StationEvent::Ballot(Ballot {
                    id: BallotId::from_bytes(id),
                    contest,
                    marks,
                    write_ins,
                })
            });
        let issued = ("[A-Z]-[0-9]{3}", 1u64..100_000)
            .prop_map(|(contest, count)| StationEvent::Issued { contest, count });
        let cancel =
            (any::<[u8; 16]>(), "[a-z ]{1,20}").prop_map(|(id, reason)| StationEvent::Cancel {
                ballot_id: BallotId::from_bytes(id),
                reason,
            });
        let close = (
            "[A-Z]-[0-9]{3}",
            any::<[u64; 4]>(),
            prop::collection::btree_map("[A-Z]-[0-9]-[0-9]", 0u64..9999, 0..4),
        )
            .prop_map(|(contest, [issued, returned, valid, void], for_votes)| {
                StationEvent::Close {
                    contest,
                    sheet: TallySheet {
                        issued,
                        returned,
                        valid,
                        void,
                        against: for_votes.clone(),
                        for_votes,
                        write_in: BTreeMap::from([("李四".to_string(), 3)]),
                    },
                }
            });
        let zero_report = prop::collection::vec("[A-Z]-[0-9]{3}", 0..=MAX_ZERO_REPORT_CONTESTS)
            .prop_map(|contests| StationEvent::ZeroReport { contests });
        prop_oneof![ballot, issued, cancel, close, zero_report]
    }

    proptest! {
        #[test]
        fn every_event_reads_back_as_it_was_written(e in event()) {
            prop_assert_eq!(event_from_pb(&event_to_pb(&e)), Ok(e));
        }
    }

    #[test]
    fn a_mark_byte_other_than_0_1_2_is_refused() {
        let b = pb::Ballot {
            id: vec![7; 16],
            contest: "D-001".into(),
            marks: vec![0, 1, 3],
            write_in: vec![],
        };
        assert!(matches!(
            ballot_from_pb(&b),
            Err(ConvertError::BadMark {
                index: 2,
                byte: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_zero_report_of_too_many_contests_is_refused() {
        let event = pb::Event {
            kind: Some(pb::event::Kind::ZeroReport(pb::ZeroReport {
                contests: vec!["D-001".into(); MAX_ZERO_REPORT_CONTESTS + 1],
            })),
        };
        assert_eq!(
            event_from_pb(&event),
            Err(ConvertError::TooManyContests {
                count: MAX_ZERO_REPORT_CONTESTS + 1
            })
        );
    }

    #[test]
    fn a_short_ballot_id_is_refused() {
        let b = pb::Ballot {
            id: vec![7; 15],
            contest: "D-001".into(),
            marks: vec![],
            write_in: vec![],
        };
        assert_eq!(
            ballot_from_pb(&b),
            Err(ConvertError::BallotIdLength { len: 15 })
        );
    }

    #[test]
    fn a_sheet_naming_a_candidate_twice_is_refused() {
        let sheet = pb::TallySheet {
            for_votes: vec![
                pb::CandidateCount {
                    candidate: "D-001-1".into(),
                    votes: 1,
                },
                pb::CandidateCount {
                    candidate: "D-001-1".into(),
                    votes: 2,
                },
            ],
            ..Default::default()
        };
        assert!(matches!(
            sheet_from_pb("D-001", &sheet),
            Err(ConvertError::SheetRepeats { field: "for", .. })
        ));
    }
}
