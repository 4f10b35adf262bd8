//! `center results`: every contest's outcome under the election's rule set, from the
//! store's running tallies (never by rescanning ballots) and the stations' progress,
//! with totals per unit, per level and for the whole election (SPEC §6, §7).

use std::collections::BTreeMap;

use pollsync_election::{
    ContestInput, ContestOutcome, ElectionDefinition, StationReport, TallySheet, Totals,
    rules_by_id,
};
use serde_json::{Value, json};

use crate::error::{CenterError, Result};
use crate::store::{AlertRow, Records, StationRow};

mod nist;

/// Every contest's outcome and the totals.
pub struct Results {
    /// The election definition the outcomes are decided under.
    pub definition: ElectionDefinition,
    /// Every contest's outcome (or only the one asked for), in definition order.
    pub outcomes: Vec<ContestOutcome>,
    /// Sums per unit, per level and for the whole election.
    pub totals: Totals,
    /// Per contest (by id), each of its stations' part as the outcome was decided
    /// from it: closed, synced, and the tally computed from its ballots.
    pub reports: BTreeMap<String, Vec<StationReport>>,
}

/// Whether the center holds everything a station sealed for a contest, and the station
/// is not cut off (quarantined or revoked). Once the station's close of the contest is
/// at the center (`closed_at_center`) that is so: batches are applied in chain order,
/// so everything sealed before the close is there, and nothing of the contest comes
/// after it; the station may still be sending its other contests. Before the close,
/// it is so when the center holds everything the station said it sealed. A station
/// the center has never heard from (no contact, no batch) is not synced: what it
/// holds is unknown.
pub fn synced_for_contest(row: Option<&StationRow>, closed_at_center: bool) -> bool {
    row.is_some_and(|r| {
        !r.quarantined
            && !r.revoked
            && (closed_at_center
                || ((r.last_seen_unix_ms > 0 || r.head_sequence > 0)
                    && r.head_sequence >= r.local_head_sequence))
    })
}

/// The one rule of "reporting" (SPEC §7, the results, the status, the API and the
/// dashboard): a station reports for a contest once the contest is closed at it and
/// the center holds everything it sealed up to that close.
pub fn reporting(row: Option<&StationRow>, closed_at_center: bool) -> bool {
    closed_at_center && synced_for_contest(row, closed_at_center)
}

/// Decide every contest (or only `only`) from the store as it stands.
pub fn compute(store: &dyn Records, only: Option<&str>) -> Result<Results> {
    let definition = store.meta()?.definition()?;
    let rules = rules_by_id(&definition.election.rules).ok_or_else(|| CenterError::Corrupt {
        detail: format!(
            "rule set '{}' is unknown to this build",
            definition.election.rules
        ),
    })?;
    if let Some(id) = only
        && definition.contest(id).is_none()
    {
        return Err(CenterError::UnknownContest {
            contest: id.to_string(),
        });
    }
    let stations: BTreeMap<String, StationRow> = store
        .stations()?
        .into_iter()
        .map(|r| (r.station.clone(), r))
        .collect();
    let mut tallies: BTreeMap<(String, String), _> = BTreeMap::new();
    for t in store.tallies()? {
        tallies.insert((t.station.clone(), t.contest.clone()), t);
    }
    let alerts = store.alerts()?;

    let mut outcomes = Vec::new();
    let mut by_contest = BTreeMap::new();
    for contest in &definition.contests {
        if only.is_some_and(|id| id != contest.id) {
            continue;
        }
        let reports: Vec<StationReport> = definition
            .stations_of(&contest.id)
            .map(|s| {
                let t = tallies.get(&(s.id.clone(), contest.id.clone()));
                let closed = t.is_some_and(|t| t.closed);
                StationReport {
                    station_id: s.id.clone(),
                    closed,
                    synced: synced_for_contest(stations.get(&s.id), closed),
                    sheet: t.and_then(|t| t.sheet.clone()),
                    computed: t
                        .map_or_else(|| TallySheet::for_contest(contest), |t| t.computed.clone()),
                }
            })
            .collect();
        let input = ContestInput {
            contest,
            stations: reports,
        };
        let mut outcome = rules.decide(&input);
        // Kept, not copied: the reports the outcome was decided from.
        by_contest.insert(contest.id.clone(), input.stations);
        outcome
            .problems
            .extend(alert_problems(&definition, &contest.id, &alerts));
        outcomes.push(outcome);
    }
    let totals = Totals::of(&definition, &outcomes);
    Ok(Results {
        definition,
        outcomes,
        totals,
        reports: by_contest,
    })
}

/// Alerts raised about the stations of a contest, as problems an operator acts on.
fn alert_problems(def: &ElectionDefinition, contest: &str, alerts: &[AlertRow]) -> Vec<String> {
    let stations: Vec<&str> = def.stations_of(contest).map(|s| s.id.as_str()).collect();
    alerts
        .iter()
        .filter(|a| stations.contains(&a.station.as_str()))
        .map(|a| {
            format!(
                "station {}: alert {} at batch {}: {}",
                a.station, a.kind, a.sequence, a.detail
            )
        })
        .collect()
}

/// Turnout as the results show it: four decimals.
fn rounded(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

impl Results {
    /// The JSON of SPEC §7 (`center results --format json`).
    pub fn to_json(&self) -> Value {
        let contests: Vec<Value> = self
            .outcomes
            .iter()
            .filter_map(|o| {
                let c = self.definition.contest(&o.contest)?;
                Some(json!({
                    "id": c.id,
                    "level": c.level.as_str(),
                    "unit": c.unit,
                    "seats": c.seats,
                    "registered": c.registered,
                    "stations": o.stations,
                    "ballots": {"issued": o.issued, "returned": o.returned, "valid": o.valid, "void": o.void},
                    "turnout": rounded(o.turnout),
                    "candidates": o.candidates,
                    "write_ins": o.write_ins,
                    "status": o.status,
                    "runoff": o.runoff,
                    "problems": o.problems,
                }))
            })
            .collect();
        json!({
            "election": self.definition.election.id,
            "contests": contests,
            "totals": self.totals,
        })
    }

    /// One row per candidate (and write-in name) per contest.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("contest,level,unit,status,candidate,name,for,against,elected\n");
        for o in &self.outcomes {
            let Some(c) = self.definition.contest(&o.contest) else {
                continue;
            };
            let prefix = format!(
                "{},{},{},{}",
                csv(&c.id),
                c.level.as_str(),
                csv(&c.unit),
                o.status.as_str()
            );
            for r in &o.candidates {
                out.push_str(&format!(
                    "{prefix},{},{},{},{},{}\n",
                    csv(&r.id),
                    csv(&r.name),
                    r.for_votes,
                    r.against,
                    r.elected
                ));
            }
            for w in &o.write_ins {
                out.push_str(&format!(
                    "{prefix},,{},{},,{}\n",
                    csv(&w.name),
                    w.for_votes,
                    w.elected
                ));
            }
        }
        out
    }

    /// A table a person reads: per contest its status, figures and candidates.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        for o in &self.outcomes {
            let Some(c) = self.definition.contest(&o.contest) else {
                continue;
            };
            out.push_str(&format!(
                "{} {} ({} seat(s), {} on the roll): {}\n  stations {}/{} closed, {} synced; issued {}, returned {}, valid {}, void {}; turnout {:.2}%\n",
                c.id,
                c.name,
                c.seats,
                c.registered,
                o.status.as_str().to_uppercase(),
                o.stations.closed,
                o.stations.expected,
                o.stations.synced,
                o.issued,
                o.returned,
                o.valid,
                o.void,
                o.turnout * 100.0
            ));
            // Columns as wide as the longest name and id of the contest, so that long
            // names (e.g. 阿依古丽·买买提) do not push their row out of line.
            let name_w = o
                .candidates
                .iter()
                .map(|r| columns(&r.name))
                .chain(o.write_ins.iter().map(|w| columns(&w.name)))
                .fold(10, usize::max);
            let id_w = o
                .candidates
                .iter()
                .map(|r| columns(&r.id))
                .fold(12, usize::max);
            for r in &o.candidates {
                out.push_str(&format!(
                    "  {}{} FOR {:>8}  AGAINST {:>8}{}\n",
                    pad(&r.name, name_w),
                    pad(&r.id, id_w),
                    r.for_votes,
                    r.against,
                    if r.elected { "  elected" } else { "" }
                ));
            }
            for w in &o.write_ins {
                out.push_str(&format!(
                    "  {}{} FOR {:>8}{}\n",
                    pad(&w.name, name_w),
                    pad("(write-in)", id_w),
                    w.for_votes,
                    if w.elected { "  elected" } else { "" }
                ));
            }
            for p in &o.problems {
                out.push_str(&format!("  ! {p}\n"));
            }
        }
        out.push('\n');
        out.push_str(&self.totals_table());
        out
    }

    /// The totals as [`Results::to_table`] ends: seats filled, contests by status,
    /// each level's figures, and the make-up of the elected deputies.
    pub fn totals_table(&self) -> String {
        let t = &self.totals.overall;
        let mut out = format!(
            "total: {} of {} seats filled in {} contests; turnout {:.2}%\n",
            t.elected,
            t.seats,
            t.contests,
            t.turnout * 100.0
        );
        for (status, n) in &t.contests_by_status {
            out.push_str(&format!("  {status}: {n}\n"));
        }
        for (level, f) in &self.totals.levels {
            out.push_str(&format!(
                "{level} level: {} of {} seats filled in {} contests; turnout {:.2}%\n",
                f.elected,
                f.seats,
                f.contests,
                f.turnout * 100.0
            ));
        }
        let m = &t.makeup;
        let share = |s: &pollsync_election::Share| format!("{} ({:.1}%)", s.count, s.share * 100.0);
        out.push_str(&format!(
            "elected deputies: {}; women {}, ethnic minorities {}, non-CPC {}, re-elected {}, by write-in {}\n",
            m.elected,
            share(&m.women),
            share(&m.minorities),
            share(&m.non_cpc),
            share(&m.re_elected),
            share(&m.write_in)
        ));
        out
    }
}

/// Display columns of a text, counting CJK characters as two.
fn columns(text: &str) -> usize {
    text.chars()
        .map(|ch| if ch.len_utf8() >= 3 { 2 } else { 1 })
        .sum()
}

/// Pad to `width` display columns, counting CJK characters as two.
fn pad(text: &str, width: usize) -> String {
    format!("{text}{} ", " ".repeat(width.saturating_sub(columns(text))))
}

/// A CSV field, quoted when it needs to be.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    //! The three ways results are printed: the table a person reads (CJK names line
    //! up), CSV for spreadsheets (quoting, one row per candidate and write-in), and the
    //! JSON shape of SPEC §7.

    use std::collections::BTreeMap;

    use pollsync_election::{ContestInput, StationReport, TallySheet, Totals, rules_by_id};

    use super::Results;

    const ELECTION: &str = r#"
[election]
id = "t-2021"
name = "测试选举"
date = "2021-11-01"
rules = "prc-direct"

[[unit]]
id = "xiditou"
name = "西堤头镇"
kind = "town"

[[contest]]
id = "D-001"
level = "district"
unit = "xiditou"
name = "区级第1选区"
seats = 2
registered = 100
candidates = [
  { id = "D-001-1", name = "王芳", gender = "F", ethnicity = "汉族", party = "中共", incumbent = true },
  { id = "D-001-2", name = "阿依古丽·买买提", gender = "F", ethnicity = "维吾尔族", party = "群众" },
  { id = "D-001-3", name = 'Li, "Jr"', gender = "M", ethnicity = "汉族", party = "民盟" },
  { id = "D-001-4", name = "欧阳建国", gender = "M", ethnicity = "汉族", party = "中共" },
]

[[contest]]
id = "T-001"
level = "town"
unit = "xiditou"
name = "镇级第1选区"
seats = 1
registered = 50
candidates = [
  { id = "T-001-1", name = "张伟", gender = "M", ethnicity = "汉族", party = "中共" },
  { id = "T-001-2", name = "李娜", gender = "F", ethnicity = "回族", party = "群众" },
]

[[station]]
id = "S-0001"
name = "西堤头镇第1投票站"
kind = "fixed"
contests = ["D-001", "T-001"]
"#;

    /// A write-in name with a comma and quotes, as a voter may write it.
    const ODD_WRITE_IN: &str = "赵,\"钱\"";

    fn sheet(
        issued: u64,
        void: u64,
        votes: &[(&str, u64, u64)],
        write_in: &[(&str, u64)],
    ) -> TallySheet {
        TallySheet {
            issued,
            returned: issued,
            valid: issued - void,
            void,
            for_votes: votes
                .iter()
                .map(|(id, f, _)| (id.to_string(), *f))
                .collect(),
            against: votes
                .iter()
                .map(|(id, _, a)| (id.to_string(), *a))
                .collect(),
            write_in: write_in.iter().map(|(n, f)| (n.to_string(), *f)).collect(),
        }
    }

    /// D-001 elects two with two write-in names; T-001 goes to a further ballot.
    fn results() -> Results {
        let definition = pollsync_election::load("t.toml", ELECTION).expect("definition loads");
        let rules = rules_by_id("prc-direct").expect("rules");
        let sheets = [
            sheet(
                90,
                2,
                &[
                    ("D-001-1", 60, 5),
                    ("D-001-2", 55, 9),
                    ("D-001-3", 10, 40),
                    ("D-001-4", 20, 1),
                ],
                &[("孙立新", 3), (ODD_WRITE_IN, 1)],
            ),
            sheet(40, 0, &[("T-001-1", 15, 2), ("T-001-2", 12, 3)], &[]),
        ];
        let outcomes: Vec<_> = definition
            .contests
            .iter()
            .zip(sheets)
            .map(|(contest, computed)| {
                rules.decide(&ContestInput {
                    contest,
                    stations: vec![StationReport {
                        station_id: "S-0001".into(),
                        closed: true,
                        synced: true,
                        sheet: Some(computed.clone()),
                        computed,
                    }],
                })
            })
            .collect();
        let totals = Totals::of(&definition, &outcomes);
        Results {
            definition,
            outcomes,
            totals,
            reports: BTreeMap::new(),
        }
    }

    /// Columns a terminal gives a text: two for each CJK ideograph, one otherwise.
    fn display_width(text: &str) -> usize {
        text.chars()
            .map(|c| {
                if ('\u{4E00}'..='\u{9FFF}').contains(&c) {
                    2
                } else {
                    1
                }
            })
            .sum()
    }

    #[test]
    fn the_table_lines_up_cjk_names_counting_two_columns_each() {
        let r = results();
        assert_eq!(r.outcomes[0].status.as_str(), "elected");
        assert_eq!(r.outcomes[1].status.as_str(), "runoff");
        let table = r.to_table();
        let mut rows_per_contest: Vec<Vec<&str>> = Vec::new();
        for line in table.lines() {
            if line.starts_with("D-") || line.starts_with("T-") {
                rows_per_contest.push(Vec::new());
            } else if line.contains(" FOR ")
                && let Some(rows) = rows_per_contest.last_mut()
            {
                rows.push(line);
            }
        }
        assert_eq!(rows_per_contest.len(), 2, "{table}");
        assert_eq!(
            rows_per_contest[0].len(),
            4 + 2,
            "4 candidates, 2 write-ins: {table}"
        );
        assert_eq!(rows_per_contest[1].len(), 2, "{table}");
        for rows in &rows_per_contest {
            let for_column: Vec<usize> = rows
                .iter()
                .map(|l| display_width(&l[..l.find(" FOR ").expect("FOR")]))
                .collect();
            assert!(
                for_column.windows(2).all(|w| w[0] == w[1]),
                "FOR at columns {for_column:?}:\n{table}"
            );
        }
        for name in [
            "王芳",
            "阿依古丽·买买提",
            "Li, \"Jr\"",
            "欧阳建国",
            ODD_WRITE_IN,
        ] {
            assert!(table.contains(name), "{name} shown as written:\n{table}");
        }
        let elected: Vec<&str> = rows_per_contest[0]
            .iter()
            .copied()
            .filter(|l| l.ends_with("elected"))
            .collect();
        assert_eq!(elected.len(), 2, "{table}");
        assert!(elected[0].contains("D-001-1") && elected[1].contains("D-001-2"));
    }

    /// Split CSV text into records of fields (RFC 4180 quoting).
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(
            !quoted && field.is_empty() && row.is_empty(),
            "CSV ends with a record"
        );
        rows
    }

    #[test]
    fn csv_quotes_commas_and_quotes_and_has_one_row_per_candidate_and_write_in() {
        let r = results();
        let rows = parse_csv(&r.to_csv());
        let header = &rows[0];
        assert_eq!(
            header.join(","),
            "contest,level,unit,status,candidate,name,for,against,elected"
        );
        let body = &rows[1..];
        assert!(body.iter().all(|row| row.len() == header.len()), "{rows:?}");
        let expected_rows: usize = r
            .outcomes
            .iter()
            .map(|o| o.candidates.len() + o.write_ins.len())
            .sum();
        assert_eq!(body.len(), expected_rows, "{rows:?}");

        // Each candidate and write-in name once per contest, with its own figures.
        let mut seen: BTreeMap<(String, String), &Vec<String>> = BTreeMap::new();
        for row in body {
            let key = if row[4].is_empty() { &row[5] } else { &row[4] };
            let previous = seen.insert((row[0].clone(), key.clone()), row);
            assert!(previous.is_none(), "{row:?} appears twice");
        }
        for o in &r.outcomes {
            for c in &o.candidates {
                let row = seen[&(o.contest.clone(), c.id.clone())];
                assert_eq!(row[3], o.status.as_str());
                assert_eq!(row[5], c.name, "the name survives quoting");
                assert_eq!(row[6], c.for_votes.to_string());
                assert_eq!(row[7], c.against.to_string());
                assert_eq!(row[8], c.elected.to_string());
            }
            for w in &o.write_ins {
                let row = seen[&(o.contest.clone(), w.name.clone())];
                assert_eq!((row[4].as_str(), row[7].as_str()), ("", ""), "{row:?}");
                assert_eq!(row[6], w.for_votes.to_string());
                assert_eq!(row[8], w.elected.to_string());
            }
        }
        assert!(seen.contains_key(&("D-001".to_string(), ODD_WRITE_IN.to_string())));
        assert_eq!(
            seen[&("D-001".to_string(), "D-001-3".to_string())][5],
            "Li, \"Jr\""
        );
    }

    #[test]
    fn json_has_the_keys_of_spec_7() {
        let v = results().to_json();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |k: &[&str]| -> Vec<String> {
            let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v), sorted(&["election", "contests", "totals"]));
        assert_eq!(v["election"], "t-2021");
        let contests = v["contests"].as_array().expect("contests");
        assert_eq!(contests.len(), 2);
        for c in contests {
            assert_eq!(
                keys(c),
                sorted(&[
                    "id",
                    "level",
                    "unit",
                    "seats",
                    "registered",
                    "stations",
                    "ballots",
                    "turnout",
                    "candidates",
                    "write_ins",
                    "status",
                    "runoff",
                    "problems",
                ]),
                "{c}"
            );
            assert_eq!(
                keys(&c["stations"]),
                sorted(&["expected", "closed", "synced"])
            );
            assert_eq!(
                keys(&c["ballots"]),
                sorted(&["issued", "returned", "valid", "void"])
            );
            for cand in c["candidates"].as_array().expect("candidates") {
                assert_eq!(
                    keys(cand),
                    sorted(&["id", "name", "for", "against", "elected"])
                );
            }
            for w in c["write_ins"].as_array().expect("write_ins") {
                assert_eq!(keys(w), sorted(&["name", "for", "elected"]));
            }
            assert!(
                c["problems"].as_array().is_some_and(|p| !p.is_empty()),
                "{c}"
            );
        }
        let d = &contests[0];
        assert_eq!(
            (d["id"].as_str(), d["level"].as_str(), d["unit"].as_str()),
            (Some("D-001"), Some("district"), Some("xiditou"))
        );
        assert_eq!(d["status"], "elected");
        assert_eq!(d["runoff"], serde_json::Value::Null);
        assert_eq!(d["turnout"], 0.9);
        assert_eq!(d["write_ins"][0]["name"], "孙立新", "most votes first");
        let t = &contests[1];
        assert_eq!(t["status"], "runoff");
        assert_eq!(
            t["runoff"],
            serde_json::json!({"seats": 1, "candidates": ["T-001-1", "T-001-2"]})
        );
        assert_eq!(t["turnout"], 0.8);
        let totals = &v["totals"];
        assert_eq!(totals["seats"], 3);
        assert_eq!(totals["elected"], 2);
        assert_eq!(
            totals["contests_by_status"],
            serde_json::json!({"elected": 1, "runoff": 1})
        );
    }
}
