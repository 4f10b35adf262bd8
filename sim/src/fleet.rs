//! A whole election day's machinery in one process, for `sim demo` and `sim bench`:
//! a real center (store, election CA, enrolled stations, ingest writer, gRPC server
//! with mutual TLS on a loopback port), one real station per station of the
//! definition (its own folder, SQLite store, key and connection), their sync agents
//! (`station run`'s own loop) as tokio tasks, and a [`Desk`] per station through
//! which ballots are recorded with the station's own door checks.
//!
//! Nothing here decides *when* things happen: a caller (the demo's compressed day, a
//! benchmark's burst) records, closes, starts and stops agents in the order it needs.
//!
//! ```text
//! Fleet::prepare(root, toml, n) center init + enroll + one station store each
//! fleet.start_center(threads)   ingest writer + gRPC server on the prepared port
//! fleet.desk(&station)          record issues and ballots, close contests (blocking
//!   with on_workers               SQLite work, several stations side by side)
//! start_agent(..)               a station's sync agent; AgentHandle::stop ends it
//! center.stop()                 server, then writer: everything applied is durable
//! fleet.remove(n)               delete it all
//! ```

mod agents;
mod center;
mod desk;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pollsync_center::CenterError;
use pollsync_center::commands::{enroll, init};
use pollsync_center::server::ServerError;
use pollsync_center::store::StoreLocation;
use pollsync_election::{ElectionDefinition, StationKind};
use pollsync_station::StationError;
use pollsync_station::store::Store;

pub use agents::{AgentHandle, AgentNotes, start_agent};
pub use center::{CenterHandle, CenterReader};
pub use desk::{Desk, Part};

/// Name of the definition file written into the fleet's folder.
pub const ELECTION_FILE: &str = "election.toml";
/// The center's data folder inside the fleet's folder.
pub const CENTER_DIR: &str = "center-data";
/// Where the enrollment bundles go (mode 0600 files).
pub const BUNDLES_DIR: &str = "bundles";
/// The stations' data folders, one per station id.
pub const STATIONS_DIR: &str = "stations";
/// Open files one station costs, with room to spare: its desk's and its agent's
/// three SQLite connections (database and WAL file each, one shared-memory file)
/// and both ends of its TLS connection; about 10 measured with the beichen preset.
pub const FILES_PER_STATION: u64 = 12;
/// Open files the rest of the process needs (center store, runtime, terminal).
pub const FILES_BASE: u64 = 256;
/// Connections the center's accept queue holds before it takes them.
pub const LISTEN_BACKLOG: u32 = 4096;
/// Most problem notes kept from the agents (the rest are only counted).
pub const MAX_KEPT_NOTES: usize = 200;

/// Why the fleet could not do what it was asked.
#[derive(Debug)]
pub enum FleetError {
    /// A file or folder of the fleet.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The fleet's folder holds something already.
    NotEmpty { path: PathBuf },
    /// The open-file limit is too low for this many stations.
    TooFewFiles {
        stations: usize,
        needed: u64,
        limit: u64,
    },
    /// The center's store, commands or ingest.
    Center(CenterError),
    /// The gRPC server.
    Serve(ServerError),
    /// A station's store or door checks.
    Station {
        station: String,
        source: StationError,
    },
    /// A station's sync agent failed or was rejected.
    Agent { station: String, detail: String },
    /// A background task died.
    Task(String),
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            FleetError::NotEmpty { path } => write!(
                f,
                "{}: the folder is not empty; pick a new or empty folder",
                path.display()
            ),
            FleetError::TooFewFiles {
                stations,
                needed,
                limit,
            } => write!(
                f,
                "{stations} stations need about {needed} open files but this process may open only {limit}; raise the limit (ulimit -n {needed}) and run again"
            ),
            FleetError::Center(e) => write!(f, "center: {e}"),
            FleetError::Serve(e) => write!(f, "center: {e}"),
            FleetError::Station { station, source } => write!(f, "station {station}: {source}"),
            FleetError::Agent { station, detail } => {
                write!(f, "station {station}'s sync agent: {detail}")
            }
            FleetError::Task(what) => write!(f, "a background task failed: {what}"),
        }
    }
}

impl std::error::Error for FleetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FleetError::Io { source, .. } => Some(source),
            FleetError::Center(e) => Some(e),
            FleetError::Serve(e) => Some(e),
            FleetError::Station { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<CenterError> for FleetError {
    fn from(e: CenterError) -> Self {
        FleetError::Center(e)
    }
}

pub type Result<T, E = FleetError> = std::result::Result<T, E>;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One station of the fleet.
#[derive(Debug, Clone)]
pub struct FleetStation {
    pub id: String,
    pub kind: StationKind,
    /// Its data folder (what `station --data` would name).
    pub dir: PathBuf,
}

/// A prepared election day: the center's store and every station's store exist; the
/// center listens once [`Fleet::start_center`] is called.
pub struct Fleet {
    pub root: PathBuf,
    pub definition: Arc<ElectionDefinition>,
    pub center_dir: PathBuf,
    /// Where the center's store is: `center_dir`, or a PostgreSQL database.
    pub store: StoreLocation,
    /// Where stations reach the center (the address in their bundles).
    pub address: SocketAddr,
    pub stations: Vec<FleetStation>,
    /// Holds the port from `prepare` until the center listens on it.
    reserved: Option<std::net::TcpListener>,
}

impl Fleet {
    /// Lay out an election day under `root` (new or empty): write the definition,
    /// `center init` advertising a freshly bound loopback port, `center enroll` of
    /// every station, and `station init` for every station from its bundle (on
    /// `workers` threads: much of it waits on the disk). The port stays bound until
    /// the center serves on it.
    pub fn prepare(root: &Path, election_toml: &str, workers: usize) -> Result<Fleet> {
        Fleet::prepare_on(root, election_toml, workers, None, true)
    }

    /// [`Fleet::prepare`] with the center's store on PostgreSQL at `url` (an empty
    /// database) if given; `agents`: whether every station will run an agent at
    /// once (the open-files limit must then hold them all).
    pub fn prepare_on(
        root: &Path,
        election_toml: &str,
        workers: usize,
        url: Option<&str>,
        agents: bool,
    ) -> Result<Fleet> {
        if root.exists() {
            let mut entries = std::fs::read_dir(root).map_err(io_error(root))?;
            if entries.next().is_some() {
                return Err(FleetError::NotEmpty {
                    path: root.to_path_buf(),
                });
            }
        }
        std::fs::create_dir_all(root).map_err(io_error(root))?;
        let election_file = root.join(ELECTION_FILE);
        std::fs::write(&election_file, election_toml).map_err(io_error(&election_file))?;
        let (_, definition) = pollsync_center::validate::load_file(&election_file)
            .map_err(|errors| CenterError::Definition { errors })?;
        if agents {
            check_open_files(definition.stations.len())?;
        }

        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(io_error(Path::new("127.0.0.1:0")))?;
        let address = listener
            .local_addr()
            .map_err(io_error(Path::new("127.0.0.1:0")))?;
        let center_dir = root.join(CENTER_DIR);
        let store = match url {
            Some(url) => StoreLocation::Postgres(url.to_owned()),
            None => StoreLocation::Folder(center_dir.clone()),
        };
        init::init(&store, &election_file, &[address.to_string()], None)?;
        let bundles = root.join(BUNDLES_DIR);
        // `center enroll` in slices side by side: writing each bundle waits on the disk.
        let ids: Vec<String> = definition.stations.iter().map(|s| s.id.clone()).collect();
        let slices: Vec<Vec<String>> = ids
            .chunks(ids.len().div_ceil(workers.max(1)).max(1))
            .map(<[String]>::to_vec)
            .collect();
        let enrolled = on_threads(slices, workers, |stations: Vec<String>| {
            enroll::enroll(
                &store,
                &enroll::EnrollRequest {
                    stations,
                    out_dir: bundles.clone(),
                    ..Default::default()
                },
            )
        });
        for e in enrolled {
            e?;
        }

        let stations: Vec<FleetStation> = definition
            .stations
            .iter()
            .map(|s| FleetStation {
                id: s.id.clone(),
                kind: s.kind,
                dir: root.join(STATIONS_DIR).join(&s.id),
            })
            .collect();
        let created = on_threads(stations.clone(), workers, |s: FleetStation| {
            let bundle = enroll::bundle_path(&bundles, &s.id);
            Store::create(&s.dir, &bundle, &[])
                .map(drop)
                .map_err(|source| FleetError::Station {
                    station: s.id.clone(),
                    source,
                })
        });
        created.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(Fleet {
            root: root.to_path_buf(),
            definition: Arc::new(definition),
            center_dir,
            store,
            address,
            stations,
            reserved: Some(listener),
        })
    }

    /// Start the center, with `threads` runtime threads, on the prepared port (the
    /// one the stations' bundles name; again after a stop).
    pub fn start_center(&mut self, threads: usize) -> Result<CenterHandle> {
        // Free the port just before the center binds it with a deep accept queue.
        drop(self.reserved.take());
        CenterHandle::start(&self.store, self.address, threads)
    }

    /// Delete everything under the fleet's folder, the stations' folders side by side
    /// on `workers` threads. Stop the center and the agents first.
    pub fn remove(self, workers: usize) -> Result<()> {
        let dirs: Vec<PathBuf> = self.stations.iter().map(|s| s.dir.clone()).collect();
        let removed = on_threads(dirs, workers, |dir: PathBuf| {
            std::fs::remove_dir_all(&dir).map_err(|source| FleetError::Io { path: dir, source })
        });
        for r in removed {
            r?;
        }
        std::fs::remove_dir_all(&self.root).map_err(io_error(&self.root))
    }

    /// The desk of one of the fleet's stations (its own store connection).
    pub fn desk(&self, station: &FleetStation) -> Result<Desk> {
        Desk::open(&station.dir, Arc::clone(&self.definition), &station.id)
    }
}

/// Refuses early, with the fix, when the open-file limit cannot hold the fleet.
fn check_open_files(stations: usize) -> Result<()> {
    let needed = FILES_BASE + stations as u64 * FILES_PER_STATION;
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        return Err(FleetError::TooFewFiles {
            stations,
            needed,
            limit,
        });
    }
    Ok(())
}

/// The soft limit on open files, from `/proc/self/limits` (None where unknown).
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

/// Runs `job` on every item with at most `workers` threads at once (each thread
/// takes the next item when done); the results come back in item order. For
/// blocking SQLite work outside any runtime.
pub fn on_threads<T, R>(items: Vec<T>, workers: usize, job: impl Fn(T) -> R + Sync) -> Vec<R>
where
    T: Send,
    R: Send,
{
    let count = items.len();
    let queue: Mutex<VecDeque<(usize, T)>> = Mutex::new(items.into_iter().enumerate().collect());
    let done: Mutex<Vec<Option<R>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let next = lock(&queue).pop_front();
                    let Some((i, item)) = next else { break };
                    let result = job(item);
                    lock(&done)[i] = Some(result);
                }
            });
        }
    });
    done.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// [`on_threads`] from async code: the threads run on tokio's blocking pool.
pub async fn on_workers<T, R>(
    items: Vec<T>,
    workers: usize,
    job: impl Fn(T) -> R + Send + Sync + 'static,
) -> Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || on_threads(items, workers, job))
        .await
        .map_err(|e| FleetError::Task(e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
