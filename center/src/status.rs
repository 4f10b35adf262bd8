//! `center status`: what operators watch on election day: every station's state
//! (never seen, online, offline since, lagging, closed, fully synced, refused), every
//! contest's status with "X of Y stations reporting" and who is not yet in, and the
//! alerts raised.

use std::collections::BTreeMap;

use pollsync_election::rules::{ContestStatus, StationProgress};
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::results;
use crate::store::{AlertRow, Records, now_unix_ms};

/// A station not heard from for this long is shown offline.
pub const OFFLINE_AFTER_MS: u64 = pollsync_proto::limits::OFFLINE_AFTER_MS;

/// One station as the operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct StationStatus {
    /// The station's id.
    pub station: String,
    /// never_seen | online | offline | revoked | quarantined | needs_replacement (its
    /// key was retired after a fork: every device of it is refused until
    /// `center enroll --replace`)
    pub connection: &'static str,
    /// When the center last heard from the station (Unix ms); none if never.
    pub last_seen_unix_ms: Option<u64>,
    /// Batches the station reported sealed that the center does not hold yet.
    pub lagging_batches: u64,
    /// Batches the center holds of it (its chain head's sequence).
    pub batches: u64,
    /// Every contest it collects is closed at the center.
    pub closed: bool,
    /// Reporting for every contest it collects (`results::reporting`).
    pub fully_synced: bool,
}

/// One contest's progress: its status, "X of Y stations reporting", and who is
/// not yet in (`results::reporting`).
#[derive(Debug, Clone, Serialize)]
pub struct ContestProgress {
    /// The contest's id.
    pub id: String,
    /// The contest's status under the rule set.
    pub status: ContestStatus,
    /// "X of Y stations reporting".
    pub reporting: String,
    /// The contest's stations: expected, closed, fully synced.
    pub stations: StationProgress,
    /// Stations not reporting for it yet, in definition order.
    pub not_yet_in: Vec<String>,
}

/// The stations' side of the status.
#[derive(Debug, Clone, Serialize)]
pub struct Stations {
    /// Stations in the definition.
    pub total: usize,
    /// Stations per connection state.
    pub by_connection: BTreeMap<&'static str, u64>,
    /// Stations with every contest closed at the center.
    pub closed: usize,
    /// Stations reporting for every contest they collect.
    pub fully_synced: usize,
    /// Every station, in definition order.
    pub list: Vec<StationStatus>,
}

/// The contests' side of the status.
#[derive(Debug, Clone, Serialize)]
pub struct Contests {
    /// Contests per status; statuses with no contest are left out.
    pub by_status: BTreeMap<ContestStatus, u64>,
    /// Every contest, in definition order.
    pub list: Vec<ContestProgress>,
}

/// What `center status` shows (and `/api/status` serves).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The election's id.
    pub election: String,
    /// The stations' side.
    pub stations: Stations,
    /// The contests' side.
    pub contests: Contests,
    /// Alerts raised.
    pub alerts: usize,
}

/// The status as JSON (`center status --json`, `/api/status`).
pub fn compute(store: &dyn Records) -> Result<Value> {
    let results = results::compute(store, None)?;
    let status = of(store, &results, &store.alerts()?)?;
    // Every map key is a string or a unit enum: serializing cannot fail.
    Ok(serde_json::to_value(status).expect("the status serializes to JSON"))
}

/// The status beside `results` and `alerts`, read from the same store.
pub fn of(store: &dyn Records, results: &results::Results, alerts: &[AlertRow]) -> Result<Status> {
    let def = &results.definition;
    let now = now_unix_ms();
    let mut closed: BTreeMap<(String, String), bool> = BTreeMap::new();
    for t in store.tallies()? {
        closed.insert((t.station, t.contest), t.closed);
    }
    let rows: BTreeMap<String, _> = store
        .stations()?
        .into_iter()
        .map(|r| (r.station.clone(), r))
        .collect();
    let stations: Vec<StationStatus> = def
        .stations
        .iter()
        .map(|s| {
            let row = rows.get(&s.id);
            let seen = row.map_or(0, |r| r.last_seen_unix_ms);
            let head = row.map_or(0, |r| r.head_sequence);
            let connection = match row {
                Some(r) if r.revoked => "revoked",
                Some(r) if r.quarantined => "quarantined",
                Some(r) if r.key_retired => "needs_replacement",
                _ if seen == 0 && head == 0 => "never_seen",
                Some(r) if r.connected && now.saturating_sub(seen) < OFFLINE_AFTER_MS => "online",
                _ => "offline",
            };
            let lagging = row.map_or(0, |r| r.local_head_sequence.saturating_sub(r.head_sequence));
            let closed_here = |c: &String| {
                closed
                    .get(&(s.id.clone(), c.clone()))
                    .copied()
                    .unwrap_or(false)
            };
            StationStatus {
                station: s.id.clone(),
                connection,
                last_seen_unix_ms: (seen > 0).then_some(seen),
                lagging_batches: lagging,
                batches: head,
                closed: s.contests.iter().all(closed_here),
                fully_synced: s
                    .contests
                    .iter()
                    .all(|c| results::reporting(row, closed_here(c))),
            }
        })
        .collect();
    let contests: Vec<ContestProgress> = results
        .outcomes
        .iter()
        .map(|o| {
            let not_yet_in: Vec<String> = def
                .stations_of(&o.contest)
                .filter(|s| {
                    let closed_here = closed
                        .get(&(s.id.clone(), o.contest.clone()))
                        .copied()
                        .unwrap_or(false);
                    !results::reporting(rows.get(&s.id), closed_here)
                })
                .map(|s| s.id.clone())
                .collect();
            ContestProgress {
                id: o.contest.clone(),
                status: o.status,
                reporting: format!(
                    "{} of {} stations reporting",
                    o.stations.expected - not_yet_in.len() as u64,
                    o.stations.expected
                ),
                stations: o.stations,
                not_yet_in,
            }
        })
        .collect();
    let mut by_connection: BTreeMap<&'static str, u64> = BTreeMap::new();
    for s in &stations {
        *by_connection.entry(s.connection).or_default() += 1;
    }
    Ok(Status {
        election: def.election.id.clone(),
        stations: Stations {
            total: stations.len(),
            by_connection,
            closed: stations.iter().filter(|s| s.closed).count(),
            fully_synced: stations.iter().filter(|s| s.fully_synced).count(),
            list: stations,
        },
        contests: Contests {
            by_status: results.totals.overall.contests_by_status.clone(),
            list: contests,
        },
        alerts: alerts.len(),
    })
}

/// The status as lines a person reads.
pub fn to_text(v: &Value) -> String {
    let s = &v["stations"];
    let mut out = format!(
        "election {}\nstations: {} in all; {} closed, {} fully synced; by connection: {}\n",
        v["election"].as_str().unwrap_or("?"),
        s["total"],
        s["closed"],
        s["fully_synced"],
        s["by_connection"]
            .as_object()
            .map(|m| m
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    for st in s["list"].as_array().into_iter().flatten() {
        let lag = st["lagging_batches"].as_u64().unwrap_or(0);
        let seen = st["last_seen_unix_ms"]
            .as_u64()
            .map(pollsync_proto::time::utc_time)
            .unwrap_or_else(|| "never".into());
        out.push_str(&format!(
            "  {} {}{}{}; last seen {}\n",
            st["station"].as_str().unwrap_or("?"),
            st["connection"].as_str().unwrap_or("?"),
            if lag > 0 {
                format!(", lagging by {lag} batch(es)")
            } else {
                String::new()
            },
            if st["fully_synced"] == true {
                ", fully synced"
            } else if st["closed"] == true {
                ", closed"
            } else {
                ""
            },
            seen
        ));
    }
    out.push_str("contests:\n");
    for c in v["contests"]["list"].as_array().into_iter().flatten() {
        let missing: Vec<&str> = c["not_yet_in"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str())
            .collect();
        out.push_str(&format!(
            "  {} {}: {}{}\n",
            c["id"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?"),
            c["reporting"].as_str().unwrap_or("?"),
            if missing.is_empty() {
                String::new()
            } else {
                format!("; not yet in: {}", missing.join(", "))
            }
        ));
    }
    out.push_str(&format!("alerts: {} (see `center alerts`)\n", v["alerts"]));
    out
}
