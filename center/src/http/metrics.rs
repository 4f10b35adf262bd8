//! `/metrics`: the ingest's counters and the stations' live state in the
//! Prometheus text format (version 0.0.4), written by hand: a handful of series
//! does not need a metrics crate.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::ingest::IngestHandle;

pub(super) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text(&state.ingest),
    )
}

/// One metric family: its help, type and samples (`labels` may be empty).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn one(value: u64) -> Vec<(String, f64)> {
    vec![(String::new(), value as f64)]
}

/// The whole exposition.
pub fn text(ingest: &IngestHandle) -> String {
    let m = ingest.metrics();
    let mut out = String::new();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    family(
        &mut out,
        "pollsync_batches_accepted_total",
        "counter",
        "Batches applied (durable) since this center process started.",
        &one(load(&m.batches_accepted)),
    );
    family(
        &mut out,
        "pollsync_ballots_counted_total",
        "counter",
        "Ballots in the batches applied since this center process started.",
        &one(load(&m.ballots_counted)),
    );
    family(
        &mut out,
        "pollsync_batches_duplicate_total",
        "counter",
        "Batches received again that the center already held (counted once).",
        &one(load(&m.batches_duplicate)),
    );
    let rejected: Vec<(String, f64)> = m
        .rejected()
        .into_iter()
        .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), n as f64))
        .collect();
    family(
        &mut out,
        "pollsync_batches_rejected_total",
        "counter",
        "Batches refused, by reason.",
        &rejected,
    );
    let l = &m.listen;
    family(
        &mut out,
        "pollsync_connections_turned_away_total",
        "counter",
        "Connections to the gRPC port closed before any RPC, by why.",
        &[
            (
                "{why=\"over_cap\"}".to_owned(),
                load(&l.refused_over_cap) as f64,
            ),
            (
                "{why=\"handshake_timeout\"}".to_owned(),
                load(&l.handshake_timeouts) as f64,
            ),
            (
                "{why=\"handshake_failed\"}".to_owned(),
                load(&l.handshake_failures) as f64,
            ),
            (
                "{why=\"accept_error\"}".to_owned(),
                load(&l.accept_errors) as f64,
            ),
        ],
    );
    family(
        &mut out,
        "pollsync_alerts_suppressed_total",
        "counter",
        "Alerts counted but not stored because their station reached its limit.",
        &one(load(&m.alerts_suppressed)),
    );
    family(
        &mut out,
        "pollsync_group_commits_total",
        "counter",
        "Group transactions committed by the ingest writer.",
        &one(load(&m.groups_committed)),
    );
    family(
        &mut out,
        "pollsync_group_commits_failed_total",
        "counter",
        "Group transactions that failed (nothing of them was acknowledged).",
        &one(load(&m.groups_failed)),
    );
    family(
        &mut out,
        "pollsync_commit_seconds_total",
        "counter",
        "Time spent committing group transactions (fsync included).",
        &[(String::new(), load(&m.commit_us_total) as f64 / 1e6)],
    );

    let stations = ingest.live_stations();
    let count = |f: &dyn Fn(&crate::ingest::LiveStation) -> bool| {
        stations.iter().filter(|s| f(s)).count() as f64
    };
    family(
        &mut out,
        "pollsync_stations",
        "gauge",
        "Stations of the election, by state.",
        &[
            ("{state=\"all\"}".into(), stations.len() as f64),
            ("{state=\"enrolled\"}".into(), count(&|s| s.enrolled)),
            (
                "{state=\"connected\"}".into(),
                count(&|s| s.presence.connections > 0),
            ),
            ("{state=\"revoked\"}".into(), count(&|s| s.revoked)),
            ("{state=\"quarantined\"}".into(), count(&|s| s.quarantined)),
        ],
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
    family(
        &mut out,
        "pollsync_batches_held",
        "gauge",
        "Batches the center holds, all stations together.",
        &one(held),
    );
    family(
        &mut out,
        "pollsync_batches_behind",
        "gauge",
        "Batches stations reported sealed that the center does not hold yet.",
        &one(behind),
    );
    out
}
