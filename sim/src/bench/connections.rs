//! P3: 5,000 stations connected and streaming at once. The center runs in a process
//! of its own (this binary re-started as `sim bench-center`), so that its memory is
//! measured alone; the stations are light clients in this process, each with its
//! own enrolled certificate and key, its own mutual-TLS connection, a Hello and a
//! Push stream on which it sends signed, chained batches while all the others are
//! connected too.

use pollsync_center::store::Records as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use pollsync_center::commands::enroll;
use pollsync_election::{BallotChoices, ElectionDefinition, Station, StationEvent};
use pollsync_proto::chain::ChainWriter;
use pollsync_proto::pb;
use pollsync_proto::{ChainHead, EnrollmentBundle};
use tokio::sync::{Semaphore, watch};

use super::Figure;
use super::center_process::CenterProcess;
use super::link::Link;
use crate::generate::{self, BEICHEN, Preset};

/// Stations connected at once.
pub const P3_STATIONS: usize = 5_000;
/// Connections being set up (TLS handshake, Hello, first batch) at one time.
pub const P3_CONNECT_CONCURRENCY: usize = 200;
/// Batches each station sends once all are connected, one a second.
pub const P3_ROUNDS: u64 = 5;
/// Ballots in each batch.
pub const P3_BALLOTS_PER_BATCH: usize = 4;
/// Longest the whole measurement may take.
pub const P3_TIMEOUT_MS: u64 = 600_000;

/// The model case cut into small precincts: enough stations for P3.
const MANY: Preset = Preset {
    name: "many",
    voters_per_fixed_station: (80, 100),
    ..BEICHEN
};

/// One light station: its chain and stream.
struct Light {
    bundle: EnrollmentBundle,
    chain: ChainWriter,
    /// The station, whose zero report opens its batch 1.
    station: Station,
    contest: String,
    first_candidate: String,
}

impl Light {
    fn new(bundle: EnrollmentBundle, def: &ElectionDefinition) -> anyhow::Result<Light> {
        let station = def
            .station(&bundle.station_id)
            .with_context(|| format!("station {} not in the election", bundle.station_id))?;
        let contest_id = station
            .contests
            .first()
            .context("a station without contests")?;
        let contest = def.contest(contest_id).context("contest")?;
        Ok(Light {
            chain: ChainWriter::from_bundle(&bundle)?,
            station: station.clone(),
            contest: contest.id.clone(),
            first_candidate: contest
                .candidates
                .first()
                .map(|c| c.id.clone())
                .context("a contest without candidates")?,
            bundle,
        })
    }

    /// The next batch: the first opens with the zero report and also issues every
    /// ballot this station will record.
    fn batch(&mut self, def: &ElectionDefinition) -> anyhow::Result<pb::SignedBatch> {
        let contest = def.contest(&self.contest).context("contest")?;
        let mut events = Vec::new();
        if self.chain.head().sequence == 0 {
            events.push(StationEvent::Issued {
                contest: self.contest.clone(),
                count: (P3_ROUNDS + 1) * P3_BALLOTS_PER_BATCH as u64,
            });
        }
        for _ in 0..P3_BALLOTS_PER_BATCH {
            let choices = BallotChoices {
                contest: self.contest.clone(),
                for_ids: vec![self.first_candidate.clone()],
                against: vec![],
                write_in: vec![],
            };
            let id = pollsync_station::store::new_ballot_id()?;
            events.push(StationEvent::Ballot(choices.to_ballot(id, contest)?));
        }
        let signed = self.chain.next_opened(
            &self.station,
            events
                .iter()
                .map(pollsync_proto::convert::event_to_pb)
                .collect(),
        );
        Ok(signed)
    }
}

/// What the stations share.
struct Shared {
    def: ElectionDefinition,
    address: String,
    connecting: Semaphore,
    connected: AtomicUsize,
    go: watch::Receiver<bool>,
    end: watch::Receiver<bool>,
}

/// One station's whole part: connect, Hello, first batch; wait for everybody;
/// [`P3_ROUNDS`] batches a second apart; stay connected until the end.
async fn station(shared: Arc<Shared>, bundle: EnrollmentBundle) -> anyhow::Result<()> {
    let mut light = Light::new(bundle, &shared.def)?;
    let permit = shared.connecting.acquire().await?;
    let mut link = Link::open(&shared.address, &light.bundle, ChainHead::default()).await?;
    link.push_all(vec![light.batch(&shared.def)?]).await?;
    drop(permit);
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let mut go = shared.go.clone();
    go.wait_for(|g| *g).await?;
    for _ in 0..P3_ROUNDS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        link.push_all(vec![light.batch(&shared.def)?]).await?;
    }
    let mut end = shared.end.clone();
    end.wait_for(|e| *e).await?;
    Ok(())
}

/// P3 as a figure: the center's peak memory with every station connected and
/// streaming.
pub async fn p3_connections(dir: &Path, seed: u64, say: &dyn Fn(&str)) -> anyhow::Result<Figure> {
    let def = generate::generate(&MANY, seed)?;
    ensure!(
        def.stations.len() >= P3_STATIONS,
        "the election has only {} stations",
        def.stations.len()
    );
    let chosen: Vec<String> = def
        .stations
        .iter()
        .take(P3_STATIONS)
        .map(|s| s.id.clone())
        .collect();
    say(&format!(
        "P3: enrolling {P3_STATIONS} of the {} stations",
        def.stations.len()
    ));
    let (data, bundles) = super::center_process::init_enrolled(dir, &def, chosen.clone()).await?;
    let center = CenterProcess::start(&data)?;
    let address = center.address.clone();
    let (go_tx, go) = watch::channel(false);
    let (end_tx, end) = watch::channel(false);
    let shared = Arc::new(Shared {
        def,
        address,
        connecting: Semaphore::new(P3_CONNECT_CONCURRENCY),
        connected: AtomicUsize::new(0),
        go,
        end,
    });
    let started = Instant::now();
    let deadline = started + Duration::from_millis(P3_TIMEOUT_MS);
    let mut tasks = tokio::task::JoinSet::new();
    for id in &chosen {
        let bundle = EnrollmentBundle::read(&enroll::bundle_path(&bundles, id))?;
        tasks.spawn(station(Arc::clone(&shared), bundle));
    }
    // Everybody connected (or somebody failed).
    loop {
        if shared.connected.load(Ordering::Relaxed) == P3_STATIONS {
            break;
        }
        if let Some(done) = tasks.try_join_next() {
            done??;
            bail!("a station finished before all were connected");
        }
        ensure!(Instant::now() < deadline, "P3 timed out while connecting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_s = started.elapsed().as_secs_f64();
    say(&format!(
        "P3: {P3_STATIONS} stations connected in {connect_s:.1} s; streaming"
    ));
    let _ = go_tx.send(true);
    // Streaming: watch memory while every station sends its rounds.
    let mut rss_max = 0f64;
    let streaming = Instant::now();
    while streaming.elapsed() < Duration::from_secs(P3_ROUNDS + 2) {
        let (rss, _) = center.memory_mib()?;
        rss_max = rss_max.max(rss);
        if let Some(done) = tasks.try_join_next() {
            done??;
            bail!("a station finished while all should be streaming");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, hwm) = center.memory_mib()?;
    let _ = end_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    center.stop()?;
    let store = pollsync_center::store::Store::open(&data)?;
    let counted: u64 = store.tallies()?.iter().map(|t| t.computed.returned).sum();
    let expected = P3_STATIONS as u64 * (P3_ROUNDS + 1) * P3_BALLOTS_PER_BATCH as u64;
    ensure!(
        counted == expected,
        "the center counted {counted} ballots of {expected}"
    );
    Ok(super::P3.figure(
        hwm,
        None,
        format!(
            "{P3_STATIONS} stations connected at once (all in {connect_s:.1} s), each then streaming {P3_ROUNDS} batches 1 s apart; {counted} ballots counted; center peak RSS {hwm:.0} MiB (max sampled while streaming {rss_max:.0} MiB)"
        ),
    ))
}
