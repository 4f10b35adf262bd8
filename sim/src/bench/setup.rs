//! The elections and fleets the measurements run on: beichen laid out as a fleet
//! with its day's ballots, and a small election's single station with a given
//! number of ballots (and, for P7, its honest export).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, ensure};
use pollsync_election::{BallotChoices, StationKind};

use crate::ballots::{self, StationContest, USUAL};
use crate::fleet::Fleet;
use crate::generate::{self, BEICHEN, SMALL};

/// The beichen election laid out as a fleet under `dir`, and its day's ballots.
pub(super) async fn beichen_fleet(
    dir: &Path,
    seed: u64,
    workers: usize,
) -> anyhow::Result<(Fleet, Vec<StationContest>)> {
    beichen_fleet_with(dir, seed, workers, None, None, 1).await
}

/// Beichen `scale` times over (as many voters per station, `scale` times the
/// stations and ballots, the same contests), its center's store on PostgreSQL at
/// `url` if given; no agents (the stations push through the benchmark's links).
pub(super) async fn beichen_fleet_on(
    dir: &Path,
    seed: u64,
    workers: usize,
    url: Option<&str>,
    scale: u64,
) -> anyhow::Result<(Fleet, Vec<StationContest>)> {
    beichen_fleet_with(dir, seed, workers, None, url, scale).await
}

/// [`beichen_fleet`], as a test election with anonymity set `k` if given.
pub(super) async fn beichen_fleet_with(
    dir: &Path,
    seed: u64,
    workers: usize,
    k: Option<u32>,
    url: Option<&str>,
    scale: u64,
) -> anyhow::Result<(Fleet, Vec<StationContest>)> {
    ensure!(scale >= 1, "a scale of at least 1");
    let mut preset = BEICHEN.clone();
    preset.district.registered *= scale;
    preset.town.registered *= scale;
    let mut definition = generate::generate(&preset, seed)?;
    if let Some(k) = k {
        definition.election.mode = pollsync_election::Mode::Test;
        definition.election.min_ballots_per_batch = k;
    }
    let toml = definition.to_toml_string();
    let root = dir.to_path_buf();
    let url = url.map(str::to_owned);
    let fleet = tokio::task::spawn_blocking(move || {
        // Agents run at every station only in the latency measurement (`k`).
        Fleet::prepare_on(&root, &toml, workers, url.as_deref(), k.is_some())
    })
    .await??;
    let drawn = ballots::draw(&fleet.definition, seed, &USUAL);
    Ok((fleet, drawn))
}

/// Ballots of `drawn` grouped per station index of `fleet`.
pub(super) fn per_station(fleet: &Fleet, drawn: Vec<StationContest>) -> Vec<Vec<StationContest>> {
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

/// A small election's fleet, one station of it, and `n` of its ballots (the drawn
/// ones repeated as needed) for `station import` and catch-up.
pub(super) async fn one_station_with(
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
pub(super) async fn small_center_with_export(
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
