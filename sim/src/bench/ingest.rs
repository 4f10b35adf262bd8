//! P1, center ingest: every beichen station pushes its whole sealed day at once
//! after close; ballots per second until the last acknowledgement, against the
//! baseline of the same number of ballots inserted as plain SQLite rows.

use pollsync_center::store::Records as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::ensure;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::setup::{beichen_fleet, per_station};
use super::{Figure, P1, center_process, link};
use crate::ballots::StationContest;
use crate::fleet::{Part, on_workers};

/// Rows per transaction of P1's baseline (as SPEC §9 measured it).
pub const BASELINE_ROWS_PER_TX: usize = 10_000;
/// Connections P1 sets up at once before its clock starts.
pub const CONNECT_CONCURRENCY: usize = 64;

/// P1: every station of beichen closes with its whole day recorded and sealed,
/// then all push at once; ballots per second until the last is acknowledged.
pub(super) async fn p1_ingest(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
) -> anyhow::Result<Figure> {
    let (fleet, drawn) = beichen_fleet(dir, seed, workers).await?;
    let total: u64 = drawn.iter().map(|sc| sc.ballots.len() as u64).sum();
    let days = per_station(&fleet, drawn);
    say(&format!(
        "P1: recording and sealing {total} ballots at {} stations",
        fleet.stations.len()
    ));
    let jobs: Vec<(usize, Vec<StationContest>, std::path::PathBuf)> = days
        .into_iter()
        .enumerate()
        .map(|(i, d)| (i, d, fleet.stations[i].dir.clone()))
        .collect();
    let definition = Arc::clone(&fleet.definition);
    let station_ids: Vec<String> = fleet.stations.iter().map(|s| s.id.clone()).collect();
    let recorded = on_workers(jobs, workers, move |(i, day, dir)| {
        let mut desk = crate::fleet::Desk::open(&dir, Arc::clone(&definition), &station_ids[i])?;
        let parts: Vec<Part<'_>> = day
            .iter()
            .map(|sc| Part {
                contest: &sc.contest,
                issued: sc.issued,
                ballots: &sc.ballots,
            })
            .collect();
        desk.record(&parts)?;
        desk.close_all_from_records()?;
        pollsync_station::commands::seal(&dir).map_err(|source| {
            crate::fleet::FleetError::Station {
                station: station_ids[i].clone(),
                source,
            }
        })?;
        Ok::<(), crate::fleet::FleetError>(())
    })
    .await?;
    recorded.into_iter().collect::<Result<Vec<()>, _>>()?;

    say(&format!("P1: baseline: {total} ballots as SQLite rows"));
    let baseline_dir = dir.join("baseline");
    let baseline_s =
        tokio::task::spawn_blocking(move || baseline_rows(&baseline_dir, total)).await??;

    // Each station's sealed batches, as it would send them, and its connection
    // open before the clock starts: the clock measures the center.
    let dirs: Vec<(String, std::path::PathBuf)> = fleet
        .stations
        .iter()
        .map(|s| (s.id.clone(), s.dir.clone()))
        .collect();
    let bundles_dir = fleet.root.join(crate::fleet::BUNDLES_DIR);
    let loaded = on_workers(dirs, workers, move |(id, dir)| {
        let store = pollsync_station::Store::open(&dir)?;
        let bundle = pollsync_proto::EnrollmentBundle::read(
            &pollsync_center::commands::enroll::bundle_path(&bundles_dir, &id),
        )?;
        anyhow::Ok((bundle, store.head()?, store.unacknowledged()?))
    })
    .await?;
    let center = center_process::CenterProcess::start(&fleet.center_dir)?;
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut opening = tokio::task::JoinSet::new();
    let mut batches_total = 0usize;
    for item in loaded {
        let (bundle, head, batches) = item?;
        batches_total += batches.len();
        let address = center.address.clone();
        let connecting = Arc::clone(&connecting);
        opening.spawn(async move {
            let _permit = connecting.acquire().await?;
            let link = link::Link::open(&address, &bundle, head).await?;
            anyhow::Ok((link, batches))
        });
    }
    let mut links = Vec::new();
    while let Some(opened) = opening.join_next().await {
        links.push(opened??);
    }
    say(&format!(
        "P1: {} stations connected; all push {batches_total} batches at once",
        links.len()
    ));
    let started = Instant::now();
    let mut pushing = tokio::task::JoinSet::new();
    for (mut link, batches) in links {
        pushing.spawn(async move { link.push_all(batches).await });
    }
    while let Some(pushed) = pushing.join_next().await {
        pushed??;
    }
    let elapsed = started.elapsed();
    let (_, center_peak_mib) = center.memory_mib()?;
    center.stop()?;

    let reconciled_at = Instant::now();
    let data = fleet.center_dir.clone();
    let (counted, contests) = tokio::task::spawn_blocking(move || {
        let store = pollsync_center::store::Store::open(&data)?;
        let results = pollsync_center::results::compute(&store, None)?;
        let counted: u64 = store.tallies()?.iter().map(|t| t.computed.returned).sum();
        anyhow::Ok((counted, results.outcomes.len()))
    })
    .await??;
    let reconcile = reconciled_at.elapsed();
    ensure!(
        counted == total,
        "the center counted {counted} ballots of {total}"
    );
    let rate = total as f64 / elapsed.as_secs_f64();
    let baseline = total as f64 / baseline_s;
    Ok(P1.figure(
        rate,
        Some(baseline),
        format!(
            "{total} ballots in {batches_total} batches from {} stations (connected before the clock) all acknowledged in {:.2} s; center peak RSS {center_peak_mib:.0} MiB; results of {contests} contests then computed in {:.0} ms; baseline {total} SQLite rows in {baseline_s:.2} s",
            fleet.stations.len(),
            elapsed.as_secs_f64(),
            reconcile.as_secs_f64() * 1e3
        ),
    ))
}

/// P1's baseline: `rows` ballots as one SQLite row each, nothing else; seconds.
fn baseline_rows(dir: &Path, rows: u64) -> anyhow::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let mut conn = rusqlite::Connection::open(dir.join("rows.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE ballot (station INTEGER NOT NULL, seq INTEGER NOT NULL, contest INTEGER NOT NULL, marks BLOB NOT NULL, PRIMARY KEY (station, seq))",
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(rows);
    let started = Instant::now();
    let mut written = 0u64;
    while written < rows {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO ballot (station, seq, contest, marks) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for _ in 0..BASELINE_ROWS_PER_TX.min((rows - written) as usize) {
                let marks: [u8; 4] = [rng.random_range(0..3), rng.random_range(0..3), 0, 0];
                let n = written as i64;
                insert.execute(rusqlite::params![n / 1_300, n, n % 880, &marks[..]])?;
                written += 1;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed().as_secs_f64())
}
