//! What the station's records say: per contest served, the tally sheet computed from
//! the ballots and issues in the log (cancelled ballots left out), and the sheet the
//! station closed the contest with, if it has.

use std::collections::HashSet;

use pollsync_election::{ElectionDefinition, Station, StationEvent, TallySheet};
use serde::Serialize;

/// One contest as `station tally` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContestTally {
    pub id: String,
    pub closed: bool,
    /// What the records say.
    #[serde(flatten)]
    pub records: TallySheet,
    /// The tally sheet recorded at close, when it was.
    #[serde(skip)]
    pub sheet: Option<TallySheet>,
}

/// Tally every contest `station` serves from its whole log, in the station's order.
pub fn tally(
    def: &ElectionDefinition,
    station: &Station,
    log: &[StationEvent],
) -> Vec<ContestTally> {
    let cancelled: HashSet<_> = log
        .iter()
        .filter_map(|e| match e {
            StationEvent::Cancel { ballot_id, .. } => Some(*ballot_id),
            _ => None,
        })
        .collect();
    let mut tallies: Vec<ContestTally> = station
        .contests
        .iter()
        .filter_map(|id| def.contest(id))
        .map(|c| ContestTally {
            id: c.id.clone(),
            closed: false,
            records: TallySheet::for_contest(c),
            sheet: None,
        })
        .collect();
    for event in log {
        let Some(contest_id) = event.contest() else {
            continue;
        };
        let (Some(t), Some(contest)) = (
            tallies.iter_mut().find(|t| t.id == contest_id),
            def.contest(contest_id),
        ) else {
            continue;
        };
        match event {
            StationEvent::Ballot(b) if !cancelled.contains(&b.id) => {
                t.records.add_ballot(contest, b)
            }
            StationEvent::Issued { count, .. } => t.records.add_issued(*count),
            StationEvent::Close { sheet, .. } => {
                t.closed = true;
                t.sheet = Some(sheet.clone());
            }
            _ => {}
        }
    }
    tallies
}
