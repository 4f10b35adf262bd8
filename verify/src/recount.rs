//! V10–V11: every contest counted again from the folded chains under the
//! election's rule set, and compared with the published results (`results.json`,
//! `results-nist.json`).

use std::collections::BTreeMap;

use pollsync_election::{ContestInput, ContestOutcome, StationReport, TallySheet, rules_by_id};
use pollsync_proto::tlog;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::chains::Chains;
use crate::evidence::Evidence;
use crate::{Failure, Step};

/// Runs V10 and V11; the line to report.
pub fn check(evidence: &Evidence, chains: &Chains) -> Step<String> {
    let def = &evidence.definition;
    let rules = rules_by_id(&def.election.rules).ok_or_else(|| {
        Failure::new(
            "V10",
            "election.toml",
            format!("rule set {} is unknown", def.election.rules),
        )
    })?;
    let mut outcomes = Vec::new();
    for contest in &def.contests {
        let stations = def
            .stations_of(&contest.id)
            .map(|s| {
                let ledger = chains
                    .ledgers
                    .get(&s.id)
                    .and_then(|l| l.contest(&contest.id));
                let closed = ledger.is_some_and(|l| l.closed());
                StationReport {
                    station_id: s.id.clone(),
                    closed,
                    // Its close is at the center; nothing of it comes after.
                    synced: closed && !chains.cut_off.contains(&s.id),
                    sheet: ledger.and_then(|l| l.closing_sheet().cloned()),
                    computed: ledger.map_or_else(
                        || TallySheet::for_contest(contest),
                        |l| l.computed().clone(),
                    ),
                }
            })
            .collect();
        outcomes.push(rules.decide(&ContestInput { contest, stations }));
    }
    let published = read_json(evidence, "results.json", "V10.1")?;
    compare_results(&published, &outcomes)?;
    let nist = read_json(evidence, "results-nist.json", "V11")?;
    compare_nist(&nist, &outcomes)?;
    signed_results(evidence)?;
    Ok(format!(
        "V10 recount: {} contests counted again, equal to results.json; V11: results-nist.json agrees; V12: both signed by the log key",
        outcomes.len()
    ))
}

/// V12: `results.sig`, signed by the log key, names the SHA-256 of both results
/// files.
fn signed_results(evidence: &Evidence) -> Step<()> {
    let note = evidence.read("results.sig", "V12")?;
    let named = tlog::open_results(&note, &evidence.log_key)
        .map_err(|e| Failure::new("V12", "results.sig", e.to_string()))?;
    for file in ["results.json", "results-nist.json"] {
        let digest = hex::encode(Sha256::digest(evidence.read(file, "V12")?));
        if !named
            .iter()
            .any(|(name, hash)| name == file && *hash == digest)
        {
            return Err(Failure::new(
                "V12",
                file,
                "its SHA-256 is not the one results.sig signs",
            ));
        }
    }
    Ok(())
}

fn read_json(evidence: &Evidence, path: &str, step: &'static str) -> Step<Value> {
    serde_json::from_slice(&evidence.read(path, step)?)
        .map_err(|e| Failure::new(step, path, format!("not JSON: {e}")))
}

/// The published figures V10.1 compares, as the recount gives them.
fn figures(o: &ContestOutcome) -> Value {
    json!({
        "closed": o.stations.closed,
        "ballots": {"issued": o.issued, "returned": o.returned, "valid": o.valid, "void": o.void},
        "candidates": o.candidates,
        "write_ins": o.write_ins,
        "status": o.status,
        "runoff": o.runoff,
    })
}

fn compare_results(published: &Value, outcomes: &[ContestOutcome]) -> Step<()> {
    let contests = published["contests"]
        .as_array()
        .ok_or_else(|| Failure::new("V10.1", "results.json", "no contests array"))?;
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    for c in contests {
        let id = c["id"].as_str().unwrap_or_default();
        if by_id.insert(id, c).is_some() {
            return Err(Failure::new(
                "V10.2",
                "results.json",
                format!("contest {id} twice"),
            ));
        }
    }
    for o in outcomes {
        let Some(c) = by_id.remove(o.contest.as_str()) else {
            return Err(Failure::new(
                "V10.2",
                "results.json",
                format!("contest {} is missing", o.contest),
            ));
        };
        let shown = json!({
            "closed": c["stations"]["closed"],
            "ballots": c["ballots"],
            "candidates": c["candidates"],
            "write_ins": c["write_ins"],
            "status": c["status"],
            "runoff": c["runoff"],
        });
        let counted = figures(o);
        if shown != counted {
            let field = [
                "closed",
                "ballots",
                "candidates",
                "write_ins",
                "status",
                "runoff",
            ]
            .into_iter()
            .find(|f| shown[f] != counted[f])
            .unwrap_or("?");
            return Err(Failure::new(
                "V10.1",
                format!("results.json contest {}", o.contest),
                format!(
                    "{field} is {}, the recount gives {}",
                    shown[field], counted[field]
                ),
            ));
        }
    }
    if let Some(extra) = by_id.keys().next() {
        return Err(Failure::new(
            "V10.2",
            "results.json",
            format!("contest {extra} is not in the definition"),
        ));
    }
    Ok(())
}

/// V11: each contest's candidate totals in the NIST report: the `VoteCounts` of
/// `Type` `total` at the contest's `ElectionDistrictId`, per `CandidateSelection`
/// (objects named `contest-<id>` and `cand-<id>` after the definition's ids).
fn compare_nist(nist: &Value, outcomes: &[ContestOutcome]) -> Step<()> {
    let contests = nist["Election"][0]["Contest"]
        .as_array()
        .ok_or_else(|| Failure::new("V11", "results-nist.json", "no Election[0].Contest"))?;
    for o in outcomes {
        let object = format!("contest-{}", o.contest);
        let Some(contest) = contests.iter().find(|c| c["@id"] == object.as_str()) else {
            return Err(Failure::new(
                "V11",
                "results-nist.json",
                format!("contest {} is missing", o.contest),
            ));
        };
        let district = &contest["ElectionDistrictId"];
        for candidate in &o.candidates {
            let object = format!("cand-{}", candidate.id);
            let total: Option<u64> = contest["ContestSelection"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| {
                    s["CandidateIds"]
                        .as_array()
                        .is_some_and(|ids| ids.len() == 1 && ids[0] == object.as_str())
                })
                .and_then(|s| {
                    s["VoteCounts"]
                        .as_array()?
                        .iter()
                        .find(|v| v["Type"] == "total" && &v["GpUnitId"] == district)?["Count"]
                        .as_u64()
                });
            if total != Some(candidate.for_votes) {
                return Err(Failure::new(
                    "V11",
                    format!("results-nist.json contest {}", o.contest),
                    format!(
                        "candidate {} has {} votes at the district, the recount gives {}",
                        candidate.id,
                        total.map_or_else(|| "no".to_owned(), |t| t.to_string()),
                        candidate.for_votes
                    ),
                ));
            }
        }
    }
    Ok(())
}
