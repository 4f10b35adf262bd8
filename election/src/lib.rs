//! pollsync's election domain: the election definition (SPEC §2), ballots and station
//! events (SPEC §3), ballot validity, and contest outcomes under a rule set (SPEC §6).
//!
//! Pure: nothing here does I/O. Storage, network and the command line sit around it.

pub mod ballot;
pub mod batching;
pub mod definition;
pub mod event;
pub mod ledger;
pub mod load;
pub mod log;
pub mod rules;
pub mod summary;
pub mod tally;
pub mod totals;
mod words;

pub use ballot::{
    Ballot, BallotChoices, BallotError, BallotId, BallotIdError, Mark, Validity, WriteInError,
    normalize_write_in, validity_of,
};
pub use definition::*;
pub use event::{EventError, StationEvent};
pub use ledger::{ContestLedger, Ledger};
pub use load::{DefinitionError, DefinitionErrors, load};
pub use log::{LogError, LogRules};
pub use rules::{
    CandidateResult, ContestInput, ContestOutcome, ContestStatus, Rules, Runoff, StationProgress,
    StationReport, WriteInResult, rule_ids, rules_by_id,
};
pub use summary::{DefinitionSummary, LevelSummary};
pub use tally::{SheetError, TallySheet};
pub use totals::{Makeup, Share, TotalFigures, Totals};
