//! The events of a station's append-only log (SPEC §3) and the checks each one must
//! pass before the station records it or the center applies it: the zero report that
//! opens the log, a ballot, ballots issued, a cancel, and the close of a contest with
//! its tally sheet.
//!
//! What depends on the log's history (no cancel or ballot after a close, a cancel naming
//! a recorded ballot) is for the log's keeper; this module checks one event on its own
//! against the election definition.

use serde::{Deserialize, Serialize};

use crate::ballot::{Ballot, BallotError, BallotId};
use crate::definition::{Contest, ElectionDefinition, Station};
use crate::tally::{SheetError, TallySheet};
use crate::words::{figure, is_invisible_format, shown};

/// Most ballots one `issued` event may hand out: more than any station issues in a day.
pub const MAX_ISSUED_PER_EVENT: u64 = 100_000;
/// Longest cancel reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// One entry of a station's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum StationEvent {
    /// The zero report (Brazil's zerésima, a zero tally): before its first ballot the
    /// station reports that every contest it serves stands at zero (nothing issued,
    /// returned, valid or void, no votes). Only the first event of a station's log
    /// ([`crate::log::check_zero_report_first`]).
    #[serde(rename = "zero_report")]
    ZeroReport {
        /// The id of every contest the station serves, in the order the definition
        /// lists them for the station ([`StationEvent::zero_report_of`]).
        contests: Vec<String>,
    },
    /// One ballot.
    Ballot(Ballot),
    /// `count` more ballots of a contest handed to voters (发出选票).
    Issued {
        /// The contest's id.
        contest: String,
        /// Ballots handed out, 1 to [`MAX_ISSUED_PER_EVENT`].
        count: u64,
    },
    /// A ballot entered by mistake is withdrawn (before close only).
    Cancel {
        /// The ballot withdrawn; recorded earlier by this station.
        ballot_id: BallotId,
        /// Why, in the clerk's words; at most [`MAX_REASON_CHARS`] characters.
        reason: String,
    },
    /// The contest's tally sheet from the station's own count; nothing more for this
    /// contest follows.
    Close {
        /// The contest's id.
        contest: String,
        /// The station's tally sheet for the contest.
        sheet: TallySheet,
    },
}

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The event names a contest the election does not define.
    #[error("contest {contest} is not in this election")]
    UnknownContest {
        /// The id given, quoted for display (cut short, control characters escaped).
        contest: String,
    },
    /// The event's contest is not one this station collects ballots for.
    #[error("station '{station}' does not collect ballots for contest '{contest}'")]
    NotServed {
        /// The station's id.
        station: String,
        /// The contest's id.
        contest: String,
    },
    /// The ballot fails its own checks.
    #[error(transparent)]
    Ballot(#[from] BallotError),
    /// The close's tally sheet fails its own checks.
    #[error(transparent)]
    Sheet(#[from] SheetError),
    /// An issued event with a count of 0.
    #[error("contest '{contest}': ballots issued must be at least 1, not 0")]
    NothingIssued {
        /// The contest's id.
        contest: String,
    },
    /// An issued event with a count over [`MAX_ISSUED_PER_EVENT`].
    #[error(
        "contest '{contest}': {} ballots issued at once is more than the {} allowed",
        figure(*.count),
        figure(*.max)
    )]
    TooManyIssued {
        /// The contest's id.
        contest: String,
        /// Ballots the event says were issued.
        count: u64,
        /// Most ballots one event may issue.
        max: u64,
    },
    /// A cancel with an empty or blank reason.
    #[error("cancel of ballot {ballot_id}: a reason is required")]
    EmptyReason {
        /// The ballot the cancel names.
        ballot_id: BallotId,
    },
    /// A cancel reason longer than [`MAX_REASON_CHARS`].
    #[error(
        "cancel of ballot {ballot_id}: the reason is {chars} characters long; at most {max} are allowed"
    )]
    ReasonTooLong {
        /// The ballot the cancel names.
        ballot_id: BallotId,
        /// The reason's length, in characters.
        chars: usize,
        /// Most characters allowed.
        max: usize,
    },
    /// A zero report that names a contest twice.
    #[error("zero report of station '{station}': contest '{contest}' is named twice")]
    ZeroReportRepeats {
        /// The station's id.
        station: String,
        /// The contest named twice.
        contest: String,
    },
    /// A zero report that leaves out a contest the station serves.
    #[error(
        "zero report of station '{station}': contest '{contest}', which the station serves, is missing"
    )]
    ZeroReportMissing {
        /// The station's id.
        station: String,
        /// The contest left out.
        contest: String,
    },
    /// A zero report whose contests are not in the order the definition lists them
    /// for the station.
    #[error(
        "zero report of station '{station}': contests {given} are not in the definition's order {expected}"
    )]
    ZeroReportOrder {
        /// The station's id.
        station: String,
        /// The contests as the report names them, quoted for display.
        given: String,
        /// The contests in the definition's order for the station.
        expected: String,
    },
    /// A cancel reason holding a control or invisible formatting character.
    #[error("cancel of ballot {ballot_id}: the reason {shown} contains a control character")]
    ReasonControlCharacter {
        /// The ballot the cancel names.
        ballot_id: BallotId,
        /// The reason, quoted for display (cut short, control characters escaped).
        shown: String,
    },
}

impl StationEvent {
    /// The zero report of `station`: every contest it serves, in the order the
    /// definition lists them for it.
    pub fn zero_report_of(station: &Station) -> StationEvent {
        StationEvent::ZeroReport {
            contests: station.contests.clone(),
        }
    }

    /// The contest the event belongs to; a cancel names only a ballot, a zero report
    /// every contest of the station.
    pub fn contest(&self) -> Option<&str> {
        match self {
            StationEvent::Ballot(ballot) => Some(&ballot.contest),
            StationEvent::Issued { contest, .. } | StationEvent::Close { contest, .. } => {
                Some(contest)
            }
            StationEvent::Cancel { .. } | StationEvent::ZeroReport { .. } => None,
        }
    }

    /// The event's kind as the log names it.
    pub fn kind(&self) -> &'static str {
        match self {
            StationEvent::ZeroReport { .. } => "zero_report",
            StationEvent::Ballot(_) => "ballot",
            StationEvent::Issued { .. } => "issued",
            StationEvent::Cancel { .. } => "cancel",
            StationEvent::Close { .. } => "close",
        }
    }

    /// Check the event on its own: its contest exists and this station serves it, a
    /// ballot passes [`Ballot::check`], an issued count is 1 to
    /// [`MAX_ISSUED_PER_EVENT`], a cancel has a reason, a close's sheet passes
    /// [`TallySheet::check`], a zero report names exactly the contests the station
    /// serves, in the definition's order for it.
    pub fn check(&self, def: &ElectionDefinition, station: &Station) -> Result<(), EventError> {
        match self {
            StationEvent::Cancel { ballot_id, reason } => {
                return check_reason(*ballot_id, reason);
            }
            StationEvent::ZeroReport { contests } => {
                return check_zero_report(def, station, contests);
            }
            _ => {}
        }
        let contest = self.served_contest(def, station)?;
        match self {
            StationEvent::Ballot(ballot) => ballot.check(contest)?,
            StationEvent::Issued { count, .. } => check_issued(contest, *count)?,
            StationEvent::Close { sheet, .. } => sheet.check(contest)?,
            StationEvent::Cancel { .. } | StationEvent::ZeroReport { .. } => {}
        }
        Ok(())
    }

    fn served_contest<'d>(
        &self,
        def: &'d ElectionDefinition,
        station: &Station,
    ) -> Result<&'d Contest, EventError> {
        served_contest(def, station, self.contest().unwrap_or_default())
    }
}

/// The contest `id` of the election, if `station` serves it.
fn served_contest<'d>(
    def: &'d ElectionDefinition,
    station: &Station,
    id: &str,
) -> Result<&'d Contest, EventError> {
    let contest = def
        .contest(id)
        .ok_or_else(|| EventError::UnknownContest { contest: shown(id) })?;
    if !station.contests.iter().any(|c| c == id) {
        return Err(EventError::NotServed {
            station: station.id.clone(),
            contest: contest.id.clone(),
        });
    }
    Ok(contest)
}

/// A zero report names every contest `station` serves, each once, none other, in the
/// order the definition lists them for the station. Checked in that order: each
/// contest named (defined, served, not twice), then none missing, then the order.
fn check_zero_report(
    def: &ElectionDefinition,
    station: &Station,
    contests: &[String],
) -> Result<(), EventError> {
    for (i, id) in contests.iter().enumerate() {
        served_contest(def, station, id)?;
        if contests[..i].contains(id) {
            return Err(EventError::ZeroReportRepeats {
                station: station.id.clone(),
                contest: id.clone(),
            });
        }
    }
    if let Some(missing) = station.contests.iter().find(|c| !contests.contains(c)) {
        return Err(EventError::ZeroReportMissing {
            station: station.id.clone(),
            contest: missing.clone(),
        });
    }
    if contests != station.contests.as_slice() {
        return Err(EventError::ZeroReportOrder {
            station: station.id.clone(),
            given: format!("{contests:?}"),
            expected: format!("{:?}", station.contests),
        });
    }
    Ok(())
}

fn check_issued(contest: &Contest, count: u64) -> Result<(), EventError> {
    if count == 0 {
        return Err(EventError::NothingIssued {
            contest: contest.id.clone(),
        });
    }
    if count > MAX_ISSUED_PER_EVENT {
        return Err(EventError::TooManyIssued {
            contest: contest.id.clone(),
            count,
            max: MAX_ISSUED_PER_EVENT,
        });
    }
    Ok(())
}

fn check_reason(ballot_id: BallotId, reason: &str) -> Result<(), EventError> {
    if reason.trim().is_empty() {
        return Err(EventError::EmptyReason { ballot_id });
    }
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(EventError::ReasonTooLong {
            ballot_id,
            chars,
            max: MAX_REASON_CHARS,
        });
    }
    if reason
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(EventError::ReasonControlCharacter {
            ballot_id,
            shown: shown(reason),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::Mark;
    use crate::ballot::tests::contest;
    use crate::definition::{ElectionHeader, StationKind, Unit, UnitKind};

    fn election() -> (ElectionDefinition, Station) {
        let station = Station {
            id: "S-0001".into(),
            name: "西堤头镇第1投票站".into(),
            kind: StationKind::Fixed,
            contests: vec!["D-001".into()],
        };
        let def = ElectionDefinition {
            election: ElectionHeader {
                id: "beichen-2021".into(),
                name: "北辰".into(),
                date: "2021-11-01".into(),
                rules: "prc-direct".into(),
                mode: Default::default(),
                min_ballots_per_batch: crate::batching::DEFAULT_MIN_BALLOTS_PER_BATCH,
            },
            units: vec![Unit {
                id: "xiditou".into(),
                name: "西堤头镇".into(),
                kind: UnitKind::Town,
            }],
            contests: vec![contest("D-001", 2, 3), contest("D-002", 1, 2)],
            stations: vec![station.clone()],
        };
        (def, station)
    }

    #[test]
    fn issued_counts_are_bounded() {
        let (def, station) = election();
        let issued = |count| StationEvent::Issued {
            contest: "D-001".into(),
            count,
        };
        assert_eq!(issued(1).check(&def, &station), Ok(()));
        assert_eq!(issued(MAX_ISSUED_PER_EVENT).check(&def, &station), Ok(()));
        assert!(matches!(
            issued(0).check(&def, &station),
            Err(EventError::NothingIssued { .. })
        ));
        assert!(matches!(
            issued(MAX_ISSUED_PER_EVENT + 1).check(&def, &station),
            Err(EventError::TooManyIssued { .. })
        ));
    }

    #[test]
    fn events_of_other_contests_are_refused() {
        let (def, station) = election();
        let unknown = StationEvent::Issued {
            contest: "D-404".into(),
            count: 1,
        };
        assert!(matches!(
            unknown.check(&def, &station),
            Err(EventError::UnknownContest { .. })
        ));
        let not_served = StationEvent::Close {
            contest: "D-002".into(),
            sheet: TallySheet::default(),
        };
        assert_eq!(
            not_served.check(&def, &station).unwrap_err().to_string(),
            "station 'S-0001' does not collect ballots for contest 'D-002'"
        );
    }

    #[test]
    fn a_zero_report_names_exactly_the_contests_the_station_serves() {
        let (mut def, mut station) = election();
        station.contests = vec!["D-001".into(), "D-002".into()];
        def.stations = vec![station.clone()];
        let report = |contests: &[&str]| StationEvent::ZeroReport {
            contests: contests.iter().map(|c| c.to_string()).collect(),
        };
        assert_eq!(
            StationEvent::zero_report_of(&station),
            report(&["D-001", "D-002"])
        );
        assert_eq!(report(&["D-001", "D-002"]).check(&def, &station), Ok(()));
        assert_eq!(
            report(&["D-001"])
                .check(&def, &station)
                .unwrap_err()
                .to_string(),
            "zero report of station 'S-0001': contest 'D-002', which the station serves, is missing"
        );
        assert_eq!(
            report(&[]).check(&def, &station),
            Err(EventError::ZeroReportMissing {
                station: "S-0001".into(),
                contest: "D-001".into()
            })
        );
        assert_eq!(
            report(&["D-001", "D-002", "D-001"])
                .check(&def, &station)
                .unwrap_err()
                .to_string(),
            "zero report of station 'S-0001': contest 'D-001' is named twice"
        );
        assert!(matches!(
            report(&["D-001", "D-002", "D-404"]).check(&def, &station),
            Err(EventError::UnknownContest { contest }) if contest == "'D-404'"
        ));
        assert!(matches!(
            report(&["D-002", "D-001"]).check(&def, &station),
            Err(EventError::ZeroReportOrder { .. })
        ));
        // A contest of the election the station does not serve is named as such.
        let (def, station) = election();
        assert_eq!(
            report(&["D-001", "D-002"])
                .check(&def, &station)
                .unwrap_err()
                .to_string(),
            "station 'S-0001' does not collect ballots for contest 'D-002'"
        );
        assert_eq!(report(&["D-001"]).contest(), None);
        assert_eq!(report(&["D-001"]).kind(), "zero_report");
    }

    #[test]
    fn ballots_and_sheets_are_checked() {
        let (def, station) = election();
        let ballot = Ballot {
            id: BallotId([3; 16]),
            contest: "D-001".into(),
            marks: vec![Mark::For, Mark::None],
            write_ins: vec![],
        };
        assert!(matches!(
            StationEvent::Ballot(ballot).check(&def, &station),
            Err(EventError::Ballot(BallotError::WrongMarkCount { .. }))
        ));
        let mut sheet = TallySheet::default();
        sheet.for_votes.insert("nobody".into(), 1);
        assert!(matches!(
            StationEvent::Close {
                contest: "D-001".into(),
                sheet
            }
            .check(&def, &station),
            Err(EventError::Sheet(SheetError::UnknownCandidate { .. }))
        ));
    }

    #[test]
    fn cancel_needs_a_sensible_reason() {
        let (def, station) = election();
        let cancel = |reason: &str| StationEvent::Cancel {
            ballot_id: BallotId([9; 16]),
            reason: reason.into(),
        };
        assert_eq!(cancel("entered twice").check(&def, &station), Ok(()));
        assert!(matches!(
            cancel("  ").check(&def, &station),
            Err(EventError::EmptyReason { .. })
        ));
        assert!(
            cancel(&"误".repeat(MAX_REASON_CHARS))
                .check(&def, &station)
                .is_ok()
        );
        assert!(matches!(
            cancel(&"误".repeat(MAX_REASON_CHARS + 1)).check(&def, &station),
            Err(EventError::ReasonTooLong { .. })
        ));
        assert!(matches!(
            cancel("a\u{1b}[2J").check(&def, &station),
            Err(EventError::ReasonControlCharacter { .. })
        ));
    }

    #[test]
    fn events_round_trip_through_json() {
        let mut sheet = TallySheet::default();
        sheet.add_issued(2);
        let events = vec![
            StationEvent::ZeroReport {
                contests: vec!["D-001".into()],
            },
            StationEvent::Ballot(Ballot {
                id: BallotId([0xab; 16]),
                contest: "D-001".into(),
                marks: vec![Mark::For, Mark::Against, Mark::None],
                write_ins: vec!["王五".into()],
            }),
            StationEvent::Issued {
                contest: "D-001".into(),
                count: 5,
            },
            StationEvent::Cancel {
                ballot_id: BallotId([1; 16]),
                reason: "entered twice".into(),
            },
            StationEvent::Close {
                contest: "D-001".into(),
                sheet,
            },
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            assert!(
                text.contains(&format!("\"event\":\"{}\"", event.kind())),
                "{text}"
            );
            let back: StationEvent = serde_json::from_str(&text).unwrap();
            assert_eq!(back, event);
        }
        let ballot = serde_json::to_value(StationEvent::Ballot(Ballot {
            id: BallotId([0xab; 16]),
            contest: "D-001".into(),
            marks: vec![Mark::For],
            write_ins: vec![],
        }))
        .unwrap();
        assert_eq!(ballot["id"], "abababababababababababababababab");
        assert_eq!(ballot["marks"][0], "for");
    }
}
