//! The rules of a station's log (SPEC §3): what may follow what. Each event must pass
//! [`StationEvent::check`] on its own, and then, against everything before it in
//! the station's log: nothing for a contest the station closed, a contest closed
//! once, a ballot id once, a cancel only of a ballot recorded here and not cancelled
//! yet. [`LogRules`] applies them one event at a time, so that whoever reads a log
//! (the station as it records, the center as it judges, an audit or an observer
//! recounting from the raw batches) applies the same rules.

use std::collections::{BTreeSet, HashMap};

use crate::{BallotId, ElectionDefinition, EventError, Station, StationEvent};

/// Why an event may not follow the log before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The event breaks a rule of its own.
    #[error(transparent)]
    Event(#[from] EventError),
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

/// What the rules need to remember of a station's log so far.
#[derive(Debug, Clone, Default)]
pub struct LogRules {
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
        let open = |contest: &str| {
            if self.closed.contains(contest) {
                Err(LogError::AfterClose {
                    contest: contest.to_owned(),
                })
            } else {
                Ok(())
            }
        };
        match event {
            StationEvent::Ballot(b) => {
                open(&b.contest)?;
                if self.ballots.contains_key(&b.id) {
                    return Err(LogError::BallotTwice { ballot: b.id });
                }
                self.ballots.insert(b.id, (b.contest.clone(), false));
            }
            StationEvent::Issued { contest, .. } => open(contest)?,
            StationEvent::Cancel { ballot_id, .. } => {
                let (contest, cancelled) = self
                    .ballots
                    .get(ballot_id)
                    .ok_or(LogError::UnknownBallot { ballot: *ballot_id })?;
                if *cancelled {
                    return Err(LogError::CancelledTwice { ballot: *ballot_id });
                }
                open(contest)?;
                if let Some(entry) = self.ballots.get_mut(ballot_id) {
                    entry.1 = true;
                }
            }
            StationEvent::Close { contest, .. } => {
                if self.closed.contains(contest) {
                    return Err(LogError::ClosedTwice {
                        contest: contest.clone(),
                    });
                }
                self.closed.insert(contest.clone());
            }
        }
        Ok(())
    }

    /// Contests closed so far.
    pub fn closed(&self) -> &BTreeSet<String> {
        &self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ballot, Mark, TallySheet, load};

    const DEF: &str = r#"
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

[[station]]
id = "S-1"
name = "s"
kind = "fixed"
contests = ["D-1"]
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
