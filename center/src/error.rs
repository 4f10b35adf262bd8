//! Every way a center command or the ingest path can refuse or fail, each saying
//! what was wrong in words an operator can act on.

use std::path::PathBuf;

use pollsync_election::DefinitionError;
use pollsync_proto::{BundleError, ExportError, IdentityError};

/// An error of the center's store, ingest or commands.
#[derive(Debug, thiserror::Error)]
pub enum CenterError {
    /// No store in the data folder.
    #[error("{}: no center store here; run `center init --election FILE` first (or pass --data DIR)", dir.display())]
    NoStore {
        /// The data folder.
        dir: PathBuf,
    },
    /// `center init` found a store already.
    #[error("{}: a center store already exists (election {election}); refusing to overwrite it and its keys", path.display())]
    StoreExists {
        /// The database file.
        path: PathBuf,
        /// The election it holds ("?" when it cannot be read).
        election: String,
    },
    /// A PostgreSQL database holds a store already.
    #[error("{store} holds a pollsync store already (election {election}); nothing was changed")]
    StoreExistsAt {
        /// The database (its URL without the password).
        store: String,
        /// The election it holds ("?" when it cannot be read).
        election: String,
    },
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The election definition does not load.
    #[error("{} mistake(s) in the election definition; nothing was created:\n{}", errors.len(), list_mistakes(errors))]
    Definition {
        /// Every mistake, with its file and path.
        errors: Vec<DefinitionError>,
    },
    /// An advertised address is not `HOST:PORT`.
    #[error("advertised address {address:?} is not HOST:PORT (for example 10.0.0.5:7443)")]
    BadAddress {
        /// The address given.
        address: String,
    },
    /// The advertised addresses, taken together, do not fit an enrollment bundle.
    #[error("--advertise: {detail}")]
    AdvertiseList {
        /// What is wrong (too many, one given twice).
        detail: String,
    },
    /// A contest id that is not in the election.
    #[error("contest '{contest}' is not in this election")]
    UnknownContest {
        /// The id given.
        contest: String,
    },
    /// Station ids that are not in the election.
    #[error("not in election {election}: {}; nothing was written", stations.join(", "))]
    UnknownStations {
        /// The election.
        election: String,
        /// The unknown ids.
        stations: Vec<String>,
    },
    /// Stations enrolled already (re-enrolling needs `--replace`).
    #[error("already enrolled: {}; pass --replace to issue new keys (the old ones are kept for audit); nothing was written", stations.join(", "))]
    AlreadyEnrolled {
        /// The stations.
        stations: Vec<String>,
    },
    /// `center release` of a station that is not quarantined.
    #[error("station {station} is not quarantined; nothing to release, nothing was changed")]
    NotQuarantined {
        /// The station.
        station: String,
    },
    /// A standing change without a reason.
    #[error(
        "--reason is empty: say why (it is recorded with the change and shown to operators); nothing was changed"
    )]
    NoReason,
    /// The CA key cannot be had.
    #[error("CA key {}: {detail}", path.display())]
    CaKey {
        /// Where it was looked for.
        path: PathBuf,
        /// Why it is not usable.
        detail: String,
    },
    /// A bundle file exists where a new one would be written.
    #[error("{}: a file is already there; pass --replace to overwrite it, or choose another --out-dir", path.display())]
    BundleFileExists {
        /// The file.
        path: PathBuf,
    },
    /// The store's SQLite database failed.
    #[error("center store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store's PostgreSQL database failed (what was run, and the server's
    /// words).
    #[error("center store (PostgreSQL): {detail}")]
    Postgres {
        /// What failed.
        detail: String,
    },
    /// A file or folder cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An accepted batch would move a station's head from another than the one
    /// it follows: another writer moved it, or the station has no row. Its group
    /// is rolled back and its batches are judged again.
    #[error("station {station}: batch {sequence} does not follow the head in the store")]
    HeadMoved {
        /// The station.
        station: String,
        /// The batch's sequence.
        sequence: u64,
    },
    /// The store holds something it should not.
    #[error("center store is damaged: {detail}")]
    Corrupt {
        /// What is wrong.
        detail: String,
    },
    /// A certificate or key problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An enrollment bundle cannot be written.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// An export file cannot be read.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The ingest writer stopped (shut down or failed) before answering.
    #[error("the center's ingest writer stopped before answering")]
    WriterStopped,
    /// A thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

fn list_mistakes(errors: &[DefinitionError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Result with [`CenterError`].
pub type Result<T, E = CenterError> = std::result::Result<T, E>;
