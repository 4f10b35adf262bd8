//! P4, station import: `station import` of a large ballot file into one station's
//! store, durable; ballots per second, median of several runs.

use std::path::Path;
use std::time::Instant;

use anyhow::ensure;

use super::setup::one_station_with;
use super::{Figure, P4, REPEATS, median, round};

/// Ballots a P4 station imports.
pub const P4_BALLOTS: usize = 100_000;

/// P4: `station import` of [`P4_BALLOTS`] ballots (the real command's code: file
/// read and checked, then one durable transaction); median of [`REPEATS`].
pub(super) async fn p4_import(dir: &Path, seed: u64) -> anyhow::Result<Figure> {
    let mut rates = Vec::new();
    for run in 0..REPEATS {
        let (fleet, i, contest, ballots) =
            one_station_with(&dir.join(format!("run{run}")), seed, 2, run, P4_BALLOTS).await?;
        let station_dir = fleet.stations[i].dir.clone();
        let file = dir.join(format!("run{run}.jsonl"));
        let mut lines = String::new();
        for b in &ballots {
            lines.push_str(&serde_json::to_string(b)?);
            lines.push('\n');
        }
        std::fs::write(&file, lines)?;
        let rate = tokio::task::spawn_blocking(move || {
            pollsync_station::commands::issue(&station_dir, &contest, P4_BALLOTS as u64)?;
            let mut store = pollsync_station::Store::open(&station_dir)?;
            let prov = store.provisioned()?;
            let started = Instant::now();
            let imported = pollsync_station::import::import(&mut store, &prov, &file)?;
            let secs = started.elapsed().as_secs_f64();
            let counts = store.counts()?;
            // Beside the ballots: the issued count, and the zero report `station
            // init` opened the log with.
            ensure!(
                counts.ballots_waiting as usize == P4_BALLOTS
                    && counts.pending_events as usize == P4_BALLOTS + 2,
                "the store holds {} ballots and {} other events after importing {P4_BALLOTS} ballots ({imported:?})",
                counts.ballots_waiting,
                counts.pending_events
            );
            anyhow::Ok(P4_BALLOTS as f64 / secs)
        })
        .await??;
        rates.push(rate);
    }
    let m = median(rates.clone());
    Ok(P4.figure(
        m,
        None,
        format!(
            "{P4_BALLOTS} ballots per run, median of {REPEATS}: {}",
            rates
                .iter()
                .map(|r| round(*r))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}
