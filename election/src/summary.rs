//! A definition's summary as officials check it before polling day: units, and per
//! level the contests, seats, candidates and voters on the roll, and stations by kind.

use serde::Serialize;

use crate::definition::{ElectionDefinition, Level, StationKind, UnitKind};

/// Figures of one level (district or town) of the election.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LevelSummary {
    pub contests: u64,
    pub seats: u64,
    pub candidates: u64,
    pub registered: u64,
}

/// What `center validate` prints for a good definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionSummary {
    pub election: String,
    pub name: String,
    pub date: String,
    pub rules: String,
    pub towns: u64,
    pub streets: u64,
    pub district: LevelSummary,
    pub town: LevelSummary,
    pub fixed_stations: u64,
    pub mobile_stations: u64,
}

impl DefinitionSummary {
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
