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

use pollsync_proto::pb::RejectReason;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::broadcast;

/// Events kept for a slow reader before it starts losing the oldest.
pub const EVENT_BUFFER: usize = 4_096;

/// One durable decision of the ingest (read back by the other replicas of a
/// shared store: `ingest::relay`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IngestEvent {
    /// A batch applied: its ballots are in the tallies.
    Accepted {
        /// The station's id.
        station: String,
        /// The batch's sequence number in the station's chain.
        sequence: u64,
        /// Ballot events the batch carries.
        ballots: u64,
        /// What it changed in the ballots counted: its ballots less those its
        /// cancels withdrew, over every contest it carries.
        counted: i64,
        /// Contests this batch closed.
        closed: Vec<String>,
    },
    /// A batch the center already held (a resend); nothing changed.
    Duplicate {
        /// The station's id.
        station: String,
        /// The batch's sequence number in the station's chain.
        sequence: u64,
    },
    /// A batch refused; `alert` tells whether it raises an alert (a gap only asks
    /// the station to resend and raises none; past a station's limit the alert is
    /// counted, not stored: see `ingest::alerts`).
    Rejected {
        /// The station's id, as its certificate proves it.
        station: String,
        /// The sequence number the batch claims.
        sequence: u64,
        /// The reject reason's short name, e.g. `BAD_SIGNATURE`; `/metrics` counts
        /// rejections by it.
        #[serde(deserialize_with = "reason_by_name")]
        reason: ReasonName,
        /// What was wrong, in words naming the batch.
        detail: String,
        /// Whether the rejection raises an alert.
        alert: bool,
    },
}

/// A reject reason's short name. (A name, not `&'static str` written out, so that
/// serde does not take the field as borrowed from the input.)
pub type ReasonName = &'static str;

/// Reads a reject reason by its short name (`FORK`); a name no reason has is an
/// error.
fn reason_by_name<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let name = String::deserialize(d)?;
    (0..64)
        .filter_map(|n| RejectReason::try_from(n).ok())
        .map(|r| r.short_name())
        .find(|short| *short == name)
        .ok_or_else(|| serde::de::Error::custom(format!("no reject reason is named {name:?}")))
}

/// Width of one step of the pace.
pub const PACE_STEP_MS: u64 = 10_000;
/// Steps of pace kept (two days): older steps are dropped.
pub const MAX_PACE_STEPS: usize = 2 * 24 * 360;

/// Ballots counted per ten seconds since this center process started: the pace
/// the dashboard draws. Kept only in memory and only summed over every station,
/// so it says no more than the `pollsync_ballots_counted` counter does to a
/// scraper; a restarted center draws its pace from the restart on. Bounded by
/// [`MAX_PACE_STEPS`].
#[derive(Debug, Default)]
pub struct Pace {
    /// (step start, Unix ms; ballots counted in it), oldest first, steps
    /// strictly increasing.
    steps: std::collections::VecDeque<(u64, i64)>,
}

impl Pace {
    /// Adds `counted` ballots at `now_unix_ms`. A clock that steps back adds to
    /// the newest step, so the series stays ordered.
    pub fn add(&mut self, now_unix_ms: u64, counted: i64) {
        let step = now_unix_ms - now_unix_ms % PACE_STEP_MS;
        match self.steps.back_mut() {
            Some((last, n)) if *last >= step => *n += counted,
            _ => {
                if self.steps.len() == MAX_PACE_STEPS {
                    self.steps.pop_front();
                }
                self.steps.push_back((step, counted));
            }
        }
        debug_assert!(self.steps.len() <= MAX_PACE_STEPS);
    }

    /// The steps, oldest first.
    pub fn steps(&self) -> Vec<(u64, i64)> {
        self.steps.iter().copied().collect()
    }
}

/// Running counters since this center process started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Batches applied (`pollsync_batches_accepted`).
    pub batches_accepted: AtomicU64,
    /// Ballot events in the batches applied (`pollsync_ballots_counted`), before cancels.
    pub ballots_counted: AtomicU64,
    /// Resent batches the center already held (`pollsync_batches_duplicate`).
    pub batches_duplicate: AtomicU64,
    /// Group transactions committed.
    pub groups_committed: AtomicU64,
    /// Group transactions that failed (nothing of them acknowledged).
    pub groups_failed: AtomicU64,
    /// Alerts not stored because their station reached its limit.
    pub alerts_suppressed: AtomicU64,
    /// Jobs refused because the writer's queue was full.
    pub queue_full: AtomicU64,
    /// Rejected batches by reason.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// What the gRPC port's front door turned away.
    pub listen: ListenStats,
    /// Distributions: see [`Histograms`].
    pub histograms: Histograms,
    /// Ballots counted per step of [`PACE_STEP_MS`].
    pace: Mutex<Pace>,
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
    /// Counts one durable decision, made at `now_unix_ms`.
    pub fn count(&self, event: &IngestEvent, now_unix_ms: u64) {
        match event {
            IngestEvent::Accepted {
                ballots, counted, ..
            } => {
                self.batches_accepted.fetch_add(1, Ordering::Relaxed);
                self.ballots_counted.fetch_add(*ballots, Ordering::Relaxed);
                self.histograms.batch_ballots.observe(*ballots as f64);
                self.pace
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(now_unix_ms, *counted);
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

    /// Ballots counted per step since the process started, oldest first.
    pub fn pace(&self) -> Vec<(u64, i64)> {
        self.pace.lock().unwrap_or_else(|p| p.into_inner()).steps()
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

    /// Passes on what another replica of the store decided (`ingest::relay`): to
    /// the subscribers and the pace, not to this process's counters.
    pub(crate) fn relayed(&self, events: Vec<IngestEvent>, now_unix_ms: u64) {
        for event in events {
            if let IngestEvent::Accepted { counted, .. } = &event {
                self.metrics
                    .pace
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(now_unix_ms, *counted);
            }
            let _ = self.events.send(event);
        }
    }

    /// Publish what a committed group decided, in order, durable at `now_unix_ms`.
    pub(crate) fn committed(&self, events: Vec<IngestEvent>, now_unix_ms: u64) {
        for event in events {
            self.metrics.count(&event, now_unix_ms);
            // No subscriber is fine: nobody is watching.
            let _ = self.events.send(event);
        }
    }
}

/// What the front door turned away, for the operators' metrics.
#[derive(Debug, Default)]
pub struct ListenStats {
    /// Connections closed at once because a cap was reached.
    pub refused_over_cap: AtomicU64,
    /// Handshakes that did not finish in time.
    pub handshake_timeouts: AtomicU64,
    /// Handshakes that failed (no or a foreign certificate, TLS 1.2, garbage).
    pub handshake_failures: AtomicU64,
    /// Errors from accept itself.
    pub accept_errors: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_events_and_subscribers_get_them_in_order() {
        let p = Publisher::new();
        let mut rx = p.events.subscribe();
        p.committed(
            vec![
                IngestEvent::Accepted {
                    station: "S-1".into(),
                    sequence: 1,
                    ballots: 40,
                    counted: 39,
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
            ],
            120_500,
        );
        assert_eq!(p.metrics.batches_accepted.load(Ordering::Relaxed), 1);
        assert_eq!(p.metrics.pace(), vec![(120_000, 39)]);
        assert_eq!(p.metrics.ballots_counted.load(Ordering::Relaxed), 40);
        assert_eq!(p.metrics.batches_duplicate.load(Ordering::Relaxed), 1);
        assert_eq!(p.metrics.rejected().get("bad_signature"), Some(&2));
        let first = rx.try_recv().expect("first event");
        assert!(matches!(first, IngestEvent::Accepted { sequence: 1, .. }));
        let json = serde_json::to_value(&first).expect("json");
        assert_eq!(json["kind"], "accepted");
        assert_eq!(json["ballots"], 40);
    }

    #[test]
    fn pace_sums_by_step_stays_ordered_and_bounded() {
        let mut pace = Pace::default();
        pace.add(10_000, 5);
        pace.add(19_999, 2);
        pace.add(30_000, 4);
        // A clock stepping back adds to the newest step.
        pace.add(11_000, -1);
        assert_eq!(pace.steps(), vec![(10_000, 7), (30_000, 3)]);
        let first = 40_000;
        for step in 0..(MAX_PACE_STEPS as u64 + 10) {
            pace.add(first + step * PACE_STEP_MS, 1);
        }
        let steps = pace.steps();
        assert_eq!(steps.len(), MAX_PACE_STEPS);
        assert!(steps.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            steps.last().map(|s| s.0),
            Some(first + (MAX_PACE_STEPS as u64 + 9) * PACE_STEP_MS)
        );
    }
}
