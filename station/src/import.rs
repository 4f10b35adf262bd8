//! `station import`: ballots from a JSON-lines file, all or nothing.
//!
//! The whole file is checked before anything is written; every bad line is reported
//! with its number and reason, and then nothing is written at all. A good file goes
//! into the log in one transaction, so a crash or kill part-way leaves either every
//! ballot of the file or none of them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use pollsync_election::{BallotChoices, EventError, StationEvent};
use pollsync_proto::fsutil::{BoundedReadError, read_at_most};

use crate::error::StationError;
use crate::store::{Provisioned, Store, new_ballot_id};

/// The largest import file read.
pub const MAX_IMPORT_BYTES: u64 = 1 << 30;
/// The longest line of an import file.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// How many bad lines are listed one by one; the rest are counted.
pub const MAX_REPORTED_LINES: usize = 100;

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Read {
        /// The import file.
        file: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    #[error("{}: the file is {bytes} bytes; at most {max} are imported at once", file.display())]
    /// The file is larger than [`MAX_IMPORT_BYTES`].
    TooLarge {
        /// The import file.
        file: PathBuf,
        /// Its size, in bytes.
        bytes: u64,
        /// The largest file imported, in bytes.
        max: u64,
    },
    #[error("{}: the file holds no ballots", file.display())]
    /// The file holds only blank lines.
    Empty {
        /// The import file.
        file: PathBuf,
    },
    #[error("{}", bad_lines_text(file, lines, *total))]
    /// Some lines are not ballots this station can take.
    BadLines {
        /// The import file.
        file: PathBuf,
        /// The first [`MAX_REPORTED_LINES`] bad lines: line number (from 1) and
        /// what is wrong with it.
        lines: Vec<(usize, String)>,
        /// How many lines are bad in all.
        total: usize,
    },
    /// The station store refused or failed.
    #[error(transparent)]
    Store(#[from] StationError),
}

fn bad_lines_text(file: &Path, lines: &[(usize, String)], total: usize) -> String {
    let mut out: Vec<String> = lines
        .iter()
        .map(|(n, why)| format!("{}:{n}: {why}", file.display()))
        .collect();
    if total > lines.len() {
        out.push(format!("… and {} more bad lines", total - lines.len()));
    }
    out.push(format!(
        "{}: {total} bad line(s); nothing was imported",
        file.display()
    ));
    out.join("\n")
}

/// Ballots imported per contest.
pub type Imported = BTreeMap<String, u64>;

/// Check every line of `file` as a ballot for this station, then append them all
/// to the log in one transaction. Returns the ballots imported per contest.
pub fn import(store: &mut Store, prov: &Provisioned, file: &Path) -> Result<Imported, ImportError> {
    let raw = read_at_most(file, MAX_IMPORT_BYTES).map_err(|e| match e {
        BoundedReadError::Io(source) => ImportError::Read {
            file: file.to_path_buf(),
            source,
        },
        BoundedReadError::TooLarge { bytes } => ImportError::TooLarge {
            file: file.to_path_buf(),
            bytes,
            max: MAX_IMPORT_BYTES,
        },
    })?;
    let station = prov.station()?;
    let closed = store.closed_contests()?;

    let lines: Vec<&[u8]> = raw.split(|&b| b == b'\n').collect();
    let bar = progress_bar(lines.len() as u64, "checking");
    let mut events = Vec::with_capacity(lines.len());
    let mut imported = Imported::new();
    let mut bad = Vec::new();
    let mut bad_total = 0;
    for (i, line) in lines.iter().enumerate() {
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
        let number = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match check_line(prov, station, &closed, line) {
            Ok(event) => {
                if let StationEvent::Ballot(b) = &event {
                    *imported.entry(b.contest.clone()).or_default() += 1;
                }
                events.push(event);
            }
            Err(why) => {
                bad_total += 1;
                if bad.len() < MAX_REPORTED_LINES {
                    bad.push((number, why));
                }
            }
        }
    }
    bar.finish_and_clear();
    if bad_total > 0 {
        return Err(ImportError::BadLines {
            file: file.to_path_buf(),
            lines: bad,
            total: bad_total,
        });
    }
    if events.is_empty() {
        return Err(ImportError::Empty {
            file: file.to_path_buf(),
        });
    }
    let bar = progress_bar(events.len() as u64, "writing");
    store.append(&events, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    Ok(imported)
}

/// One line's ballot, through every door check, or why not.
fn check_line(
    prov: &Provisioned,
    station: &pollsync_election::Station,
    closed: &std::collections::BTreeSet<String>,
    line: &[u8],
) -> Result<StationEvent, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!(
            "the line is {} bytes; at most {MAX_LINE_BYTES} are allowed",
            line.len()
        ));
    }
    let choices: BallotChoices =
        serde_json::from_slice(line).map_err(|e| format!("not a ballot line ({e}); expected {{\"contest\": …, \"for\": […], \"against\": […], \"write_in\": […]}}"))?;
    let contest = prov.definition.contest(&choices.contest).ok_or_else(|| {
        EventError::UnknownContest {
            contest: choices.contest.clone(),
        }
        .to_string()
    })?;
    if !station.contests.contains(&contest.id) {
        return Err(EventError::NotServed {
            station: station.id.clone(),
            contest: contest.id.clone(),
        }
        .to_string());
    }
    if closed.contains(&contest.id) {
        return Err(StationError::ContestClosed {
            contest: contest.id.clone(),
        }
        .to_string());
    }
    let id = new_ballot_id().map_err(|e| e.to_string())?;
    let ballot = choices.to_ballot(id, contest).map_err(|e| e.to_string())?;
    let event = StationEvent::Ballot(ballot);
    event
        .check(&prov.definition, station)
        .map_err(|e| e.to_string())?;
    Ok(event)
}

/// A progress bar on a terminal; nothing at all otherwise.
fn progress_bar(len: u64, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} ({per_sec})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}
