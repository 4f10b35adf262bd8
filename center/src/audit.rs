//! `center audit`: trust nothing but the raw signed bytes and the election CA. Every
//! enrolled key is checked against its certificate and the CA; every stored batch is
//! re-verified (signature against the station's enrolled key, chain hash, links,
//! sequence, election, station, definition) and every event re-checked under the
//! content rules of ingest (`election::LogRules`: served contest, marks, write-ins,
//! nothing after close, cancel rules, a ballot once) and counted again from those
//! bytes with the election crate's own ledger (`election::Ledger`), the chain walked
//! with the judge's own rule (`ChainHead::place`), and the result is
//! compared with the live tallies the ingest kept, and every ballot id is checked
//! to be in one batch only. Each fork's kept evidence is checked to prove the fork
//! on its own. Any difference is named (G4).
//!
//! The transparency log is checked against what it records (`audit/transparency.rs`): its
//! tree, its newest checkpoint, and one leaf per accepted batch, fork and standing
//! change.
//!
//! A station whose chain does not start with a zero report (SPEC §3) is a finding:
//! named, as the ingest flagged it (`NO_ZERO_REPORT`), but no difference, since the
//! center counted exactly what the batches say.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::VerifyingKey;
use pollsync_election::{Ledger, StationEvent, TallySheet, log};
use pollsync_proto::convert::event_from_pb;
use pollsync_proto::envelope::{ChainHead, Placement, decode_batch_bytes};
use pollsync_proto::identity::{
    cert_der_from_pem, station_id_from_cert_der, verify_issued_by, verifying_key_from_cert_der,
};
use pollsync_proto::{chain_hash, pb, verify_batch};
use serde::Serialize;

use crate::error::{CenterError, Result};
use crate::store::{Records as _, Store, StoredBatch};

mod transparency;

/// What the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// Stations with at least one stored batch.
    pub stations: u64,
    /// Stored batches re-verified.
    pub batches: u64,
    /// Ballot events of a defined contest read from those batches (before the content rules).
    pub ballots: u64,
    /// Every difference or failed check, in words naming the station and batch.
    pub differences: Vec<String>,
    /// What the batches show that operators must look at, though the center's
    /// counts agree with them: a chain that does not start with a zero report.
    pub findings: Vec<String>,
}

impl AuditReport {
    /// Whether the audit found no difference at all.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// A station's contest as counted again from the raw batches.
#[derive(Default, Clone, PartialEq)]
struct Recount {
    computed: TallySheet,
    closed: bool,
    sheet: Option<TallySheet>,
}

/// Audit the store: re-verify every enrolled key and stored batch from the raw signed
/// bytes, count every contest again and compare with the live tallies (see the module
/// documentation). A difference is a finding in the report, not an error; an error means
/// the store could not be read. Everything is read from one snapshot, so a serving
/// center's new batches never look like differences.
pub fn audit(store: &Store) -> Result<AuditReport> {
    store.snapshot(audit_snapshot)
}

fn audit_snapshot(store: &Store) -> Result<AuditReport> {
    let meta = store.meta()?;
    let def = meta.definition()?;
    let mut report = AuditReport::default();
    let mut recount: BTreeMap<(String, String), Recount> = BTreeMap::new();

    let mut by_station: BTreeMap<String, Vec<StoredBatch>> = BTreeMap::new();
    for b in store.batches(None)? {
        by_station.entry(b.station.clone()).or_default().push(b);
    }
    let ca_der = cert_der_from_pem(&meta.ca_cert_pem).map_err(|e| CenterError::Corrupt {
        detail: format!("the stored CA certificate: {e}"),
    })?;
    for (station, batches) in &by_station {
        report.stations += 1;
        let keys = checked_keys(store, station, &ca_der, &mut report)?;
        let station_def = def.station(station);
        if station_def.is_none() {
            report
                .differences
                .push(format!("station {station}: not a station of this election"));
        }
        // The station's log, counted again (a station not in the election has none).
        let mut ledger = station_def.map(|st| Ledger::new(&def, st));
        // Every ballot id of the station, with the first batch holding it.
        let mut first_seen: HashMap<Vec<u8>, u64> = HashMap::new();
        // The chain so far: the stored batches before this one, each the next link.
        let mut head = ChainHead::GENESIS;
        for stored in batches {
            report.batches += 1;
            let at = format!("station {station} batch {}", stored.sequence);
            let mut fail = |what: String| report.differences.push(format!("{at}: {what}"));
            // Its place in the chain by sequence alone (linked to the head's hash).
            if !matches!(head.place(stored.sequence, &head.hash), Placement::Next) {
                fail(format!(
                    "stored as sequence {} but it is batch #{} of the chain",
                    stored.sequence,
                    head.next_sequence()
                ));
            }
            let hash = chain_hash(&stored.batch);
            if hash != stored.hash {
                fail("its bytes do not give its stored chain hash".into());
            }
            let signed = pb::SignedBatch {
                batch: stored.batch.clone(),
                signature: stored.signature.clone(),
            };
            match keys.get(&stored.key_no).map(VerifyingKey::from_bytes) {
                Some(Ok(key)) => {
                    if let Err(e) = verify_batch(&key, &signed) {
                        fail(format!(
                            "signature does not verify with the station's key #{}: {e}",
                            stored.key_no
                        ));
                    }
                }
                _ => fail(format!(
                    "the key #{} that accepted it is not on record",
                    stored.key_no
                )),
            }
            let batch = match decode_batch_bytes(&stored.batch) {
                Ok(b) => b,
                Err(e) => {
                    fail(format!("does not decode: {e}"));
                    head = ChainHead {
                        sequence: head.next_sequence(),
                        hash,
                    };
                    continue;
                }
            };
            // Its link as the next batch, whatever sequence it was stored under.
            if matches!(
                head.place(head.next_sequence(), &batch.prev_hash),
                Placement::BrokenChain
            ) {
                fail("does not link to the batch before it".into());
            }
            if batch.election_id != meta.election_id
                || batch.station_id != *station
                || batch.sequence != stored.sequence
            {
                fail(format!(
                    "names election {}, station {}, sequence {}",
                    batch.election_id, batch.station_id, batch.sequence
                ));
            }
            if batch.definition_sha256.as_slice() != meta.definition_sha256.as_slice() {
                fail("was sealed against another election definition".into());
            }
            if batch.mode != def.election.mode.as_str() {
                fail(format!(
                    "is of mode {:?}, the election of mode {}",
                    batch.mode,
                    def.election.mode.as_str()
                ));
            }
            head = ChainHead {
                sequence: head.next_sequence(),
                hash,
            };
            if stored.sequence == 1 {
                let first = batch.events.first().map(event_from_pb);
                let opening = first.as_ref().and_then(|e| e.as_ref().ok());
                if !log::starts_with_zero_report(opening) {
                    let opens = match (&first, opening) {
                        (None, _) => "holds no event".to_owned(),
                        (Some(_), Some(e)) => format!("opens with a {} event", e.kind()),
                        (Some(_), None) => "opens with an event that does not read".to_owned(),
                    };
                    report.findings.push(format!(
                        "station {station}: its chain does not start with a zero report (batch 1 {opens})"
                    ));
                }
            }
            for event in &batch.events {
                if let Some(pb::event::Kind::Ballot(b)) = &event.kind {
                    let first = *first_seen.entry(b.id.clone()).or_insert(stored.sequence);
                    if first != stored.sequence {
                        report.differences.push(format!(
                            "{at}: ballot {} is also in batch {first}: it is counted twice",
                            hex::encode(&b.id)
                        ));
                    }
                }
                match event_from_pb(event) {
                    Ok(e) => {
                        if let StationEvent::Ballot(b) = &e
                            && def.contest(&b.contest).is_some()
                        {
                            report.ballots += 1;
                        }
                        // The content rules of ingest, again, from the raw bytes; an
                        // event that breaks them is named and not counted.
                        if let Some(ledger) = ledger.as_mut()
                            && let Err(broken) = ledger.apply(&def, &e)
                        {
                            report
                                .differences
                                .push(format!("{at}: an event breaks the log's rules: {broken}"));
                        }
                    }
                    Err(e) => report
                        .differences
                        .push(format!("{at}: an event does not read: {e}")),
                }
            }
        }
        for contest in ledger.iter().flat_map(Ledger::contests) {
            recount.insert(
                (station.clone(), contest.id().to_owned()),
                Recount {
                    computed: contest.computed().clone(),
                    closed: contest.closed(),
                    sheet: contest.closing_sheet().cloned(),
                },
            );
        }
    }

    // Compare with the live tallies, both ways.
    let mut live: BTreeMap<(String, String), Recount> = BTreeMap::new();
    for t in store.tallies()? {
        live.insert(
            (t.station.clone(), t.contest.clone()),
            Recount {
                computed: t.computed,
                closed: t.closed,
                sheet: t.sheet,
            },
        );
    }
    let keys: std::collections::BTreeSet<_> = live.keys().chain(recount.keys()).cloned().collect();
    for key in keys {
        let (station, contest) = &key;
        let contest_def = def.contest(contest);
        let empty = || Recount {
            computed: contest_def.map_or_else(TallySheet::default, TallySheet::for_contest),
            ..Recount::default()
        };
        let stored = live.get(&key).cloned().unwrap_or_else(empty);
        let again = recount.get(&key).cloned().unwrap_or_else(empty);
        for d in stored.computed.without_zeros().differences_as(
            &again.computed.without_zeros(),
            "live tally",
            "recount",
        ) {
            report
                .differences
                .push(format!("station {station}, contest {contest}: {d}"));
        }
        if stored.computed.without_zeros().against != again.computed.without_zeros().against {
            report.differences.push(format!("station {station}, contest {contest}: AGAINST votes differ between the live tally and the recount"));
        }
        if stored.closed != again.closed || stored.sheet != again.sheet {
            report.differences.push(format!(
                "station {station}, contest {contest}: the stored close (closed {}) is not the one in its batches (closed {})",
                stored.closed, again.closed
            ));
        }
    }
    audit_fork_evidence(store, &by_station, &mut report)?;
    transparency::audit_log(store, &meta.log_verifier_key, &by_station, &mut report)?;
    Ok(report)
}

/// The station's enrolled keys that check out: each certificate issued by the
/// election CA, naming this station, with the public key the row claims. A key row
/// that does not is named and left out, so nothing it "verifies" counts.
fn checked_keys(
    store: &Store,
    station: &str,
    ca_der: &[u8],
    report: &mut AuditReport,
) -> Result<HashMap<u32, [u8; 32]>> {
    let mut keys = HashMap::new();
    for k in store.keys_of(station)? {
        let at = format!("station {station} key #{}", k.key_no);
        if let Err(e) = verify_issued_by(&k.cert_der, ca_der) {
            report.differences.push(format!(
                "{at}: its certificate is not from the election CA: {e}"
            ));
            continue;
        }
        match station_id_from_cert_der(&k.cert_der) {
            Ok(cn) if cn == station => {}
            Ok(cn) => {
                report.differences.push(format!(
                    "{at}: its certificate names station {}",
                    pollsync_proto::limits::escape_text(&cn, 80)
                ));
                continue;
            }
            Err(e) => {
                report
                    .differences
                    .push(format!("{at}: its certificate does not read: {e}"));
                continue;
            }
        }
        match verifying_key_from_cert_der(&k.cert_der) {
            Ok(key) if key.to_bytes() == k.public_key => {
                keys.insert(k.key_no, k.public_key);
            }
            _ => report.differences.push(format!(
                "{at}: the stored public key is not the one in its certificate"
            )),
        }
    }
    Ok(keys)
}

/// Each fork's evidence must prove a fork on its own: both batches verify under the
/// station key recorded for them, name the station and the same sequence, differ,
/// and the center's one is the batch it holds at that sequence.
fn audit_fork_evidence(
    store: &Store,
    held: &BTreeMap<String, Vec<StoredBatch>>,
    report: &mut AuditReport,
) -> Result<()> {
    for e in store.fork_evidence()? {
        let at = format!(
            "fork evidence of station {} batch {}",
            e.station, e.sequence
        );
        let keys: HashMap<u32, [u8; 32]> = store
            .keys_of(&e.station)?
            .into_iter()
            .map(|k| (k.key_no, k.public_key))
            .collect();
        for (which, b) in [
            ("the center's batch", &e.stored),
            ("the other batch", &e.other),
        ] {
            let signed = pb::SignedBatch {
                batch: b.batch.clone(),
                signature: b.signature.clone(),
            };
            let verified = keys
                .get(&b.key_no)
                .and_then(|k| VerifyingKey::from_bytes(k).ok())
                .is_some_and(|k| verify_batch(&k, &signed).is_ok());
            if !verified {
                report.differences.push(format!(
                    "{at}: {which} does not verify with the station's key #{}",
                    b.key_no
                ));
            }
            let names = decode_batch_bytes(&b.batch)
                .is_ok_and(|d| d.station_id == e.station && d.sequence == e.sequence);
            if !names || chain_hash(&b.batch) != b.hash {
                report.differences.push(format!(
                    "{at}: {which} is not batch {} of station {} with its recorded hash",
                    e.sequence, e.station
                ));
            }
        }
        if e.stored.batch == e.other.batch {
            report
                .differences
                .push(format!("{at}: the two batches are the same bytes"));
        }
        let holds = held
            .get(&e.station)
            .and_then(|bs| bs.iter().find(|b| b.sequence == e.sequence))
            .is_some_and(|b| b.batch == e.stored.batch);
        if !holds {
            report.differences.push(format!(
                "{at}: the center's batch in the evidence is not the one it holds"
            ));
        }
    }
    Ok(())
}
