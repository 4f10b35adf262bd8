//! What `sim demo` found at the end, as text or JSON: the results summary (through
//! the center's own rendering), the audit, the alerts, the check of the center's
//! tallies against the ground truth, and how long each phase took.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pollsync_election::TallySheet;
use serde_json::{Value, json};

use super::{MAX_SHOWN_DIFFERENCES, ballot_seed};
use crate::fleet;

/// How long each phase took.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    pub setup: Duration,
    pub draw: Duration,
    pub day: Duration,
    pub late: Duration,
    pub checks: Duration,
    pub total: Duration,
}

impl Phases {
    fn to_text(&self) -> String {
        format!(
            "time: setup {:.1} s, ballots drawn {:.1} s (meanwhile), election day {:.1} s, late boxes and final sync {:.1} s, shutdown, results and checks {:.1} s; total {:.1} s",
            self.setup.as_secs_f64(),
            self.draw.as_secs_f64(),
            self.day.as_secs_f64(),
            self.late.as_secs_f64(),
            self.checks.as_secs_f64(),
            self.total.as_secs_f64()
        )
    }

    fn to_json(&self) -> Value {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        json!({
            "setup_ms": ms(self.setup),
            "draw_ms": ms(self.draw),
            "day_ms": ms(self.day),
            "late_ms": ms(self.late),
            "checks_ms": ms(self.checks),
        })
    }
}

/// What the demo found at the end.
/// The day's public record: exported (`center export-evidence`) and verified from the
/// files alone (`pollsync-verify`), each timed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvidenceCheck {
    /// The evidence folder.
    pub dir: PathBuf,
    /// Files written.
    pub files: usize,
    /// Leaves of the transparency log it holds.
    pub log_size: u64,
    /// Time to export.
    pub export_ms: u64,
    /// Time to verify.
    pub verify_ms: u64,
    /// The first step that failed (`None`: all held).
    pub failure: Option<String>,
    /// Notes of the verifier (findings that are not failures).
    pub notes: Vec<String>,
}

impl EvidenceCheck {
    /// Exports the evidence of the center in `center_dir` to `dir` and verifies it.
    pub fn run(
        center_dir: &std::path::Path,
        dir: &std::path::Path,
    ) -> Result<EvidenceCheck, pollsync_center::CenterError> {
        let started = std::time::Instant::now();
        let exported = pollsync_center::commands::evidence::export_evidence(center_dir, dir)?;
        let export_ms = started.elapsed().as_millis() as u64;
        let started = std::time::Instant::now();
        let verified = pollsync_verify::verify(dir, None);
        let verify_ms = started.elapsed().as_millis() as u64;
        let (failure, notes) = match verified {
            Ok(report) => (None, report.notes),
            Err(failure) => (Some(failure.to_string()), Vec::new()),
        };
        Ok(EvidenceCheck {
            dir: dir.to_owned(),
            files: exported.files,
            log_size: exported.log_size,
            export_ms,
            verify_ms,
            failure,
            notes,
        })
    }

    /// One or two lines for the demo's report.
    pub fn to_text(&self) -> String {
        let head = format!(
            "public evidence: {} files, a log of {} leaves, exported in {:.1} s; ",
            self.files,
            self.log_size,
            self.export_ms as f64 / 1e3
        );
        match &self.failure {
            None => format!(
                "{head}pollsync-verify checked every certificate, signature, chain, log leaf and the recount from the files alone in {:.1} s{}\n",
                self.verify_ms as f64 / 1e3,
                if self.notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({} note(s), first: {})", self.notes.len(), self.notes[0])
                }
            ),
            Some(f) => format!("{head}EVIDENCE DOES NOT VERIFY: {f}\n"),
        }
    }
}

pub struct DemoReport {
    pub election: String,
    pub seed: u64,
    pub stations: usize,
    pub mobile: usize,
    pub ballots: u64,
    pub phases: Phases,
    pub results: pollsync_center::results::Results,
    pub audit: pollsync_center::audit::AuditReport,
    pub alerts: Vec<pollsync_center::store::AlertRow>,
    /// Differences between the center's per-station tallies and the ground truth.
    pub truth_differences: Vec<String>,
    /// The public record exported and verified by `pollsync-verify`.
    pub evidence: EvidenceCheck,
    pub agent_notes: Vec<String>,
    /// The folder kept (with `--dir` or `--keep-serving`).
    pub kept_dir: Option<PathBuf>,
}

impl DemoReport {
    /// Every check holds: the truth, the audit, no alert, and the evidence verifies.
    pub fn all_good(&self) -> bool {
        self.truth_differences.is_empty()
            && self.audit.is_clean()
            && self.alerts.is_empty()
            && self.evidence.failure.is_none()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "election": self.election,
            "seed": self.seed,
            "ballot_seed": ballot_seed(self.seed),
            "stations": self.stations,
            "mobile_stations": self.mobile,
            "ballots": self.ballots,
            "elapsed_ms": u64::try_from(self.phases.total.as_millis()).unwrap_or(u64::MAX),
            "phases": self.phases.to_json(),
            "truth_matches": self.truth_differences.is_empty(),
            "truth_differences": self.truth_differences,
            "audit": {
                "clean": self.audit.is_clean(),
                "batches": self.audit.batches,
                "ballots": self.audit.ballots,
                "differences": self.audit.differences,
            },
            "alerts": pollsync_center::commands::alerts::to_json(&self.alerts),
            "evidence": self.evidence,
            "agent_notes": self.agent_notes,
            "dir": self.kept_dir,
            "results": self.results.to_json(),
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = format!("\nresults of {}:\n", self.election);
        out.push_str(&self.results.totals_table());
        out.push('\n');
        if self.audit.is_clean() {
            out.push_str(&format!(
                "center audit: {} batches of {} stations, {} ballots re-verified from their signed bytes: every signature, chain and tally checks out\n",
                self.audit.batches, self.audit.stations, self.audit.ballots
            ));
        } else {
            out.push_str(&format!(
                "CENTER AUDIT FAILED: {} difference(s)\n",
                self.audit.differences.len()
            ));
            for d in self.audit.differences.iter().take(MAX_SHOWN_DIFFERENCES) {
                out.push_str(&format!("  {d}\n"));
            }
        }
        out.push_str(&self.evidence.to_text());
        if self.alerts.is_empty() {
            out.push_str("alerts: none\n");
        } else {
            out.push_str(&format!("ALERTS: {}\n", self.alerts.len()));
            out.push_str(&pollsync_center::commands::alerts::to_text(&self.alerts));
        }
        if self.truth_differences.is_empty() {
            out.push_str(&format!(
                "center tallies match the ground truth: {} ballots, {} stations\n",
                self.ballots, self.stations
            ));
        } else {
            out.push_str(&format!(
                "CENTER TALLIES DIFFER FROM THE GROUND TRUTH ({} difference(s)); first:\n",
                self.truth_differences.len()
            ));
            for d in self.truth_differences.iter().take(MAX_SHOWN_DIFFERENCES) {
                out.push_str(&format!("  {d}\n"));
            }
        }
        if !self.agent_notes.is_empty() {
            out.push_str(&format!(
                "station agents noted {} problem(s) on the way (retried); first: {}\n",
                self.agent_notes.len(),
                self.agent_notes[0]
            ));
        }
        if let Some(dir) = &self.kept_dir {
            out.push_str(&format!(
                "everything is kept in {}; full results: center --data {} results\n",
                dir.display(),
                dir.join(fleet::CENTER_DIR).display()
            ));
        }
        out.push_str(&self.phases.to_text());
        out.push('\n');
        out
    }
}

/// The center's per-station tallies against the drawn truth: every difference,
/// naming the station, the contest and the figures.
pub fn compare_with_truth(
    center: &BTreeMap<String, BTreeMap<String, TallySheet>>,
    truth: &[(String, String, TallySheet)],
) -> Vec<String> {
    let empty = TallySheet::default();
    let mut differences = Vec::new();
    let mut expected: BTreeMap<(&str, &str), &TallySheet> = BTreeMap::new();
    for (station, contest, sheet) in truth {
        expected.insert((station, contest), sheet);
    }
    for ((station, contest), sheet) in &expected {
        let got = center
            .get(*station)
            .and_then(|m| m.get(*contest))
            .unwrap_or(&empty)
            .without_zeros();
        let want = sheet.without_zeros();
        if got != want {
            let mut lines = got.differences_as(&want, "the center", "the drawn ballots");
            if got.against != want.against || lines.is_empty() {
                lines.push(format!(
                    "AGAINST votes: the center says {:?}, the drawn ballots say {:?}",
                    got.against, want.against
                ));
            }
            for d in lines {
                differences.push(format!("station {station} contest {contest}: {d}"));
            }
        }
    }
    for (station, contests) in center {
        for (contest, sheet) in contests {
            if !expected.contains_key(&(station.as_str(), contest.as_str()))
                && sheet.without_zeros() != empty
            {
                differences.push(format!(
                    "station {station} contest {contest}: the center counted {} ballot(s) the ground truth does not have",
                    sheet.returned
                ));
            }
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(issued: u64, for_votes: &[(&str, u64)]) -> TallySheet {
        TallySheet {
            issued,
            returned: issued,
            valid: issued,
            for_votes: for_votes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            ..TallySheet::default()
        }
    }

    #[test]
    fn the_truth_check_names_every_station_and_contest_that_differs() {
        let truth = vec![
            ("S-1".to_string(), "D-1".to_string(), sheet(10, &[("a", 4)])),
            ("S-2".to_string(), "D-1".to_string(), sheet(5, &[("a", 0)])),
        ];
        let mut center: BTreeMap<String, BTreeMap<String, TallySheet>> = BTreeMap::new();
        center
            .entry("S-1".into())
            .or_default()
            .insert("D-1".into(), sheet(10, &[("a", 4)]));
        // Zeros listed or left out are the same count.
        center
            .entry("S-2".into())
            .or_default()
            .insert("D-1".into(), sheet(5, &[]));
        assert_eq!(compare_with_truth(&center, &truth), Vec::<String>::new());

        center
            .entry("S-1".into())
            .or_default()
            .insert("D-1".into(), sheet(10, &[("a", 3)]));
        center
            .entry("S-3".into())
            .or_default()
            .insert("T-9".into(), sheet(2, &[]));
        let differences = compare_with_truth(&center, &truth);
        assert_eq!(differences.len(), 2, "{differences:#?}");
        assert!(
            differences[0].contains("station S-1 contest D-1")
                && differences[0].contains("FOR votes")
        );
        assert!(differences[1].contains("station S-3 contest T-9"));

        center.remove("S-2");
        let differences = compare_with_truth(&center, &truth);
        assert!(
            differences
                .iter()
                .any(|d| d.contains("station S-2 contest D-1")),
            "a station the center never counted is a difference: {differences:#?}"
        );
    }
}
