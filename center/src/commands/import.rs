//! `center import FILE…`: station export files (carried by hand) through exactly
//! the network's path: the same judge, the same writer, the same exactly-once
//! effect. A file carried twice, or whose batches also came over the network,
//! counts once (`DUPLICATE`).
//!
//! Nothing in a file is believed that a signature does not prove (SPEC §7, G3): the
//! station id written in the file is not signed, so each batch is charged to the
//! station its own bytes name only once its signature verifies under that station's
//! current key. Everything else (entries that do not decode, name no station of the
//! election, or are not signed by its current key) is reported to whoever runs the
//! import, with the file, the entry and the reason, and recorded as one `BAD_FILE`
//! alert about the file, never about a station. A batch byte for byte the same as
//! one the center holds is a duplicate whatever key signed it (a replaced device's
//! batches carried late).
//!
//! Memory is bounded by construction (SPEC §13): the file is read one entry at a
//! time ([`ExportReader`]), at most [`MAX_IMPORT_IN_FLIGHT`] batches wait for the
//! writer, and a report lists at most [`MAX_LISTED_PROBLEMS`] problems per file
//! (the rest are counted).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use pollsync_proto::export::ExportReader;
use pollsync_proto::limits::escape_text;
use pollsync_proto::{envelope, pb};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::{CenterError, Result};
use crate::ingest::{self, judge::reason_name};
use crate::store::{Records as _, Store, StoreLocation};

/// Most batches submitted and not yet answered while importing (bounds memory).
pub const MAX_IMPORT_IN_FLIGHT: usize = 64;
/// Problems listed one by one per file; beyond that they are only counted.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// A batch or entry not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportRejection {
    /// Its entry number in the file (0-based).
    pub entry: u64,
    /// Its sequence (0 if it could not be decoded).
    pub sequence: u64,
    /// The reason's short name, e.g. `GAP`, or `UNATTRIBUTED` for an entry no
    /// station's signature proves.
    pub reason: String,
    /// In words (text from the file escaped).
    pub detail: String,
    /// The sequence the center expects next from the station (0 if unattributed).
    pub expected_sequence: u64,
}

/// What happened to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// The station the file claims to be from (not signed; escaped).
    pub station: Option<String>,
    /// Entries read.
    pub batches: u64,
    /// Applied now.
    pub accepted: u64,
    /// Held already (same bytes): counted once.
    pub duplicate: u64,
    /// Judged and not applied (charged to the station that signed them).
    pub rejected: u64,
    /// Entries no station's signature proves: charged to nobody.
    pub unattributed: u64,
    /// The first [`MAX_LISTED_PROBLEMS`] rejections and unattributed entries.
    pub rejections: Vec<ImportRejection>,
    /// Problems beyond those listed.
    pub not_listed: u64,
    /// Why the file itself could not be read (to the end).
    pub error: Option<String>,
}

impl FileReport {
    /// Everything in it imported or a duplicate, and the file read to its end.
    pub fn is_clean(&self) -> bool {
        self.rejected == 0 && self.unattributed == 0 && self.error.is_none()
    }

    fn problem(&mut self, rejection: ImportRejection) {
        if self.rejections.len() < MAX_LISTED_PROBLEMS {
            self.rejections.push(rejection);
        } else {
            self.not_listed += 1;
        }
    }

    fn unattributed(&mut self, entry: u64, sequence: u64, detail: String) {
        self.unattributed += 1;
        self.problem(ImportRejection {
            entry,
            sequence,
            reason: "UNATTRIBUTED".into(),
            detail,
            expected_sequence: 0,
        });
    }

    fn record(&mut self, entry: u64, ack: &pb::Ack) {
        match ack.kind() {
            pb::AckKind::Accepted => self.accepted += 1,
            pb::AckKind::Duplicate => self.duplicate += 1,
            _ => {
                self.rejected += 1;
                self.problem(ImportRejection {
                    entry,
                    sequence: ack.sequence,
                    reason: reason_name(ack.reason()).to_owned(),
                    detail: ack.detail.clone(),
                    expected_sequence: ack.expected_sequence,
                });
            }
        }
    }
}

/// Whose a batch of a file is.
enum Owner {
    /// Signed by this station's current key: judged as its batch.
    Station(String),
    /// The same bytes as a batch the center holds.
    Duplicate,
    /// Nobody's: why.
    Nobody(u64, String),
}

/// Station keys as the store holds them, read once per station per import.
struct Keys<'s> {
    store: &'s Store,
    current: HashMap<String, Option<VerifyingKey>>,
}

impl Keys<'_> {
    fn current(&mut self, station: &str) -> Result<Option<VerifyingKey>> {
        if let Some(k) = self.current.get(station) {
            return Ok(*k);
        }
        let key = self
            .store
            .station_now(station)?
            .and_then(|(_, key)| key)
            .map(|k| k.key);
        self.current.insert(station.to_owned(), key);
        Ok(key)
    }

    /// Whose `signed` is, proven by its signature alone.
    fn owner(&mut self, ctx: &ingest::judge::Context, signed: &pb::SignedBatch) -> Result<Owner> {
        let batch = match envelope::decode_batch(signed) {
            Ok(b) => b,
            Err(e) => return Ok(Owner::Nobody(0, format!("does not decode: {e}"))),
        };
        let sequence = batch.sequence;
        let shown = escape_text(&batch.station_id, 80);
        if batch.mode != ctx.mode().as_str() {
            return Ok(Owner::Nobody(
                sequence,
                format!(
                    "batch {sequence} naming station {shown} is of mode {}, this center counts the {} election: test and official elections never mix",
                    escape_text(&format!("{:?}", batch.mode), 40),
                    ctx.mode().as_str()
                ),
            ));
        }
        if ctx.station(&batch.station_id).is_none() {
            return Ok(Owner::Nobody(
                sequence,
                format!("names station {shown}, which is not in this election"),
            ));
        }
        if let Some(key) = self.current(&batch.station_id)?
            && envelope::verify_batch(&key, signed).is_ok()
        {
            return Ok(Owner::Station(batch.station_id));
        }
        let held = self.store.stored_batch(&batch.station_id, sequence)?;
        if held.as_deref() == Some(signed.batch.as_slice()) {
            return Ok(Owner::Duplicate);
        }
        Ok(Owner::Nobody(
            sequence,
            format!(
                "batch {sequence} naming station {shown} is not signed by that station's current key"
            ),
        ))
    }
}

/// Runs `center import` over `files`, in order. Every file gets a report; an
/// error is returned only if the store cannot be used at all.
pub fn import(store: impl Into<StoreLocation>, files: &[PathBuf]) -> Result<Vec<FileReport>> {
    let location = store.into();
    let (handle, writer) = ingest::start(&location)?;
    let store = Store::open_at(&location)?;
    let mut keys = Keys {
        store: &store,
        current: HashMap::new(),
    };
    let mut reports: Vec<FileReport> = Vec::with_capacity(files.len());
    // (file index, entry, receiver) in submission order.
    let mut pending: Pending = VecDeque::new();
    let mut failure: Option<CenterError> = None;
    'files: for file in files {
        let index = reports.len();
        reports.push(FileReport {
            file: file.clone(),
            ..FileReport::default()
        });
        let mut reader = match ExportReader::open(file) {
            Ok(r) => Some(r),
            Err(e) => {
                reports[index].error = Some(e.to_string());
                None
            }
        };
        while let Some(reader) = reader.as_mut() {
            let (entry, signed) = match reader.next_batch() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    reports[index].error = Some(e.to_string());
                    break;
                }
            };
            let report = &mut reports[index];
            report.batches += 1;
            if report.station.is_none() {
                report.station = reader.station_id().map(|s| escape_text(s, 80));
            }
            match keys.owner(handle.context(), &signed)? {
                Owner::Station(station) => {
                    while pending.len() >= MAX_IMPORT_IN_FLIGHT {
                        if let Err(e) = wait_one(&mut pending, &mut reports) {
                            failure = Some(e);
                            break 'files;
                        }
                    }
                    pending.push_back((index, entry, handle.submit(&station, signed)));
                }
                Owner::Duplicate => report.duplicate += 1,
                Owner::Nobody(sequence, why) => report.unattributed(entry, sequence, why),
            }
        }
        if reports[index].station.is_none()
            && let Some(reader) = &reader
        {
            reports[index].station = reader.station_id().map(|s| escape_text(s, 80));
        }
        let r = &reports[index];
        if r.unattributed > 0 || r.error.is_some() {
            handle.file_alert(&format!(
                "import of {}: {} entr(ies) charged to no station (not signed by the current key of a station of this election){}",
                escape_text(&file.display().to_string(), 200),
                r.unattributed,
                r.error
                    .as_ref()
                    .map(|e| format!("; the file is broken: {}", escape_text(e, 300)))
                    .unwrap_or_default()
            ));
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

type Pending = VecDeque<(usize, u64, oneshot::Receiver<pb::Ack>)>;

/// Waits for the oldest answer and records it in its file's report.
fn wait_one(pending: &mut Pending, reports: &mut [FileReport]) -> Result<()> {
    if let Some((i, entry, rx)) = pending.pop_front() {
        let ack = rx.blocking_recv().map_err(|_| CenterError::WriterStopped)?;
        reports[i].record(entry, &ack);
    }
    Ok(())
}

/// The text printed per file (everything from the file escaped).
pub fn to_text(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let file = escape_text(&r.file.display().to_string(), 200);
        if r.batches == 0
            && let Some(e) = &r.error
        {
            out.push_str(&format!("not imported: {}\n", escape_text(e, 400)));
            continue;
        }
        out.push_str(&format!(
            "{file}: claims station {}, {} entr(ies): {} accepted, {} duplicate, {} rejected, {} charged to no station\n",
            r.station.as_deref().unwrap_or("?"),
            r.batches,
            r.accepted,
            r.duplicate,
            r.rejected,
            r.unattributed
        ));
        for j in &r.rejections {
            out.push_str(&format!(
                "  entry #{} (batch {}): {}: {}{}\n",
                j.entry,
                j.sequence,
                j.reason,
                escape_text(&j.detail, 400),
                if j.expected_sequence > 0 {
                    format!(" (the center expects batch {} next)", j.expected_sequence)
                } else {
                    String::new()
                }
            ));
        }
        if r.not_listed > 0 {
            out.push_str(&format!("  … and {} more not listed\n", r.not_listed));
        }
        if let Some(e) = &r.error {
            out.push_str(&format!("  the file is broken: {}\n", escape_text(e, 400)));
        }
    }
    out
}

/// The JSON printed by `--json`: `{"files": [...], "accepted", "duplicate",
/// "rejected", "unattributed", "failed_files"}`.
pub fn to_json(reports: &[FileReport]) -> serde_json::Value {
    let sum = |f: fn(&FileReport) -> u64| reports.iter().map(f).sum::<u64>();
    serde_json::json!({
        "files": reports,
        "accepted": sum(|r| r.accepted),
        "duplicate": sum(|r| r.duplicate),
        "rejected": sum(|r| r.rejected),
        "unattributed": sum(|r| r.unattributed),
        "failed_files": reports.iter().filter(|r| r.error.is_some()).count(),
    })
}
