//! P6, growth: P1's work (every station pushes its whole sealed day at once, the
//! center on SQLite) at 1×, 4× and 10× the beichen preset (as many voters per
//! station, so that many times the stations and ballots, the same contests). Each
//! size reports the center's cost per ballot (microseconds of the run's clock per
//! ballot acknowledged) and its peak memory: what a capacity plan scales from.
//! Reported without a target.

use std::path::Path;

use super::Figure;
use super::ingest::measure_day;

/// The sizes measured, as multiples of beichen.
pub const P6_SCALES: [u64; 3] = [1, 4, 10];

/// P6 at every size of [`P6_SCALES`], smallest first.
pub(super) async fn p6_growth(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for scale in P6_SCALES {
        say(&format!("P6: beichen ×{scale}"));
        let size_dir = dir.join(format!("x{scale}"));
        let (baseline_s, day) = measure_day(&size_dir, seed, workers, say, scale).await?;
        let micros_per_ballot = day.elapsed_s * 1e6 / day.total as f64;
        let peak_mib = day.peaks_mib.iter().copied().fold(0.0, f64::max);
        figures.push(Figure {
            id: "P6",
            what: format!("growth: beichen ×{scale}, cost per ballot"),
            measured: micros_per_ballot,
            unit: "µs/ballot",
            target: None,
            // The plain-row baseline's cost per ballot at the same size.
            baseline: Some(baseline_s * 1e6 / day.total as f64),
            holds: true,
            note: format!(
                "×{scale}: {:.2} µs per ballot, center peak RSS {peak_mib:.0} MiB ({:.0} bytes per ballot); {}; baseline {} SQLite rows in {baseline_s:.2} s",
                micros_per_ballot,
                peak_mib * 1024.0 * 1024.0 / day.total as f64,
                day.note(),
                day.total
            ),
        });
        // Each size's folders go before the next is laid out (10× is large).
        let _ = tokio::fs::remove_dir_all(&size_dir).await;
    }
    Ok(figures)
}
