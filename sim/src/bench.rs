//! `sim bench`: the performance targets of SPEC §9, measured on this machine with
//! the real center and station code (mutual TLS, signatures, durable commits):
//!
//! - P1 center ingest: every beichen station pushes its whole day at once after
//!   close; ballots per second from the first push to the last acknowledgement,
//!   against the baseline of inserting the same number of ballots as SQLite rows
//!   (WAL, `synchronous=FULL`, 10k rows per transaction) measured in the same run;
//! - P2 live latency, two figures: seal to counted (every beichen station's agent
//!   running while ballots are recorded at a busy polling-day rate, with nothing
//!   held back for a group, K = 1: p99 from `record` returning to the ballot's batch
//!   being durably applied at the center, which bounds seal to counted from above);
//!   and record to counted with the election's K (`bench::grouped`), the price of
//!   the anonymity set, reported without a target;
//! - P3 connections: 5,000 stations connected and streaming at once to a center in
//!   its own process; that process's peak memory;
//! - P4 station import: ballots per second into a station's store, durable;
//! - P5 catch-up: a station back with 10,000 unsent ballots; time from
//!   reconnecting to everything acknowledged;
//! - P7 hostile memory: `center import` of a crafted 50 MB export, peak memory above
//!   the same import of an honest export (`bench::hostile`).
//!
//! Each measurement works in its own folder under a temporary root and checks what
//! it measured (every ballot counted, every acknowledgement an acceptance), so a
//! fast wrong answer never passes for a figure.

mod center_process;
mod connections;
mod grouped;
pub mod hostile;
mod link;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use pollsync_center::ingest::events::IngestEvent;
use pollsync_election::{BallotChoices, StationKind};
use pollsync_station::sync::client::{Log, RunOptions, SyncOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::ballots::{self, StationContest, USUAL};
use crate::fleet::{AgentNotes, Fleet, Part, on_workers, start_agent};
use crate::generate::{self, BEICHEN, SMALL};

pub use center_process::serve_child;

/// Every measurement, in SPEC order.
pub const ALL: [&str; 6] = ["P1", "P2", "P3", "P4", "P5", "P7"];

/// P2's recording rate, all stations together: about ten times the model day's
/// average (780k ballots over 12 hours is 18 a second), a busy hour with margin.
pub const P2_BALLOTS_PER_S: u64 = 200;
/// How long P2 records.
pub const P2_DURATION_MS: u64 = 20_000;
/// Ballots a P4 station imports, and a P5 station has unsent.
pub const P4_BALLOTS: usize = 100_000;
pub const P5_BALLOTS: usize = 10_000;
/// Runs of P4 and P5 (the median is reported).
pub const REPEATS: usize = 3;
/// Rows per transaction of P1's baseline (as SPEC §9 measured it).
pub const BASELINE_ROWS_PER_TX: usize = 10_000;
/// Connections P1 sets up at once before its clock starts.
pub const CONNECT_CONCURRENCY: usize = 64;
/// Longest a station may take to sync in P5 before the run fails.
pub const SYNC_TIMEOUT_MS: u64 = 300_000;

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
    /// Measurement ids (P1…P5); empty means all.
    pub only: Vec<String>,
    /// Seed of the elections and ballots.
    pub seed: u64,
    /// Print progress lines to stderr.
    pub verbose: bool,
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
            "P1" => p1_ingest(&dir, options.seed, workers, &say).await,
            "P2" => {
                let grouped = grouped::p2_grouped(&dir.join("grouped"), options.seed, workers)
                    .await
                    .context("P2 (record to counted with K) failed")?;
                let sealed = p2_latency(&dir.join("sealed"), options.seed, workers, &say).await;
                match sealed {
                    Ok(sealed) => {
                        say(&format!(
                            "P2: {} {} ({})",
                            round(sealed.measured),
                            sealed.unit,
                            sealed.note
                        ));
                        figures.push(sealed);
                        Ok(grouped)
                    }
                    Err(e) => Err(e),
                }
            }
            "P3" => connections::p3_connections(&dir, options.seed, &say).await,
            "P4" => p4_import(&dir, options.seed).await,
            "P5" => p5_catch_up(&dir, options.seed, workers).await,
            "P7" => {
                let serve = hostile::p7_hostile_pushes(&dir.join("serve"), options.seed)
                    .await
                    .context("P7 (serve) failed")?;
                say(&format!(
                    "P7: {} {} ({})",
                    round(serve.measured),
                    serve.unit,
                    serve.note
                ));
                figures.push(serve);
                hostile::p7_hostile_import(&dir.join("import"), options.seed).await
            }
            _ => unreachable!("checked above"),
        }
        .with_context(|| format!("{id} failed"))?;
        say(&format!(
            "{id}: {} {} ({})",
            round(figure.measured),
            figure.unit,
            figure.note
        ));
        figures.push(figure);
    }
    Ok(figures)
}

/// The beichen election laid out as a fleet under `dir`, and its day's ballots.
async fn beichen_fleet(
    dir: &Path,
    seed: u64,
    workers: usize,
) -> anyhow::Result<(Fleet, Vec<StationContest>)> {
    beichen_fleet_with(dir, seed, workers, None).await
}

/// [`beichen_fleet`], as a test election with anonymity set `k` if given.
async fn beichen_fleet_with(
    dir: &Path,
    seed: u64,
    workers: usize,
    k: Option<u32>,
) -> anyhow::Result<(Fleet, Vec<StationContest>)> {
    let mut definition = generate::generate(&BEICHEN, seed)?;
    if let Some(k) = k {
        definition.election.mode = pollsync_election::Mode::Test;
        definition.election.min_ballots_per_batch = k;
    }
    let toml = definition.to_toml_string();
    let root = dir.to_path_buf();
    let fleet =
        tokio::task::spawn_blocking(move || Fleet::prepare(&root, &toml, workers)).await??;
    let drawn = ballots::draw(&fleet.definition, seed, &USUAL);
    Ok((fleet, drawn))
}

/// Ballots of `drawn` grouped per station index of `fleet`.
fn per_station(fleet: &Fleet, drawn: Vec<StationContest>) -> Vec<Vec<StationContest>> {
    let index: HashMap<&str, usize> = fleet
        .stations
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut out: Vec<Vec<StationContest>> = vec![Vec::new(); fleet.stations.len()];
    for sc in drawn {
        if let Some(&i) = index.get(sc.station.as_str()) {
            out[i].push(sc);
        }
    }
    out
}

fn quiet() -> Log {
    Arc::new(|_| {})
}

/// P1: every station of beichen closes with its whole day recorded and sealed,
/// then all push at once; ballots per second until the last is acknowledged.
async fn p1_ingest(
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

/// P2, seal to counted: every beichen station's agent runs while ballots are
/// recorded one by one at [`P2_BALLOTS_PER_S`]; the latency of each from `record`
/// returning to the center's durable acceptance of the batch holding it. The
/// election is run as a test one with K = 1, so that nothing waits for a group:
/// the figure is the wait for the agent's next seal plus seal to counted.
async fn p2_latency(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
) -> anyhow::Result<Figure> {
    let (mut fleet, drawn) = beichen_fleet_with(dir, seed, workers, Some(1)).await?;
    // The ballots each station will record, one at a time, in drawn order.
    let mut queue: Vec<VecDeque<(String, BallotChoices)>> = per_station(&fleet, drawn)
        .into_iter()
        .map(|day| {
            day.into_iter()
                .flat_map(|sc| {
                    let contest = sc.contest.clone();
                    sc.ballots.into_iter().map(move |b| (contest.clone(), b))
                })
                .collect()
        })
        .collect();
    let center = fleet.start_center(workers)?;
    let mut events = center.ingest.subscribe();
    let notes = Arc::new(AgentNotes::default());
    let agents: Vec<_> = fleet
        .stations
        .iter()
        .map(|s| start_agent(&s.id, &s.dir, RunOptions::default(), notes.log_for(&s.id)))
        .collect();
    // Every agent connected before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    while center
        .ingest
        .live_stations()
        .iter()
        .any(|s| s.presence.connections == 0)
    {
        ensure!(
            Instant::now() < deadline,
            "not every agent connected within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say(&format!(
        "P2: {} agents connected; recording {P2_BALLOTS_PER_S} ballots/s for {} s",
        agents.len(),
        P2_DURATION_MS / 1_000
    ));

    // Recorders: each owns a share of the stations' desks and records its share
    // of the rate, one ballot per durable transaction, like `station record`.
    let recorders = workers.max(2) * 4;
    let (recorded_tx, mut recorded_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0b2);
    let total = (P2_BALLOTS_PER_S * P2_DURATION_MS / 1_000) as usize;
    let mut plan: Vec<Vec<(usize, String, BallotChoices)>> = vec![Vec::new(); recorders];
    for n in 0..total {
        let i = rng.random_range(0..fleet.stations.len());
        let Some((contest, ballot)) = queue[i].pop_front() else {
            continue;
        };
        plan[n % recorders].push((i, contest, ballot));
    }
    let interval = Duration::from_micros(1_000_000 * recorders as u64 / P2_BALLOTS_PER_S);
    let mut tasks = Vec::new();
    for share in plan {
        let stations: Vec<(String, std::path::PathBuf)> = fleet
            .stations
            .iter()
            .map(|s| (s.id.clone(), s.dir.clone()))
            .collect();
        let definition = Arc::clone(&fleet.definition);
        let recorded_tx = recorded_tx.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut desks: HashMap<usize, crate::fleet::Desk> = HashMap::new();
            let start = Instant::now();
            for (n, (i, contest, ballot)) in share.into_iter().enumerate() {
                let due = start + interval * n as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let desk = match desks.entry(i) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(crate::fleet::Desk::open(
                            &stations[i].1,
                            Arc::clone(&definition),
                            &stations[i].0,
                        )?)
                    }
                };
                desk.record(&[Part {
                    contest: &contest,
                    issued: 1,
                    ballots: std::slice::from_ref(&ballot),
                }])?;
                let _ = recorded_tx.send((i, Instant::now()));
            }
            Ok::<(), crate::fleet::FleetError>(())
        }));
    }
    drop(recorded_tx);

    // Match acceptances to recordings: a station's batches hold its ballots in the
    // order they were recorded (sealing takes the log in order).
    let index: HashMap<String, usize> = fleet
        .stations
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let mut waiting: Vec<VecDeque<Instant>> = vec![VecDeque::new(); fleet.stations.len()];
    // Ballots accepted before their recording was reported here (the agent sealed
    // them in the instant between `record` returning and the report): ~0 ms.
    let mut early: Vec<u64> = vec![0; fleet.stations.len()];
    let mut latencies_ms: Vec<f64> = Vec::with_capacity(total);
    let mut recording_done = false;
    let mut expected = usize::MAX;
    let mut recorded = 0usize;
    let deadline = Instant::now() + Duration::from_millis(P2_DURATION_MS + 60_000);
    while latencies_ms.len() < expected {
        ensure!(
            Instant::now() < deadline,
            "only {} of {recorded} ballots were counted in time",
            latencies_ms.len()
        );
        tokio::select! {
            r = recorded_rx.recv(), if !recording_done => match r {
                Some((i, at)) => {
                    recorded += 1;
                    if early[i] > 0 {
                        early[i] -= 1;
                        latencies_ms.push(0.0);
                    } else {
                        waiting[i].push_back(at);
                    }
                }
                None => {
                    recording_done = true;
                    expected = recorded;
                }
            },
            e = events.recv() => match e {
                Ok(IngestEvent::Accepted { station, ballots, .. }) => {
                    let now = Instant::now();
                    let Some(&i) = index.get(&station) else { continue };
                    for _ in 0..ballots {
                        match waiting[i].pop_front() {
                            Some(at) => latencies_ms.push(now.duration_since(at).as_secs_f64() * 1e3),
                            None => early[i] += 1,
                        }
                    }
                }
                Ok(IngestEvent::Rejected { station, reason, detail, .. }) => {
                    bail!("station {station}: batch rejected ({reason}): {detail}")
                }
                Ok(IngestEvent::Duplicate { .. }) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    bail!("the measurement fell {n} events behind the ingest")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    bail!("the ingest stopped")
                }
            },
            // Wake to check the deadline even when nothing arrives.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for t in tasks {
        t.await??;
    }
    for a in agents {
        a.stop().await?;
    }
    center.stop().await?;
    ensure!(notes.stops() == 0, "agents stopped: {:?}", notes.kept());
    latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let i = ((latencies_ms.len() as f64 * p).ceil() as usize).clamp(1, latencies_ms.len());
        latencies_ms[i - 1]
    };
    let p99 = pct(0.99);
    Ok(P2.figure(
        p99,
        None,
        format!(
            "record to counted with nothing held (K = 1), bounding seal to counted: {} ballots at {P2_BALLOTS_PER_S}/s over {} stations' agents: p50 {:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
            latencies_ms.len(),
            fleet.stations.len(),
            pct(0.5),
            pct(1.0)
        ),
    ))
}

/// A small election's fleet, one station of it, and `n` of its ballots (the drawn
/// ones repeated as needed) for `station import` and catch-up.
async fn one_station_with(
    dir: &Path,
    seed: u64,
    workers: usize,
    station_no: usize,
    n: usize,
) -> anyhow::Result<(Fleet, usize, String, Vec<BallotChoices>)> {
    let def = generate::generate(&SMALL, seed)?;
    let toml = def.to_toml_string();
    let root = dir.to_path_buf();
    let fleet =
        tokio::task::spawn_blocking(move || Fleet::prepare(&root, &toml, workers)).await??;
    let drawn = ballots::draw(&fleet.definition, seed, &USUAL);
    let fixed: Vec<usize> = fleet
        .stations
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == StationKind::Fixed)
        .map(|(i, _)| i)
        .collect();
    ensure!(!fixed.is_empty(), "the small election has no fixed station");
    let i = fixed[station_no % fixed.len()];
    let sc = drawn
        .iter()
        .find(|sc| sc.station == fleet.stations[i].id && !sc.ballots.is_empty())
        .context("the station drew no ballots")?;
    let ballots: Vec<BallotChoices> = sc.ballots.iter().cycle().take(n).cloned().collect();
    let contest = sc.contest.clone();
    Ok((fleet, i, contest, ballots))
}

/// A small election's center store (no server) and one station's honest export of
/// a thousand ballots: what P7 imports as its idle figure.
async fn small_center_with_export(
    dir: &Path,
    seed: u64,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    const BALLOTS: usize = 1_000;
    let (fleet, i, contest, ballots) = one_station_with(dir, seed, 2, 0, BALLOTS).await?;
    let station_dir = fleet.stations[i].dir.clone();
    let lines = dir.join("honest.jsonl");
    let mut text = String::new();
    for b in &ballots {
        text.push_str(&serde_json::to_string(b)?);
        text.push('\n');
    }
    std::fs::write(&lines, text)?;
    let export = dir.join("honest.psync");
    let out = export.clone();
    tokio::task::spawn_blocking(move || {
        pollsync_station::commands::issue(&station_dir, &contest, BALLOTS as u64)?;
        let mut store = pollsync_station::Store::open(&station_dir)?;
        let prov = store.provisioned()?;
        pollsync_station::import::import(&mut store, &prov, &lines)?;
        pollsync_station::commands::export(&station_dir, &out)?;
        anyhow::Ok(())
    })
    .await??;
    Ok((fleet.center_dir.clone(), export))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// P4: `station import` of [`P4_BALLOTS`] ballots (the real command's code: file
/// read and checked, then one durable transaction); median of [`REPEATS`].
async fn p4_import(dir: &Path, seed: u64) -> anyhow::Result<Figure> {
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
            ensure!(
                counts.ballots_waiting as usize == P4_BALLOTS
                    && counts.pending_events as usize == P4_BALLOTS + 1,
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

/// P5: a station recorded [`P5_BALLOTS`] ballots while the center was away; time
/// from its reconnecting to everything acknowledged; median of [`REPEATS`].
async fn p5_catch_up(dir: &Path, seed: u64, workers: usize) -> anyhow::Result<Figure> {
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
