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
use crate::store::{AlertRow, StationRow, Store};

/// Every contest's outcome and the totals.
pub struct Results {
    pub definition: ElectionDefinition,
    pub outcomes: Vec<ContestOutcome>,
    pub totals: Totals,
}

/// A station has sent everything it said it sealed, and is not cut off.
fn synced(row: Option<&StationRow>) -> bool {
    row.is_some_and(|r| r.head_sequence >= r.local_head_sequence && !r.quarantined && !r.revoked)
}

/// Decide every contest (or only `only`) from the store as it stands.
pub fn compute(store: &Store, only: Option<&str>) -> Result<Results> {
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
    for contest in &definition.contests {
        if only.is_some_and(|id| id != contest.id) {
            continue;
        }
        let reports: Vec<StationReport> = definition
            .stations_of(&contest.id)
            .map(|s| {
                let t = tallies.get(&(s.id.clone(), contest.id.clone()));
                StationReport {
                    station_id: s.id.clone(),
                    closed: t.is_some_and(|t| t.closed),
                    synced: synced(stations.get(&s.id)),
                    sheet: t.and_then(|t| t.sheet.clone()),
                    computed: t
                        .map_or_else(|| TallySheet::for_contest(contest), |t| t.computed.clone()),
                }
            })
            .collect();
        let mut outcome = rules.decide(&ContestInput {
            contest,
            stations: reports,
        });
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
            for r in &o.candidates {
                out.push_str(&format!(
                    "  {}{} FOR {:>8}  AGAINST {:>8}{}\n",
                    pad(&r.name, 10),
                    pad(&r.id, 12),
                    r.for_votes,
                    r.against,
                    if r.elected { "  elected" } else { "" }
                ));
            }
            for w in &o.write_ins {
                out.push_str(&format!(
                    "  {}{} FOR {:>8}{}\n",
                    pad(&w.name, 10),
                    pad("(write-in)", 12),
                    w.for_votes,
                    if w.elected { "  elected" } else { "" }
                ));
            }
            for p in &o.problems {
                out.push_str(&format!("  ! {p}\n"));
            }
        }
        let t = &self.totals.overall;
        out.push_str(&format!(
            "\ntotal: {} of {} seats filled in {} contests; turnout {:.2}%\n",
            t.elected,
            t.seats,
            t.contests,
            t.turnout * 100.0
        ));
        for (status, n) in &t.contests_by_status {
            out.push_str(&format!("  {status}: {n}\n"));
        }
        out
    }
}

/// Pad to `width` display columns, counting CJK characters as two.
fn pad(text: &str, width: usize) -> String {
    let used: usize = text
        .chars()
        .map(|ch| if ch.len_utf8() >= 3 { 2 } else { 1 })
        .sum();
    format!("{text}{} ", " ".repeat(width.saturating_sub(used)))
}

/// A CSV field, quoted when it needs to be.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
