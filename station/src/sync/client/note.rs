//! What the driver tells the person at the station: each state change worth a line
//! as a [`Note`], and where notes go ([`Log`]; the binary prints them to stderr).

use std::fmt;
use std::sync::Arc;

/// A state change worth telling the person at the station, printed by the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Connected {
        center: String,
        center_head: u64,
        local_head: u64,
        window: usize,
    },
    Progress {
        acknowledged_through: u64,
        local_head: u64,
        this_connection: u64,
    },
    Resending {
        from: u64,
    },
    CenterRegressed {
        acknowledged_before: u64,
        center_head: u64,
    },
    Unreachable {
        center: String,
        error: String,
        retry_in_ms: u64,
    },
    ConnectionLost {
        center: String,
        error: String,
        retry_in_ms: u64,
    },
    Stopped {
        message: String,
    },
    SealingStopped,
    Sealed {
        batches: u64,
        ballots: u64,
    },
    LocalProblem {
        error: String,
    },
    /// This device's chain differs from the center's at `sequence`: its batch goes
    /// to the center as evidence, and nothing more is sealed here.
    ForkEvidence {
        sequence: u64,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Connected {
                center,
                center_head,
                local_head,
                window,
            } => {
                let missing = local_head.saturating_sub(*center_head);
                if missing == 0 {
                    write!(
                        f,
                        "connected to the center at {center}; it holds all {local_head} sealed batch(es)"
                    )
                } else {
                    write!(
                        f,
                        "connected to the center at {center}; it holds {center_head} of {local_head} sealed batch(es); sending {missing}, up to {window} at a time"
                    )
                }
            }
            Note::Progress {
                acknowledged_through,
                local_head,
                this_connection,
            } => {
                if acknowledged_through >= local_head {
                    write!(
                        f,
                        "{this_connection} batch(es) acknowledged; the center holds all {local_head} sealed batch(es)"
                    )
                } else {
                    write!(
                        f,
                        "{this_connection} batch(es) acknowledged; the center holds {acknowledged_through} of {local_head} sealed batch(es)"
                    )
                }
            }
            Note::Resending { from } => write!(
                f,
                "the center is missing batches before the ones sent; sending again from batch {from}"
            ),
            Note::CenterRegressed {
                acknowledged_before,
                center_head,
            } => write!(
                f,
                "warning: the center now holds only {center_head} batch(es) although it had acknowledged {acknowledged_before}; sending them again"
            ),
            Note::Unreachable {
                center,
                error,
                retry_in_ms,
            } => write!(
                f,
                "center unreachable at {center} ({error}); retrying in {retry_in_ms} ms"
            ),
            Note::ConnectionLost {
                center,
                error,
                retry_in_ms,
            } => write!(
                f,
                "connection to the center at {center} lost ({error}); reconnecting in {retry_in_ms} ms"
            ),
            Note::Stopped { message } => write!(f, "rejected: {message}"),
            Note::SealingStopped => write!(
                f,
                "sealing stopped: ballots are still recorded on this device, but no new batches are made until an operator has looked at it"
            ),
            Note::Sealed { batches, ballots } => {
                write!(f, "sealed {batches} batch(es) ({ballots} ballot(s))")
            }
            Note::LocalProblem { error } => write!(f, "problem with this device's store: {error}"),
            Note::ForkEvidence { sequence } => write!(
                f,
                "this device's batch {sequence} differs from the center's: the chains forked; sending it to the center as signed evidence; sealing stops on this device"
            ),
        }
    }
}

/// Where notes go (the binary prints them to stderr).
pub type Log = Arc<dyn Fn(&Note) + Send + Sync>;
