//! Rule sets: how a contest's outcome is decided from the stations' reports (SPEC §6).
//!
//! A rule set is a [`Rules`] implementation, found by the id the definition names
//! (`rules = "prc-direct"`). Adding another jurisdiction's rules means adding a module
//! here and a line in [`RULE_SETS`]; nothing in sync or storage changes. The steps every
//! rule set shares (station progress, station check, summing the counts, ranking) are
//! helpers in this module.

mod outcome;
pub mod prc_direct;

pub use outcome::{
    CandidateResult, ContestOutcome, ContestStatus, Entrant, EntrantKind, Runoff, StationProgress,
    WriteInResult, ranking,
};

use crate::definition::Contest;
use crate::tally::TallySheet;
use crate::words::{counted, figure, joined};

/// A jurisdiction's election rules.
pub trait Rules: Send + Sync {
    /// The id a definition names in `rules = "…"`.
    fn id(&self) -> &'static str;

    /// Why a contest with these seats and this many formal candidates is not allowed;
    /// empty when it is.
    fn check_contest(&self, seats: u32, candidates: usize) -> Vec<String>;

    /// The contest's outcome from what the stations reported.
    fn decide(&self, input: &ContestInput) -> ContestOutcome;
}

/// Every rule set this build knows.
pub static RULE_SETS: [&dyn Rules; 1] = [&prc_direct::PrcDirect];

/// The rule set a definition names, if this build knows it.
pub fn rules_by_id(id: &str) -> Option<&'static dyn Rules> {
    RULE_SETS.iter().copied().find(|r| r.id() == id)
}

/// The ids of every known rule set, for messages.
pub fn rule_ids() -> Vec<&'static str> {
    RULE_SETS.iter().map(|r| r.id()).collect()
}

/// What a rule set decides from: the contest and every station that serves it.
#[derive(Debug, Clone)]
pub struct ContestInput<'a> {
    /// The contest being decided.
    pub contest: &'a Contest,
    /// Every station that serves the contest, in definition order.
    pub stations: Vec<StationReport>,
}

/// One station's part in a contest, as the center sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationReport {
    /// The station's id.
    pub station_id: String,
    /// The station has closed the contest (its close event has reached the center).
    pub closed: bool,
    /// Everything the station sealed for this contest has reached the center (up to
    /// its close once it closed), and the station is not cut off.
    pub synced: bool,
    /// The station's own count, from its close.
    pub sheet: Option<TallySheet>,
    /// What the center computed from the ballots and issued events it received.
    pub computed: TallySheet,
}

impl ContestInput<'_> {
    /// The center's count for the whole contest: every station's computed sheet summed.
    pub fn total(&self) -> TallySheet {
        let mut total = TallySheet::default();
        for station in &self.stations {
            total.merge(&station.computed);
        }
        total
    }

    /// Stations expected, closed and fully synced.
    pub fn progress(&self) -> StationProgress {
        let count = |f: fn(&StationReport) -> bool| {
            u64::try_from(self.stations.iter().filter(|s| f(s)).count()).unwrap_or(u64::MAX)
        };
        StationProgress {
            expected: count(|_| true),
            closed: count(|s| s.closed),
            synced: count(|s| s.synced),
        }
    }

    /// SPEC §6.1: one line per station that has not closed, not finished syncing, or
    /// whose tally sheet is missing; empty when every station is done.
    pub fn missing(&self) -> Vec<String> {
        let contest = &self.contest.id;
        if self.stations.is_empty() {
            return vec![format!(
                "no station reports for contest {contest}: add a station that collects its ballots"
            )];
        }
        let mut lines = Vec::new();
        for s in self.stations_by_id() {
            let what = match (s.closed, s.synced) {
                (false, false) => "has neither closed the contest nor finished syncing",
                (false, true) => "has not closed the contest",
                (true, false) => "has closed the contest but not finished syncing",
                (true, true) if s.sheet.is_none() => {
                    "has closed the contest but its tally sheet has not arrived"
                }
                (true, true) => continue,
            };
            lines.push(format!("station {} {what}", s.station_id));
        }
        if !lines.is_empty() {
            let waiting = u64::try_from(lines.len()).unwrap_or(u64::MAX);
            let expected = u64::try_from(self.stations.len()).unwrap_or(u64::MAX);
            lines.insert(
                0,
                format!(
                    "waiting for {} of {}: results are not final",
                    figure(waiting),
                    counted(expected, "station", "stations"),
                ),
            );
        }
        lines
    }

    /// SPEC §6.2: for each station that has closed and synced, every difference between
    /// its tally sheet and what the center computed from its ballots, naming the
    /// station and both figures.
    pub fn discrepancies(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut stations = Vec::new();
        for s in self.stations_by_id() {
            let (true, true, Some(sheet)) = (s.closed, s.synced, &s.sheet) else {
                continue;
            };
            let differences = sheet.differences(&s.computed);
            if !differences.is_empty() {
                stations.push(s.station_id.clone());
            }
            for d in differences {
                lines.push(format!("station {}: {d}", s.station_id));
            }
        }
        if !stations.is_empty() {
            lines.push(format!(
                "the tally sheet of {} does not match the ballots the center received: \
                 recount there and resolve before results are declared",
                station_words(&stations)
            ));
        }
        lines
    }

    fn stations_by_id(&self) -> Vec<&StationReport> {
        let mut stations: Vec<&StationReport> = self.stations.iter().collect();
        stations.sort_by(|a, b| a.station_id.cmp(&b.station_id));
        stations
    }
}

fn station_words(stations: &[String]) -> String {
    if stations.len() == 1 {
        format!("station {}", stations[0])
    } else {
        format!("stations {}", joined(stations))
    }
}
