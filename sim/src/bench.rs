//! `sim bench`: the performance targets of SPEC §9, measured on this machine with
//! the real center and station code (mutual TLS, signatures, durable commits):
//!
//! - P1 center ingest: every beichen station pushes its whole day at once after
//!   close; ballots per second from the first push to the last acknowledgement,
//!   against the baseline of inserting the same number of ballots as SQLite rows
//!   (WAL, `synchronous=FULL`, 10k rows per transaction) measured in the same run
//!   (`bench::ingest`); `P1PG` the same with the center's store on a private
//!   PostgreSQL, served by one process and by two (reported, no target);
//! - P2 live latency, two figures: seal to counted (every beichen station's agent
//!   running while ballots are recorded at a busy polling-day rate, with nothing
//!   held back for a group, K = 1: p99 from `record` returning to the ballot's batch
//!   being durably applied at the center, which bounds seal to counted from above;
//!   `bench::latency`); and record to counted with the election's K
//!   (`bench::grouped`), the price of the anonymity set, reported without a target;
//! - P3 connections: 5,000 stations connected and streaming at once to a center in
//!   its own process; that process's peak memory (`bench::connections`);
//! - P4 station import: ballots per second into a station's store, durable
//!   (`bench::import`);
//! - P5 catch-up: a station back with 10,000 unsent ballots; time from
//!   reconnecting to everything acknowledged (`bench::catch_up`);
//! - P6 growth: P1's work at 1×, 4× and 10× beichen, the center's cost per ballot
//!   and peak memory at each size (`bench::growth`; reported, no target);
//! - P7 hostile memory: `center import` of a crafted 50 MB export, peak memory above
//!   the same import of an honest export (`bench::hostile`).
//!
//! This file holds what they share: the options, the figures and their targets,
//! the run that orders the measurements, and the report. The elections and fleets
//! the measurements run on are built in `bench::setup`.
//!
//! Each measurement works in its own folder under a temporary root and checks what
//! it measured (every ballot counted, every acknowledgement an acceptance), so a
//! fast wrong answer never passes for a figure.

mod catch_up;
mod center_process;
mod connections;
mod grouped;
mod growth;
pub mod hostile;
mod import;
mod ingest;
mod latency;
mod link;
mod setup;

use std::path::Path;

use anyhow::{Context, ensure};
use serde::Serialize;
use serde_json::Value;

// `grouped` and `hostile` reach these helpers as `super::…`.
use setup::{beichen_fleet, per_station, small_center_with_export};

pub use catch_up::{P5_BALLOTS, SYNC_TIMEOUT_MS};
pub use center_process::serve_child;
pub use import::P4_BALLOTS;
pub use ingest::{BASELINE_ROWS_PER_TX, CONNECT_CONCURRENCY};
pub use latency::{P2_BALLOTS_PER_S, P2_DURATION_MS};

/// Every measurement, in SPEC order (`P1PG`: P1 with the center on PostgreSQL,
/// one replica and two).
pub const ALL: [&str; 8] = ["P1", "P1PG", "P2", "P3", "P4", "P5", "P6", "P7"];

/// Runs of P4 and P5 (the median is reported).
pub const REPEATS: usize = 3;

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: &'static str,
    pub what: String,
    pub measured: f64,
    pub unit: &'static str,
    /// `None`: a figure reported without a target (what a choice costs).
    pub target: Option<f64>,
    /// The baseline measured in the same run, where the target has one.
    pub baseline: Option<f64>,
    pub holds: bool,
    /// How it was measured, in a line.
    pub note: String,
}

/// Whether higher or lower figures are better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// A target of SPEC §9.
pub(crate) struct Target {
    id: &'static str,
    what: &'static str,
    unit: &'static str,
    target: f64,
    better: Better,
}

impl Target {
    /// The figure measured against this target (and `baseline`, if it has one).
    fn figure(&self, measured: f64, baseline: Option<f64>, note: String) -> Figure {
        let holds = match self.better {
            Better::Higher => measured >= self.target && baseline.is_none_or(|b| measured > b),
            Better::Lower => measured <= self.target,
        };
        Figure {
            id: self.id,
            what: self.what.to_string(),
            measured,
            unit: self.unit,
            target: Some(self.target),
            baseline,
            holds,
            note,
        }
    }
}

const P1: Target = Target {
    id: "P1",
    what: "center ingest, beichen, all stations at once",
    unit: "ballots/s",
    target: 750_000.0,
    better: Better::Higher,
};
const P2: Target = Target {
    id: "P2",
    what: "live latency p99, seal to counted",
    unit: "ms",
    target: 1_000.0,
    better: Better::Lower,
};
pub(crate) const P3: Target = Target {
    id: "P3",
    what: "center memory, 5,000 stations streaming",
    unit: "MiB",
    target: 1_024.0,
    better: Better::Lower,
};
const P4: Target = Target {
    id: "P4",
    what: "station import, durable",
    unit: "ballots/s",
    target: 100_000.0,
    better: Better::Higher,
};
const P5: Target = Target {
    id: "P5",
    what: "catch-up of 10,000 unsent ballots",
    unit: "ms",
    target: 2_000.0,
    better: Better::Lower,
};

/// What to run.
pub struct BenchOptions {
    /// Measurement ids ([`ALL`]); empty means all.
    pub only: Vec<String>,
    /// Seed of the elections and ballots.
    pub seed: u64,
    /// Print progress lines to stderr.
    pub verbose: bool,
}

/// Of a measurement that gives several figures: reports and keeps all but the
/// last, which it returns (to be reported and kept as any single figure is).
fn all_but_last(
    id: &str,
    measured: anyhow::Result<Vec<Figure>>,
    figures: &mut Vec<Figure>,
    say: &dyn Fn(&str),
) -> anyhow::Result<Figure> {
    let mut measured = measured?;
    let last = measured
        .pop()
        .with_context(|| format!("{id} measured nothing"))?;
    for figure in measured {
        keep(id, figure, figures, say);
    }
    Ok(last)
}

/// Reports `figure` as measurement `id`'s and keeps it.
fn keep(id: &str, figure: Figure, figures: &mut Vec<Figure>, say: &dyn Fn(&str)) {
    say(&format!(
        "{id}: {} {} ({})",
        round(figure.measured),
        figure.unit,
        figure.note
    ));
    figures.push(figure);
}

/// Runs the chosen measurements in order, each in its own folder under `root`.
pub async fn run(options: &BenchOptions, root: &Path) -> anyhow::Result<Vec<Figure>> {
    let chosen: Vec<String> = if options.only.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        options
            .only
            .iter()
            .map(|s| s.trim().to_uppercase())
            .collect()
    };
    for id in &chosen {
        ensure!(
            ALL.contains(&id.as_str()),
            "unknown measurement {id:?}; known: {}",
            ALL.join(", ")
        );
    }
    let say = |line: &str| {
        if options.verbose {
            eprintln!("sim bench: {line}");
        }
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut figures = Vec::new();
    for id in &chosen {
        say(&format!("{id} …"));
        let dir = root.join(id);
        let figure = match id.as_str() {
            "P1" => ingest::p1_ingest(&dir, options.seed, workers, &say).await,
            "P1PG" => {
                let on_pg = ingest::p1_postgres(&dir, options.seed, workers, &say).await;
                all_but_last(id, on_pg, &mut figures, &say)
            }
            "P2" => {
                let grouped = grouped::p2_grouped(&dir.join("grouped"), options.seed, workers)
                    .await
                    .context("P2 (record to counted with K) failed")?;
                let sealed =
                    latency::p2_latency(&dir.join("sealed"), options.seed, workers, &say).await;
                match sealed {
                    Ok(sealed) => {
                        keep(id, sealed, &mut figures, &say);
                        Ok(grouped)
                    }
                    Err(e) => Err(e),
                }
            }
            "P3" => connections::p3_connections(&dir, options.seed, &say).await,
            "P4" => import::p4_import(&dir, options.seed).await,
            "P5" => catch_up::p5_catch_up(&dir, options.seed, workers).await,
            "P6" => {
                let sizes = growth::p6_growth(&dir, options.seed, workers, &say).await;
                all_but_last(id, sizes, &mut figures, &say)
            }
            "P7" => {
                let serve = hostile::p7_hostile_pushes(&dir.join("serve"), options.seed)
                    .await
                    .context("P7 (serve) failed")?;
                keep(id, serve, &mut figures, &say);
                hostile::p7_hostile_import(&dir.join("import"), options.seed).await
            }
            _ => unreachable!("checked above"),
        }
        .with_context(|| format!("{id} failed"))?;
        keep(id, figure, &mut figures, &say);
    }
    Ok(figures)
}

/// The middle value of `v` (the upper one of an even count): what P4 and P5 report.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Whole numbers from 100 up, three significant figures below, for people.
fn round(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The table of SPEC §7: id, what, target, measured, ratio to the baseline.
pub fn to_table(figures: &[Figure]) -> String {
    let mut out = format!(
        "{:<4} {:<44} {:>22} {:>22} {:>10} {:>6}\n",
        "id", "what", "target", "measured", "×baseline", "holds"
    );
    for f in figures {
        let cmp = if f.unit == "ms" || f.unit == "MiB" {
            "≤"
        } else {
            "≥"
        };
        let ratio = f
            .baseline
            .map(|b| format!("{:.2}", f.measured / b))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<4} {:<44} {:>22} {:>22} {:>10} {:>6}\n",
            f.id,
            f.what,
            match f.target {
                Some(target) => format!("{cmp} {} {}", round(target), f.unit),
                None => "(reported)".to_string(),
            },
            format!("{} {}", round(f.measured), f.unit),
            ratio,
            if f.holds { "yes" } else { "NO" }
        ));
    }
    for f in figures {
        out.push_str(&format!("{}: {}\n", f.id, f.note));
    }
    out
}

/// The JSON of SPEC §7: `[{"id", "measured", "unit", "target", "baseline", "holds"}]`
/// (plus `what` and `note`).
pub fn to_json(figures: &[Figure]) -> Value {
    serde_json::to_value(figures).unwrap_or(Value::Null)
}
