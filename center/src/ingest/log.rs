//! The ingest's decisions in the center's log, once they are durable: one event
//! per batch decided, at the level its consequence deserves. The words and the
//! escaping are `crate::logging`'s; what is worth logging is decided here.

use pollsync_proto::pb::RejectReason;

use super::events::IngestEvent;
use crate::logging::{loggable_detail, text};

/// Logs one decision of the ingest once it is durable (the writer calls it after
/// each group commit): an accepted batch or a duplicate at debug (tens of
/// thousands a day), a contest closed at info, a refusal at warn (info when it
/// raises no alert: a gap, a stale key), a fork at error; each with `station` and
/// `sequence`, a refusal with `reason` and `detail` ([`loggable_detail`]).
pub fn ingest_decision(event: &IngestEvent) {
    match event {
        IngestEvent::Accepted {
            station,
            sequence,
            ballots,
            closed,
            ..
        } => {
            tracing::debug!(station = text(station), sequence, ballots, "batch accepted");
            if !closed.is_empty() {
                tracing::info!(
                    station = text(station),
                    sequence,
                    contests = text(&closed.join(",")),
                    "contest closed by the station"
                );
            }
        }
        IngestEvent::Duplicate { station, sequence } => {
            tracing::debug!(
                station = text(station),
                sequence,
                "batch duplicate (held already)"
            );
        }
        IngestEvent::Rejected {
            station,
            sequence,
            reason,
            detail,
            alert,
        } => {
            let detail = loggable_detail(reason, detail);
            if *reason == RejectReason::Fork.short_name() {
                tracing::error!(
                    station = text(station),
                    sequence,
                    reason,
                    detail = detail.as_ref(),
                    "fork: the station is quarantined until an operator acts"
                );
            } else if *alert {
                tracing::warn!(
                    station = text(station),
                    sequence,
                    reason,
                    detail = detail.as_ref(),
                    "batch refused"
                );
            } else {
                tracing::info!(
                    station = text(station),
                    sequence,
                    reason,
                    detail = detail.as_ref(),
                    "batch refused"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::LogFormat;
    use pollsync_proto::logging::{CapturedLog, subscriber};
    use tracing_subscriber::EnvFilter;

    #[test]
    fn ingest_decisions_are_logged_at_their_level_without_ballot_content() {
        let buffer = CapturedLog::default();
        let sub = subscriber(
            LogFormat::Json,
            EnvFilter::new("info"),
            buffer.clone(),
            false,
        );
        let id = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
        tracing::subscriber::with_default(sub, || {
            for (sequence, reason, alert) in [
                (4, "INVALID_CONTENT", true),
                (5, "GAP", false),
                (1, "FORK", true),
            ] {
                ingest_decision(&IngestEvent::Rejected {
                    station: "S-0002".into(),
                    sequence,
                    reason,
                    detail: format!("batch {sequence}: ballot {id} is cancelled twice"),
                    alert,
                });
            }
            ingest_decision(&IngestEvent::Duplicate {
                station: "S-0002".into(),
                sequence: 1,
            });
        });
        let out = buffer.text();
        assert!(!out.contains(id), "no ballot id in the log: {out}");
        let lines = buffer.json_lines().expect("one JSON object a line");
        let seen: Vec<(&str, u64, &str)> = lines
            .iter()
            .map(|v| {
                (
                    v["level"].as_str().unwrap_or_default(),
                    v["fields"]["sequence"].as_u64().unwrap_or_default(),
                    v["fields"]["reason"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("WARN", 4, "INVALID_CONTENT"),
                ("INFO", 5, "GAP"),
                ("ERROR", 1, "FORK"),
            ],
            "the duplicate is at debug: {out}"
        );
        assert!(lines.iter().all(|v| v["fields"]["station"] == "S-0002"));
    }
}
