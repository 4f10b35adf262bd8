//! `center audit`'s check of the transparency log (SPEC §10) against what it
//! records, from the store alone: the leaf records rebuild a tree whose root is the
//! root of the stored hashes that tiles are served from; the newest checkpoint is
//! signed by the log key over that tree at its size; every accepted batch is the
//! batch leaf its row names, and every batch leaf is an accepted batch; every fork
//! leaf has its evidence and every standing leaf its text, and the other way round.
//! The two verifiers check the same on an export (V5, V7.8–9, V8.3–4, V9); this
//! is the center's own check, before anything is exported.

use std::collections::{BTreeMap, BTreeSet};

use pollsync_proto::tlog::{self, Leaf, LeafKind, MemoryLog};
use sha2::{Digest as _, Sha256};

use super::AuditReport;
use crate::error::Result;
use crate::store::{Records as _, Store, StoredBatch, log as store_log};

/// The leaves read, by (kind byte, station, sequence): each leaf's index and hash.
type LeavesByKey = BTreeMap<(u8, String, u64), Vec<(u64, [u8; 32])>>;

/// Checks the log; every difference goes into `report`.
pub fn audit_log(
    store: &Store,
    verifier_key: &str,
    held: &BTreeMap<String, Vec<StoredBatch>>,
    report: &mut AuditReport,
) -> Result<()> {
    let size = store.log_size()?;
    let mut rebuilt = MemoryLog::default();
    let mut leaves = LeavesByKey::new();
    for (index, entry) in (0..size).zip(store.log_entries(0, size)?) {
        rebuilt.append(&entry);
        match Leaf::from_bytes(&entry) {
            Ok(leaf) => leaves
                .entry((leaf.kind as u8, leaf.station, leaf.sequence))
                .or_default()
                .push((index, leaf.hash)),
            Err(e) => report
                .differences
                .push(format!("log leaf {index}: not a leaf record: {e}")),
        }
    }
    if rebuilt.size() != size {
        report.differences.push(format!(
            "the log holds {} leaf records but says it has {size} leaves",
            rebuilt.size()
        ));
        return Ok(());
    }
    if size > 0 {
        let stored_root = store_log::root(store, size)?;
        let rebuilt_root = rebuilt
            .root(size)
            .map_err(|e| crate::error::CenterError::Corrupt {
                detail: format!("the log's leaf records: {e}"),
            })?;
        if stored_root != rebuilt_root {
            report.differences.push(format!(
                "the log's stored hashes (which its tiles serve) are not the tree of its {size} leaf records"
            ));
        }
    }
    match store.latest_checkpoint()? {
        None if size > 0 => report
            .differences
            .push(format!("the log has {size} leaves but no signed checkpoint")),
        None => {}
        Some((checkpoint_size, note)) => match tlog::open_checkpoint(&note, verifier_key) {
            Err(e) => report.differences.push(format!(
                "the newest checkpoint ({checkpoint_size} leaves) does not open with the log key: {e}"
            )),
            Ok(opened) if opened.size() != checkpoint_size || checkpoint_size > size => {
                report.differences.push(format!(
                    "the newest checkpoint says {} leaves, stored as {checkpoint_size}, of a log of {size}",
                    opened.size()
                ))
            }
            Ok(opened) => {
                let root = rebuilt.root(checkpoint_size).ok();
                if checkpoint_size > 0 && root.as_ref() != Some(opened.hash()) {
                    report.differences.push(format!(
                        "the newest checkpoint's root is not the root of the log's first {checkpoint_size} leaves"
                    ));
                }
            }
        },
    }

    // Batches: each accepted batch is its batch leaf, once; no other batch leaf.
    let mut expected_batches: BTreeSet<(String, u64)> = BTreeSet::new();
    for (station, batches) in held {
        for b in batches {
            expected_batches.insert((station.clone(), b.sequence));
            let leaf_named = store.batch_leaf(station, b.sequence)?;
            let found = leaves.get(&(LeafKind::Batch as u8, station.clone(), b.sequence));
            match found.map(Vec::as_slice) {
                Some([(index, hash)]) if Some(*index) == leaf_named && *hash == b.hash => {}
                Some([(index, hash)]) if *hash == b.hash => report.differences.push(format!(
                    "station {station} batch {}: stored as leaf {leaf_named:?}, but it is leaf {index}",
                    b.sequence
                )),
                Some([_]) => report.differences.push(format!(
                    "station {station} batch {}: its log leaf records another chain hash",
                    b.sequence
                )),
                None | Some([]) => report.differences.push(format!(
                    "station {station} batch {}: accepted but not in the log",
                    b.sequence
                )),
                Some(many) => report.differences.push(format!(
                    "station {station} batch {}: {} batch leaves in the log",
                    b.sequence,
                    many.len()
                )),
            }
        }
    }
    for ((kind, station, sequence), found) in &leaves {
        if *kind == LeafKind::Batch as u8
            && !expected_batches.contains(&(station.clone(), *sequence))
        {
            report.differences.push(format!(
                "log leaf {}: a batch leaf of station {station} batch {sequence}, which the center does not hold",
                found[0].0
            ));
        }
    }

    // Forks: each evidence has its fork leaf (the other batch's hash); no other.
    let mut forks: BTreeSet<(String, u64, [u8; 32])> = BTreeSet::new();
    for e in store.fork_evidence()? {
        let has = leaves
            .get(&(LeafKind::Fork as u8, e.station.clone(), e.sequence))
            .is_some_and(|found| found.iter().any(|(_, h)| *h == e.other.hash));
        if !has {
            report.differences.push(format!(
                "fork evidence of station {} batch {}: no fork leaf in the log",
                e.station, e.sequence
            ));
        }
        forks.insert((e.station, e.sequence, e.other.hash));
    }
    for ((kind, station, sequence), found) in &leaves {
        if *kind != LeafKind::Fork as u8 {
            continue;
        }
        for (index, hash) in found {
            if !forks.contains(&(station.clone(), *sequence, *hash)) {
                report.differences.push(format!(
                    "log leaf {index}: a fork leaf of station {station} batch {sequence} without its evidence"
                ));
            }
        }
    }

    // Standing changes: each leaf has its text, whose SHA-256 is the leaf's hash.
    let texts: BTreeMap<u64, (String, String)> = store
        .standing_records()?
        .into_iter()
        .map(|(leaf, station, text)| (leaf, (station, text)))
        .collect();
    let mut standing_leaves = BTreeSet::new();
    for ((kind, station, _), found) in &leaves {
        if *kind != LeafKind::Standing as u8 {
            continue;
        }
        for (index, hash) in found {
            standing_leaves.insert(*index);
            match texts.get(index) {
                Some((named, text))
                    if named == station && <[u8; 32]>::from(Sha256::digest(text)) == *hash => {}
                Some(_) => report.differences.push(format!(
                    "log leaf {index}: the standing change's text is not the one the leaf records"
                )),
                None => report.differences.push(format!(
                    "log leaf {index}: a standing change of station {station} without its text"
                )),
            }
        }
    }
    for leaf in texts.keys() {
        if !standing_leaves.contains(leaf) {
            report.differences.push(format!(
                "standing change text {leaf}: leaf {leaf} of the log is not a standing leaf"
            ));
        }
    }
    Ok(())
}
