//! A station's ledger: the meaning of one station's log (SPEC §3). It applies the
//! log's rules ([`LogRules`]: each event valid on its own, a zero report only
//! first (it counts nothing: every contest stands at zero), nothing after a close, a
//! contest closed once, a ballot once, a cancel only of a ballot of this station
//! not cancelled yet) and folds every event it takes into the tally sheet of its
//! contest: a ballot counted (valid or void, by [`crate::ballot::validity_of`]),
//! ballots issued added, a cancel taking its ballot back, a close recording the
//! station's own sheet and closing the contest.
//!
//! The station tallies its records with it, the center's audit recounts the raw
//! batches with it, and the tests compute what the tallies must be with it; the
//! center's judge decides with the same rules ([`crate::log`]) over raw marks.

use std::collections::HashMap;

use crate::ballot::{Ballot, BallotId};
use crate::definition::{Contest, ElectionDefinition, Station};
use crate::event::StationEvent;
use crate::log::{LogError, LogRules};
use crate::tally::TallySheet;

/// One contest of a station's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContestLedger {
    id: String,
    computed: TallySheet,
    closing_sheet: Option<TallySheet>,
}

impl ContestLedger {
    /// The contest's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tally sheet computed from the log: ballots issued, and the ballots
    /// recorded and not cancelled. It lists every candidate of the contest, at 0
    /// when nobody marked them.
    pub fn computed(&self) -> &TallySheet {
        &self.computed
    }

    /// Whether the station closed the contest.
    pub fn closed(&self) -> bool {
        self.closing_sheet.is_some()
    }

    /// The station's own tally sheet, recorded at the contest's close.
    pub fn closing_sheet(&self) -> Option<&TallySheet> {
        self.closing_sheet.as_ref()
    }
}

/// The log rules and per-contest tallies of one station, event by event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    station: Station,
    rules: LogRules,
    /// Every contest the station serves (and the election defines), in the
    /// station's order.
    contests: Vec<ContestLedger>,
    /// The ballots recorded and not cancelled: what a cancel may take back.
    standing: HashMap<BallotId, Ballot>,
    /// Ballot events taken, cancelled ones included.
    ballots_recorded: u64,
}

impl Ledger {
    /// An empty ledger of `station`: every contest it serves at zero, none closed.
    pub fn new(def: &ElectionDefinition, station: &Station) -> Ledger {
        let contests = station
            .contests
            .iter()
            .filter_map(|id| def.contest(id))
            .map(|contest| ContestLedger {
                id: contest.id.clone(),
                computed: TallySheet::for_contest(contest),
                closing_sheet: None,
            })
            .collect();
        Ledger {
            station: station.clone(),
            rules: LogRules::default(),
            contests,
            standing: HashMap::new(),
            ballots_recorded: 0,
        }
    }

    /// Takes `event` after the events taken before and counts it, or says which
    /// rule it breaks; a refused event changes nothing.
    pub fn apply(
        &mut self,
        def: &ElectionDefinition,
        event: &StationEvent,
    ) -> Result<(), LogError> {
        // The rules first: after them, the event's contest is served and defined,
        // and a cancel names a standing ballot.
        self.rules.apply(def, &self.station, event)?;
        match event {
            // Every contest at zero: what an empty ledger holds already.
            StationEvent::ZeroReport { .. } => {}
            StationEvent::Ballot(ballot) => {
                if let Some((contest, sheet)) = sheet_of(def, &mut self.contests, &ballot.contest) {
                    sheet.computed.add_ballot(contest, ballot);
                }
                self.ballots_recorded = self.ballots_recorded.saturating_add(1);
                let before = self.standing.insert(ballot.id, ballot.clone());
                debug_assert!(before.is_none(), "the rules take a ballot id once");
            }
            StationEvent::Issued { contest, count } => {
                if let Some((_, sheet)) = sheet_of(def, &mut self.contests, contest) {
                    sheet.computed.add_issued(*count);
                }
            }
            StationEvent::Cancel { ballot_id, .. } => {
                let taken_back = self.standing.remove(ballot_id);
                debug_assert!(taken_back.is_some(), "the rules cancel a standing ballot");
                if let Some(ballot) = taken_back
                    && let Some((contest, sheet)) =
                        sheet_of(def, &mut self.contests, &ballot.contest)
                {
                    let sheet = &mut sheet.computed;
                    // The ballot was counted: taking it back leaves no figure below 0.
                    debug_assert!(sheet.returned >= 1, "a cancel of an uncounted ballot");
                    debug_assert!(
                        sheet.valid.saturating_add(sheet.void) >= 1,
                        "a cancel of an uncounted ballot"
                    );
                    sheet.remove_ballot(contest, &ballot);
                    debug_assert_eq!(
                        u128::from(sheet.valid) + u128::from(sheet.void),
                        u128::from(sheet.returned),
                        "valid + void = returned after a cancel"
                    );
                }
            }
            StationEvent::Close { contest, sheet } => {
                if let Some((_, ledger)) = sheet_of(def, &mut self.contests, contest) {
                    debug_assert!(ledger.closing_sheet.is_none(), "the rules close once");
                    ledger.closing_sheet = Some(sheet.clone());
                }
            }
        }
        Ok(())
    }

    /// The station whose log this is.
    pub fn station(&self) -> &Station {
        &self.station
    }

    /// Every contest the station serves, in the station's order.
    pub fn contests(&self) -> &[ContestLedger] {
        &self.contests
    }

    /// One contest, if the station serves it.
    pub fn contest(&self, id: &str) -> Option<&ContestLedger> {
        self.contests.iter().find(|c| c.id == id)
    }

    /// Whether the station closed `contest`.
    pub fn is_closed(&self, contest: &str) -> bool {
        self.rules.is_closed(contest)
    }

    /// Ballot events taken, cancelled ones included.
    pub fn ballots_recorded(&self) -> u64 {
        self.ballots_recorded
    }

    /// Ballots counted: recorded and not cancelled.
    pub fn ballots_counted(&self) -> u64 {
        self.standing.len() as u64
    }

    /// The log rules as they stand after the events taken.
    pub fn rules(&self) -> &LogRules {
        &self.rules
    }
}

/// The contest `id` of the definition and its ledger entry.
fn sheet_of<'c, 'd>(
    def: &'d ElectionDefinition,
    contests: &'c mut [ContestLedger],
    id: &str,
) -> Option<(&'d Contest, &'c mut ContestLedger)> {
    let contest = def.contest(id)?;
    let ledger = contests.iter_mut().find(|c| c.id == id)?;
    Some((contest, ledger))
}

#[cfg(test)]
mod tests;
