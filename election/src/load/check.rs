//! Second pass of loading: judge the raw definition as a whole. Ids, names and the
//! date; duplicate ids; references between contests, units and stations; which levels
//! a unit and a station may hold; voters on the roll; size limits; and what the rule
//! set allows for seats and candidates. Fields the first pass could not read are
//! skipped here (their mistake is already reported).

use std::collections::{BTreeMap, BTreeSet};

use super::Mistakes;
use super::read::{RawContest, RawDefinition, RawStation, at};
use crate::batching::{MAX_MIN_BALLOTS_PER_BATCH, largest_ballot_bytes, max_k_for};
use crate::definition::{
    Level, MAX_CANDIDATES_PER_CONTEST, MAX_CONTESTS, MAX_CONTESTS_PER_STATION, MAX_ID_LEN,
    MAX_NAME_LEN, MAX_REGISTERED, MAX_STATIONS, MAX_UNITS, Mode, UnitKind,
};
use crate::rules::{Rules, rule_ids, rules_by_id};
use crate::words::{figure, is_invisible_format, shown};

/// Characters an id may not contain besides spaces and control characters: path
/// separators (ids name files) and the comma (ids are listed comma-separated).
const FORBIDDEN_ID_CHARS: &[char] = &['/', '\\', ','];

pub(crate) fn definition(m: &mut Mistakes, raw: &RawDefinition) {
    let rules = header(m, raw);
    limits(m, raw);
    let units = units(m, raw);
    let contests = contests(m, raw, &units, rules);
    stations(m, raw, &contests);
    anonymity(m, raw);
}

/// K (`min_ballots_per_batch`): 1..=1000, 1 only in a test election, and K of every
/// contest's largest ballots must fit in one group ([`crate::batching`]).
fn anonymity(m: &mut Mistakes, raw: &RawDefinition) {
    let Some(h) = raw.header.as_ref() else { return };
    let Some(k) = h.min_ballots_per_batch else {
        return;
    };
    let p = "election.min_ballots_per_batch";
    let max = i64::from(MAX_MIN_BALLOTS_PER_BATCH);
    if !(1..=max).contains(&k) {
        m.add(
            p,
            format!("is {k}; a batch's anonymity set must be 1 to {max} ballots"),
        );
        return;
    }
    if k == 1 && h.mode != Some(Mode::Test) {
        m.add(
            p,
            "is 1, which lets a batch carry a single ballot and link it to the moment it              was cast; allowed only with mode = \"test\"",
        );
        return;
    }
    for c in &raw.contests {
        let (Some(id), Some(candidates)) = (&c.id, &c.candidates) else {
            continue;
        };
        let fits = max_k_for(id.len(), candidates.len());
        if k as u64 > fits {
            m.add(
                p,
                format!(
                    "is {k}, but {k} of the largest ballots of contest {} ({} bytes each, \
                     with every write-in at full length) do not fit in one batch's group; \
                     at most {fits} do",
                    shown(id),
                    largest_ballot_bytes(id.len(), candidates.len())
                ),
            );
            return;
        }
    }
}

/// What later checks need to know of a unit or contest, by id.
struct Known<'r> {
    path: &'r str,
    level_or_kind: Option<LevelOrKind>,
}

#[derive(Clone, Copy)]
enum LevelOrKind {
    Unit(UnitKind),
    Contest(Level),
}

fn header(m: &mut Mistakes, raw: &RawDefinition) -> Option<&'static dyn Rules> {
    let h = raw.header.as_ref()?;
    if let Some(id) = &h.id {
        let p = "election.id";
        if id.is_empty() {
            m.add(
                p,
                "is empty; the election needs an id such as \"beichen-2021\"",
            );
        } else if !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            m.add(
                p,
                format!(
                    "{} may contain only lowercase letters a-z, digits 0-9 and '-'",
                    shown(id)
                ),
            );
        } else if id.chars().count() > MAX_ID_LEN {
            m.add(p, too_long(id, MAX_ID_LEN));
        }
    }
    if let Some(name) = &h.name {
        check_name(m, "election.name", name);
    }
    if let Some(date) = &h.date
        && !is_real_date(date)
    {
        m.add(
            "election.date",
            format!(
                "{} is not a date written YYYY-MM-DD, like \"2021-11-01\"",
                shown(date)
            ),
        );
    }
    let rules_id = h.rules.as_ref()?;
    let rules = rules_by_id(rules_id);
    if rules.is_none() {
        m.add(
            "election.rules",
            format!(
                "{} is not a known rule set; known: {}",
                shown(rules_id),
                rule_ids().join(", ")
            ),
        );
    }
    rules
}

fn limits(m: &mut Mistakes, raw: &RawDefinition) {
    let sections = [
        ("unit", "units", raw.units.len(), MAX_UNITS, raw.units_read),
        (
            "contest",
            "contests",
            raw.contests.len(),
            MAX_CONTESTS,
            raw.contests_read,
        ),
        (
            "station",
            "stations",
            raw.stations.len(),
            MAX_STATIONS,
            raw.stations_read,
        ),
    ];
    for (key, plural, count, max, read) in sections {
        if !read {
            continue;
        }
        if count == 0 {
            m.add(
                key,
                format!("the election has no {plural}: add at least one [[{key}]]"),
            );
        } else if count > max {
            m.add(
                key,
                format!(
                    "{} {plural}; at most {} are allowed",
                    figure(count as u64),
                    figure(max as u64)
                ),
            );
        }
    }
}

fn units<'r>(m: &mut Mistakes, raw: &'r RawDefinition) -> BTreeMap<&'r str, Known<'r>> {
    let mut known = BTreeMap::new();
    for u in &raw.units {
        if let Some(name) = &u.name {
            check_name(m, &at(&u.path, "name"), name);
        }
        let Some(id) = &u.id else { continue };
        if !check_id(m, &at(&u.path, "id"), id, "unit") {
            continue;
        }
        if let Some(first) = known.get(id.as_str()) {
            let first: &Known = first;
            m.add(
                at(&u.path, "id"),
                format!("unit id {} is already used by {}", shown(id), first.path),
            );
            continue;
        }
        known.insert(
            id.as_str(),
            Known {
                path: &u.path,
                level_or_kind: u.kind.map(LevelOrKind::Unit),
            },
        );
    }
    known
}

fn contests<'r>(
    m: &mut Mistakes,
    raw: &'r RawDefinition,
    units: &BTreeMap<&str, Known>,
    rules: Option<&'static dyn Rules>,
) -> BTreeMap<&'r str, Known<'r>> {
    let mut known: BTreeMap<&str, Known> = BTreeMap::new();
    let mut candidate_ids: BTreeMap<&str, String> = BTreeMap::new();
    for c in &raw.contests {
        if let Some(name) = &c.name {
            check_name(m, &at(&c.path, "name"), name);
        }
        contest_unit(m, c, units);
        contest_figures(m, c, rules);
        for k in c.candidates.iter().flatten() {
            for (key, value) in [
                ("name", &k.name),
                ("ethnicity", &k.ethnicity),
                ("party", &k.party),
            ] {
                if let Some(value) = value {
                    check_name(m, &at(&k.path, key), value);
                }
            }
            let Some(id) = &k.id else { continue };
            let path = at(&k.path, "id");
            if !check_id(m, &path, id, "candidate") {
                continue;
            }
            match candidate_ids.get(id.as_str()) {
                Some(first) => m.add(
                    path,
                    format!(
                        "candidate id {} is already used by {first}; candidate ids must be \
                         unique across the whole election",
                        shown(id)
                    ),
                ),
                None => {
                    candidate_ids.insert(id.as_str(), path);
                }
            }
        }
        let Some(id) = &c.id else { continue };
        if !check_id(m, &at(&c.path, "id"), id, "contest") {
            continue;
        }
        if let Some(first) = known.get(id.as_str()) {
            m.add(
                at(&c.path, "id"),
                format!("contest id {} is already used by {}", shown(id), first.path),
            );
            continue;
        }
        known.insert(
            id.as_str(),
            Known {
                path: &c.path,
                level_or_kind: c.level.map(LevelOrKind::Contest),
            },
        );
    }
    // Every contest must be served by some station (only when stations could be read).
    if raw.stations_read {
        let served: BTreeSet<&str> = raw
            .stations
            .iter()
            .filter_map(|s| s.contests.as_ref())
            .flatten()
            .flatten()
            .map(String::as_str)
            .collect();
        for (id, k) in &known {
            if !served.contains(id) {
                m.add(
                    k.path,
                    format!(
                        "no station collects ballots for contest {}: add it to the \
                         contests of at least one [[station]]",
                        shown(id)
                    ),
                );
            }
        }
    }
    known
}

/// The contest's unit exists, and a town-level contest is held in a town.
fn contest_unit(m: &mut Mistakes, c: &RawContest, units: &BTreeMap<&str, Known>) {
    let Some(unit_id) = &c.unit else { return };
    let Some(unit) = units.get(unit_id.as_str()) else {
        m.add(
            at(&c.path, "unit"),
            format!("unit {} is not defined in any [[unit]]", shown(unit_id)),
        );
        return;
    };
    if let (Some(Level::Town), Some(LevelOrKind::Unit(UnitKind::Street))) =
        (c.level, unit.level_or_kind)
    {
        m.add(
            at(&c.path, "level"),
            format!(
                "a town-level contest cannot be held in street {}: streets hold \
                 district-level contests only",
                shown(unit_id)
            ),
        );
    }
}

/// Voters on the roll, number of candidates, and seats and candidates under the rules.
fn contest_figures(m: &mut Mistakes, c: &RawContest, rules: Option<&'static dyn Rules>) {
    if let Some(registered) = c.registered {
        let path = at(&c.path, "registered");
        if registered < 1 {
            m.add(
                path,
                format!("voters on the roll must be at least 1, not {registered}"),
            );
        } else if registered.unsigned_abs() > MAX_REGISTERED {
            m.add(
                path,
                format!(
                    "{} voters on the roll is more than the {} allowed",
                    figure(registered.unsigned_abs()),
                    figure(MAX_REGISTERED)
                ),
            );
        }
    }
    let Some(candidates) = &c.candidates else {
        return;
    };
    if candidates.len() > MAX_CANDIDATES_PER_CONTEST {
        m.add(
            at(&c.path, "candidates"),
            format!(
                "{} candidates; at most {MAX_CANDIDATES_PER_CONTEST} are allowed",
                candidates.len()
            ),
        );
        return;
    }
    let (Some(rules), Some(seats)) = (rules, c.seats) else {
        return;
    };
    let reasons = rules.check_contest(seats, candidates.len());
    if reasons.is_empty() {
        return;
    }
    // Blame the seats when no number of candidates would do; otherwise the candidates.
    let seats_wrong =
        (0..=MAX_CANDIDATES_PER_CONTEST).all(|n| !rules.check_contest(seats, n).is_empty());
    let path = at(&c.path, if seats_wrong { "seats" } else { "candidates" });
    for reason in reasons {
        m.add(path.clone(), reason);
    }
}

fn stations(m: &mut Mistakes, raw: &RawDefinition, contests: &BTreeMap<&str, Known>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &raw.stations {
        if let Some(name) = &s.name {
            check_name(m, &at(&s.path, "name"), name);
        }
        station_contests(m, s, contests);
        let Some(id) = &s.id else { continue };
        if !check_id(m, &at(&s.path, "id"), id, "station") {
            continue;
        }
        if let Some(first) = seen.get(id.as_str()) {
            m.add(
                at(&s.path, "id"),
                format!("station id {} is already used by {first}", shown(id)),
            );
        } else {
            seen.insert(id, &s.path);
        }
    }
}

/// A station serves at least one contest, each known, none twice, one per level.
fn station_contests(m: &mut Mistakes, s: &RawStation, contests: &BTreeMap<&str, Known>) {
    let Some(list) = &s.contests else { return };
    let path = at(&s.path, "contests");
    if list.is_empty() {
        m.add(
            &path,
            "the station serves no contest: list the contests whose ballots it collects",
        );
        return;
    }
    if list.len() > MAX_CONTESTS_PER_STATION {
        m.add(
            &path,
            format!(
                "{} contests; a station serves at most {MAX_CONTESTS_PER_STATION} \
                 (one per level)",
                list.len()
            ),
        );
    }
    let mut levels: BTreeMap<Level, &str> = BTreeMap::new();
    let mut listed: BTreeSet<&str> = BTreeSet::new();
    for (i, id) in list.iter().enumerate() {
        let Some(id) = id else { continue };
        let item = format!("{path}[{i}]");
        if !listed.insert(id) {
            m.add(item, format!("contest {} is listed twice", shown(id)));
            continue;
        }
        let Some(contest) = contests.get(id.as_str()) else {
            m.add(
                item,
                format!("contest {} is not defined in any [[contest]]", shown(id)),
            );
            continue;
        };
        let Some(LevelOrKind::Contest(level)) = contest.level_or_kind else {
            continue;
        };
        if let Some(other) = levels.get(&level) {
            m.add(
                item,
                format!(
                    "the station already serves {level}-level contest {}; a station \
                     serves at most one contest per level",
                    shown(other)
                ),
            );
        } else {
            levels.insert(level, id);
        }
    }
}

/// Reports what is wrong with an id; true when it is usable.
fn check_id(m: &mut Mistakes, path: &str, id: &str, what: &str) -> bool {
    let reason = if id.is_empty() {
        format!("is empty; every {what} needs an id")
    } else if id.chars().count() > MAX_ID_LEN {
        too_long(id, MAX_ID_LEN)
    } else if id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c))
    {
        format!(
            "{} contains a space or control character; ids may not",
            shown(id)
        )
    } else if let Some(c) = id.chars().find(|c| FORBIDDEN_ID_CHARS.contains(c)) {
        format!(
            "{} contains '{c}'; ids may not contain / \\ or ,",
            shown(id)
        )
    } else if id == "." || id == ".." {
        format!("{} is not a usable id", shown(id))
    } else {
        return true;
    };
    m.add(path, reason);
    false
}

fn check_name(m: &mut Mistakes, path: &str, name: &str) {
    if name.trim().is_empty() {
        m.add(path, "is empty");
    } else if name.chars().count() > MAX_NAME_LEN {
        m.add(path, too_long(name, MAX_NAME_LEN));
    } else if name
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        m.add(
            path,
            format!(
                "{} contains a control character (such as a line break)",
                shown(name)
            ),
        );
    }
}

fn too_long(text: &str, max: usize) -> String {
    format!(
        "{} is {} characters long; at most {max} are allowed",
        shown(text),
        text.chars().count()
    )
}

/// `YYYY-MM-DD` naming a day that exists.
fn is_real_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_exist() {
        for good in ["2021-11-01", "2024-02-29", "2000-02-29", "1999-12-31"] {
            assert!(is_real_date(good), "{good}");
        }
        for bad in [
            "2021-11-1",
            "2021/11/01",
            "2021-13-01",
            "2021-00-10",
            "2021-11-31",
            "2023-02-29",
            "1900-02-29",
            "0000-01-01",
            "２０２１-11-01",
            "+021-11-01",
            "",
        ] {
            assert!(!is_real_date(bad), "{bad}");
        }
    }
}
