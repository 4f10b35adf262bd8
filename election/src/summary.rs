//! A definition's summary as officials check it before polling day: units, and per
//! level the contests, seats, candidates and voters on the roll, and stations by kind.

use serde::Serialize;

use crate::definition::{ElectionDefinition, Level, StationKind, UnitKind};

/// Figures of one level (district or town) of the election.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LevelSummary {
    /// Contests at this level.
    pub contests: u64,
    /// Seats to fill (deputies to elect) over those contests.
    pub seats: u64,
    /// Formal candidates over those contests.
    pub candidates: u64,
    /// Voters on the roll over those contests.
    pub registered: u64,
}

/// What `center validate` prints for a good definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionSummary {
    /// The election's id.
    pub election: String,
    /// The election's name.
    pub name: String,
    /// Polling day, ISO date `YYYY-MM-DD`.
    pub date: String,
    /// The rule set's id, e.g. `prc-direct`.
    pub rules: String,
    /// Units that are towns (镇).
    pub towns: u64,
    /// Units that are streets (街道).
    pub streets: u64,
    /// Figures of the district-level contests.
    pub district: LevelSummary,
    /// Figures of the town-level contests.
    pub town: LevelSummary,
    /// Fixed polling stations (投票站).
    pub fixed_stations: u64,
    /// Mobile ballot boxes (流动票箱).
    pub mobile_stations: u64,
}

impl DefinitionSummary {
    /// The summary of a definition.
    pub fn of(def: &ElectionDefinition) -> Self {
        let count_units = |kind| def.units.iter().filter(|u| u.kind == kind).count() as u64;
        let count_stations = |kind| def.stations.iter().filter(|s| s.kind == kind).count() as u64;
        let level = |level: Level| {
            def.contests.iter().filter(|c| c.level == level).fold(
                LevelSummary::default(),
                |mut sum, c| {
                    sum.contests += 1;
                    sum.seats += u64::from(c.seats);
                    sum.candidates += c.candidates.len() as u64;
                    sum.registered += c.registered;
                    sum
                },
            )
        };
        DefinitionSummary {
            election: def.election.id.clone(),
            name: def.election.name.clone(),
            date: def.election.date.clone(),
            rules: def.election.rules.clone(),
            towns: count_units(UnitKind::Town),
            streets: count_units(UnitKind::Street),
            district: level(Level::District),
            town: level(Level::Town),
            fixed_stations: count_stations(StationKind::Fixed),
            mobile_stations: count_stations(StationKind::Mobile),
        }
    }

    /// The summary as lines a person reads.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} ({}), {}, rules {}\n\
             units: {} town(s), {} street(s)\n",
            self.name, self.election, self.date, self.rules, self.towns, self.streets
        );
        for (label, l) in [
            ("district level", &self.district),
            ("town level", &self.town),
        ] {
            out.push_str(&format!(
                "{label}: {} contests, {} seats, {} candidates, {} voters on the roll\n",
                l.contests, l.seats, l.candidates, l.registered
            ));
        }
        out.push_str(&format!(
            "stations: {} fixed, {} mobile ballot boxes\n",
            self.fixed_stations, self.mobile_stations
        ));
        out
    }
}
