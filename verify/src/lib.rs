//! `pollsync-verify DIR`: checks an election's public evidence (`center
//! export-evidence`, SPEC §10) from the files alone, following the numbered steps
//! V1–V11 of docs/PROTOCOL.md §10.2, and stops at the first failure, naming the
//! step, the file and the item. It depends only on the wire formats (`proto`) and
//! the election's rules (`election`): nothing of the center is trusted.
//!
//! - [`evidence`]: reading the folder (bounded), V1–V4;
//! - [`log`]: the transparency log rebuilt from its entry bundles, V5;
//! - [`chains`]: certificates, batches, forks and standing changes, V6–V9;
//! - [`recount`]: counting again and comparing with the published results, V10–V11.

pub mod chains;
pub mod evidence;
pub mod log;
pub mod recount;

use std::fmt;
use std::path::Path;

use serde_json::json;

/// The first thing that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step and check (`V7.2`).
    pub step: &'static str,
    /// The file (relative to the folder) and the item in it.
    pub item: String,
    /// What is wrong.
    pub reason: String,
}

impl Failure {
    /// A failure of `step` about `item`.
    pub fn new(step: &'static str, item: impl Into<String>, reason: impl Into<String>) -> Failure {
        Failure {
            step,
            item: item.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.step, self.item, self.reason)
    }
}

impl std::error::Error for Failure {}

/// What a step's result is: a value, or the failure.
pub type Step<T> = Result<T, Failure>;

/// What was verified.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The election.
    pub election: String,
    /// Its mode (`official` or `test`).
    pub mode: String,
    /// One line per step passed.
    pub steps: Vec<String>,
    /// Findings that are not failures (a chain without a zero report).
    pub notes: Vec<String>,
}

impl Report {
    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "ok": true,
            "election": self.election,
            "mode": self.mode,
            "steps": self.steps,
            "notes": self.notes,
        })
    }
}

/// Verifies the evidence folder `dir`. With `expected_mode`, evidence of the
/// other mode (a test election's, when the official one's was asked for) fails at
/// V1.
pub fn verify(dir: &Path, expected_mode: Option<pollsync_election::Mode>) -> Step<Report> {
    let evidence = evidence::Evidence::open(dir, expected_mode)?;
    let mut report = Report {
        election: evidence.definition.election.id.clone(),
        mode: evidence.definition.election.mode.as_str().to_owned(),
        steps: evidence.steps.clone(),
        notes: Vec::new(),
    };
    let log = log::Log::rebuild(&evidence)?;
    report.steps.push(format!(
        "V5 log: {} leaves, their root is the checkpoint's, every tile matches",
        log.size()
    ));
    let chains = chains::check(&evidence, &log, &mut report)?;
    let recount = recount::check(&evidence, &chains)?;
    report.steps.push(recount);
    Ok(report)
}
