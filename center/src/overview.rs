//! The dashboard's one view (`/api/overview`): everything the operators' page
//! shows first, read in one request so that its first figures paint at once.
//!
//! It is assembled from the same computations as `center results` and `center
//! status` ([`results::compute`], [`status::of`]), so the page and the command line
//! cannot disagree: a station is reporting for a contest exactly when
//! [`results::reporting`] says so, and the ballots counted are the tallies' ballots
//! returned. Nothing here is computed twice.

use pollsync_election::rules::{ContestStatus, StationProgress};
use pollsync_election::{Level, StationKind, UnitKind};
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::store::Records;
use crate::{commands, results, status};

/// Newest alerts sent with the overview (all are counted).
pub const MAX_ALERTS_SHOWN: usize = 200;

/// The election the center serves.
#[derive(Debug, Clone, Serialize)]
pub struct ElectionInfo {
    /// The election's id.
    pub id: String,
    /// The election's name.
    pub name: String,
    /// Polling day, ISO date `YYYY-MM-DD`.
    pub date: String,
    /// official | test
    pub mode: &'static str,
}

/// Stations in the summary row.
#[derive(Debug, Clone, Serialize)]
pub struct StationsSummary {
    /// Stations in the definition.
    pub total: usize,
    /// Reporting for every contest they collect.
    pub reporting: usize,
    /// Every contest closed at the center.
    pub closed: usize,
    /// Batches sealed at the station that the center does not hold yet, in any.
    pub lagging: usize,
    /// Revoked, quarantined or waiting for a replacement device.
    pub needing_action: usize,
    /// Stations per connection state (`never_seen`, `online`, `offline`, …), as
    /// `center status` counts them.
    pub by_connection: std::collections::BTreeMap<&'static str, u64>,
}

/// Ballots in the summary row (ballot papers: a voter of a town takes two).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BallotsSummary {
    /// Ballots in the tallies (returned, cancels applied).
    pub counted: u64,
    /// Ballots issued (发出选票), as the stations record them.
    pub issued: u64,
    /// Voters on the rolls of every contest.
    pub registered: u64,
}

/// Seats in the summary row.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeatsSummary {
    /// Deputies to elect (应选名额) in all.
    pub total: u64,
    /// Seats filled by a decided contest.
    pub decided: u64,
}

/// Contests in the summary row.
#[derive(Debug, Clone, Serialize)]
pub struct ContestsSummary {
    /// Contests in the definition.
    pub total: usize,
    /// Contests per status; statuses with no contest are left out.
    pub by_status: std::collections::BTreeMap<ContestStatus, u64>,
}

/// What the chief of the counting center asks first.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The stations' row.
    pub stations: StationsSummary,
    /// The ballots' row.
    pub ballots: BallotsSummary,
    /// The seats' row.
    pub seats: SeatsSummary,
    /// The contests' row.
    pub contests: ContestsSummary,
    /// Alerts raised (each needs an operator's look).
    pub alerts: usize,
}

/// Ballots counted over time since this center process started: (Unix ms,
/// ballots counted by then), oldest first, at most [`MAX_PACE_POINTS`]. The last
/// point equals the summary's ballots counted.
#[derive(Debug, Clone, Serialize)]
pub struct PaceSeries {
    /// (Unix ms, ballots counted by then), oldest first.
    pub points: Vec<(u64, u64)>,
}

/// Points of the pace sent (a day of ten-second steps is thinned to this).
pub const MAX_PACE_POINTS: usize = 720;

/// An administrative unit (镇 or 街道).
#[derive(Debug, Clone, Serialize)]
pub struct UnitRow {
    /// The unit's id.
    pub id: String,
    /// The unit's name.
    pub name: String,
    /// A town or a street.
    pub kind: UnitKind,
}

/// A contest as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ContestRow {
    /// The contest's id.
    pub id: String,
    /// The contest's name.
    pub name: String,
    /// The congress the contest elects deputies to.
    pub level: Level,
    /// Id of the unit the contest lies in.
    pub unit: String,
    /// Deputies to elect (应选名额).
    pub seats: u32,
    /// Seats filled.
    pub elected: usize,
    /// The contest's status under the rule set.
    pub status: ContestStatus,
    /// The contest's stations: expected, closed, fully synced.
    pub stations: StationProgress,
    /// Stations not reporting for it yet.
    pub not_yet_in: Vec<String>,
    /// Ballots issued (发出选票), summed over its stations.
    pub issued: u64,
    /// Ballots returned in its tallies.
    pub counted: u64,
    /// Voters on the contest's roll.
    pub registered: u64,
}

/// A station as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct StationRow {
    /// The station's state, as `center status` shows it (flattened into the row).
    #[serde(flatten)]
    pub status: status::StationStatus,
    /// The station's name.
    pub name: String,
    /// A fixed polling station or a mobile ballot box.
    pub kind: StationKind,
    /// Ids of the contests the station collects.
    pub contests: Vec<String>,
}

/// The whole view.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The election the center serves.
    pub election: ElectionInfo,
    /// The summary row.
    pub summary: Summary,
    /// Ballots counted over time, for the pace chart.
    pub pace: PaceSeries,
    /// Every unit of the definition, in definition order.
    pub units: Vec<UnitRow>,
    /// Every contest, in definition order.
    pub contests: Vec<ContestRow>,
    /// Every station, in definition order.
    pub stations: Vec<StationRow>,
    /// The newest alerts first, at most [`MAX_ALERTS_SHOWN`], as `center alerts
    /// --json` shows them.
    pub alerts: Value,
}

/// Reads the overview from `store`; `pace` is the ingest's ballots counted per
/// step since it started (`Metrics::pace`), oldest first.
pub fn compute(store: &dyn Records, pace: &[(u64, i64)]) -> Result<Overview> {
    let results = results::compute(store, None)?;
    let alert_rows = store.alerts()?;
    let status = status::of(store, &results, &alert_rows)?;
    let def = &results.definition;
    let overall = &results.totals.overall;
    let counted: u64 = results.outcomes.iter().map(|o| o.returned).sum();
    let contests: Vec<ContestRow> = results
        .outcomes
        .iter()
        .zip(&status.contests.list)
        .filter_map(|(o, progress)| {
            debug_assert_eq!(o.contest, progress.id);
            let c = def.contest(&o.contest)?;
            Some(ContestRow {
                id: c.id.clone(),
                name: c.name.clone(),
                level: c.level,
                unit: c.unit.clone(),
                seats: c.seats,
                elected: o.elected.len().min(c.seats as usize),
                status: o.status,
                stations: o.stations,
                not_yet_in: progress.not_yet_in.clone(),
                issued: o.issued,
                counted: o.returned,
                registered: c.registered,
            })
        })
        .collect();
    let stations: Vec<StationRow> = def
        .stations
        .iter()
        .zip(status.stations.list.iter())
        .map(|(s, st)| {
            debug_assert_eq!(s.id, st.station);
            StationRow {
                status: st.clone(),
                name: s.name.clone(),
                kind: s.kind,
                contests: s.contests.clone(),
            }
        })
        .collect();
    let newest: Vec<_> = alert_rows
        .iter()
        .rev()
        .take(MAX_ALERTS_SHOWN)
        .cloned()
        .collect();
    let list = &status.stations.list;
    let summary = Summary {
        stations: StationsSummary {
            total: list.len(),
            reporting: status.stations.fully_synced,
            closed: status.stations.closed,
            lagging: list.iter().filter(|s| s.lagging_batches > 0).count(),
            needing_action: list
                .iter()
                .filter(|s| {
                    matches!(
                        s.connection,
                        "revoked" | "quarantined" | "needs_replacement"
                    )
                })
                .count(),
            by_connection: status.stations.by_connection.clone(),
        },
        ballots: BallotsSummary {
            counted,
            issued: overall.issued,
            registered: overall.registered,
        },
        seats: SeatsSummary {
            total: overall.seats,
            decided: overall.elected,
        },
        contests: ContestsSummary {
            total: contests.len(),
            by_status: overall.contests_by_status.clone(),
        },
        alerts: status.alerts,
    };
    Ok(Overview {
        election: ElectionInfo {
            id: def.election.id.clone(),
            name: def.election.name.clone(),
            date: def.election.date.clone(),
            mode: def.election.mode.as_str(),
        },
        pace: pace_series(counted, pace, crate::store::now_unix_ms()),
        summary,
        units: def
            .units
            .iter()
            .map(|u| UnitRow {
                id: u.id.clone(),
                name: u.name.clone(),
                kind: u.kind,
            })
            .collect(),
        contests,
        stations,
        alerts: commands::alerts::to_json(&newest),
    })
}

/// The cumulative series ending at `counted`: each step's point is what was
/// counted by its end (or by `now_unix_ms`, for the step still running). The
/// first point is what the store held before the first
/// step's ballots (a center restarted mid-day starts there). Thinned to at most
/// [`MAX_PACE_POINTS`] by keeping every n-th point, the first and the last.
fn pace_series(counted: u64, steps: &[(u64, i64)], now_unix_ms: u64) -> PaceSeries {
    use crate::ingest::events::PACE_STEP_MS;
    let in_steps: i64 = steps.iter().map(|(_, n)| n).sum();
    // The store is read after the steps were taken; a batch committed in between
    // is in `counted` but not yet in a step, which only lifts the base.
    let mut running = i64::try_from(counted).unwrap_or(i64::MAX) - in_steps;
    let mut points = Vec::with_capacity(steps.len() + 1);
    if let Some((first, _)) = steps.first() {
        points.push((*first, running.max(0) as u64));
    }
    for (step, n) in steps {
        running += n;
        // A step still running ends now, not in the future.
        let end = (step + PACE_STEP_MS).min(now_unix_ms.max(*step));
        points.push((end, running.max(0) as u64));
    }
    match points.last_mut() {
        Some(last) => last.1 = counted,
        None => points.push((now_unix_ms, counted)),
    }
    if points.len() > MAX_PACE_POINTS {
        let every = points.len().div_ceil(MAX_PACE_POINTS - 1);
        let last = points.len() - 1;
        points = points
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0 || *i == last)
            .map(|(_, p)| *p)
            .collect();
    }
    debug_assert!(points.len() <= MAX_PACE_POINTS);
    PaceSeries { points }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_ends_at_the_ballots_counted_and_starts_at_what_was_held_before() {
        let series = pace_series(100, &[(60_000, 30), (80_000, 20)], 200_000);
        assert_eq!(
            series.points,
            vec![(60_000, 50), (70_000, 80), (90_000, 100)]
        );
        // The step still running ends now: the page's own points come after it.
        let running = pace_series(100, &[(60_000, 30), (80_000, 20)], 84_000);
        assert_eq!(running.points.last(), Some(&(84_000, 100)));
        // Nothing counted since the start: one point, now.
        let idle = pace_series(7, &[], 5_000);
        assert_eq!(idle.points, vec![(5_000, 7)]);
        // Two days of steps are thinned, ending exactly at the count.
        let steps: Vec<(u64, i64)> = (0..17_280u64).map(|i| (i * 10_000, 1)).collect();
        let thin = pace_series(20_000, &steps, u64::MAX);
        assert!(thin.points.len() <= MAX_PACE_POINTS);
        assert_eq!(thin.points.first(), Some(&(0, 20_000 - 17_280)));
        assert_eq!(thin.points.last(), Some(&(17_280 * 10_000, 20_000)));
        assert!(
            thin.points
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }
}
