//! `/metrics`: the ingest's counters and histograms, the stations by state, the
//! contests by status and the alerts by kind, in the OpenMetrics text format that
//! Prometheus scrapes, encoded by `prometheus-client`.
//!
//! Counters and histograms live with the ingest (`ingest::events::Metrics`); the
//! per-scrape figures (stations, contests, alerts) are read at the scrape, the
//! contests and alerts from the store under the same bound as the JSON views.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{AppState, VIEW_TIMEOUT_MS};
use crate::ingest::IngestHandle;
use std::sync::Arc;

use crate::store::{Records as _, Store};

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label and its value.
type Labels = Vec<(String, String)>;

/// What the store says at a scrape: contests by status, alerts by kind.
#[derive(Debug, Default)]
pub struct StoreFigures {
    pub contests_by_status: BTreeMap<String, u64>,
    pub alerts_by_kind: BTreeMap<String, u64>,
}

impl StoreFigures {
    /// Reads them (a full results computation: bounded like the JSON views).
    pub fn read(store: &Store) -> crate::error::Result<StoreFigures> {
        let results = crate::results::compute(store, None)?;
        let mut alerts_by_kind = BTreeMap::new();
        for a in store.alerts()? {
            *alerts_by_kind.entry(a.kind).or_default() += 1;
        }
        Ok(StoreFigures {
            contests_by_status: results
                .totals
                .overall
                .contests_by_status
                .iter()
                .map(|(status, n)| (status.to_string(), *n))
                .collect(),
            alerts_by_kind,
        })
    }
}

pub(super) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let work = async {
        let _permit = state.views.acquire().await.ok()?;
        let pool = Arc::clone(&state.store);
        tokio::task::spawn_blocking(move || pool.get().and_then(|s| StoreFigures::read(&s)))
            .await
            .ok()?
            .ok()
    };
    // Without the store's figures (busy, or failing) the ingest's are still served.
    let figures = tokio::time::timeout(Duration::from_millis(VIEW_TIMEOUT_MS), work)
        .await
        .ok()
        .flatten();
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        text(&state.ingest, figures.as_ref()),
    )
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    registry.register(name, help, ConstCounter::new(value));
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// A family of counters or gauges, one per label value.
fn labelled<M, I>(registry: &mut Registry, name: &str, help: &str, label: &str, values: I)
where
    M: prometheus_client::registry::Metric + prometheus_client::metrics::TypedMetric,
    M: Clone + Default + Settable,
    I: IntoIterator<Item = (String, u64)>,
{
    let family: Family<Labels, M> = Family::default();
    for (value, n) in values {
        family
            .get_or_create(&vec![(label.to_string(), value)])
            .set_to(n);
    }
    registry.register(name, help, family);
}

/// A metric a scrape sets to a value read elsewhere.
trait Settable {
    fn set_to(&self, n: u64);
}

impl Settable for Gauge {
    fn set_to(&self, n: u64) {
        self.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

impl Settable for prometheus_client::metrics::counter::Counter {
    fn set_to(&self, n: u64) {
        self.inc_by(n);
    }
}

type Counter = prometheus_client::metrics::counter::Counter;

/// The whole exposition.
pub fn text(ingest: &IngestHandle, store: Option<&StoreFigures>) -> String {
    let m = ingest.metrics();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut r = Registry::default();
    counter(
        &mut r,
        "pollsync_batches_accepted",
        "Batches applied (durable) since this center process started.",
        load(&m.batches_accepted),
    );
    counter(
        &mut r,
        "pollsync_ballots_counted",
        "Ballots in the batches applied since this center process started.",
        load(&m.ballots_counted),
    );
    counter(
        &mut r,
        "pollsync_batches_duplicate",
        "Batches received again that the center already held (counted once).",
        load(&m.batches_duplicate),
    );
    labelled::<Counter, _>(
        &mut r,
        "pollsync_batches_rejected",
        "Batches refused, by reason.",
        "reason",
        m.rejected().into_iter().map(|(k, n)| (k.to_string(), n)),
    );
    let l = &m.listen;
    labelled::<Counter, _>(
        &mut r,
        "pollsync_connections_turned_away",
        "Connections to the gRPC port closed before any RPC, by why.",
        "why",
        [
            ("over_cap", load(&l.refused_over_cap)),
            ("handshake_timeout", load(&l.handshake_timeouts)),
            ("handshake_failed", load(&l.handshake_failures)),
            ("accept_error", load(&l.accept_errors)),
        ]
        .map(|(k, n)| (k.to_string(), n)),
    );
    counter(
        &mut r,
        "pollsync_alerts_suppressed",
        "Alerts counted but not stored because their station reached its limit.",
        load(&m.alerts_suppressed),
    );
    counter(
        &mut r,
        "pollsync_queue_full",
        "Batches and alerts refused because the ingest writer's queue was full.",
        load(&m.queue_full),
    );
    counter(
        &mut r,
        "pollsync_group_commits",
        "Group transactions committed by the ingest writer.",
        load(&m.groups_committed),
    );
    counter(
        &mut r,
        "pollsync_group_commits_failed",
        "Group transactions that failed (nothing of them was acknowledged).",
        load(&m.groups_failed),
    );
    let h = &m.histograms;
    r.register(
        "pollsync_ingest_seconds",
        "Seconds from a batch's receipt to its durable acknowledgement.",
        h.ingest_seconds.clone(),
    );
    r.register(
        "pollsync_group_commit_seconds",
        "Seconds a group transaction took to commit (fsync included).",
        h.commit_seconds.clone(),
    );
    r.register(
        "pollsync_batch_ballots",
        "Ballots per accepted batch.",
        h.batch_ballots.clone(),
    );

    let stations = ingest.live_stations();
    let count = |f: &dyn Fn(&crate::ingest::LiveStation) -> bool| {
        stations.iter().filter(|s| f(s)).count() as u64
    };
    labelled::<Gauge, _>(
        &mut r,
        "pollsync_stations",
        "Stations of the election, by state.",
        "state",
        [
            ("all", stations.len() as u64),
            ("enrolled", count(&|s| s.enrolled)),
            ("connected", count(&|s| s.presence.connections > 0)),
            ("revoked", count(&|s| s.revoked)),
            ("quarantined", count(&|s| s.quarantined)),
        ]
        .map(|(k, n)| (k.to_string(), n)),
    );
    let held: u64 = stations.iter().map(|s| s.head.sequence).sum();
    let behind: u64 = stations
        .iter()
        .map(|s| {
            s.presence
                .local_head_sequence
                .saturating_sub(s.head.sequence)
        })
        .sum();
    gauge(
        &mut r,
        "pollsync_batches_held",
        "Batches the center holds, all stations together.",
        i64::try_from(held).unwrap_or(i64::MAX),
    );
    gauge(
        &mut r,
        "pollsync_batches_behind",
        "Batches stations reported sealed that the center does not hold yet.",
        i64::try_from(behind).unwrap_or(i64::MAX),
    );
    gauge(
        &mut r,
        "pollsync_writer_queue_jobs",
        "Batches and alerts waiting for the ingest writer.",
        i64::try_from(ingest.queued_jobs()).unwrap_or(i64::MAX),
    );
    if let Some(f) = store {
        labelled::<Gauge, _>(
            &mut r,
            "pollsync_contests",
            "Contests by status (pending, elected, runoff, ...).",
            "status",
            f.contests_by_status.clone(),
        );
        labelled::<Gauge, _>(
            &mut r,
            "pollsync_alerts",
            "Alerts stored, by kind.",
            "kind",
            f.alerts_by_kind.clone(),
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}
