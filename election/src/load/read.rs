//! First pass of loading: walk the parsed TOML by hand into a raw definition whose
//! every field may be absent, reporting each missing field, wrong type, unknown key and
//! bad choice with its path. Nothing is judged here beyond the shape of the document.

use toml::{Table, Value};

use super::Mistakes;
use crate::batching::DEFAULT_MIN_BALLOTS_PER_BATCH;
use crate::definition::{
    Candidate, Contest, ElectionDefinition, ElectionHeader, Gender, Level, Mode, Station,
    StationKind, Unit, UnitKind,
};
use crate::words::shown;

pub(crate) struct RawDefinition {
    pub header: Option<RawHeader>,
    pub units: Vec<RawUnit>,
    pub contests: Vec<RawContest>,
    pub stations: Vec<RawStation>,
    /// Whether each array of tables was there and usable (so "no units" is not reported
    /// on top of "unit is not an array of tables").
    pub units_read: bool,
    pub contests_read: bool,
    pub stations_read: bool,
}

pub(crate) struct RawHeader {
    pub id: Option<String>,
    pub name: Option<String>,
    pub date: Option<String>,
    pub rules: Option<String>,
    /// `None` when unreadable (reported); absent in the file reads as the default.
    pub mode: Option<Mode>,
    pub min_ballots_per_batch: Option<i64>,
}

pub(crate) struct RawUnit {
    pub path: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<UnitKind>,
}

pub(crate) struct RawContest {
    pub path: String,
    pub id: Option<String>,
    pub level: Option<Level>,
    pub unit: Option<String>,
    pub name: Option<String>,
    /// Negative figures are reported here; zero is left to the rule set.
    pub seats: Option<u32>,
    /// Any integer; its range is checked later.
    pub registered: Option<i64>,
    pub candidates: Option<Vec<RawCandidate>>,
}

pub(crate) struct RawCandidate {
    pub path: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub gender: Option<Gender>,
    pub ethnicity: Option<String>,
    pub party: Option<String>,
    pub incumbent: Option<bool>,
}

pub(crate) struct RawStation {
    pub path: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<StationKind>,
    /// Each entry, absent where it was not a string.
    pub contests: Option<Vec<Option<String>>>,
}

const TOP_KEYS: &[&str] = &["election", "unit", "contest", "station"];
const ELECTION_KEYS: &[&str] = &[
    "id",
    "name",
    "date",
    "rules",
    "mode",
    "min_ballots_per_batch",
];
const MODES: &[(&str, Mode)] = &[("official", Mode::Official), ("test", Mode::Test)];
const UNIT_KEYS: &[&str] = &["id", "name", "kind"];
const CONTEST_KEYS: &[&str] = &[
    "id",
    "level",
    "unit",
    "name",
    "seats",
    "registered",
    "candidates",
];
const CANDIDATE_KEYS: &[&str] = &["id", "name", "gender", "ethnicity", "party", "incumbent"];
const STATION_KEYS: &[&str] = &["id", "name", "kind", "contests"];

const UNIT_KINDS: &[(&str, UnitKind)] = &[("town", UnitKind::Town), ("street", UnitKind::Street)];
const LEVELS: &[(&str, Level)] = &[("district", Level::District), ("town", Level::Town)];
const GENDERS: &[(&str, Gender)] = &[("F", Gender::F), ("M", Gender::M)];
const STATION_KINDS: &[(&str, StationKind)] = &[
    ("fixed", StationKind::Fixed),
    ("mobile", StationKind::Mobile),
];

pub(crate) fn definition(m: &mut Mistakes, top: &Table) -> RawDefinition {
    unknown_keys(m, "", top, TOP_KEYS);
    let header = match top.get("election") {
        None => {
            m.add(
                "election",
                "the [election] table is missing: it gives the election's id, name, date and rules",
            );
            None
        }
        Some(Value::Table(table)) => Some(header(m, table)),
        Some(other) => {
            m.add(
                "election",
                format!("expected the [election] table, found {}", kind_of(other)),
            );
            None
        }
    };
    let (units, units_read) = array(m, top, "unit", unit);
    let (contests, contests_read) = array(m, top, "contest", contest);
    let (stations, stations_read) = array(m, top, "station", station);
    RawDefinition {
        header,
        units,
        contests,
        stations,
        units_read,
        contests_read,
        stations_read,
    }
}

fn header(m: &mut Mistakes, t: &Table) -> RawHeader {
    let p = "election";
    unknown_keys(m, p, t, ELECTION_KEYS);
    RawHeader {
        id: string(m, p, t, "id"),
        name: string(m, p, t, "name"),
        date: date(m, p, t, "date"),
        rules: string(m, p, t, "rules"),
        mode: match t.get("mode") {
            None => Some(Mode::default()),
            Some(_) => choice(m, p, t, "mode", MODES),
        },
        min_ballots_per_batch: match t.get("min_ballots_per_batch") {
            None => Some(i64::from(DEFAULT_MIN_BALLOTS_PER_BATCH)),
            Some(_) => integer(m, p, t, "min_ballots_per_batch"),
        },
    }
}

fn unit(m: &mut Mistakes, p: &str, t: &Table) -> RawUnit {
    unknown_keys(m, p, t, UNIT_KEYS);
    RawUnit {
        path: p.to_string(),
        id: string(m, p, t, "id"),
        name: string(m, p, t, "name"),
        kind: choice(m, p, t, "kind", UNIT_KINDS),
    }
}

fn contest(m: &mut Mistakes, p: &str, t: &Table) -> RawContest {
    unknown_keys(m, p, t, CONTEST_KEYS);
    let seats = integer(m, p, t, "seats").and_then(|n| match u32::try_from(n) {
        Ok(seats) => Some(seats),
        Err(_) => {
            m.add(
                at(p, "seats"),
                format!("must be a whole number of deputies to elect, not {n}"),
            );
            None
        }
    });
    let candidates = match t.get("candidates") {
        None => {
            m.add(
                at(p, "candidates"),
                "missing; expected the list of formal candidates",
            );
            None
        }
        Some(value) => tables(m, &at(p, "candidates"), value).map(|items| {
            items
                .into_iter()
                .map(|(path, t)| candidate(m, &path, t))
                .collect()
        }),
    };
    RawContest {
        path: p.to_string(),
        id: string(m, p, t, "id"),
        level: choice(m, p, t, "level", LEVELS),
        unit: string(m, p, t, "unit"),
        name: string(m, p, t, "name"),
        seats,
        registered: integer(m, p, t, "registered"),
        candidates,
    }
}

fn candidate(m: &mut Mistakes, p: &str, t: &Table) -> RawCandidate {
    unknown_keys(m, p, t, CANDIDATE_KEYS);
    let incumbent = match t.get("incumbent") {
        None => Some(false),
        Some(Value::Boolean(b)) => Some(*b),
        Some(other) => {
            m.add(
                at(p, "incumbent"),
                format!("expected true or false, found {}", kind_of(other)),
            );
            None
        }
    };
    RawCandidate {
        path: p.to_string(),
        id: string(m, p, t, "id"),
        name: string(m, p, t, "name"),
        gender: choice(m, p, t, "gender", GENDERS),
        ethnicity: string(m, p, t, "ethnicity"),
        party: string(m, p, t, "party"),
        incumbent,
    }
}

fn station(m: &mut Mistakes, p: &str, t: &Table) -> RawStation {
    unknown_keys(m, p, t, STATION_KEYS);
    let contests = match t.get("contests") {
        None => {
            m.add(
                at(p, "contests"),
                "missing; expected the list of contest ids this station collects ballots for",
            );
            None
        }
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        m.add(
                            format!("{p}.contests[{i}]"),
                            format!("expected a contest id (text), found {}", kind_of(other)),
                        );
                        None
                    }
                })
                .collect(),
        ),
        Some(other) => {
            m.add(
                at(p, "contests"),
                format!(
                    "expected a list of contest ids like [\"D-001\"], found {}",
                    kind_of(other)
                ),
            );
            None
        }
    };
    RawStation {
        path: p.to_string(),
        id: string(m, p, t, "id"),
        name: string(m, p, t, "name"),
        kind: choice(m, p, t, "kind", STATION_KINDS),
        contests,
    }
}

/// An array of tables at the top level (`[[unit]]`), each read by `item`. Absent is
/// an empty list (whether that is acceptable is judged later).
fn array<T>(
    m: &mut Mistakes,
    top: &Table,
    key: &str,
    item: fn(&mut Mistakes, &str, &Table) -> T,
) -> (Vec<T>, bool) {
    let Some(value) = top.get(key) else {
        return (Vec::new(), true);
    };
    match tables(m, key, value) {
        Some(items) => (
            items
                .into_iter()
                .map(|(path, t)| item(m, &path, t))
                .collect(),
            true,
        ),
        None => (Vec::new(), false),
    }
}

/// The tables of an array of tables, each with its path; reports entries that are not
/// tables. `None` when the value is not an array at all.
fn tables<'t>(m: &mut Mistakes, path: &str, value: &'t Value) -> Option<Vec<(String, &'t Table)>> {
    match value {
        Value::Array(items) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::Table(t) => Some((item_path, t)),
                        other => {
                            m.add(
                                item_path,
                                format!("expected a table, found {}", kind_of(other)),
                            );
                            None
                        }
                    }
                })
                .collect(),
        ),
        Value::Table(_) => {
            m.add(
                path,
                format!(
                    "written as a single table; write [[{path}]] (double brackets) for each entry"
                ),
            );
            None
        }
        other => {
            m.add(
                path,
                format!("expected an array of tables, found {}", kind_of(other)),
            );
            None
        }
    }
}

fn unknown_keys(m: &mut Mistakes, path: &str, table: &Table, allowed: &[&str]) {
    for key in table.keys() {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        let hint = closest(key, allowed)
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        m.add(
            at(path, key),
            format!(
                "unknown field {}; {hint}expected one of: {}",
                shown(key),
                allowed.join(", ")
            ),
        );
    }
}

fn field<'t>(
    m: &mut Mistakes,
    path: &str,
    t: &'t Table,
    key: &str,
    expected: &str,
) -> Option<&'t Value> {
    let value = t.get(key);
    if value.is_none() {
        m.add(at(path, key), format!("missing; expected {expected}"));
    }
    value
}

fn string(m: &mut Mistakes, path: &str, t: &Table, key: &str) -> Option<String> {
    match field(m, path, t, key, "text in quotes")? {
        Value::String(s) => Some(s.clone()),
        other => {
            m.add(
                at(path, key),
                format!("expected text in quotes, found {}", kind_of(other)),
            );
            None
        }
    }
}

fn integer(m: &mut Mistakes, path: &str, t: &Table, key: &str) -> Option<i64> {
    match field(m, path, t, key, "a whole number")? {
        Value::Integer(n) => Some(*n),
        other => {
            m.add(
                at(path, key),
                format!("expected a whole number, found {}", kind_of(other)),
            );
            None
        }
    }
}

/// A date as text `"2021-11-01"` or as a bare TOML date `2021-11-01`; the text is
/// returned as is and judged later.
fn date(m: &mut Mistakes, path: &str, t: &Table, key: &str) -> Option<String> {
    match field(m, path, t, key, "a date like \"2021-11-01\"")? {
        Value::String(s) => Some(s.clone()),
        Value::Datetime(d) if d.time.is_none() && d.offset.is_none() && d.date.is_some() => {
            Some(d.to_string())
        }
        other => {
            m.add(
                at(path, key),
                format!(
                    "expected a date like \"2021-11-01\", found {}",
                    kind_of(other)
                ),
            );
            None
        }
    }
}

fn choice<T: Copy>(
    m: &mut Mistakes,
    path: &str,
    t: &Table,
    key: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    let expected = format!("one of {}", names.join(", "));
    match field(m, path, t, key, &expected)? {
        Value::String(s) => {
            let found = options.iter().find(|(name, _)| name == s).map(|(_, v)| *v);
            if found.is_none() {
                m.add(at(path, key), format!("{} is not {expected}", shown(s)));
            }
            found
        }
        other => {
            m.add(
                at(path, key),
                format!("expected {expected} in quotes, found {}", kind_of(other)),
            );
            None
        }
    }
}

pub(crate) fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A value's kind in words, with the value itself when it is short.
fn kind_of(value: &Value) -> String {
    match value {
        Value::String(s) => format!("text {}", shown(s)),
        Value::Integer(n) => format!("the number {n}"),
        Value::Float(x) => format!("the decimal number {x}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Datetime(d) => format!("the date/time {d}"),
        Value::Array(_) => "a list".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

/// The allowed key nearest to a mistyped one, if it is near enough to be a typo.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters, case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

impl RawDefinition {
    /// The definition, when every field was read.
    pub(crate) fn finish(self) -> Option<ElectionDefinition> {
        let h = self.header?;
        Some(ElectionDefinition {
            election: ElectionHeader {
                id: h.id?,
                name: h.name?,
                date: h.date?,
                rules: h.rules?,
                mode: h.mode?,
                min_ballots_per_batch: u32::try_from(h.min_ballots_per_batch?).ok()?,
            },
            units: self
                .units
                .into_iter()
                .map(|u| {
                    Some(Unit {
                        id: u.id?,
                        name: u.name?,
                        kind: u.kind?,
                    })
                })
                .collect::<Option<_>>()?,
            contests: self
                .contests
                .into_iter()
                .map(|c| {
                    Some(Contest {
                        id: c.id?,
                        level: c.level?,
                        unit: c.unit?,
                        name: c.name?,
                        seats: c.seats?,
                        registered: u64::try_from(c.registered?).ok()?,
                        candidates: c
                            .candidates?
                            .into_iter()
                            .map(|k| {
                                Some(Candidate {
                                    id: k.id?,
                                    name: k.name?,
                                    gender: k.gender?,
                                    ethnicity: k.ethnicity?,
                                    party: k.party?,
                                    incumbent: k.incumbent?,
                                })
                            })
                            .collect::<Option<_>>()?,
                    })
                })
                .collect::<Option<_>>()?,
            stations: self
                .stations
                .into_iter()
                .map(|s| {
                    Some(Station {
                        id: s.id?,
                        name: s.name?,
                        kind: s.kind?,
                        contests: s.contests?.into_iter().collect::<Option<_>>()?,
                    })
                })
                .collect::<Option<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_field() {
        assert_eq!(closest("seat", CONTEST_KEYS), Some("seats"));
        assert_eq!(closest("registerd", CONTEST_KEYS), Some("registered"));
        assert_eq!(closest("Name", UNIT_KEYS), Some("name"));
        assert_eq!(closest("colour", UNIT_KEYS), None);
        assert_eq!(closest("x", UNIT_KEYS), None);
    }
}
