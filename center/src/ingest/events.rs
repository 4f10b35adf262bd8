//! What the ingest tells the operators as it happens: an [`IngestEvent`] for every
//! batch it judged (published only once the batch's transaction is durable, so the
//! live view never runs ahead of the store) and running [`Metrics`] for
//! `/metrics`. Both are fed by the writer thread; neither can slow it down: events
//! go to a bounded broadcast channel whose slow readers lose the oldest events (and
//! are told how many), and metrics are plain atomic counters and lock-light
//! histograms (`prometheus-client`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a slow reader before it starts losing the oldest.
pub const EVENT_BUFFER: usize = 4_096;

/// One durable decision of the ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IngestEvent {
    /// A batch applied: its ballots are in the tallies.
    Accepted {
        station: String,
        sequence: u64,
        ballots: u64,
        /// Contests this batch closed.
        closed: Vec<String>,
    },
    /// A batch the center already held (a resend); nothing changed.
    Duplicate { station: String, sequence: u64 },
    /// A batch refused; `alert` tells whether it raises an alert (a gap only asks
    /// the station to resend and raises none; past a station's limit the alert is
    /// counted, not stored: see `ingest::alerts`).
    Rejected {
        station: String,
        sequence: u64,
        reason: &'static str,
        detail: String,
        alert: bool,
    },
}

/// Running counters since this center process started.
#[derive(Debug, Default)]
pub struct Metrics {
    pub batches_accepted: AtomicU64,
    pub ballots_counted: AtomicU64,
    pub batches_duplicate: AtomicU64,
    /// Group transactions committed.
    pub groups_committed: AtomicU64,
    /// Group transactions that failed (nothing of them acknowledged).
    pub groups_failed: AtomicU64,
    /// Alerts not stored because their station reached its limit.
    pub alerts_suppressed: AtomicU64,
    /// Rejected batches by reason.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// What the gRPC port's front door turned away.
    pub listen: crate::listen::ListenStats,
    /// Distributions: see [`Histograms`].
    pub histograms: Histograms,
}

/// The ingest's distributions since this center process started.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Seconds from a batch's receipt to its durable acknowledgement.
    pub ingest_seconds: Histogram,
    /// Seconds a group transaction took to commit (fsync included).
    pub commit_seconds: Histogram,
    /// Ballots per accepted batch.
    pub batch_ballots: Histogram,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            // 0.5 ms to about 16 s.
            ingest_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            // 1 to 4,096 ballots (MAX_BATCH_EVENTS).
            batch_ballots: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
        }
    }
}

impl Metrics {
    pub fn count(&self, event: &IngestEvent) {
        match event {
            IngestEvent::Accepted { ballots, .. } => {
                self.batches_accepted.fetch_add(1, Ordering::Relaxed);
                self.ballots_counted.fetch_add(*ballots, Ordering::Relaxed);
                self.histograms.batch_ballots.observe(*ballots as f64);
            }
            IngestEvent::Duplicate { .. } => {
                self.batches_duplicate.fetch_add(1, Ordering::Relaxed);
            }
            IngestEvent::Rejected { reason, .. } => {
                let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
                *rejected.entry(reason).or_default() += 1;
            }
        }
    }

    /// Rejected batches by reason, in reason order.
    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        self.rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The writer's side: counts and broadcasts.
pub(crate) struct Publisher {
    pub(crate) metrics: Metrics,
    pub(crate) events: broadcast::Sender<IngestEvent>,
}

impl Publisher {
    pub(crate) fn new() -> Publisher {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Publisher {
            metrics: Metrics::default(),
            events,
        }
    }

    /// Publish what a committed group decided, in order.
    pub(crate) fn committed(&self, events: Vec<IngestEvent>) {
        for event in events {
            self.metrics.count(&event);
            // No subscriber is fine: nobody is watching.
            let _ = self.events.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_events_and_subscribers_get_them_in_order() {
        let p = Publisher::new();
        let mut rx = p.events.subscribe();
        p.committed(vec![
            IngestEvent::Accepted {
                station: "S-1".into(),
                sequence: 1,
                ballots: 40,
                closed: vec![],
            },
            IngestEvent::Duplicate {
                station: "S-1".into(),
                sequence: 1,
            },
            IngestEvent::Rejected {
                station: "S-2".into(),
                sequence: 3,
                reason: "bad_signature",
                detail: "x".into(),
                alert: true,
            },
            IngestEvent::Rejected {
                station: "S-2".into(),
                sequence: 4,
                reason: "bad_signature",
                detail: "y".into(),
                alert: true,
            },
        ]);
        assert_eq!(p.metrics.batches_accepted.load(Ordering::Relaxed), 1);
        assert_eq!(p.metrics.ballots_counted.load(Ordering::Relaxed), 40);
        assert_eq!(p.metrics.batches_duplicate.load(Ordering::Relaxed), 1);
        assert_eq!(p.metrics.rejected().get("bad_signature"), Some(&2));
        let first = rx.try_recv().expect("first event");
        assert!(matches!(first, IngestEvent::Accepted { sequence: 1, .. }));
        let json = serde_json::to_value(&first).expect("json");
        assert_eq!(json["kind"], "accepted");
        assert_eq!(json["ballots"], 40);
    }
}
