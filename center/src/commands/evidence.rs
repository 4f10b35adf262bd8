//! `center export-evidence DIR` (SPEC §10): the public record of the election as
//! files anyone can check without the center or this code (`pollsync-verify DIR`,
//! or any verifier written from docs/PROTOCOL.md §10, which lists every file).
//!
//! Everything comes from one snapshot of the store: a checkpoint covering every
//! leaf is signed first, inside the same transaction that reads the rest, so the
//! batches, forks, standing changes, tiles and results all describe one moment.
//! The folder is written beside its final place and renamed into it at the end:
//! a failed export leaves nothing half-written.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use pollsync_proto::export::{encode_export, new_export};
use pollsync_proto::pb;
use pollsync_proto::tlog::{self, LogKey, TILE_HEIGHT, Tile};
use serde::Serialize;

use crate::error::{CenterError, Result};
use crate::results;
use crate::store::{Records, Store, StoreLocation, now_unix_ms};

/// The results (SPEC §7 JSON).
pub const RESULTS_JSON: &str = "results.json";
/// The results in NIST SP 1500-100 v2 form.
pub const RESULTS_NIST: &str = "results-nist.json";
/// The log key's signature over the two results files' digests.
pub const RESULTS_SIG: &str = "results.sig";

/// Folder mode of the export (it is public, but written by the operator only).
const EVIDENCE_DIR_MODE: u32 = 0o755;

/// What was exported.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceReport {
    /// The folder written.
    pub dir: PathBuf,
    /// The election.
    pub election: String,
    /// Leaves in the exported log (the checkpoint's size).
    pub log_size: u64,
    /// Stations with at least one certificate.
    pub stations: usize,
    /// Accepted batches exported.
    pub batches: usize,
    /// Fork evidence exported.
    pub forks: usize,
    /// Standing changes exported.
    pub standing_changes: usize,
    /// Files written.
    pub files: usize,
}

/// Files to write: path relative to the folder, bytes.
type Files = BTreeMap<PathBuf, Vec<u8>>;

/// Writes the evidence of the store in `data_dir` to `out` (which must not exist).
pub fn export_evidence(store: impl Into<StoreLocation>, out: &Path) -> Result<EvidenceReport> {
    if out.exists() {
        return Err(CenterError::Io {
            path: out.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the evidence folder exists already; give a new one",
            ),
        });
    }
    let mut store = Store::open_at(&store.into())?;
    let meta = store.meta()?;
    let key = LogKey::from_signer_text(&meta.log_signer_key).map_err(|e| CenterError::Corrupt {
        detail: format!("the stored log key: {e}"),
    })?;
    let (mut files, mut report) = store.snapshot_signed(&key, |records| collect(records))?;
    let signed = {
        let results = |name: &str| {
            files
                .get(Path::new(name))
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        key.sign_results(&[
            (RESULTS_JSON, results(RESULTS_JSON)),
            (RESULTS_NIST, results(RESULTS_NIST)),
        ])
        .map_err(|e| CenterError::Corrupt {
            detail: format!("cannot sign the results: {e}"),
        })?
    };
    files.insert(PathBuf::from(RESULTS_SIG), signed);
    report.dir = out.to_owned();
    report.files = files.len();
    write_all(out, &files)?;
    Ok(report)
}

fn collect(records: &dyn Records) -> Result<(Files, EvidenceReport)> {
    let meta = records.meta()?;
    let mut files = Files::new();
    let mut put = |path: String, bytes: Vec<u8>| {
        files.insert(PathBuf::from(path), bytes);
    };
    put(
        "election.toml".into(),
        meta.election_toml.clone().into_bytes(),
    );
    put("ca.pem".into(), meta.ca_cert_pem.clone().into_bytes());
    put(
        "log-key.txt".into(),
        format!("{}\n", meta.log_verifier_key).into_bytes(),
    );

    let (size, note) = records
        .latest_checkpoint()?
        .ok_or_else(|| CenterError::Corrupt {
            detail: "no checkpoint after signing one".into(),
        })?;
    put("checkpoint".into(), note);
    for tile in Tile::new_tiles(TILE_HEIGHT, 0, size) {
        let mut tiles = vec![tile];
        if tile.level() == 0 {
            let mut data = tile;
            data.set_is_data();
            tiles.push(data);
        }
        for tile in tiles {
            let bytes = crate::store::log::tile(records, &tile, size)?.ok_or_else(|| {
                CenterError::Corrupt {
                    detail: format!(
                        "tile {} is not covered by its own checkpoint",
                        tlog::tile_path(&tile)
                    ),
                }
            })?;
            put(tlog::tile_path(&tile), bytes);
        }
    }

    let mut stations = 0;
    let mut batch_count = 0;
    for row in records.stations()? {
        let keys = records.keys_of(&row.station)?;
        if keys.is_empty() {
            continue;
        }
        stations += 1;
        for key in &keys {
            put(
                format!("stations/{}/cert-{}.der", row.station, key.key_no),
                key.cert_der.clone(),
            );
        }
        let batches: Vec<pb::SignedBatch> = records
            .batches(Some(&row.station))?
            .into_iter()
            .map(|b| pb::SignedBatch {
                batch: b.batch,
                signature: b.signature,
            })
            .collect();
        if !batches.is_empty() {
            batch_count += batches.len();
            put(
                format!("stations/{}/batches.export", row.station),
                encode_export(&new_export(&meta.election_id, &row.station, batches)),
            );
        }
    }

    let forks = records.fork_evidence()?;
    let mut numbered: BTreeMap<(String, u64), u32> = BTreeMap::new();
    for fork in &forks {
        let n = numbered
            .entry((fork.station.clone(), fork.sequence))
            .or_default();
        *n += 1;
        let pair = [&fork.stored, &fork.other]
            .into_iter()
            .map(|b| pb::SignedBatch {
                batch: b.batch.clone(),
                signature: b.signature.clone(),
            })
            .collect();
        put(
            format!("forks/{}-{}-{}.export", fork.station, fork.sequence, n),
            encode_export(&new_export(&meta.election_id, &fork.station, pair)),
        );
    }

    let standing = records.standing_records()?;
    for (leaf, _, text) in &standing {
        put(format!("standing/{leaf}.txt"), text.clone().into_bytes());
    }

    let computed = results::compute(records, None)?;
    put(RESULTS_JSON.into(), pretty(&computed.to_json()));
    put(
        RESULTS_NIST.into(),
        pretty(&computed.to_nist(now_unix_ms())),
    );

    let report = EvidenceReport {
        dir: PathBuf::new(),
        election: meta.election_id,
        log_size: size,
        stations,
        batches: batch_count,
        forks: forks.len(),
        standing_changes: standing.len(),
        files: 0,
    };
    Ok((files, report))
}

fn pretty(value: &serde_json::Value) -> Vec<u8> {
    let mut text = format!("{value:#}");
    text.push('\n');
    text.into_bytes()
}

/// Writes every file into a fresh folder beside `out`, then renames it to `out`.
fn write_all(out: &Path, files: &Files) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CenterError::Io { path, source }
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "evidence".into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| {
        let mut dirs = DirBuilder::new();
        dirs.recursive(true).mode(EVIDENCE_DIR_MODE);
        dirs.create(&staging).map_err(io(&staging))?;
        for (relative, bytes) in files {
            let path = staging.join(relative);
            if let Some(dir) = path.parent() {
                dirs.create(dir).map_err(io(dir))?;
            }
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        std::fs::rename(&staging, out).map_err(io(out))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}
