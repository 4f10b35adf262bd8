//! The election definition of SPEC §2: units, contests with their candidates, and
//! polling stations. These are plain data; `load` parses and validates them from TOML.

use serde::{Deserialize, Serialize};

/// Longest id (election, unit, contest, candidate, station) accepted anywhere.
pub const MAX_ID_LEN: usize = 64;
/// Longest human-readable name (election, unit, contest, candidate, station).
pub const MAX_NAME_LEN: usize = 200;
/// Upper bounds that keep a definition (and everything sized by it) finite.
pub const MAX_UNITS: usize = 1_000;
/// Most contests one election may define.
pub const MAX_CONTESTS: usize = 10_000;
/// Most polling stations one election may define.
pub const MAX_STATIONS: usize = 100_000;
/// Most contests one station may serve: one per level.
pub const MAX_CONTESTS_PER_STATION: usize = 2;
/// Voters on the roll of one contest; far above any real electoral district.
pub const MAX_REGISTERED: u64 = 100_000_000;
/// Most formal candidates one contest may list, whatever the rule set allows.
pub const MAX_CANDIDATES_PER_CONTEST: usize = 100;

/// A whole election: what is contested, where, and who collects the ballots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionDefinition {
    /// The `[election]` table: id, name, date, rule set and mode.
    pub election: ElectionHeader,
    /// The administrative units, one `[[unit]]` table each.
    #[serde(rename = "unit", default)]
    pub units: Vec<Unit>,
    /// The contests, one `[[contest]]` table each.
    #[serde(rename = "contest", default)]
    pub contests: Vec<Contest>,
    /// The polling stations, one `[[station]]` table each.
    #[serde(rename = "station", default)]
    pub stations: Vec<Station>,
}

/// The `[election]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionHeader {
    /// `[a-z0-9-]`, the stable key of this election everywhere.
    pub id: String,
    /// The election's human-readable name.
    pub name: String,
    /// ISO date `YYYY-MM-DD` of polling day.
    pub date: String,
    /// The rule set that decides outcomes, e.g. `prc-direct`.
    pub rules: String,
    /// An official election or a test one; the two never mix (SPEC §10).
    #[serde(default)]
    pub mode: Mode,
    /// K: a batch carries a contest's ballots only in groups of at least this many
    /// (G6; see [`crate::batching`]).
    #[serde(default = "default_min_ballots_per_batch")]
    pub min_ballots_per_batch: u32,
}

fn default_min_ballots_per_batch() -> u32 {
    crate::batching::DEFAULT_MIN_BALLOTS_PER_BATCH
}

/// Whether an election is official or a test (`[election] mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// An official election: its results are the election's results.
    #[default]
    Official,
    /// A test election, for drills and rehearsals; never mixed with an official one.
    Test,
}

impl Mode {
    /// The word of the definition file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Official => "official",
            Mode::Test => "test",
        }
    }

    /// The mode a word of the definition file names: `"official"` or `"test"`,
    /// exactly; anything else is none.
    pub fn from_word(word: &str) -> Option<Mode> {
        [Mode::Official, Mode::Test]
            .into_iter()
            .find(|m| m.as_str() == word)
    }
}

/// An administrative unit: a town (镇) or a street (街道).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `[a-z0-9-]`, the unit's stable key; contests name their unit by it.
    pub id: String,
    /// The unit's name, e.g. 西堤头镇.
    pub name: String,
    /// A town or a street.
    pub kind: UnitKind,
}

/// What kind of administrative unit a unit is (`[[unit]] kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    /// 镇: holds both district-level and town-level contests.
    Town,
    /// 街道: holds district-level contests only.
    Street,
}

/// The level of a people's congress a contest elects deputies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 区级
    District,
    /// 镇级 (only in towns)
    Town,
}

impl Level {
    /// Both levels, district first.
    pub const ALL: [Level; 2] = [Level::District, Level::Town];

    /// The word of the definition file.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::District => "district",
            Level::Town => "town",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One electoral district's (选区) election at one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contest {
    /// `[a-z0-9-]`, the contest's stable key everywhere (ballots, batches, results).
    pub id: String,
    /// The congress the contest elects deputies to.
    pub level: Level,
    /// Id of the unit the electoral district lies in.
    pub unit: String,
    /// The contest's name, e.g. 区级第一选区.
    pub name: String,
    /// Deputies to elect (应选名额).
    pub seats: u32,
    /// Voters on the roll for this contest.
    pub registered: u64,
    /// Formal candidates (正式代表候选人), in ballot order.
    pub candidates: Vec<Candidate>,
}

impl Contest {
    /// Position of a candidate on this contest's ballot, if it is one of its candidates.
    pub fn candidate_index(&self, candidate_id: &str) -> Option<usize> {
        self.candidates.iter().position(|c| c.id == candidate_id)
    }
}

/// A formal candidate and the attributes the official summary reports on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The candidate's stable key; tally sheets and import lines name the candidate by it.
    pub id: String,
    /// The candidate's name as printed on the ballot.
    pub name: String,
    /// The candidate's gender, for the summary's count of women.
    pub gender: Gender,
    /// e.g. 汉族, 回族, 满族. Anything other than 汉族 counts as an ethnic minority.
    pub ethnicity: String,
    /// e.g. 中共, 民革, 群众. Anything other than 中共 counts as non-CPC (党外).
    pub party: String,
    /// Deputy in the outgoing congress (counts as re-elected if elected).
    #[serde(default)]
    pub incumbent: bool,
}

/// The ethnicity that does not count as a minority.
pub const MAJORITY_ETHNICITY: &str = "汉族";
/// The party whose members do not count as non-CPC.
pub const CPC: &str = "中共";

impl Candidate {
    /// Whether the candidate is a woman.
    pub fn is_woman(&self) -> bool {
        self.gender == Gender::F
    }
    /// Whether the candidate counts as an ethnic minority (any ethnicity but 汉族).
    pub fn is_minority(&self) -> bool {
        self.ethnicity != MAJORITY_ETHNICITY
    }
    /// Whether the candidate counts as non-CPC (党外: any party but 中共).
    pub fn is_non_cpc(&self) -> bool {
        self.party != CPC
    }
}

/// A candidate's gender as the definition states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Gender {
    /// Female.
    F,
    /// Male.
    M,
}

/// A polling station (投票站) or mobile ballot box (流动票箱).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    /// `[a-z0-9-]`, the station's stable key; its certificate and batches carry it.
    pub id: String,
    /// The station's name, e.g. 西堤头镇第1投票站.
    pub name: String,
    /// A fixed polling station or a mobile ballot box.
    pub kind: StationKind,
    /// Contests whose ballots this station collects (at most one per level).
    pub contests: Vec<String>,
}

/// What kind of place collects a station's ballots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StationKind {
    /// 投票站
    Fixed,
    /// 流动票箱
    Mobile,
}

impl ElectionDefinition {
    /// The contest with this id, if the definition has one.
    pub fn contest(&self, id: &str) -> Option<&Contest> {
        self.contests.iter().find(|c| c.id == id)
    }

    /// The station with this id, if the definition has one.
    pub fn station(&self, id: &str) -> Option<&Station> {
        self.stations.iter().find(|s| s.id == id)
    }

    /// The unit with this id, if the definition has one.
    pub fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// The stations that collect ballots for a contest, in definition order.
    pub fn stations_of<'a>(
        &'a self,
        contest_id: &'a str,
    ) -> impl Iterator<Item = &'a Station> + 'a {
        self.stations
            .iter()
            .filter(move |s| s.contests.iter().any(|c| c == contest_id))
    }

    /// The definition as TOML text in the shape of SPEC §2 (what `load` reads back).
    pub fn to_toml_string(&self) -> String {
        // Serialising these plain structs cannot fail: every field is a string, number,
        // bool or array of tables, all of which TOML represents.
        toml::to_string(self).expect("election definition is always representable as TOML")
    }
}
