//! `center results --format nist`: the results in the Election Results Reporting
//! Common Data Format of NIST SP 1500-100 v2 (JSON), so that any tool built for that
//! standard reads them.
//!
//! How the election maps onto the standard's words:
//! - GpUnits (all `ReportingUnit`s): the election's area (`gpu-election`), each unit
//!   (镇 as `town`, 街道 as `other`), each contest's electoral district (选区,
//!   `other`, with the voters on its roll) and each station (投票站 as
//!   `polling-place`, 流动票箱 as `other`). A unit is composed of its stations, a
//!   district of the stations that serve it.
//! - Each contest is a `CandidateContest` of its district, `VotesAllowed` and
//!   `NumberElected` its seats, `SubUnitsReported` its stations reporting. Each formal
//!   candidate and each write-in name is a selection, with its FOR votes per station
//!   and for the district as `total` counts. The standard has no AGAINST vote: it is
//!   given beside them as `other` counts named `against`, which a reader summing
//!   `total` counts leaves out.
//! - Void ballots (more FOR votes than seats) are the standard's overvotes; ballots
//!   returned are the ballots cast of the district.
//! - The report is `unofficial-complete` once every station reports for every
//!   contest, `unofficial-partial` before; `IsTest` says a test election.

use std::collections::BTreeMap;

use pollsync_election::{
    ContestOutcome, ContestStatus, Mode, StationKind, StationReport, TallySheet, UnitKind,
};
use serde_json::{Value, json};

use super::Results;

/// The language of the definition's names.
const LANGUAGE: &str = "zh";

/// Text in the standard's form.
fn text(content: &str) -> Value {
    json!({
        "@type": "ElectionResults.InternationalizedText",
        "Text": [{"@type": "ElectionResults.LanguageString", "Content": content, "Language": LANGUAGE}],
    })
}

/// A count of votes for a selection at one GpUnit: FOR as `total`, AGAINST as
/// `other`/`against`.
fn votes(gpu: &str, kind: &str, count: u64) -> Value {
    let mut v = json!({
        "@type": "ElectionResults.VoteCounts",
        "Count": count,
        "GpUnitId": gpu,
        "Type": if kind == "total" { "total" } else { "other" },
    });
    if kind != "total" {
        v["OtherType"] = kind.into();
    }
    v
}

fn station_gpu(id: &str) -> String {
    format!("gpu-station-{id}")
}

fn district_gpu(contest: &str) -> String {
    format!("gpu-district-{contest}")
}

/// A date-time as the standard's pattern takes it: UTC, whole seconds.
fn date_time(unix_ms: u64) -> String {
    let full = pollsync_proto::time::utc_time(unix_ms);
    // `YYYY-MM-DDTHH:MM:SS.mmmZ` → `YYYY-MM-DDTHH:MM:SSZ`
    match full.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => full,
    }
}

/// Whether a station reports for its contest (closed there, everything in).
fn reporting(r: &StationReport) -> bool {
    r.closed && r.synced
}

impl Results {
    /// The results as a NIST SP 1500-100 v2 `ElectionReport`, generated at
    /// `generated_unix_ms`.
    pub fn to_nist(&self, generated_unix_ms: u64) -> Value {
        let def = &self.definition;
        let no_reports = Vec::new();
        let reports_of = |contest: &str| self.reports.get(contest).unwrap_or(&no_reports);
        let complete = self
            .outcomes
            .iter()
            .all(|o| reports_of(&o.contest).iter().all(reporting));

        let mut parties: BTreeMap<&str, String> = BTreeMap::new();
        for c in &def.contests {
            for k in &c.candidates {
                let next = format!("party-{}", parties.len() + 1);
                parties.entry(k.party.as_str()).or_insert(next);
            }
        }

        let mut gp_units = vec![json!({
            "@id": "gpu-election",
            "@type": "ElectionResults.ReportingUnit",
            "Type": "other",
            "OtherType": "election area",
            "Name": text(&def.election.name),
            "ComposingGpUnitIds": def.units.iter().map(|u| format!("gpu-unit-{}", u.id)).collect::<Vec<_>>(),
        })];
        for u in &def.units {
            let stations: Vec<String> = def
                .stations
                .iter()
                .filter(|s| {
                    s.contests
                        .iter()
                        .any(|c| def.contest(c).is_some_and(|c| c.unit == u.id))
                })
                .map(|s| station_gpu(&s.id))
                .collect();
            let mut unit = json!({
                "@id": format!("gpu-unit-{}", u.id),
                "@type": "ElectionResults.ReportingUnit",
                "Name": text(&u.name),
                "ComposingGpUnitIds": stations,
            });
            match u.kind {
                UnitKind::Town => unit["Type"] = "town".into(),
                UnitKind::Street => {
                    unit["Type"] = "other".into();
                    unit["OtherType"] = "street (街道)".into();
                }
            }
            gp_units.push(unit);
        }
        for c in &def.contests {
            let stations: Vec<String> =
                def.stations_of(&c.id).map(|s| station_gpu(&s.id)).collect();
            let reported = reports_of(&c.id).iter().filter(|r| reporting(r)).count();
            gp_units.push(json!({
                "@id": district_gpu(&c.id),
                "@type": "ElectionResults.ReportingUnit",
                "Type": "other",
                "OtherType": "electoral district (选区)",
                "IsDistricted": true,
                "Name": text(&c.name),
                "ComposingGpUnitIds": stations,
                "VotersRegistered": c.registered,
                "SubUnitsReported": reported,
                "TotalSubUnits": stations.len(),
            }));
        }
        for s in &def.stations {
            let mut station = json!({
                "@id": station_gpu(&s.id),
                "@type": "ElectionResults.ReportingUnit",
                "Name": text(&s.name),
            });
            match s.kind {
                StationKind::Fixed => station["Type"] = "polling-place".into(),
                StationKind::Mobile => {
                    station["Type"] = "other".into();
                    station["OtherType"] = "mobile ballot box (流动票箱)".into();
                }
            }
            gp_units.push(station);
        }

        let mut candidates = Vec::new();
        let mut contests = Vec::new();
        let mut ballot_counts = Vec::new();
        for (order, o) in self.outcomes.iter().enumerate() {
            let Some(c) = def.contest(&o.contest) else {
                continue;
            };
            let reports = reports_of(&c.id);
            let district = district_gpu(&c.id);
            let mut selections = Vec::new();
            for (i, k) in c.candidates.iter().enumerate() {
                let mut candidate = json!({
                    "@id": format!("cand-{}", k.id),
                    "@type": "ElectionResults.Candidate",
                    "BallotName": text(&k.name),
                    "IsIncumbent": k.incumbent,
                });
                if let Some(party) = parties.get(k.party.as_str()) {
                    candidate["PartyId"] = party.clone().into();
                }
                if let Some(status) = post_election_status(o, &k.id) {
                    candidate["PostElectionStatus"] = status.into();
                }
                candidates.push(candidate);
                let result = o.candidates.iter().find(|r| r.id == k.id);
                let mut counts = per_station(reports, |sheet| {
                    [
                        ("total", sheet.for_of(&k.id)),
                        ("against", sheet.against_of(&k.id)),
                    ]
                });
                counts.push(votes(&district, "total", result.map_or(0, |r| r.for_votes)));
                counts.push(votes(&district, "against", result.map_or(0, |r| r.against)));
                selections.push(json!({
                    "@id": format!("sel-{}", k.id),
                    "@type": "ElectionResults.CandidateSelection",
                    "CandidateIds": [format!("cand-{}", k.id)],
                    "SequenceOrder": i + 1,
                    "VoteCounts": counts,
                }));
            }
            for (i, w) in o.write_ins.iter().enumerate() {
                let id = format!("cand-{}-write-in-{}", c.id, i + 1);
                let mut candidate = json!({
                    "@id": id,
                    "@type": "ElectionResults.Candidate",
                    "BallotName": text(&w.name),
                });
                if let Some(status) = post_election_status(o, &w.name) {
                    candidate["PostElectionStatus"] = status.into();
                }
                candidates.push(candidate);
                let mut counts =
                    per_station(reports, |sheet| [("total", sheet.write_in_of(&w.name))]);
                counts.push(votes(&district, "total", w.for_votes));
                selections.push(json!({
                    "@id": format!("sel-{}-write-in-{}", c.id, i + 1),
                    "@type": "ElectionResults.CandidateSelection",
                    "CandidateIds": [id],
                    "IsWriteIn": true,
                    "VoteCounts": counts,
                }));
            }
            let mut overvotes: Vec<Value> = reports
                .iter()
                .filter(|r| r.computed.void > 0)
                .map(|r| {
                    json!({
                        "@type": "ElectionResults.OtherCounts",
                        "GpUnitId": station_gpu(&r.station_id),
                        "Overvotes": r.computed.void,
                    })
                })
                .collect();
            overvotes.push(json!({
                "@type": "ElectionResults.OtherCounts",
                "GpUnitId": district,
                "Overvotes": o.void,
            }));
            contests.push(json!({
                "@id": format!("contest-{}", c.id),
                "@type": "ElectionResults.CandidateContest",
                "Name": c.name,
                "ElectionDistrictId": district,
                "VotesAllowed": c.seats,
                "NumberElected": c.seats,
                "SequenceOrder": order + 1,
                "SubUnitsReported": reports.iter().filter(|r| reporting(r)).count(),
                "TotalSubUnits": reports.len(),
                "ContestSelection": selections,
                "OtherCounts": overvotes,
            }));
            ballot_counts.push(json!({
                "@type": "ElectionResults.BallotCounts",
                "GpUnitId": district,
                "Type": "total",
                "BallotsCast": o.returned,
            }));
        }

        let party_list: Vec<Value> = parties
            .iter()
            .map(|(name, id)| {
                json!({
                    "@id": id,
                    "@type": "ElectionResults.Party",
                    "Name": text(name),
                })
            })
            .collect();
        json!({
            "@type": "ElectionResults.ElectionReport",
            "Format": "precinct-level",
            "GeneratedDate": date_time(generated_unix_ms),
            "Issuer": format!("counting center of {}", def.election.name),
            "IssuerAbbreviation": def.election.id,
            "VendorApplicationId": concat!("pollsync ", env!("CARGO_PKG_VERSION")),
            "SequenceStart": 1,
            "SequenceEnd": 1,
            "Status": if complete { "unofficial-complete" } else { "unofficial-partial" },
            "IsTest": def.election.mode == Mode::Test,
            "GpUnit": gp_units,
            "Party": party_list,
            "Election": [{
                "@type": "ElectionResults.Election",
                "ElectionScopeId": "gpu-election",
                "Name": text(&def.election.name),
                "StartDate": def.election.date,
                "EndDate": def.election.date,
                "Type": "general",
                "Candidate": candidates,
                "Contest": contests,
                "BallotCounts": ballot_counts,
            }],
        })
    }
}

/// Counts at each station of a contest, from the tally the center computed from its
/// ballots: `figures` gives the (kind, count) pairs of one station's sheet.
fn per_station<const N: usize>(
    reports: &[StationReport],
    figures: impl Fn(&TallySheet) -> [(&'static str, u64); N],
) -> Vec<Value> {
    reports
        .iter()
        .flat_map(|r| {
            let gpu = station_gpu(&r.station_id);
            figures(&r.computed).map(|(kind, count)| votes(&gpu, kind, count))
        })
        .collect()
}

/// What the outcome says of an entrant (a candidate id or a write-in name): elected,
/// in the further ballot, or not elected in a contest decided; nothing while the
/// contest is pending, in discrepancy, void or invalid.
fn post_election_status(o: &ContestOutcome, entrant: &str) -> Option<&'static str> {
    if o.elected.iter().any(|e| e == entrant) {
        return Some("winner");
    }
    match o.status {
        ContestStatus::Elected => Some("defeated"),
        ContestStatus::Runoff | ContestStatus::Tie => {
            let advanced = o
                .runoff
                .as_ref()
                .is_some_and(|r| r.candidates.iter().any(|c| c == entrant))
                || o.tied.iter().any(|t| t == entrant);
            Some(if advanced {
                "advanced-to-runoff"
            } else {
                "defeated"
            })
        }
        ContestStatus::Pending
        | ContestStatus::Discrepancy
        | ContestStatus::Void
        | ContestStatus::Invalid => None,
    }
}
