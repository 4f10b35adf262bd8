//! What the station's records say: per contest served, the tally sheet computed from
//! the ballots and issues in the log (cancelled ballots left out), and the sheet the
//! station closed the contest with, if it has. The counting and the log's rules are
//! the election's own ([`pollsync_election::Ledger`]).

use pollsync_election::{ElectionDefinition, Ledger, Station, StationEvent, TallySheet};
use serde::Serialize;

/// One contest as `station tally` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContestTally {
    /// The contest's id.
    pub id: String,
    /// Whether the station has closed the contest with its tally sheet.
    pub closed: bool,
    /// What the records say.
    #[serde(flatten)]
    pub records: TallySheet,
    /// The tally sheet recorded at close, when it was.
    #[serde(skip)]
    pub sheet: Option<TallySheet>,
}

/// Tally every contest `station` serves from its whole log, in the station's order.
///
/// The store hands the log back in storage order, not recording order (ballots
/// still waiting for their group come after the pending events, G6), so a close
/// may come before ballots recorded ahead of it. Nothing of a contest was
/// recorded after its close (the store refused it), so the closes are taken
/// last: the same log for the rules and the same count. The log was checked as it
/// was recorded; an event the rules would refuse (a damaged store) is not counted.
pub fn tally(
    def: &ElectionDefinition,
    station: &Station,
    log: &[StationEvent],
) -> Vec<ContestTally> {
    let is_close = |e: &&StationEvent| matches!(e, StationEvent::Close { .. });
    let mut ledger = Ledger::new(def, station);
    for event in log
        .iter()
        .filter(|e| !is_close(e))
        .chain(log.iter().filter(is_close))
    {
        // Refused: nothing counted (see above).
        let _ = ledger.apply(def, event);
    }
    ledger
        .contests()
        .iter()
        .map(|c| ContestTally {
            id: c.id().to_owned(),
            closed: c.closed(),
            records: c.computed().clone(),
            sheet: c.closing_sheet().cloned(),
        })
        .collect()
}
