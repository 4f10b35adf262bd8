//! What the driver tells the person at the station: each state change worth a line
//! as a [`Note`], and where notes go ([`Log`]; the binary prints them to stderr).

use std::fmt;
use std::sync::Arc;

/// A state change worth telling the person at the station, printed by the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The center answered Hello.
    Connected {
        /// The center's address.
        center: String,
        /// The highest sequence the center holds of this station's chain.
        center_head: u64,
        /// The highest sequence sealed on this device.
        local_head: u64,
        /// The most batches sent ahead of the center's acknowledgements.
        window: usize,
    },
    /// The center acknowledged more batches.
    Progress {
        /// The center holds every batch up to this sequence.
        acknowledged_through: u64,
        /// The highest sequence sealed on this device.
        local_head: u64,
        /// Batches acknowledged over this connection.
        this_connection: u64,
    },
    /// The center reported a gap: batches are sent again.
    Resending {
        /// The sequence sending starts again from.
        from: u64,
    },
    /// The center now holds fewer batches than it had acknowledged (restored from a
    /// backup, say): they are sent again.
    CenterRegressed {
        /// The sequence the center had acknowledged through.
        acknowledged_before: u64,
        /// The highest sequence it holds now.
        center_head: u64,
    },
    /// An attempt to reach the center failed before Hello.
    Unreachable {
        /// The center's address tried.
        center: String,
        /// Why the attempt failed.
        error: String,
        /// Wait before the next attempt, in ms.
        retry_in_ms: u64,
        /// The address the next attempt goes to (the next in the list).
        next_center: String,
    },
    /// A connection that had said Hello failed.
    ConnectionLost {
        /// The center's address it was to.
        center: String,
        /// Why it failed.
        error: String,
        /// Wait before reconnecting, in ms.
        retry_in_ms: u64,
        /// The address the next attempt goes to (the next in the list).
        next_center: String,
    },
    /// The center rejected this station or a batch: pushing stops until an operator
    /// acts.
    Stopped {
        /// What the center said and what to do.
        message: String,
    },
    /// Sealing stops on this device (ballots are still recorded) until an operator
    /// has looked at it.
    SealingStopped,
    /// `station run` sealed new batches.
    Sealed {
        /// Batches sealed.
        batches: u64,
        /// Ballots in them.
        ballots: u64,
    },
    /// A store call on this device failed; the driver retries.
    LocalProblem {
        /// What failed.
        error: String,
    },
    /// This device's chain differs from the center's at `sequence`: its batch goes
    /// to the center as evidence, and nothing more is sealed here.
    ForkEvidence {
        /// The sequence at which the chains differ.
        sequence: u64,
    },
    /// A receipt was checked and kept: the center's public log holds batch
    /// `sequence`.
    Receipt {
        /// The batch proved.
        sequence: u64,
        /// Its leaf in the log.
        leaf_index: u64,
        /// The size of the signed checkpoint the proof is against.
        tree_size: u64,
    },
    /// No receipt this time (the center could not be reached, or refused); asked
    /// again later.
    NoReceipt {
        /// Why.
        error: String,
    },
    /// The center's public log showed two histories: kept as the alarm.
    LogAlarm {
        /// What is wrong.
        detail: String,
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
                next_center,
            } => {
                write!(
                    f,
                    "center unreachable at {center} ({error}); retrying in {retry_in_ms} ms"
                )?;
                if next_center != center {
                    write!(f, " at {next_center}")?;
                }
                Ok(())
            }
            Note::ConnectionLost {
                center,
                error,
                retry_in_ms,
                next_center,
            } => {
                write!(
                    f,
                    "connection to the center at {center} lost ({error}); reconnecting in {retry_in_ms} ms"
                )?;
                if next_center != center {
                    write!(f, " to {next_center}")?;
                }
                Ok(())
            }
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
            Note::Receipt {
                sequence,
                leaf_index,
                tree_size,
            } => write!(
                f,
                "receipt kept: the center's public log holds batch {sequence} (leaf {leaf_index} of a signed tree of {tree_size})"
            ),
            Note::NoReceipt { error } => {
                write!(
                    f,
                    "warning: no receipt this time ({error}); asking again later"
                )
            }
            Note::LogAlarm { detail } => write!(
                f,
                "LOG ALARM: the center's public log shows two histories ({detail}); call the election authority; `station receipt` shows both checkpoints"
            ),
        }
    }
}

/// Where notes go (the binary prints them to stderr).
pub type Log = Arc<dyn Fn(&Note) + Send + Sync>;
