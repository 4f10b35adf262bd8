//! The rules of a station's log (SPEC §3): what may follow what. Each event must pass
//! [`StationEvent::check`] on its own, and then, against everything before it in
//! the station's log: a zero report only as the log's first event, nothing for a
//! contest the station closed, a contest closed once, a ballot id once, a cancel only
//! of a ballot recorded here and not cancelled yet. [`LogRules`] applies them one event at a time, so that whoever reads a log
//! (the station as it records, the center as it judges, an audit or an observer
//! recounting from the raw batches) applies the same rules.
//!
//! Each rule is also a function of its own ([`check_zero_report_first`],
//! [`check_open`], [`check_first_close`], [`check_new_ballot`], [`check_cancel`]) over
//! the few facts it reads, so that a keeper
//! that holds its log elsewhere (the station's SQLite store, the center's judge over
//! raw batches) decides with the same rules and words its refusals its own way.
//! [`crate::Ledger`] adds the counting to [`LogRules`].
//!
//! A log that does not start with a zero report breaks no rule (its events still
//! count), but it is to be flagged: [`starts_with_zero_report`] says which logs do,
//! for the center, its audit and any verifier alike.

use std::collections::{BTreeSet, HashMap};

use crate::{BallotId, ElectionDefinition, EventError, Station, StationEvent};

/// Why an event may not follow the log before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The event breaks a rule of its own.
    #[error(transparent)]
    Event(#[from] EventError),
    /// A zero report after other events: it opens the log or is not there.
    #[error("a zero report comes only as the first event of a station's log, before anything else")]
    ZeroReportNotFirst,
    /// Ballots, issued counts or a cancel for a contest closed before.
    #[error("contest '{contest}' was closed by this station before: nothing more is taken for it")]
    AfterClose {
        /// The contest.
        contest: String,
    },
    /// A second close of a contest.
    #[error("contest '{contest}' is closed a second time")]
    ClosedTwice {
        /// The contest.
        contest: String,
    },
    /// A ballot id already in the log.
    #[error("ballot {ballot} is already in this station's log: a ballot is counted once")]
    BallotTwice {
        /// The ballot.
        ballot: BallotId,
    },
    /// A cancel of a ballot this station never recorded.
    #[error("cancel of ballot {ballot}, which this station never recorded")]
    UnknownBallot {
        /// The ballot.
        ballot: BallotId,
    },
    /// A second cancel of a ballot.
    #[error("ballot {ballot} was already cancelled")]
    CancelledTwice {
        /// The ballot.
        ballot: BallotId,
    },
}

impl LogError {
    /// Whether the error is about something after a close (the center's
    /// `AFTER_CLOSE`), rather than invalid content.
    pub fn is_after_close(&self) -> bool {
        matches!(
            self,
            LogError::AfterClose { .. } | LogError::ClosedTwice { .. }
        )
    }
}

/// What a log holds of a ballot id that a cancel names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded<'a> {
    /// The ballot's contest.
    pub contest: &'a str,
    /// Cancelled already.
    pub cancelled: bool,
}

/// Rule: a zero report is the first event of a station's log. `first`: whether the
/// log holds nothing before it.
pub fn check_zero_report_first(first: bool) -> Result<(), LogError> {
    if !first {
        return Err(LogError::ZeroReportNotFirst);
    }
    Ok(())
}

/// Whether a station's log starts with a zero report, given its first event (`None`:
/// the log is empty). A log that does not is flagged (SPEC §3: before its first
/// ballot a station seals a zero report), though its events still count.
pub fn starts_with_zero_report(first_event: Option<&StationEvent>) -> bool {
    matches!(first_event, Some(StationEvent::ZeroReport { .. }))
}

/// Rule: nothing is taken for a contest after its close (ballots, issued counts, a
/// cancel of one of its ballots). `closed`: whether the log closed `contest` before
/// the event.
pub fn check_open(contest: &str, closed: bool) -> Result<(), LogError> {
    if closed {
        return Err(LogError::AfterClose {
            contest: contest.to_owned(),
        });
    }
    Ok(())
}

/// Rule: a contest is closed once. `closed`: whether the log closed `contest`
/// before.
pub fn check_first_close(contest: &str, closed: bool) -> Result<(), LogError> {
    if closed {
        return Err(LogError::ClosedTwice {
            contest: contest.to_owned(),
        });
    }
    Ok(())
}

/// Rule: a ballot id is counted once. `known`: whether the log holds `ballot`
/// already.
pub fn check_new_ballot(ballot: BallotId, known: bool) -> Result<(), LogError> {
    if known {
        return Err(LogError::BallotTwice { ballot });
    }
    Ok(())
}

/// Rule: a cancel takes back a ballot recorded in this station's log (`recorded`,
/// `None` when the log does not hold it), not cancelled yet, of a contest still
/// open (`is_closed` says which contests the log closed). Checked in that order;
/// returns the ballot's contest.
pub fn check_cancel<'a>(
    ballot: BallotId,
    recorded: Option<Recorded<'a>>,
    is_closed: impl FnOnce(&str) -> bool,
) -> Result<&'a str, LogError> {
    let recorded = recorded.ok_or(LogError::UnknownBallot { ballot })?;
    if recorded.cancelled {
        return Err(LogError::CancelledTwice { ballot });
    }
    check_open(recorded.contest, is_closed(recorded.contest))?;
    Ok(recorded.contest)
}

/// What the rules need to remember of a station's log so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRules {
    /// Whether an event was taken: a zero report may no longer come.
    started: bool,
    closed: BTreeSet<String>,
    /// Ballot id → (contest, cancelled).
    ballots: HashMap<BallotId, (String, bool)>,
}

impl LogRules {
    /// Applies `event` of `station` after the events applied before, or says why it
    /// may not follow them (then nothing is remembered of it).
    pub fn apply(
        &mut self,
        def: &ElectionDefinition,
        station: &Station,
        event: &StationEvent,
    ) -> Result<(), LogError> {
        event.check(def, station)?;
        match event {
            StationEvent::ZeroReport { .. } => check_zero_report_first(!self.started)?,
            StationEvent::Ballot(b) => {
                check_open(&b.contest, self.closed.contains(&b.contest))?;
                check_new_ballot(b.id, self.ballots.contains_key(&b.id))?;
                self.ballots.insert(b.id, (b.contest.clone(), false));
            }
            StationEvent::Issued { contest, .. } => {
                check_open(contest, self.closed.contains(contest))?;
            }
            StationEvent::Cancel { ballot_id, .. } => {
                let recorded = self
                    .ballots
                    .get(ballot_id)
                    .map(|(contest, cancelled)| Recorded {
                        contest,
                        cancelled: *cancelled,
                    });
                check_cancel(*ballot_id, recorded, |c| self.closed.contains(c))?;
                if let Some(entry) = self.ballots.get_mut(ballot_id) {
                    entry.1 = true;
                }
            }
            StationEvent::Close { contest, .. } => {
                check_first_close(contest, self.closed.contains(contest))?;
                self.closed.insert(contest.clone());
            }
        }
        self.started = true;
        Ok(())
    }

    /// Contests closed so far.
    pub fn closed(&self) -> &BTreeSet<String> {
        &self.closed
    }

    /// Whether `contest` is closed so far.
    pub fn is_closed(&self, contest: &str) -> bool {
        self.closed.contains(contest)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Ballot, Mark, TallySheet, load};

    /// A one-unit election whose station S-1 serves a district contest D-1 (one
    /// seat) and a town contest T-1 (two seats): the log and ledger tests share it.
    pub(crate) const DEF: &str = r#"
[election]
id = "t"
name = "t"
date = "2021-11-01"
rules = "prc-direct"

[[unit]]
id = "u"
name = "u"
kind = "town"

[[contest]]
id = "D-1"
level = "district"
unit = "u"
name = "d"
seats = 1
registered = 100
candidates = [
  { id = "D-1-1", name = "a", gender = "F", ethnicity = "汉族", party = "中共", incumbent = false },
  { id = "D-1-2", name = "b", gender = "M", ethnicity = "汉族", party = "中共", incumbent = false },
]

[[contest]]
id = "T-1"
level = "town"
unit = "u"
name = "t"
seats = 2
registered = 100
candidates = [
  { id = "T-1-1", name = "c", gender = "F", ethnicity = "汉族", party = "中共", incumbent = false },
  { id = "T-1-2", name = "d", gender = "M", ethnicity = "汉族", party = "中共", incumbent = false },
  { id = "T-1-3", name = "e", gender = "M", ethnicity = "汉族", party = "中共", incumbent = false },
]

[[station]]
id = "S-1"
name = "s"
kind = "fixed"
contests = ["D-1", "T-1"]
"#;

    fn ballot(id: u8) -> StationEvent {
        StationEvent::Ballot(Ballot {
            id: BallotId::from_bytes([id; 16]),
            contest: "D-1".into(),
            marks: vec![Mark::For, Mark::None],
            write_ins: vec![],
        })
    }

    fn cancel(id: u8) -> StationEvent {
        StationEvent::Cancel {
            ballot_id: BallotId::from_bytes([id; 16]),
            reason: "twice".into(),
        }
    }

    fn close() -> StationEvent {
        StationEvent::Close {
            contest: "D-1".into(),
            sheet: TallySheet::default(),
        }
    }

    fn zero_report() -> StationEvent {
        StationEvent::ZeroReport {
            contests: vec!["D-1".into(), "T-1".into()],
        }
    }

    #[test]
    fn a_zero_report_opens_the_log_or_is_not_there() {
        let def = load("t.toml", DEF).unwrap();
        let station = def.station("S-1").unwrap().clone();
        assert!(starts_with_zero_report(Some(&zero_report())));
        assert!(!starts_with_zero_report(Some(&ballot(1))));
        assert!(!starts_with_zero_report(None));

        let mut log = LogRules::default();
        assert_eq!(log.apply(&def, &station, &zero_report()), Ok(()));
        assert_eq!(log.apply(&def, &station, &ballot(1)), Ok(()));
        assert_eq!(
            log.apply(&def, &station, &zero_report()),
            Err(LogError::ZeroReportNotFirst)
        );
        // A second zero report right after the first is not first either.
        let mut log = LogRules::default();
        assert_eq!(log.apply(&def, &station, &zero_report()), Ok(()));
        assert_eq!(
            log.apply(&def, &station, &zero_report()),
            Err(LogError::ZeroReportNotFirst)
        );
        // A log without one breaks no rule: it is flagged, not refused.
        let mut log = LogRules::default();
        assert_eq!(log.apply(&def, &station, &ballot(1)), Ok(()));
        let late = log.apply(&def, &station, &zero_report()).unwrap_err();
        assert!(!late.is_after_close(), "{late}");
        // A refused first event leaves the log empty: the zero report may still open it.
        let mut log = LogRules::default();
        assert!(log.apply(&def, &station, &cancel(9)).is_err());
        assert_eq!(log.apply(&def, &station, &zero_report()), Ok(()));
        // One that leaves out a contest breaks the event's own rule.
        let mut log = LogRules::default();
        let partial = StationEvent::ZeroReport {
            contests: vec!["D-1".into()],
        };
        assert!(matches!(
            log.apply(&def, &station, &partial),
            Err(LogError::Event(EventError::ZeroReportMissing { contest, .. })) if contest == "T-1"
        ));
        assert_eq!(check_zero_report_first(true), Ok(()));
        assert_eq!(
            check_zero_report_first(false),
            Err(LogError::ZeroReportNotFirst)
        );
    }

    #[test]
    fn every_rule_of_the_log() {
        let def = load("t.toml", DEF).unwrap();
        let station = def.station("S-1").unwrap().clone();
        let mut log = LogRules::default();
        let mut apply = |e: &StationEvent| log.apply(&def, &station, e);
        assert_eq!(apply(&ballot(1)), Ok(()));
        assert!(matches!(
            apply(&ballot(1)),
            Err(LogError::BallotTwice { .. })
        ));
        assert!(matches!(
            apply(&cancel(2)),
            Err(LogError::UnknownBallot { .. })
        ));
        assert_eq!(apply(&cancel(1)), Ok(()));
        assert!(matches!(
            apply(&cancel(1)),
            Err(LogError::CancelledTwice { .. })
        ));
        assert_eq!(apply(&ballot(3)), Ok(()));
        assert_eq!(apply(&close()), Ok(()));
        let after = apply(&ballot(4)).unwrap_err();
        assert!(after.is_after_close(), "{after}");
        assert!(matches!(
            apply(&cancel(3)),
            Err(LogError::AfterClose { .. })
        ));
        assert!(matches!(apply(&close()), Err(LogError::ClosedTwice { .. })));
        let issued = StationEvent::Issued {
            contest: "D-1".into(),
            count: 1,
        };
        assert!(matches!(apply(&issued), Err(LogError::AfterClose { .. })));
        // An event broken on its own is refused by its own check first.
        let other = StationEvent::Issued {
            contest: "X".into(),
            count: 1,
        };
        assert!(matches!(apply(&other), Err(LogError::Event(_))));
    }
}
