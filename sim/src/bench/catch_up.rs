//! P5, catch-up: a station back with many ballots recorded and sealed while the
//! center was away; time from its reconnecting to everything acknowledged, median
//! of several runs.

use std::path::Path;
use std::sync::Arc;

use anyhow::ensure;
use pollsync_station::sync::client::{Log, SyncOptions};

use super::setup::one_station_with;
use super::{Figure, P5, REPEATS, median};
use crate::fleet::Part;

/// Ballots a P5 station has unsent.
pub const P5_BALLOTS: usize = 10_000;
/// Longest a station may take to sync in P5 before the run fails.
pub const SYNC_TIMEOUT_MS: u64 = 300_000;

/// P5: a station recorded [`P5_BALLOTS`] ballots while the center was away; time
/// from its reconnecting to everything acknowledged; median of [`REPEATS`].
pub(super) async fn p5_catch_up(dir: &Path, seed: u64, workers: usize) -> anyhow::Result<Figure> {
    let mut times_ms = Vec::new();
    for run in 0..REPEATS {
        let (mut fleet, i, contest, ballots) = one_station_with(
            &dir.join(format!("run{run}")),
            seed,
            workers,
            run,
            P5_BALLOTS,
        )
        .await?;
        let station_dir = fleet.stations[i].dir.clone();
        let station = fleet.stations[i].id.clone();
        let definition = Arc::clone(&fleet.definition);
        // Recorded (and sealed, as `station run` does every 200 ms) while offline.
        let dir_for_record = station_dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut desk = crate::fleet::Desk::open(&dir_for_record, definition, &station)?;
            desk.record(&[Part {
                contest: &contest,
                issued: P5_BALLOTS as u64,
                ballots: &ballots,
            }])?;
            pollsync_station::commands::seal(&dir_for_record)?;
            anyhow::Ok(())
        })
        .await??;
        let center = fleet.start_center(workers)?;
        let summary = pollsync_station::sync::client::sync(
            &station_dir,
            SyncOptions {
                timeout_ms: SYNC_TIMEOUT_MS,
            },
            quiet(),
        )
        .await?;
        let counted = center.reader()?.ballots_counted().await?;
        center.stop().await?;
        ensure!(
            counted == P5_BALLOTS as u64,
            "the center counted {counted} of {P5_BALLOTS} ballots"
        );
        times_ms.push(summary.catch_up_ms as f64);
    }
    let m = median(times_ms.clone());
    Ok(P5.figure(
        m,
        None,
        format!(
            "from connecting to all acknowledged, median of {REPEATS}: {} ms",
            times_ms
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// A sync log that drops every line: the measurement reports its own figure.
fn quiet() -> Log {
    Arc::new(|_| {})
}
