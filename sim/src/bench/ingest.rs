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

use super::setup::{beichen_fleet_on, per_station};
use super::{Figure, P1, center_process, link};
use crate::ballots::StationContest;
use crate::fleet::{Part, on_workers};

/// Rows per transaction of P1's baseline (as SPEC §9 measured it).
pub const BASELINE_ROWS_PER_TX: usize = 10_000;
/// Connections P1 sets up at once before its clock starts.
pub const CONNECT_CONCURRENCY: usize = 64;
/// Most stations connected at once (a wave): under this machine's open-files
/// limit in the benchmark's process and the center's alike.
pub const MAX_LINKS_AT_ONCE: usize = 4_000;

/// P1: every station of beichen closes with its whole day recorded and sealed,
/// then all push at once; ballots per second until the last is acknowledged.
pub(super) async fn p1_ingest(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
) -> anyhow::Result<Figure> {
    let (baseline_s, day) = baseline_and_day(dir, seed, workers, say, None, 1, 1).await?;
    let rate = day.rate();
    let baseline = day.total as f64 / baseline_s;
    Ok(P1.figure(
        rate,
        Some(baseline),
        format!(
            "{}; baseline {} SQLite rows in {baseline_s:.2} s",
            day.note(),
            day.total
        ),
    ))
}

/// P1 with the center's store on PostgreSQL (a private server this run starts),
/// served by one replica, then by two, each on a fresh database and fleet:
/// reported beside the same run's SQLite-row baseline, without a target.
pub(super) async fn p1_postgres(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
) -> anyhow::Result<Vec<Figure>> {
    say("P1 on PostgreSQL: starting a private server");
    let server = tokio::task::spawn_blocking(crate::pg::PgServer::start).await?;
    let mut figures = Vec::new();
    for replicas in [1usize, 2] {
        let name = format!("p1_{replicas}");
        // Blocks this worker a moment (on a thread of its own inside).
        let url = server.create_database(&name);
        let (baseline_s, day) = baseline_and_day(
            &dir.join(&name),
            seed,
            workers,
            say,
            Some(&url),
            replicas,
            1,
        )
        .await?;
        figures.push(Figure {
            id: "P1",
            what: format!("ingest on PostgreSQL, {replicas} replica(s)"),
            measured: day.rate(),
            unit: "ballots/s",
            target: None,
            baseline: Some(day.total as f64 / baseline_s),
            holds: true,
            note: format!(
                "on PostgreSQL ({replicas} center process(es), stations split evenly): {}; baseline {} SQLite rows in {baseline_s:.2} s",
                day.note(),
                day.total
            ),
        });
    }
    drop(server);
    Ok(figures)
}

/// What one P1 day measured.
pub(super) struct Day {
    pub(super) total: u64,
    pub(super) batches: usize,
    pub(super) stations: usize,
    pub(super) elapsed_s: f64,
    /// Peak resident memory of each center process, MiB.
    pub(super) peaks_mib: Vec<f64>,
    pub(super) reconcile_ms: f64,
    pub(super) contests: usize,
}

impl Day {
    fn rate(&self) -> f64 {
        self.total as f64 / self.elapsed_s
    }

    pub(super) fn note(&self) -> String {
        let peaks: Vec<String> = self.peaks_mib.iter().map(|p| format!("{p:.0}")).collect();
        format!(
            "{} ballots in {} batches from {} stations (each wave connected before its clock) all acknowledged in {:.2} s; center peak RSS {} MiB; results of {} contests then computed in {:.0} ms",
            self.total,
            self.batches,
            self.stations,
            self.elapsed_s,
            peaks.join(" + "),
            self.contests,
            self.reconcile_ms
        )
    }
}

/// Records and seals the day of beichen `scale` times over at every station,
/// measures the SQLite-row baseline of as many ballots, then serves the center (on
/// PostgreSQL at `url` if given, by `replicas` processes) and has every station
/// push its day at once (in waves of [`MAX_LINKS_AT_ONCE`]).
pub(super) async fn measure_day(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
    scale: u64,
) -> anyhow::Result<(f64, Day)> {
    baseline_and_day(dir, seed, workers, say, None, 1, scale).await
}

/// See [`measure_day`].
async fn baseline_and_day(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
    url: Option<&str>,
    replicas: usize,
    scale: u64,
) -> anyhow::Result<(f64, Day)> {
    ensure!(replicas >= 1, "at least one center process");
    let (fleet, drawn) = beichen_fleet_on(dir, seed, workers, url, scale).await?;
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
    let centers = (0..replicas)
        .map(|_| center_process::CenterProcess::start(&fleet.store))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Stations connect in waves of at most MAX_LINKS_AT_ONCE (beichen is one
    // wave); each wave's links open before its clock starts, so the clock measures
    // the center.
    let loaded: Vec<_> = loaded.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let batches_total: usize = loaded.iter().map(|(_, _, b)| b.len()).sum();
    let waves = loaded.len().div_ceil(MAX_LINKS_AT_ONCE).max(1);
    say(&format!(
        "P1: {} stations push {batches_total} batches to {replicas} center process(es), in {waves} wave(s) of all at once",
        loaded.len()
    ));
    let mut elapsed = std::time::Duration::ZERO;
    let mut items = loaded.into_iter().enumerate().peekable();
    while items.peek().is_some() {
        let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
        let mut opening = tokio::task::JoinSet::new();
        for (i, (bundle, head, batches)) in items.by_ref().take(MAX_LINKS_AT_ONCE) {
            let address = centers[i % replicas].address.clone();
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
        let started = Instant::now();
        let mut pushing = tokio::task::JoinSet::new();
        for (mut link, batches) in links {
            pushing.spawn(async move { link.push_all(batches).await });
        }
        while let Some(pushed) = pushing.join_next().await {
            pushed??;
        }
        elapsed += started.elapsed();
    }
    let mut peaks_mib = Vec::new();
    for center in centers {
        peaks_mib.push(center.memory_mib()?.1);
        center.stop()?;
    }

    let reconciled_at = Instant::now();
    let location = fleet.store.clone();
    let (counted, contests) = tokio::task::spawn_blocking(move || {
        let store = pollsync_center::store::Store::open_at(&location)?;
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
    Ok((
        baseline_s,
        Day {
            total,
            batches: batches_total,
            stations: fleet.stations.len(),
            elapsed_s: elapsed.as_secs_f64(),
            peaks_mib,
            reconcile_ms: reconcile.as_secs_f64() * 1e3,
            contests,
        },
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
