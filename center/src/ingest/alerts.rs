//! A limit on what one station can write into the alerts table (G7): a flooding or
//! broken station raises at most [`MAX_ALERTS_PER_STATION`] alerts; then one
//! `ALERTS_SUPPRESSED` alert says so, and the rest are only counted (the
//! `pollsync_alerts_suppressed_total` metric). Its batches are refused exactly as
//! before; only the record of each refusal stops growing. The flags an accepted batch
//! raises (`judge::Flag`, such as `NO_ZERO_REPORT`) are stored here too, under the
//! same limit.

use std::collections::HashMap;

use super::judge::Accepted;
use crate::error::Result;
use crate::store::IngestOps;

/// Alerts stored per station before the rest are suppressed.
pub const MAX_ALERTS_PER_STATION: u64 = 1_000;
/// The kind of the one alert that says a station's further alerts are suppressed.
pub const SUPPRESSED_KIND: &str = "ALERTS_SUPPRESSED";

/// Alerts stored per station, as the writer's transaction sees them.
#[derive(Default)]
pub(super) struct AlertBook {
    /// `None`: read them again from the store before the next alert.
    counts: Option<HashMap<String, u64>>,
    /// Alerts suppressed since the last [`AlertBook::take_suppressed`].
    suppressed: u64,
}

impl AlertBook {
    /// The store may hold other counts now (a failed group rolled back, another
    /// process committed): read them again when next needed.
    pub(super) fn forget(&mut self) {
        self.counts = None;
    }

    /// Store an alert unless `station` reached its limit.
    pub(super) fn raise(
        &mut self,
        conn: &dyn IngestOps,
        station: &str,
        kind: &str,
        sequence: u64,
        detail: &str,
        now_unix_ms: u64,
    ) -> Result<()> {
        if self.counts.is_none() {
            self.counts = Some(conn.alert_counts()?);
        }
        let counts = self.counts.get_or_insert_with(HashMap::new);
        let stored = counts.entry(station.to_owned()).or_default();
        if *stored < MAX_ALERTS_PER_STATION {
            conn.insert_alert(station, kind, sequence, detail, now_unix_ms)?;
        } else if *stored == MAX_ALERTS_PER_STATION {
            let notice = format!(
                "station {station} raised {MAX_ALERTS_PER_STATION} alerts; its further alerts are counted but not stored (its batches are still refused); the latest: {kind}: {detail}"
            );
            conn.insert_alert(station, SUPPRESSED_KIND, sequence, &notice, now_unix_ms)?;
            self.suppressed += 1;
        } else {
            self.suppressed += 1;
        }
        *stored = stored.saturating_add(1);
        Ok(())
    }

    /// Store the flags an accepted batch of `station` raises (`judge::Flag`), one
    /// alert each, charged to the station: its signature verified.
    pub(super) fn raise_flags(
        &mut self,
        conn: &dyn IngestOps,
        station: &str,
        accepted: &Accepted,
        now_unix_ms: u64,
    ) -> Result<()> {
        for flag in &accepted.flags {
            let detail = flag.detail(station);
            self.raise(
                conn,
                station,
                flag.kind(),
                accepted.sequence,
                &detail,
                now_unix_ms,
            )?;
        }
        Ok(())
    }

    /// Alerts suppressed since the last call.
    pub(super) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}
