//! V6–V9: each station's certificates, its chain of signed batches (folded under
//! the log's rules), the fork evidence and the standing changes, each matched with
//! its leaf in the log and every leaf with its file.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::VerifyingKey;
use pollsync_election::{Ledger, StationEvent};
use pollsync_proto::envelope::{self, GENESIS_HASH};
use pollsync_proto::export::decode_export;
use pollsync_proto::tlog::LeafKind;
use pollsync_proto::{chain_hash, identity, pb};
use sha2::{Digest as _, Sha256};

use crate::evidence::{Evidence, escaped};
use crate::log::Log;
use crate::{Failure, Report, Step};

/// What the chains say, for the recount.
#[derive(Debug, Default)]
pub struct Chains {
    /// Each station's events folded (stations with batches).
    pub ledgers: BTreeMap<String, Ledger>,
    /// Stations cut off: revoked, or quarantined after a fork and not released.
    pub cut_off: BTreeSet<String>,
}

/// Runs V6–V9.
pub fn check(evidence: &Evidence, log: &Log, report: &mut Report) -> Step<Chains> {
    let mut chains = Chains::default();
    let mut keys: BTreeMap<String, Vec<VerifyingKey>> = BTreeMap::new();
    let mut accepted: BTreeMap<(String, u64), [u8; 32]> = BTreeMap::new();
    let (mut batches, mut ballots) = (0u64, 0u64);
    for station in evidence.list("stations", "V6")? {
        let folder = format!("stations/{station}");
        if evidence.definition.station(&station).is_none() {
            return Err(Failure::new(
                "V6",
                &folder,
                "not a station of the definition",
            ));
        }
        let station_keys = certificates(evidence, &station)?;
        if let Some((n, b)) = chain(
            evidence,
            log,
            &station,
            &station_keys,
            &mut chains,
            &mut accepted,
            report,
        )? {
            batches += n;
            ballots += b;
        }
        keys.insert(station, station_keys);
    }
    report.steps.push(format!(
        "V6 certificates: {} stations, {} certificates, each issued by the CA",
        keys.len(),
        keys.values().map(Vec::len).sum::<usize>()
    ));
    let in_files = accepted.len();
    if in_files != log.batches().len() {
        let missing = log
            .batches()
            .keys()
            .find(|k| !accepted.contains_key(*k))
            .map(|(s, n)| format!("{s} batch {n}"))
            .unwrap_or_default();
        return Err(Failure::new(
            "V7.9",
            "tile/entries",
            format!("the log has a batch leaf for {missing}, which no batches.export holds"),
        ));
    }
    report.steps.push(format!(
        "V7 batches: {batches} batches, {ballots} ballots, every signature, link and event rule holds, each in the log"
    ));
    let forks = forks(evidence, log, &keys, &accepted)?;
    report.steps.push(format!(
        "V8 forks: {forks} fork evidence, both batches signed, each in the log"
    ));
    let standing = standing(evidence, log, &mut chains.cut_off)?;
    report
        .steps
        .push(format!("V9 standing changes: {standing}, each in the log"));
    Ok(chains)
}

/// V6: the station's certificates `cert-1.der`, `cert-2.der`, …: their keys.
fn certificates(evidence: &Evidence, station: &str) -> Step<Vec<VerifyingKey>> {
    let folder = format!("stations/{station}");
    let election = &evidence.definition.election.id;
    let mut keys = Vec::new();
    for name in evidence.list(&folder, "V6")? {
        if name == "batches.export" {
            continue;
        }
        let expected = format!("cert-{}.der", keys.len() + 1);
        let path = format!("{folder}/{name}");
        if name != expected {
            return Err(Failure::new(
                "V6",
                &path,
                format!("unexpected file (the next certificate is {expected})"),
            ));
        }
        let der = evidence.read(&path, "V6")?;
        let fail = |reason: String| Failure::new("V6", &path, reason);
        identity::verify_issued_by(&der, &evidence.ca_der)
            .map_err(|e| fail(format!("not issued by the election's CA: {e}")))?;
        let cn = identity::station_id_from_cert_der(&der).map_err(|e| fail(e.to_string()))?;
        if cn != station {
            return Err(fail(format!("issued to station {}", escaped(&cn))));
        }
        let ou = identity::election_id_from_cert_der(&der).map_err(|e| fail(e.to_string()))?;
        if &ou != election {
            return Err(fail(format!("issued for election {}", escaped(&ou))));
        }
        let mode = identity::mode_from_cert_der(&der).map_err(|e| fail(e.to_string()))?;
        if mode != evidence.definition.election.mode {
            return Err(fail(format!(
                "issued for a {} election, the definition is of a {} one",
                mode.as_str(),
                evidence.definition.election.mode.as_str()
            )));
        }
        keys.push(identity::verifying_key_from_cert_der(&der).map_err(|e| fail(e.to_string()))?);
    }
    if keys.is_empty() {
        return Err(Failure::new("V6", &folder, "no certificate"));
    }
    Ok(keys)
}

/// V7: the station's chain, folded into its ledger. `None` if it has no batches.
fn chain(
    evidence: &Evidence,
    log: &Log,
    station: &str,
    keys: &[VerifyingKey],
    chains: &mut Chains,
    accepted: &mut BTreeMap<(String, u64), [u8; 32]>,
    report: &mut Report,
) -> Step<Option<(u64, u64)>> {
    let path = format!("stations/{station}/batches.export");
    if !evidence.has(&path) {
        return Ok(None);
    }
    let def = &evidence.definition;
    let export = decode_export(&evidence.read(&path, "V7.1")?)
        .map_err(|e| Failure::new("V7.1", &path, e.to_string()))?;
    if export.election_id != def.election.id || export.station_id != station {
        return Err(Failure::new(
            "V7.1",
            &path,
            "names another election or station",
        ));
    }
    let Some(station_def) = def.station(station) else {
        return Err(Failure::new(
            "V7.1",
            &path,
            "not a station of the definition",
        ));
    };
    let mut ledger = Ledger::new(def, station_def);
    let mut key_at = 0usize;
    let mut prev = GENESIS_HASH;
    let mut ballots = 0u64;
    for (i, signed) in export.batches.iter().enumerate() {
        let expected_sequence = i as u64 + 1;
        let item = format!("{path} batch {expected_sequence}");
        let fail = |step, reason: String| Failure::new(step, &item, reason);
        key_at = keys[key_at..]
            .iter()
            .position(|k| envelope::verify_batch(k, signed).is_ok())
            .map(|p| key_at + p)
            .ok_or_else(|| {
                fail("V7.2", format!("the signature does not verify under certificate {} or a later one of {station}", key_at + 1))
            })?;
        let batch = envelope::decode_batch(signed).map_err(|e| fail("V7.3", e.to_string()))?;
        if batch.election_id != def.election.id || batch.station_id != station {
            return Err(fail("V7.3", "names another election or station".into()));
        }
        if batch.mode != def.election.mode.as_str() {
            return Err(fail(
                "V7.3",
                format!(
                    "is of mode {}, the election of mode {}",
                    escaped(&batch.mode),
                    def.election.mode.as_str()
                ),
            ));
        }
        if batch.definition_sha256 != evidence.definition_sha256 {
            return Err(fail(
                "V7.3",
                "counts against another election definition".into(),
            ));
        }
        if batch.sequence != expected_sequence {
            return Err(fail("V7.4", format!("has sequence {}", batch.sequence)));
        }
        if batch.prev_hash != prev {
            return Err(fail("V7.5", "does not link to the batch before it".into()));
        }
        for (n, event) in batch.events.iter().enumerate() {
            let event = pollsync_proto::convert::event_from_pb(event)
                .map_err(|e| fail("V7.6", format!("event {}: {e}", n + 1)))?;
            if matches!(event, StationEvent::Ballot(_)) {
                ballots += 1;
            }
            ledger
                .apply(def, &event)
                .map_err(|e| fail("V7.6", format!("event {}: {e}", n + 1)))?;
        }
        prev = chain_hash(&signed.batch);
        match log.batches().get(&(station.to_owned(), batch.sequence)) {
            Some((_, hash)) if *hash == prev => {}
            Some((leaf, _)) => {
                return Err(fail(
                    "V7.8",
                    format!("log leaf {leaf} holds another hash for it"),
                ));
            }
            None => return Err(fail("V7.8", "no batch leaf in the log".into())),
        }
        accepted.insert((station.to_owned(), batch.sequence), prev);
    }
    if export.batches.is_empty() {
        return Err(Failure::new("V7.1", &path, "holds no batch"));
    }
    if !starts_with_zero_report(&export.batches[0]) {
        report.notes.push(format!(
            "V7.7 {path}: the chain does not start with a zero report"
        ));
    }
    chains.ledgers.insert(station.to_owned(), ledger);
    Ok(Some((export.batches.len() as u64, ballots)))
}

/// Whether batch 1 starts with a zero report (V7.7; its place and contests were
/// checked by the log's rules in V7.6).
fn starts_with_zero_report(signed: &pb::SignedBatch) -> bool {
    let first = envelope::decode_batch(signed)
        .ok()
        .and_then(|b| b.events.first().cloned())
        .and_then(|e| pollsync_proto::convert::event_from_pb(&e).ok());
    pollsync_election::log::starts_with_zero_report(first.as_ref())
}

/// V8: each fork's two signed batches, and the fork leaves.
fn forks(
    evidence: &Evidence,
    log: &Log,
    keys: &BTreeMap<String, Vec<VerifyingKey>>,
    accepted: &BTreeMap<(String, u64), [u8; 32]>,
) -> Step<usize> {
    let mut seen = BTreeSet::new();
    let names = evidence.list("forks", "V8.1")?;
    for name in &names {
        let path = format!("forks/{name}");
        let fail = |step, reason: String| Failure::new(step, &path, reason);
        let mut parts = name
            .strip_suffix(".export")
            .ok_or_else(|| fail("V8.1", "not an .export file".into()))?
            .rsplitn(3, '-');
        let (_n, sequence, station) = (parts.next(), parts.next(), parts.next());
        let (Some(sequence), Some(station)) =
            (sequence.and_then(|s| s.parse::<u64>().ok()), station)
        else {
            return Err(fail(
                "V8.1",
                "not named <station>-<sequence>-<n>.export".into(),
            ));
        };
        let station_keys = keys.get(station).ok_or_else(|| {
            fail(
                "V8.1",
                format!("station {} has no certificate", escaped(station)),
            )
        })?;
        let export = decode_export(&evidence.read(&path, "V8.1")?)
            .map_err(|e| fail("V8.1", e.to_string()))?;
        let [first, second] = export.batches.as_slice() else {
            return Err(fail(
                "V8.1",
                format!("{} batches, a fork has two", export.batches.len()),
            ));
        };
        for (which, signed) in [("first", first), ("second", second)] {
            if !station_keys
                .iter()
                .any(|k| envelope::verify_batch(k, signed).is_ok())
            {
                return Err(fail(
                    "V8.1",
                    format!("the {which} batch is not signed by a key of {station}"),
                ));
            }
            let batch = envelope::decode_batch(signed).map_err(|e| fail("V8.1", e.to_string()))?;
            if batch.sequence != sequence || batch.station_id != station {
                return Err(fail(
                    "V8.1",
                    format!("the {which} batch is not {station}'s batch {sequence}"),
                ));
            }
        }
        if first.batch == second.batch {
            return Err(fail("V8.1", "the two batches are the same".into()));
        }
        if accepted.get(&(station.to_owned(), sequence)) != Some(&chain_hash(&first.batch)) {
            return Err(fail(
                "V8.2",
                "the first batch is not the accepted one".into(),
            ));
        }
        let other = chain_hash(&second.batch);
        let leaf = log.leaves().iter().position(|l| {
            l.kind == LeafKind::Fork
                && l.station == station
                && l.sequence == sequence
                && l.hash == other
        });
        match leaf {
            Some(index) => {
                seen.insert(index);
            }
            None => return Err(fail("V8.3", "no fork leaf in the log".into())),
        }
    }
    if let Some((index, leaf)) = log
        .leaves()
        .iter()
        .enumerate()
        .find(|(i, l)| l.kind == LeafKind::Fork && !seen.contains(i))
    {
        return Err(Failure::new(
            "V8.4",
            format!("log leaf {index}"),
            format!(
                "a fork of {} at batch {} with no evidence file",
                leaf.station, leaf.sequence
            ),
        ));
    }
    Ok(names.len())
}

/// V9: each standing change's text and leaf; which stations end cut off.
fn standing(evidence: &Evidence, log: &Log, cut_off: &mut BTreeSet<String>) -> Step<usize> {
    let mut changes: BTreeMap<usize, String> = BTreeMap::new();
    for name in evidence.list("standing", "V9.1")? {
        let path = format!("standing/{name}");
        let fail = |reason: String| Failure::new("V9.1", &path, reason);
        let index: usize = name
            .strip_suffix(".txt")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| fail("not named <leaf>.txt".into()))?;
        let bytes = evidence.read(&path, "V9.1")?;
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8".into()))?;
        let line = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .map(str::to_owned)
        };
        let (Some(station), Some(change)) = (line("station"), line("change")) else {
            return Err(fail("not a standing record".into()));
        };
        let leaf = log
            .leaves()
            .get(index)
            .ok_or_else(|| fail(format!("the log has no leaf {index}")))?;
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if leaf.kind != LeafKind::Standing || leaf.hash != hash || leaf.station != station {
            return Err(fail(format!(
                "leaf {index} of the log is not this standing change"
            )));
        }
        changes.insert(index, change);
    }
    let mut quarantined = BTreeSet::new();
    let mut revoked = BTreeSet::new();
    for (index, leaf) in log.leaves().iter().enumerate() {
        match leaf.kind {
            LeafKind::Fork => {
                quarantined.insert(leaf.station.clone());
            }
            LeafKind::Standing => match changes.get(&index).map(String::as_str) {
                Some("RELEASED") => {
                    quarantined.remove(&leaf.station);
                }
                Some("REVOKED") => {
                    revoked.insert(leaf.station.clone());
                }
                Some(_) => {}
                None => {
                    return Err(Failure::new(
                        "V9.2",
                        format!("log leaf {index}"),
                        format!(
                            "a standing change of {} with no standing/{index}.txt",
                            leaf.station
                        ),
                    ));
                }
            },
            LeafKind::Batch => {}
        }
    }
    cut_off.extend(quarantined);
    cut_off.extend(revoked);
    Ok(changes.len())
}
