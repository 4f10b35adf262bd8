//! Every way a station command can refuse or fail, each saying what was wrong in
//! words an election worker can act on.

use std::path::PathBuf;

use pollsync_election::{BallotId, BallotIdError, DefinitionErrors, EventError};
use pollsync_proto::{BundleError, IdentityError};

/// Why a station command refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("{}: no station is set up here; run `station init --bundle FILE` first (or pass --data DIR)", dir.display())]
    /// The data directory holds no station store.
    NotInitialised {
        /// The data directory looked in.
        dir: PathBuf,
    },
    #[error("{}: station {station} of election {election} is already set up here; refusing to overwrite it", dir.display())]
    /// `station init` found a station already set up in the data directory.
    AlreadyInitialised {
        /// The data directory.
        dir: PathBuf,
        /// The id of the station already set up there.
        station: String,
        /// The id of that station's election.
        election: String,
    },
    /// The enrollment bundle file could not be read or used.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("bundle {}: its election definition does not load:\n{errors}", file.display())]
    /// The election definition inside the bundle is invalid.
    BundleDefinition {
        /// The bundle file.
        file: PathBuf,
        /// Everything wrong with the definition.
        errors: DefinitionErrors,
    },
    #[error("bundle {}: station '{station}' is not in election '{election}'", file.display())]
    /// The bundle names a station its election does not list.
    StationNotInElection {
        /// The bundle file.
        file: PathBuf,
        /// The station id the bundle names.
        station: String,
        /// The id of the bundle's election.
        election: String,
    },
    #[error(
        "bundle {}: its certificates are of mode \"{bundle}\" but its election definition says mode = \"{definition}\": test and official elections never mix", file.display()
    )]
    /// The bundle's certificates and its definition disagree on the mode.
    BundleMode {
        /// The bundle file.
        file: PathBuf,
        /// The bundle's mode (what its certificates name).
        bundle: &'static str,
        /// The definition's `[election] mode`.
        definition: &'static str,
    },
    #[error("--center: {source}")]
    /// The center addresses given with `station init --center` are not a usable
    /// list (each `HOST:PORT`, none twice, at most
    /// [`pollsync_proto::limits::MAX_CENTER_ADDRESSES`]).
    BadCenterAddress {
        /// What is wrong, naming the entry.
        source: pollsync_proto::bundle::BundleCheckError,
    },
    /// The SQLite station store failed.
    #[error("station store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}: {source}", path.display())]
    /// Reading or writing a file failed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    #[error("station store is damaged: {detail}")]
    /// The station store holds something it could never have written.
    Corrupt {
        /// What is inconsistent, and where.
        detail: String,
    },
    /// A key or certificate of the station could not be made, read or used.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The event breaks the election's rules.
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("contest '{contest}' is closed at this station: nothing more can be recorded for it")]
    /// The contest's tally sheet is already recorded at this station.
    ContestClosed {
        /// The contest's id.
        contest: String,
    },
    /// A ballot id is not well formed.
    #[error(transparent)]
    BadBallotId(#[from] BallotIdError),
    #[error("ballot {ballot} is not recorded at this station")]
    /// The ballot to cancel was never recorded at this station.
    UnknownBallot {
        /// The ballot's id.
        ballot: BallotId,
    },
    #[error("ballot {ballot} is already cancelled")]
    /// The ballot to cancel is already cancelled.
    AlreadyCancelled {
        /// The ballot's id.
        ballot: BallotId,
    },
    #[error("a zero report opens the station's log; this log holds events already")]
    /// A zero report after other events of the log.
    ZeroReportNotFirst,
    #[error("ballot {ballot} is already recorded at this station")]
    /// A ballot with this id is already recorded at this station.
    DuplicateBallot {
        /// The ballot's id.
        ballot: BallotId,
    },
    #[error("the event is {bytes} bytes once encoded; at most {max} fit in a batch")]
    /// The event, once encoded, is larger than any batch may carry.
    EventTooLarge {
        /// The event's encoded size, in bytes.
        bytes: usize,
        /// The largest encoded event a batch takes, in bytes.
        max: usize,
    },
    #[error("contest '{contest}' is not collected at this station (it collects: {served})")]
    /// The contest is not one this station collects.
    NotServed {
        /// The contest's id.
        contest: String,
        /// The contests this station does collect, comma-separated.
        served: String,
    },
    #[error("sealing is held on this device: {reason}")]
    /// Sealing is held on this device: the center holds batches it lacks, or the
    /// chains forked.
    SealingHeld {
        /// Why sealing is held, and what to do.
        reason: String,
    },
    #[error("{detail}")]
    /// The station's records or the center's batches changed under the command,
    /// or contradict each other; nothing was applied.
    Changed {
        /// What changed or conflicts, and what to do.
        detail: String,
    },
    #[error(
        "this device replaced another one and lacks the station's batches 1 to {through}, so its records do not hold the whole day; run `station recover` first (it fetches them from the center), or close with --sheet from the human count"
    )]
    /// This replacement device lacks the start of the station's chain.
    HistoryMissing {
        /// The sequence number of the last missing batch (batches 1 through it are
        /// missing).
        through: u64,
    },
    /// The operating system's random source failed; holds its error.
    #[error("could not draw randomness from the operating system: {0}")]
    Random(String),
}

/// A result whose error is, by default, a [`StationError`].
pub type Result<T, E = StationError> = std::result::Result<T, E>;
