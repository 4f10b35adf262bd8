//! A station's desk: where its election workers record issues and ballots and close
//! contests, through the station's own door checks and store.

use std::path::Path;
use std::sync::Arc;

use pollsync_election::{
    BallotChoices, BallotId, ElectionDefinition, EventError, Station, StationEvent, TallySheet,
};
use pollsync_station::StationError;
use pollsync_station::store::{Counts, Store, new_ballot_id};

use super::{FleetError, Result};

/// One contest's share of a wave at one station: `issued` more ballots handed out
/// and the `ballots` voters put in the box.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub contest: &'a str,
    pub issued: u64,
    pub ballots: &'a [BallotChoices],
}

/// Where a station's election workers record: the station's store with the door
/// checks of `station issue`, `station record` / `station import` and `station
/// close --from-records`.
pub struct Desk {
    station: Station,
    definition: Arc<ElectionDefinition>,
    store: Store,
}

impl Desk {
    /// The desk of the station set up in `dir`.
    pub fn open(dir: &Path, definition: Arc<ElectionDefinition>, station: &str) -> Result<Desk> {
        let fail = |source| FleetError::Station {
            station: station.to_string(),
            source,
        };
        let store = Store::open(dir).map_err(fail)?;
        let station = definition.station(station).cloned().ok_or_else(|| {
            fail(StationError::Corrupt {
                detail: format!("station {station} is not in the election"),
            })
        })?;
        Ok(Desk {
            station,
            definition,
            store,
        })
    }

    pub fn station_id(&self) -> &str {
        &self.station.id
    }

    fn fail(&self, source: StationError) -> FleetError {
        FleetError::Station {
            station: self.station.id.clone(),
            source,
        }
    }

    /// Record the parts as one durable transaction (like `station import`: all or
    /// nothing), each issue and ballot through the station's door checks first.
    /// Returns the ballots written.
    pub fn record(&mut self, parts: &[Part<'_>]) -> Result<u64> {
        Ok(self.record_ids(parts)?.len() as u64)
    }

    /// [`Desk::record`], returning the ids of the ballots written.
    pub fn record_ids(&mut self, parts: &[Part<'_>]) -> Result<Vec<BallotId>> {
        let events = self.events_of(parts).map_err(|e| self.fail(e))?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ids = events
            .iter()
            .filter_map(|e| match e {
                StationEvent::Ballot(b) => Some(b.id),
                _ => None,
            })
            .collect();
        self.store
            .append(&events, &mut |_| {})
            .map_err(|e| self.fail(e))?;
        Ok(ids)
    }

    fn events_of(&self, parts: &[Part<'_>]) -> Result<Vec<StationEvent>, StationError> {
        let mut events = Vec::new();
        for part in parts {
            let contest = self.definition.contest(part.contest).ok_or_else(|| {
                EventError::UnknownContest {
                    contest: part.contest.to_string(),
                }
            })?;
            if part.issued > 0 {
                events.push(StationEvent::Issued {
                    contest: contest.id.clone(),
                    count: part.issued,
                });
            }
            for choices in part.ballots {
                let ballot = choices
                    .to_ballot(new_ballot_id()?, contest)
                    .map_err(EventError::from)?;
                events.push(StationEvent::Ballot(ballot));
            }
        }
        for event in &events {
            event.check(&self.definition, &self.station)?;
        }
        Ok(events)
    }

    /// Close every contest this station serves with the tally sheet its records
    /// give (`station close --from-records`), each in one transaction.
    pub fn close_all_from_records(&mut self) -> Result<Vec<(String, TallySheet)>> {
        let contests = self.station.contests.clone();
        contests
            .iter()
            .map(|c| Ok((c.clone(), self.close_from_records(c)?)))
            .collect()
    }

    /// Close `contest` with the tally sheet its records give.
    pub fn close_from_records(&mut self, contest: &str) -> Result<TallySheet> {
        let def = Arc::clone(&self.definition);
        let station = self.station.clone();
        let id = contest.to_string();
        let event = self
            .store
            .close_from_records(&|log| {
                let sheet = pollsync_station::ledger::tally(&def, &station, log)
                    .into_iter()
                    .find(|t| t.id == id)
                    .map(|t| t.records)
                    .ok_or_else(|| StationError::NotServed {
                        contest: id.clone(),
                        served: station.contests.join(", "),
                    })?;
                let event = StationEvent::Close {
                    contest: id.clone(),
                    sheet,
                };
                event.check(&def, &station)?;
                Ok(event)
            })
            .map_err(|e| self.fail(e))?;
        match event {
            StationEvent::Close { sheet, .. } => Ok(sheet),
            _ => Err(self.fail(StationError::Corrupt {
                detail: "close produced another event".into(),
            })),
        }
    }

    /// The store's figures (`station status`).
    pub fn counts(&self) -> Result<Counts> {
        self.store.counts().map_err(|e| self.fail(e))
    }

    /// Nothing waits to be sealed and the center acknowledged every sealed batch.
    pub fn fully_acknowledged(&self) -> Result<bool> {
        let c = self.counts()?;
        Ok(c.pending_events == 0 && c.batches_acknowledged == c.batches_sealed)
    }
}
