//! `sim demo`: the whole election day on one machine, on top of [`crate::fleet`].
//!
//! A compressed day: an election of the preset is generated from the seed, a center
//! serves on loopback with mutual TLS, every station of the preset is a real station
//! (its own store, key and connection). Fixed stations run their sync agents from
//! the start; ballots are issued and recorded in waves while the center counts live;
//! stations close at different waves; mobile ballot boxes record offline and come in
//! late, after the last wave, so they catch up in one go. At the end every station is
//! closed and fully acknowledged, and the center's results, its audit and its per
//! station tallies are checked against the ground truth drawn with the ballots.

mod progress;
mod report;
mod serving;

use pollsync_center::store::Records as _;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use pollsync_election::{StationKind, TallySheet};
use pollsync_station::sync::client::RunOptions;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ballots::{self, StationContest, USUAL};
use crate::fleet::{self, AgentHandle, AgentNotes, Desk, Fleet, FleetError, Part};
use crate::generate::{self, Preset};
use progress::{Bars, Live, progress_loop, wait_all_synced};
use serving::serve_on;

pub use report::{DemoReport, Phases, compare_with_truth};
pub use serving::{Dashboard, Serving, start_dashboard};

/// Waves of voting in the compressed day.
pub const WAVES: u32 = 5;
/// The earliest wave after which a station may close (each draws one up to [`WAVES`]).
pub const EARLIEST_CLOSE_WAVE: u32 = 3;
/// Pause after each wave, so that counting visibly goes on while voting does.
pub const WAVE_PAUSE_MS: u64 = 300;
/// How often the station agents seal what was recorded.
pub const SEAL_INTERVAL_MS: u64 = 500;
/// How often progress is read from the center and the stations.
pub const PROGRESS_INTERVAL_MS: u64 = 200;
/// Give up when nothing more is counted or synced for this long.
pub const STALL_TIMEOUT_MS: u64 = 120_000;
/// Differences from the ground truth listed one by one.
pub const MAX_SHOWN_DIFFERENCES: usize = 20;
/// Station stores worked on side by side, per core (their work mostly waits on the
/// disk's flushes).
pub const IO_WORKERS_PER_CORE: usize = 4;
/// How long the fixed stations' agents have to reach the center before voting starts.
pub const CONNECT_ALL_TIMEOUT_MS: u64 = 60_000;
/// Where the dashboard listens with `--keep-serving` (`center serve`'s default),
/// if that port is free.
pub const DASHBOARD_ADDR: &str = "127.0.0.1:7480";
/// Stream of the close-wave draw, apart from the generator's and the ballots'.
const CLOSE_WAVE_STREAM: u64 = 0xc105_e0ff;

/// The ballot seed for an election seed: the same number. `ballots::draw` takes its
/// draws from a stream of its own, so they do not repeat the generator's.
pub fn ballot_seed(seed: u64) -> u64 {
    seed
}

/// What `sim demo` was asked.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub preset: &'static Preset,
    pub seed: u64,
    /// Work here (new or empty) and keep it; a temporary folder otherwise.
    pub dir: Option<PathBuf>,
    pub keep_serving: bool,
    pub json: bool,
}

/// Why the demo could not run to the end.
#[derive(Debug)]
pub enum DemoError {
    Generate(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Fleet(FleetError),
    /// The operators' dashboard failed.
    Dashboard(String),
    /// The center rejected a station's batches and its agent stopped pushing.
    Rejected {
        notes: Vec<String>,
    },
    /// Stations stopped getting closer to synced.
    Stalled {
        waited_ms: u64,
        counted: u64,
        ballots: u64,
        not_synced: Vec<String>,
        notes: Vec<String>,
    },
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Generate(e) => write!(f, "generating the election: {e}"),
            DemoError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DemoError::Fleet(e) => write!(f, "{e}"),
            DemoError::Dashboard(e) => write!(f, "the operators' dashboard: {e}"),
            DemoError::Rejected { notes } => {
                write!(
                    f,
                    "the center rejected a station; its agent stopped pushing:"
                )?;
                for n in notes.iter().rev().take(10) {
                    write!(f, "\n  {n}")?;
                }
                Ok(())
            }
            DemoError::Stalled {
                waited_ms,
                counted,
                ballots,
                not_synced,
                notes,
            } => {
                write!(
                    f,
                    "no progress for {} s: the center counted {counted} of {ballots} ballots; not yet fully acknowledged: {}",
                    waited_ms / 1_000,
                    shorten(not_synced, 10)
                )?;
                for n in notes.iter().rev().take(10) {
                    write!(f, "\n  {n}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for DemoError {}

impl From<FleetError> for DemoError {
    fn from(e: FleetError) -> Self {
        DemoError::Fleet(e)
    }
}

fn shorten(items: &[String], most: usize) -> String {
    let mut text = items
        .iter()
        .take(most)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > most {
        text.push_str(&format!(" and {} more", items.len() - most));
    }
    text
}

/// Run the demo: the day, then the report (printed as text or JSON); with
/// `keep_serving`, the center serves on until Ctrl-C. Returns whether every check held.
pub fn run(options: &DemoOptions) -> Result<bool, DemoError> {
    let (workdir, temp) = match &options.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("pollsync-demo-")
                .tempdir()
                .map_err(|source| DemoError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            (temp.path().join("day"), Some(temp))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| DemoError::Io {
            path: workdir.clone(),
            source,
        })?;
    // With --keep-serving a temporary folder outlives the command: the center uses it.
    let keep = options.dir.is_some() || options.keep_serving;
    let kept_dir = keep.then(|| workdir.clone());
    let outcome = runtime.block_on(day(options, &workdir, kept_dir.clone()));
    let (report, serving, fleet) = outcome?;
    if options.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if let Some(serving) = serving {
        runtime.block_on(serve_on(serving, options.json))?;
    }
    drop(runtime);
    match temp {
        Some(temp) if keep => {
            let _ = temp.keep();
        }
        Some(temp) => {
            fleet.remove(cleanup_workers())?;
            drop(temp);
        }
        None => {}
    }
    Ok(report.all_good())
}

/// Threads removing the stations' folders of a temporary day.
fn cleanup_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * IO_WORKERS_PER_CORE
}

/// One station through the day.
struct StationDay {
    id: String,
    kind: StationKind,
    desk: Desk,
    close_wave: u32,
    /// Its contests' ballots; emptied once recorded and closed.
    contests: Vec<StationContest>,
    closed: bool,
    synced: bool,
}

type Shared = Arc<Mutex<StationDay>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The day itself; returns the report, the fleet and, with `--keep-serving`, the
/// running center and its dashboard.
async fn day(
    options: &DemoOptions,
    workdir: &Path,
    kept_dir: Option<PathBuf>,
) -> Result<(DemoReport, Option<Serving>, Fleet), DemoError> {
    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SQLite work mostly waits on the disk's flushes: run more of it side by side.
    let io_workers = workers * IO_WORKERS_PER_CORE;
    let mut phases = Phases::default();

    // Setup: the election, the center's store and every station's store; the
    // ballots are drawn meanwhile (setup mostly waits on the disk, drawing computes).
    let def = generate::generate(options.preset, options.seed)
        .map_err(|e| DemoError::Generate(format!("{e:#}")))?;
    let toml = format!(
        "# Generated by `sim demo --preset {} --seed {}`.\n{}",
        options.preset.name,
        options.seed,
        def.to_toml_string()
    );
    let seed = ballot_seed(options.seed);
    let drawing = tokio::task::spawn_blocking(move || {
        let at = Instant::now();
        (ballots::draw(&def, seed, &USUAL), at.elapsed())
    });
    let root = workdir.to_path_buf();
    let mut fleet = tokio::task::spawn_blocking(move || Fleet::prepare(&root, &toml, io_workers))
        .await
        .map_err(|e| FleetError::Task(e.to_string()))??;
    phases.setup = started.elapsed();
    let (drawn, drawing_took) = drawing.await.map_err(|e| FleetError::Task(e.to_string()))?;
    phases.draw = drawing_took;
    let mobile = fleet
        .stations
        .iter()
        .filter(|s| s.kind == StationKind::Mobile)
        .count();
    let truth: Vec<(String, String, TallySheet)> = drawn
        .iter()
        .map(|sc| (sc.station.clone(), sc.contest.clone(), sc.truth.clone()))
        .collect();
    let total_ballots: u64 = drawn.iter().map(|sc| sc.ballots.len() as u64).sum();
    let days = plan(&fleet, drawn, options.seed)?;

    let bars = Bars::new(options.json, total_ballots, days.len() as u64);
    bars.say(&format!(
        "sim demo: election {} (preset {}, seed {}): {} stations ({} fixed, {mobile} mobile ballot box(es)), {} contests, {total_ballots} ballots; setup {:.1} s, ballots drawn {:.1} s",
        fleet.definition.election.id,
        options.preset.name,
        options.seed,
        days.len(),
        days.len() - mobile,
        fleet.definition.contests.len(),
        phases.setup.as_secs_f64(),
        phases.draw.as_secs_f64(),
    ));

    // The day: center up, fixed stations' agents on, waves of voting, closes.
    let at = Instant::now();
    let center = fleet.start_center(workers)?;
    let reader = center.reader()?;
    // With --keep-serving the dashboard is up from the start: watch the day live.
    let dashboard = if options.keep_serving {
        match start_dashboard(&center.data_dir, &center.ingest).await {
            Ok(d) => {
                bars.say(&format!("dashboard: http://{}/ (live)", d.address));
                Some(d)
            }
            Err(e) => {
                bars.say(&format!("dashboard not started: {e}"));
                None
            }
        }
    } else {
        None
    };
    let notes = Arc::new(AgentNotes::default());
    let options_run = RunOptions {
        seal_interval_ms: SEAL_INTERVAL_MS,
    };
    let mut agents: Vec<AgentHandle> = Vec::new();
    for s in fleet
        .stations
        .iter()
        .filter(|s| s.kind == StationKind::Fixed)
    {
        agents.push(fleet::start_agent(
            &s.id,
            &s.dir,
            options_run.clone(),
            notes.log_for(&s.id),
        ));
    }
    let fixed = agents.len();
    let deadline = Instant::now() + Duration::from_millis(CONNECT_ALL_TIMEOUT_MS);
    while notes.connected() < fixed && Instant::now() < deadline && notes.stops() == 0 {
        tokio::time::sleep(Duration::from_millis(PROGRESS_INTERVAL_MS)).await;
    }
    bars.say(&format!(
        "center serving on {} (mTLS); {} of {fixed} fixed stations' agents connected in {:.1} s; polls open",
        center.address,
        notes.connected(),
        at.elapsed().as_secs_f64()
    ));
    let live = Arc::new(Live::default());
    let (stop_progress, progress_stopped) = tokio::sync::watch::channel(false);
    let progress = tokio::spawn(progress_loop(
        reader,
        days.clone(),
        Arc::clone(&live),
        bars.counted.clone(),
        bars.synced.clone(),
        progress_stopped,
    ));

    for wave in 1..=WAVES {
        let open: Vec<Shared> = days
            .iter()
            .filter(|d| lock(d).close_wave >= wave)
            .cloned()
            .collect();
        let recorded = bars.recorded.clone();
        let results = fleet::on_workers(open, io_workers, move |d: Shared| {
            vote(&mut lock(&d), wave, &recorded)
        })
        .await?;
        let mut closing = 0;
        for r in results {
            closing += usize::from(r?);
        }
        bars.say(&format!(
            "wave {wave} of {WAVES}: {} of {total_ballots} ballots recorded, {} counted at the center; {closing} station(s) closed",
            bars.recorded.position(),
            live.counted(),
        ));
        tokio::time::sleep(Duration::from_millis(WAVE_PAUSE_MS)).await;
    }
    phases.day = at.elapsed();

    // The mobile boxes come back and catch up; then everyone is synced.
    let at = Instant::now();
    for s in fleet
        .stations
        .iter()
        .filter(|s| s.kind == StationKind::Mobile)
    {
        agents.push(fleet::start_agent(
            &s.id,
            &s.dir,
            options_run.clone(),
            notes.log_for(&s.id),
        ));
    }
    if mobile > 0 {
        bars.say(&format!(
            "{mobile} mobile ballot box(es) back at their stations: their agents connect and catch up"
        ));
    }
    let waited = wait_all_synced(&days, &live, total_ballots, &notes).await;
    let _ = stop_progress.send(true);
    let _ = progress.await;
    bars.finish();
    waited?;
    phases.late = at.elapsed();

    // Stations go home (their stores closed side by side: closing flushes each
    // one's log); results and the checks.
    let at = Instant::now();
    for a in &agents {
        a.ask_stop();
    }
    for a in agents {
        a.stop().await?;
    }
    let stations = days.len();
    fleet::on_workers(days, io_workers, drop).await?;
    let serving = if options.keep_serving {
        Some(Serving { center, dashboard })
    } else {
        center.stop().await?;
        None
    };
    let center_dir = fleet.center_dir.clone();
    let evidence_dir = workdir.join("evidence");
    let (results, audit, alerts, tallies, evidence) = tokio::task::spawn_blocking(move || {
        let store = pollsync_center::store::Store::open(&center_dir)?;
        let results = pollsync_center::results::compute(&store, None)?;
        let audit = pollsync_center::audit::audit(&store)?;
        let alerts = store.alerts()?;
        let tallies = store.tally_map()?;
        let evidence = report::EvidenceCheck::run(&center_dir, &evidence_dir)?;
        Ok::<_, pollsync_center::CenterError>((results, audit, alerts, tallies, evidence))
    })
    .await
    .map_err(|e| FleetError::Task(e.to_string()))?
    .map_err(FleetError::Center)?;
    let truth_differences = compare_with_truth(&tallies, &truth);
    phases.checks = at.elapsed();
    phases.total = started.elapsed();

    let report = DemoReport {
        election: fleet.definition.election.id.clone(),
        seed: options.seed,
        stations,
        mobile,
        ballots: total_ballots,
        phases,
        results,
        audit,
        alerts,
        truth_differences,
        evidence,
        agent_notes: notes.kept(),
        kept_dir,
    };
    Ok((report, serving, fleet))
}

/// Every station's day: its desk, its contests' ballots, and the wave after which
/// it closes (drawn from the seed: fixed stations from [`EARLIEST_CLOSE_WAVE`] on;
/// mobile boxes too, though they reach the center only after the last wave).
fn plan(fleet: &Fleet, drawn: Vec<StationContest>, seed: u64) -> Result<Vec<Shared>, DemoError> {
    let mut by_station: HashMap<String, Vec<StationContest>> = HashMap::new();
    for sc in drawn {
        by_station.entry(sc.station.clone()).or_default().push(sc);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ CLOSE_WAVE_STREAM);
    let mut days = Vec::with_capacity(fleet.stations.len());
    for s in &fleet.stations {
        days.push(Arc::new(Mutex::new(StationDay {
            id: s.id.clone(),
            kind: s.kind,
            desk: fleet.desk(s)?,
            close_wave: rng.random_range(EARLIEST_CLOSE_WAVE..=WAVES),
            contests: by_station.remove(&s.id).unwrap_or_default(),
            closed: false,
            synced: false,
        })));
    }
    Ok(days)
}

/// The `wave`'s share of `part_of` items out of `total`, spread evenly over the
/// waves up to `close_wave`: the range to take.
fn share(total: u64, wave: u32, close_wave: u32) -> (u64, u64) {
    let at = |w: u32| total * u64::from(w.min(close_wave)) / u64::from(close_wave.max(1));
    (at(wave - 1), at(wave))
}

/// One station's wave: its share of issues and ballots for every contest, in one
/// transaction; after its close wave, every contest closed from the records.
/// Returns whether it closed.
fn vote(day: &mut StationDay, wave: u32, recorded: &ProgressBar) -> Result<bool, FleetError> {
    let close_wave = day.close_wave;
    let parts: Vec<Part<'_>> = day
        .contests
        .iter()
        .map(|sc| {
            let (i0, i1) = share(sc.issued, wave, close_wave);
            let (b0, b1) = share(sc.ballots.len() as u64, wave, close_wave);
            Part {
                contest: &sc.contest,
                issued: i1 - i0,
                ballots: &sc.ballots[b0 as usize..b1 as usize],
            }
        })
        .collect();
    let written = day.desk.record(&parts)?;
    recorded.inc(written);
    if wave < close_wave {
        return Ok(false);
    }
    day.desk.close_all_from_records()?;
    day.closed = true;
    for sc in &mut day.contests {
        sc.ballots = Vec::new();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_hand_out_every_ballot_once_and_never_more_returned_than_issued() {
        for (issued, returned) in [(0, 0), (1, 1), (7, 5), (1_234, 1_231), (2, 0)] {
            for close_wave in EARLIEST_CLOSE_WAVE..=WAVES {
                let (mut i_sum, mut b_sum) = (0, 0);
                for wave in 1..=close_wave {
                    let (i0, i1) = share(issued, wave, close_wave);
                    let (b0, b1) = share(returned, wave, close_wave);
                    assert_eq!((i0, b0), (i_sum, b_sum), "waves follow each other");
                    i_sum = i1;
                    b_sum = b1;
                    assert!(b_sum <= i_sum, "returned so far exceeds issued so far");
                }
                assert_eq!((i_sum, b_sum), (issued, returned));
            }
        }
    }
}
