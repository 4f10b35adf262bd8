//! `center import FILE…`: station export files (carried by hand) through exactly
//! the network's path: the same judge, the same writer, the same exactly-once
//! effect. The peer identity is the export's `station_id`, authenticated by each
//! batch's signature against that station's enrolled key. A file imported twice,
//! or whose batches also came over the network, counts once (`DUPLICATE`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use pollsync_proto::{pb, read_export};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::{CenterError, Result};
use crate::ingest::{self, judge::reason_name};

/// Most batches submitted and not yet answered while importing (bounds memory).
pub const MAX_IMPORT_IN_FLIGHT: usize = 64;

/// A rejected batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportRejection {
    /// Its sequence (0 if it could not be decoded).
    pub sequence: u64,
    /// The reason's short name, e.g. `GAP`.
    pub reason: String,
    /// In words.
    pub detail: String,
    /// The sequence the center expects next from the station.
    pub expected_sequence: u64,
}

/// What happened to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// The station the export names (`None` if the file could not be read).
    pub station: Option<String>,
    /// Batches in the file.
    pub batches: u64,
    /// Applied now.
    pub accepted: u64,
    /// Held already (same bytes): counted once.
    pub duplicate: u64,
    /// Not applied.
    pub rejected: u64,
    /// Each rejection.
    pub rejections: Vec<ImportRejection>,
    /// Why the file itself could not be read.
    pub error: Option<String>,
}

impl FileReport {
    /// Nothing rejected and the file was read.
    pub fn is_clean(&self) -> bool {
        self.rejected == 0 && self.error.is_none()
    }

    fn record(&mut self, ack: &pb::Ack) {
        match ack.kind() {
            pb::AckKind::Accepted => self.accepted += 1,
            pb::AckKind::Duplicate => self.duplicate += 1,
            _ => {
                self.rejected += 1;
                self.rejections.push(ImportRejection {
                    sequence: ack.sequence,
                    reason: reason_name(ack.reason()).to_owned(),
                    detail: ack.detail.clone(),
                    expected_sequence: ack.expected_sequence,
                });
            }
        }
    }
}

/// Runs `center import` over `files`, in order. Every file gets a report; an
/// error is returned only if the store cannot be used at all.
pub fn import(data_dir: &Path, files: &[PathBuf]) -> Result<Vec<FileReport>> {
    let (handle, writer) = ingest::start(data_dir)?;
    let mut reports: Vec<FileReport> = Vec::with_capacity(files.len());
    // (file index, receiver) in submission order.
    let mut pending: Pending = VecDeque::new();
    let mut failure: Option<CenterError> = None;
    'files: for file in files {
        let index = reports.len();
        reports.push(FileReport {
            file: file.clone(),
            ..FileReport::default()
        });
        let export = match read_export(file) {
            Ok(e) => e,
            Err(e) => {
                reports[index].error = Some(e.to_string());
                continue;
            }
        };
        reports[index].station = Some(export.station_id.clone());
        reports[index].batches = export.batches.len() as u64;
        for batch in export.batches {
            while pending.len() >= MAX_IMPORT_IN_FLIGHT {
                if let Err(e) = wait_one(&mut pending, &mut reports) {
                    failure = Some(e);
                    break 'files;
                }
            }
            pending.push_back((index, handle.submit(&export.station_id, batch)));
        }
    }
    while failure.is_none() && !pending.is_empty() {
        if let Err(e) = wait_one(&mut pending, &mut reports) {
            failure = Some(e);
        }
    }
    handle.shutdown();
    let _ = writer.join();
    match failure {
        Some(e) => Err(e),
        None => Ok(reports),
    }
}

type Pending = VecDeque<(usize, oneshot::Receiver<pb::Ack>)>;

/// Waits for the oldest answer and records it in its file's report.
fn wait_one(pending: &mut Pending, reports: &mut [FileReport]) -> Result<()> {
    if let Some((i, rx)) = pending.pop_front() {
        let ack = rx.blocking_recv().map_err(|_| CenterError::WriterStopped)?;
        reports[i].record(&ack);
    }
    Ok(())
}

/// The text printed per file.
pub fn to_text(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        if let Some(e) = &r.error {
            // The error names the file.
            out.push_str(&format!("not imported: {e}\n"));
            continue;
        }
        let file = r.file.display();
        out.push_str(&format!(
            "{file}: station {}, {} batch(es): {} accepted, {} duplicate, {} rejected\n",
            r.station.as_deref().unwrap_or("?"),
            r.batches,
            r.accepted,
            r.duplicate,
            r.rejected
        ));
        for j in &r.rejections {
            out.push_str(&format!(
                "  batch {} rejected, {}: {} (the center expects batch {} next)\n",
                j.sequence, j.reason, j.detail, j.expected_sequence
            ));
        }
    }
    out
}

/// The JSON printed by `--json`: `{"files": [...], "accepted", "duplicate",
/// "rejected", "failed_files"}`.
pub fn to_json(reports: &[FileReport]) -> serde_json::Value {
    let sum = |f: fn(&FileReport) -> u64| reports.iter().map(f).sum::<u64>();
    serde_json::json!({
        "files": reports,
        "accepted": sum(|r| r.accepted),
        "duplicate": sum(|r| r.duplicate),
        "rejected": sum(|r| r.rejected),
        "failed_files": reports.iter().filter(|r| r.error.is_some()).count(),
    })
}
