//! Every way a station command can refuse or fail, each saying what was wrong in
//! words an election worker can act on.

use std::path::PathBuf;

use pollsync_election::{BallotId, BallotIdError, DefinitionErrors, EventError};
use pollsync_proto::{BundleError, IdentityError};

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("{}: no station is set up here; run `station init --bundle FILE` first (or pass --data DIR)", dir.display())]
    NotInitialised { dir: PathBuf },
    #[error("{}: station {station} of election {election} is already set up here; refusing to overwrite it", dir.display())]
    AlreadyInitialised {
        dir: PathBuf,
        station: String,
        election: String,
    },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("bundle {}: its election definition does not load:\n{errors}", file.display())]
    BundleDefinition {
        file: PathBuf,
        errors: DefinitionErrors,
    },
    #[error("bundle {}: station '{station}' is not in election '{election}'", file.display())]
    StationNotInElection {
        file: PathBuf,
        station: String,
        election: String,
    },
    #[error("center address '{address}' is not HOST:PORT")]
    BadCenterAddress { address: String },
    #[error("station store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("station store is damaged: {detail}")]
    Corrupt { detail: String },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("contest '{contest}' is closed at this station: nothing more can be recorded for it")]
    ContestClosed { contest: String },
    #[error(transparent)]
    BadBallotId(#[from] BallotIdError),
    #[error("ballot {ballot} is not recorded at this station")]
    UnknownBallot { ballot: BallotId },
    #[error("ballot {ballot} is already cancelled")]
    AlreadyCancelled { ballot: BallotId },
    #[error("ballot {ballot} is already recorded at this station")]
    DuplicateBallot { ballot: BallotId },
    #[error("the event is {bytes} bytes once encoded; at most {max} fit in a batch")]
    EventTooLarge { bytes: usize, max: usize },
    #[error("contest '{contest}' is not collected at this station (it collects: {served})")]
    NotServed { contest: String, served: String },
    #[error("sealing is held on this device: {reason}")]
    SealingHeld { reason: String },
    #[error("{detail}")]
    Changed { detail: String },
    #[error(
        "this device replaced another one and lacks the station's batches 1 to {through}, so its records do not hold the whole day; run `station recover` first (it fetches them from the center), or close with --sheet from the human count"
    )]
    HistoryMissing { through: u64 },
    #[error("could not draw randomness from the operating system: {0}")]
    Random(String),
}

pub type Result<T, E = StationError> = std::result::Result<T, E>;
