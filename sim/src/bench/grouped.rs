//! P2's second figure: record to counted with the election's anonymity set K (G6),
//! the price of secrecy, reported without a target.
//!
//! A ballot leaves its station only in a group of at least K of its contest, so
//! how long it waits is set by how many ballots are recorded after it, not by the
//! clock. The measurement runs the real agents of [`STATIONS`] beichen stations
//! while each records its drawn ballots one at a time, [`PACE_MS`] apart, then
//! closes; for every ballot it finds the batch that carried it at the center and
//! counts the ballots its station recorded between it and that batch's acceptance.
//! That count, at the model day's pace (the day's ballots per station over twelve
//! hours), is the figure; the compressed run's milliseconds are in the note.

use pollsync_center::store::Records as _;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use pollsync_center::ingest::events::IngestEvent;
use pollsync_election::{BallotChoices, BallotId, StationKind};
use pollsync_proto::pb;
use pollsync_station::sync::client::RunOptions;

use super::{Figure, beichen_fleet, per_station};
use crate::fleet::{AgentNotes, Part, start_agent};

/// Stations measured.
pub const STATIONS: usize = 12;
/// Time between two ballots recorded at one station in the compressed run.
pub const PACE_MS: u64 = 20;
/// Most ballots one station records.
pub const MAX_BALLOTS_PER_STATION: usize = 400;
/// Length of the model polling day.
const POLLING_DAY_S: f64 = 12.0 * 3600.0;

/// One recorded ballot: its station's index and its place in the station's
/// recording order, and when `record` returned.
struct Recorded {
    station: usize,
    place: usize,
    at: Instant,
}

pub(super) async fn p2_grouped(dir: &Path, seed: u64, workers: usize) -> anyhow::Result<Figure> {
    let (mut fleet, drawn) = beichen_fleet(dir, seed, workers).await?;
    let k = fleet.definition.election.min_ballots_per_batch;
    let day_ballots: usize = drawn.iter().map(|sc| sc.ballots.len()).sum();
    let day_s_per_ballot = POLLING_DAY_S * fleet.stations.len() as f64 / day_ballots as f64;
    let per = per_station(&fleet, drawn);
    let chosen: Vec<usize> = (0..fleet.stations.len())
        .filter(|&i| fleet.stations[i].kind == StationKind::Fixed)
        .take(STATIONS)
        .collect();
    ensure!(
        chosen.len() == STATIONS,
        "beichen has {STATIONS} fixed stations"
    );

    let center = fleet.start_center(workers)?;
    let mut events = center.ingest.subscribe();
    let notes = Arc::new(AgentNotes::default());
    let agents: Vec<_> = chosen
        .iter()
        .map(|&i| {
            let s = &fleet.stations[i];
            start_agent(&s.id, &s.dir, RunOptions::default(), notes.log_for(&s.id))
        })
        .collect();

    // Each station's workers: ballots one at a time, the contests interleaved as
    // voters cast them, then every contest closed from the records.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, &i) in chosen.iter().enumerate() {
        let station = fleet.stations[i].clone();
        let definition = Arc::clone(&fleet.definition);
        let mut queues: Vec<(String, std::vec::IntoIter<BallotChoices>)> = per[i]
            .iter()
            .map(|sc| (sc.contest.clone(), sc.ballots.clone().into_iter()))
            .collect();
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut desk = crate::fleet::Desk::open(&station.dir, definition, &station.id)?;
            let mut recorded: Vec<(BallotId, Recorded)> = Vec::new();
            'day: loop {
                let mut any = false;
                for (contest, ballots) in queues.iter_mut() {
                    if recorded.len() == MAX_BALLOTS_PER_STATION {
                        break 'day;
                    }
                    let Some(ballot) = ballots.next() else {
                        continue;
                    };
                    any = true;
                    let due = started + Duration::from_millis(PACE_MS * recorded.len() as u64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let ids = desk.record_ids(&[Part {
                        contest,
                        issued: 1,
                        ballots: std::slice::from_ref(&ballot),
                    }])?;
                    let at = Instant::now();
                    for id in ids {
                        let place = recorded.len();
                        recorded.push((
                            id,
                            Recorded {
                                station: n,
                                place,
                                at,
                            },
                        ));
                    }
                }
                if !any {
                    break;
                }
            }
            desk.close_all_from_records()?;
            Ok::<_, crate::fleet::FleetError>(recorded)
        }));
    }
    // Acceptances as they happen, while the stations record; then until every
    // recorded ballot is counted.
    let mut recording = tokio::spawn(join_recordings(tasks));
    let index: HashMap<String, usize> = chosen
        .iter()
        .enumerate()
        .map(|(n, &i)| (fleet.stations[i].id.clone(), n))
        .collect();
    let mut accepted_at: HashMap<(String, u64), Instant> = HashMap::new();
    let mut counted = 0u64;
    let mut recorded: HashMap<Vec<u8>, Recorded> = HashMap::new();
    let mut record_times: Vec<Vec<Instant>> = vec![Vec::new(); STATIONS];
    let mut expected: Option<u64> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while expected.is_none_or(|e| counted < e) {
        ensure!(
            Instant::now() < deadline,
            "only {counted} of {expected:?} ballots were counted in time"
        );
        tokio::select! {
            done = &mut recording, if expected.is_none() => {
                for (id, r) in done?? {
                    record_times[r.station].push(r.at);
                    recorded.insert(id.as_bytes().to_vec(), r);
                }
                expected = Some(recorded.len() as u64);
            }
            e = events.recv() => match e {
                Ok(IngestEvent::Accepted { station, sequence, ballots, .. }) => {
                    if index.contains_key(&station) {
                        counted += ballots;
                        accepted_at.insert((station, sequence), Instant::now());
                    }
                }
                Ok(IngestEvent::Rejected { station, reason, detail, .. }) => {
                    bail!("station {station}: batch rejected ({reason}): {detail}")
                }
                Ok(IngestEvent::Duplicate { .. }) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    bail!("the measurement fell {n} events behind the ingest")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => bail!("the ingest stopped"),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let expected = recorded.len() as u64;
    for a in agents {
        a.stop().await?;
    }
    let data_dir = center.data_dir.clone();
    center.stop().await?;
    ensure!(notes.stops() == 0, "agents stopped: {:?}", notes.kept());

    // Which batch carried each ballot, and how many its station recorded meanwhile.
    let store = pollsync_center::store::Store::open(&data_dir)?;
    let mut waits_ballots: Vec<f64> = Vec::with_capacity(recorded.len());
    let mut waits_ms: Vec<f64> = Vec::with_capacity(recorded.len());
    let mut smallest_group = usize::MAX;
    for (station, &n) in &index {
        for stored in store.batches(Some(station))? {
            let Some(&at) = accepted_at.get(&(station.clone(), stored.sequence)) else {
                continue;
            };
            let batch = pollsync_proto::envelope::decode_batch_bytes(&stored.batch)?;
            let mut per_contest: HashMap<String, usize> = HashMap::new();
            for e in &batch.events {
                let Some(pb::event::Kind::Ballot(b)) = &e.kind else {
                    continue;
                };
                *per_contest.entry(b.contest.clone()).or_default() += 1;
                let Some(r) = recorded.get(&b.id) else {
                    bail!(
                        "station {station} batch {}: a ballot nobody recorded",
                        stored.sequence
                    );
                };
                ensure!(r.station == n, "a ballot counted for another station");
                let recorded_by_then = record_times[n].partition_point(|t| *t <= at);
                waits_ballots.push(recorded_by_then.saturating_sub(r.place + 1) as f64);
                waits_ms.push(at.duration_since(r.at).as_secs_f64() * 1e3);
            }
            smallest_group = per_contest
                .values()
                .copied()
                .fold(smallest_group, usize::min);
        }
    }
    ensure!(
        waits_ballots.len() as u64 == expected,
        "{} of {expected} ballots found in the center's batches",
        waits_ballots.len()
    );
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len());
        v[i - 1]
    };
    let (b50, b99) = (pct(&mut waits_ballots, 0.5), pct(&mut waits_ballots, 0.99));
    let (m50, m99) = (pct(&mut waits_ms, 0.5), pct(&mut waits_ms, 0.99));
    let minutes = |ballots: f64| ballots * day_s_per_ballot / 60.0;
    Ok(Figure {
        id: "P2",
        what: format!("live latency p99, record to counted, K = {k}"),
        measured: minutes(b99),
        unit: "min",
        target: None,
        baseline: None,
        holds: true,
        note: format!(
            "{expected} ballots at {STATIONS} stations recorded {PACE_MS} ms apart, then closed: a ballot waited for p50 {b50:.0} / p99 {b99:.0} more ballots of its station (smallest group {smallest_group}); at the model day's pace of one ballot per {day_s_per_ballot:.0} s a station, p50 {:.0} min, p99 {:.0} min (in the compressed run p50 {m50:.0} ms, p99 {m99:.0} ms)",
            minutes(b50),
            minutes(b99),
        ),
    })
}

/// One station's recording: its ballots with where and when each was recorded.
type Recording =
    tokio::task::JoinHandle<Result<Vec<(BallotId, Recorded)>, crate::fleet::FleetError>>;

/// Every recording task's ballots, in task order.
async fn join_recordings(tasks: Vec<Recording>) -> anyhow::Result<Vec<(BallotId, Recorded)>> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}
