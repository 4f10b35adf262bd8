//! P2's first figure, seal to counted: every beichen station's agent running while
//! ballots are recorded at a busy polling-day rate with nothing held back for a
//! group (K = 1); the p99 from `record` returning to the center's durable
//! acceptance. The second P2 figure, with the election's K, is `bench::grouped`.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use pollsync_center::ingest::events::IngestEvent;
use pollsync_election::BallotChoices;
use pollsync_station::sync::client::RunOptions;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::setup::{beichen_fleet_with, per_station};
use super::{Figure, P2};
use crate::fleet::{AgentNotes, Part, start_agent};

/// P2's recording rate, all stations together: about ten times the model day's
/// average (780k ballots over 12 hours is 18 a second), a busy hour with margin.
pub const P2_BALLOTS_PER_S: u64 = 200;
/// How long P2 records.
pub const P2_DURATION_MS: u64 = 20_000;

/// P2, seal to counted: every beichen station's agent runs while ballots are
/// recorded one by one at [`P2_BALLOTS_PER_S`]; the latency of each from `record`
/// returning to the center's durable acceptance of the batch holding it. The
/// election is run as a test one with K = 1, so that nothing waits for a group:
/// the figure is the wait for the agent's next seal plus seal to counted.
pub(super) async fn p2_latency(
    dir: &Path,
    seed: u64,
    workers: usize,
    say: &dyn Fn(&str),
) -> anyhow::Result<Figure> {
    let (mut fleet, drawn) = beichen_fleet_with(dir, seed, workers, Some(1), None, 1).await?;
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
