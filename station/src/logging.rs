//! `station run --log-format json`: the agent's notes as structured `tracing`
//! events, one JSON object per line on stderr, for a machine that collects logs.
//! By default (`human`) the agent keeps writing its notes as plain sentences for
//! the election workers, exactly as before. `RUST_LOG` filters the JSON events
//! (default `info`).
//!
//! Every event carries `station` (this device's station id), `event` (what kind of
//! note it is) and the note's numbers as fields (`sequence`, `local_head`,
//! `center_head`, …); its message is the sentence a worker would have read.

use std::sync::Arc;

use pollsync_proto::logging::{filter_from_env, install};

pub use pollsync_proto::logging::{FILTER_ENV, LogError, LogFormat};

use crate::sync::Note;
use crate::sync::client::Log;

/// What the agent logs when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// Installs JSON logging to stderr, filtered by `RUST_LOG` or else
/// [`DEFAULT_FILTER`].
pub fn init_json() -> Result<(), LogError> {
    install(LogFormat::Json, filter_from_env(DEFAULT_FILTER)?)
}

/// A [`Log`] that turns each note into a `tracing` event of station `station`.
pub fn event_log(station: String) -> Log {
    Arc::new(move |note: &Note| note_event(&station, note))
}

/// `note` as one `tracing` event: warnings for a lost or unreachable center or a
/// center that went back, errors when sending or sealing stopped, a fork, or a
/// store problem; the rest at info.
pub fn note_event(station: &str, note: &Note) {
    let message = note.to_string();
    let message = message.as_str();
    match note {
        Note::Connected {
            center,
            center_head,
            local_head,
            window,
        } => tracing::info!(
            station,
            event = "connected",
            center = center.as_str(),
            center_head,
            local_head,
            window,
            "{message}"
        ),
        Note::Progress {
            acknowledged_through,
            local_head,
            this_connection,
        } => tracing::info!(
            station,
            event = "progress",
            acknowledged_through,
            local_head,
            this_connection,
            "{message}"
        ),
        Note::Resending { from } => {
            tracing::info!(station, event = "resending", sequence = from, "{message}")
        }
        Note::CenterRegressed {
            acknowledged_before,
            center_head,
        } => tracing::warn!(
            station,
            event = "center_regressed",
            acknowledged_before,
            center_head,
            "{message}"
        ),
        Note::Unreachable {
            center,
            error,
            retry_in_ms,
            next_center,
        } => tracing::warn!(
            station,
            event = "unreachable",
            center = center.as_str(),
            error = error.as_str(),
            retry_in_ms,
            next_center = next_center.as_str(),
            "{message}"
        ),
        Note::ConnectionLost {
            center,
            error,
            retry_in_ms,
            next_center,
        } => tracing::warn!(
            station,
            event = "connection_lost",
            center = center.as_str(),
            error = error.as_str(),
            retry_in_ms,
            next_center = next_center.as_str(),
            "{message}"
        ),
        Note::Stopped { message: reason } => tracing::error!(
            station,
            event = "sending_stopped",
            reason = reason.as_str(),
            "{message}"
        ),
        Note::SealingStopped => {
            tracing::error!(station, event = "sealing_stopped", "{message}")
        }
        Note::Sealed { batches, ballots } => {
            tracing::info!(station, event = "sealed", batches, ballots, "{message}")
        }
        Note::LocalProblem { error } => tracing::error!(
            station,
            event = "local_problem",
            error = error.as_str(),
            "{message}"
        ),
        Note::ForkEvidence { sequence } => {
            tracing::error!(station, event = "fork_evidence", sequence, "{message}")
        }
        Note::Receipt {
            sequence,
            leaf_index,
            tree_size,
        } => tracing::info!(
            station,
            event = "receipt",
            sequence,
            leaf_index,
            tree_size,
            "{message}"
        ),
        Note::NoReceipt { error } => tracing::warn!(
            station,
            event = "no_receipt",
            error = error.as_str(),
            "{message}"
        ),
        Note::LogAlarm { detail } => tracing::error!(
            station,
            event = "log_alarm",
            detail = detail.as_str(),
            "{message}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollsync_proto::logging::{CapturedLog, subscriber};
    use tracing_subscriber::EnvFilter;

    #[test]
    fn a_note_is_one_json_object_with_the_station_and_its_numbers() {
        let buffer = CapturedLog::default();
        let subscriber = subscriber(
            LogFormat::Json,
            EnvFilter::new("info"),
            buffer.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            let log = event_log("S-0007".into());
            log(&Note::ForkEvidence { sequence: 12 });
            log(&Note::Sealed {
                batches: 2,
                ballots: 80,
            });
        });
        let text = buffer.text();
        let lines = buffer.json_lines().expect("one JSON object a line");
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(lines[0]["fields"]["station"], "S-0007");
        assert_eq!(lines[0]["fields"]["event"], "fork_evidence");
        assert_eq!(lines[0]["fields"]["sequence"], 12);
        assert!(
            lines[0]["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("batch 12 differs")),
            "{text}"
        );
        assert_eq!(lines[1]["level"], "INFO");
        assert_eq!(lines[1]["fields"]["ballots"], 80);
    }
}
