//! Structural checks of the events inside a decoded batch that need no election
//! definition: field lengths, mark values, bounded strings.
//!
//! These are protocol rules (a ballot id is 16 bytes, a mark is 0, 1 or 2, ...);
//! checks against the election definition (known contest, number of marks equal
//! to the number of candidates, events after close) belong to the center. A
//! failure here is answered with `REJECT_REASON_INVALID_CONTENT`.

use crate::limits::{
    BALLOT_ID_BYTES, MAX_ID_BYTES, MAX_MARKS, MAX_NAME_BYTES, MAX_REASON_CHARS, MAX_WRITE_INS,
    MAX_ZERO_REPORT_CONTESTS,
};
use crate::pb;

/// Mark byte: no mark (abstain).
pub const MARK_NONE: u8 = 0;
/// Mark byte: FOR the candidate.
pub const MARK_FOR: u8 = 1;
/// Mark byte: AGAINST the candidate.
pub const MARK_AGAINST: u8 = 2;

/// What is wrong with one event; `index` is its position in `Batch.events`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The event has no kind set (or a kind this version does not know).
    #[error("event #{index}: no event kind set (or a kind unknown to this version)")]
    EmptyEvent {
        /// Position in the batch.
        index: usize,
    },
    /// A ballot id (or cancelled ballot id) is not 16 bytes.
    #[error("event #{index}: ballot id is {len} bytes, expected 16")]
    BallotIdLength {
        /// Position in the batch.
        index: usize,
        /// Length found.
        len: usize,
    },
    /// A contest id is empty or too long.
    #[error("event #{index}: contest id is empty or longer than {MAX_ID_BYTES} bytes")]
    ContestId {
        /// Position in the batch.
        index: usize,
    },
    /// More marks than [`MAX_MARKS`].
    #[error("event #{index}: {len} marks, more than {MAX_MARKS}")]
    TooManyMarks {
        /// Position in the batch.
        index: usize,
        /// Marks found.
        len: usize,
    },
    /// A mark byte other than 0, 1 or 2.
    #[error(
        "event #{index}: mark {position} is {value}; marks are 0 (none), 1 (FOR) or 2 (AGAINST)"
    )]
    BadMark {
        /// Position in the batch.
        index: usize,
        /// Candidate position of the mark.
        position: usize,
        /// The byte found.
        value: u8,
    },
    /// More write-ins than [`MAX_WRITE_INS`].
    #[error("event #{index}: {count} write-in names, more than {MAX_WRITE_INS}")]
    TooManyWriteIns {
        /// Position in the batch.
        index: usize,
        /// Names found.
        count: usize,
    },
    /// A write-in name (or tally-sheet name) is blank or too long.
    #[error("event #{index}: a name is blank or longer than {MAX_NAME_BYTES} bytes")]
    BadName {
        /// Position in the batch.
        index: usize,
    },
    /// `Issued.count` is 0.
    #[error("event #{index}: issued count is 0")]
    ZeroIssued {
        /// Position in the batch.
        index: usize,
    },
    /// A cancel reason is blank or too long.
    #[error("event #{index}: cancel reason is blank or longer than {MAX_REASON_CHARS} characters")]
    BadReason {
        /// Position in the batch.
        index: usize,
    },
    /// A close without a tally sheet.
    #[error("event #{index}: close without a tally sheet")]
    MissingSheet {
        /// Position in the batch.
        index: usize,
    },
    /// More contests in a zero report than [`MAX_ZERO_REPORT_CONTESTS`].
    #[error(
        "event #{index}: a zero report of {count} contests, more than {MAX_ZERO_REPORT_CONTESTS}"
    )]
    TooManyContests {
        /// Position in the batch.
        index: usize,
        /// Contests found.
        count: usize,
    },
    /// A tally-sheet candidate id is empty or too long.
    #[error(
        "event #{index}: a tally-sheet candidate id is empty or longer than {MAX_ID_BYTES} bytes"
    )]
    BadCandidateId {
        /// Position in the batch.
        index: usize,
    },
}

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES
}

fn name_ok(name: &str) -> bool {
    !name.trim().is_empty() && name.len() <= MAX_NAME_BYTES
}

/// Checks every event of `batch` for the definition-independent rules.
pub fn check_batch_shape(batch: &pb::Batch) -> Result<(), ShapeError> {
    for (index, event) in batch.events.iter().enumerate() {
        check_event_shape(index, event)?;
    }
    Ok(())
}

/// Checks one event; `index` is only used in the error.
pub fn check_event_shape(index: usize, event: &pb::Event) -> Result<(), ShapeError> {
    use pb::event::Kind;
    match &event.kind {
        None => Err(ShapeError::EmptyEvent { index }),
        Some(Kind::Ballot(ballot)) => {
            if ballot.id.len() != BALLOT_ID_BYTES {
                return Err(ShapeError::BallotIdLength {
                    index,
                    len: ballot.id.len(),
                });
            }
            if !id_ok(&ballot.contest) {
                return Err(ShapeError::ContestId { index });
            }
            if ballot.marks.len() > MAX_MARKS {
                return Err(ShapeError::TooManyMarks {
                    index,
                    len: ballot.marks.len(),
                });
            }
            if let Some((position, &value)) = ballot
                .marks
                .iter()
                .enumerate()
                .find(|(_, m)| **m > MARK_AGAINST)
            {
                return Err(ShapeError::BadMark {
                    index,
                    position,
                    value,
                });
            }
            if ballot.write_in.len() > MAX_WRITE_INS {
                return Err(ShapeError::TooManyWriteIns {
                    index,
                    count: ballot.write_in.len(),
                });
            }
            if !ballot.write_in.iter().all(|n| name_ok(n)) {
                return Err(ShapeError::BadName { index });
            }
            Ok(())
        }
        Some(Kind::Issued(issued)) => {
            if !id_ok(&issued.contest) {
                return Err(ShapeError::ContestId { index });
            }
            if issued.count == 0 {
                return Err(ShapeError::ZeroIssued { index });
            }
            Ok(())
        }
        Some(Kind::Cancel(cancel)) => {
            if cancel.ballot_id.len() != BALLOT_ID_BYTES {
                return Err(ShapeError::BallotIdLength {
                    index,
                    len: cancel.ballot_id.len(),
                });
            }
            if cancel.reason.trim().is_empty() || cancel.reason.chars().count() > MAX_REASON_CHARS {
                return Err(ShapeError::BadReason { index });
            }
            Ok(())
        }
        Some(Kind::Close(close)) => {
            if !id_ok(&close.contest) {
                return Err(ShapeError::ContestId { index });
            }
            let Some(sheet) = &close.sheet else {
                return Err(ShapeError::MissingSheet { index });
            };
            if !sheet
                .for_votes
                .iter()
                .chain(&sheet.against)
                .all(|c| id_ok(&c.candidate))
            {
                return Err(ShapeError::BadCandidateId { index });
            }
            if !sheet.write_in.iter().all(|w| name_ok(&w.name)) {
                return Err(ShapeError::BadName { index });
            }
            Ok(())
        }
        Some(Kind::ZeroReport(report)) => {
            if report.contests.len() > MAX_ZERO_REPORT_CONTESTS {
                return Err(ShapeError::TooManyContests {
                    index,
                    count: report.contests.len(),
                });
            }
            if !report.contests.iter().all(|c| id_ok(c)) {
                return Err(ShapeError::ContestId { index });
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::event::Kind;

    fn ballot(id_len: usize, marks: &[u8], write_in: &[&str]) -> pb::Event {
        pb::Event {
            kind: Some(Kind::Ballot(pb::Ballot {
                id: vec![1; id_len],
                contest: "D-001".into(),
                marks: marks.to_vec(),
                write_in: write_in.iter().map(|s| s.to_string()).collect(),
            })),
        }
    }

    #[test]
    fn good_events_pass() {
        let close = pb::Event {
            kind: Some(Kind::Close(pb::Close {
                contest: "D-001".into(),
                sheet: Some(pb::TallySheet {
                    issued: 3,
                    returned: 3,
                    valid: 3,
                    void: 0,
                    for_votes: vec![pb::CandidateCount {
                        candidate: "D-001-1".into(),
                        votes: 2,
                    }],
                    against: vec![],
                    write_in: vec![pb::WriteInCount {
                        name: "张三".into(),
                        votes: 1,
                    }],
                }),
            })),
        };
        let batch = pb::Batch {
            events: vec![
                pb::Event {
                    kind: Some(Kind::ZeroReport(pb::ZeroReport {
                        contests: vec!["D-001".into(), "T-001".into()],
                    })),
                },
                ballot(16, &[0, 1, 2], &["张三"]),
                pb::Event {
                    kind: Some(Kind::Issued(pb::Issued {
                        contest: "D-001".into(),
                        count: 5,
                    })),
                },
                pb::Event {
                    kind: Some(Kind::Cancel(pb::Cancel {
                        ballot_id: vec![1; 16],
                        reason: "entered twice".into(),
                    })),
                },
                close,
            ],
            ..Default::default()
        };
        check_batch_shape(&batch).unwrap();
    }

    #[test]
    fn bad_events_are_named() {
        assert_eq!(
            check_event_shape(3, &ballot(15, &[], &[])),
            Err(ShapeError::BallotIdLength { index: 3, len: 15 })
        );
        assert_eq!(
            check_event_shape(0, &ballot(16, &[0, 3], &[])),
            Err(ShapeError::BadMark {
                index: 0,
                position: 1,
                value: 3
            })
        );
        assert_eq!(
            check_event_shape(0, &ballot(16, &[], &["  "])),
            Err(ShapeError::BadName { index: 0 })
        );
        assert_eq!(
            check_event_shape(1, &pb::Event { kind: None }),
            Err(ShapeError::EmptyEvent { index: 1 })
        );
        let zero = pb::Event {
            kind: Some(Kind::Issued(pb::Issued {
                contest: "D-001".into(),
                count: 0,
            })),
        };
        assert_eq!(
            check_event_shape(0, &zero),
            Err(ShapeError::ZeroIssued { index: 0 })
        );
        let no_sheet = pb::Event {
            kind: Some(Kind::Close(pb::Close {
                contest: "D-001".into(),
                sheet: None,
            })),
        };
        assert_eq!(
            check_event_shape(0, &no_sheet),
            Err(ShapeError::MissingSheet { index: 0 })
        );
        let zero_report = |contests: Vec<String>| pb::Event {
            kind: Some(Kind::ZeroReport(pb::ZeroReport { contests })),
        };
        assert_eq!(
            check_event_shape(2, &zero_report(vec!["D-001".into(), String::new()])),
            Err(ShapeError::ContestId { index: 2 })
        );
        assert_eq!(
            check_event_shape(
                0,
                &zero_report(vec!["D-001".into(); MAX_ZERO_REPORT_CONTESTS + 1])
            ),
            Err(ShapeError::TooManyContests {
                index: 0,
                count: MAX_ZERO_REPORT_CONTESTS + 1
            })
        );
    }
}
