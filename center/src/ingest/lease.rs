//! Which replica signs the transparency log's checkpoints when several `center
//! serve` processes share one store (SPEC §11): the holder of a lease kept in the
//! store. Sans-IO: [`LogLease::decide`] takes the lease row as read inside the
//! write transaction and the time now, and says whether to sign (and what to write
//! back) or to leave it to the holder.
//!
//! The lease is a heartbeat, not a wall-clock deadline: the holder moves a counter
//! (`beat`) each time it signs; another replica takes the lease over only after it
//! has seen the same row, unchanged, for [`LEASE_TIMEOUT_MS`] by its own clock.
//! No two machines' clocks are ever compared. Taking it over is always safe (the
//! leaves and checkpoints are written under the store's write lock, and a
//! checkpoint is computed from the stored tree), so the lease only keeps replicas
//! from signing the same checkpoint twice.

use std::time::{Duration, Instant};

/// How long a replica waits, seeing the lease unchanged while the log needs a
/// checkpoint, before it takes the lease over from a holder that stopped.
pub const LEASE_TIMEOUT_MS: u64 = 3_000;
/// Longest holder name kept (a lease row is only ever written by a replica).
pub const MAX_HOLDER_CHARS: usize = 64;

/// The lease row: who holds it and its holder's counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The holding replica's name.
    pub holder: String,
    /// Moved on each time the holder signs.
    pub beat: u64,
}

impl LeaseRow {
    /// The row as stored: `"<beat> <holder>"`.
    pub fn to_text(&self) -> String {
        format!("{} {}", self.beat, self.holder)
    }

    /// Reads a stored row (`None`: not a lease row; treated as no lease).
    pub fn parse(text: &str) -> Option<LeaseRow> {
        let (beat, holder) = text.split_once(' ')?;
        let beat = beat.parse().ok()?;
        if holder.is_empty() || holder.chars().count() > MAX_HOLDER_CHARS {
            return None;
        }
        Some(LeaseRow {
            holder: holder.to_owned(),
            beat,
        })
    }
}

/// What a replica does about the next checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sign, and store this row with the checkpoint.
    Sign(LeaseRow),
    /// Another replica holds the lease: leave the checkpoint to it.
    Wait,
}

/// One replica's side of the lease.
#[derive(Debug)]
pub struct LogLease {
    /// This replica's name.
    me: String,
    /// The other holder's row as last seen, and since when it has not changed.
    seen: Option<(LeaseRow, Instant)>,
    timeout: Duration,
}

impl LogLease {
    /// A replica named `me` (at most [`MAX_HOLDER_CHARS`], no spaces needed).
    pub fn new(me: &str) -> LogLease {
        let me: String = me.chars().take(MAX_HOLDER_CHARS).collect();
        assert!(!me.is_empty(), "a replica needs a name");
        LogLease {
            me,
            seen: None,
            timeout: Duration::from_millis(LEASE_TIMEOUT_MS),
        }
    }

    /// This replica's name, as written in the lease row.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Given the lease row read in the write transaction (`None`: no lease yet,
    /// or not readable) and the time now: sign (writing the returned row) or wait.
    pub fn decide(&mut self, stored: Option<LeaseRow>, now: Instant) -> Decision {
        let Some(row) = stored else {
            self.seen = None;
            return Decision::Sign(LeaseRow {
                holder: self.me.clone(),
                beat: 0,
            });
        };
        if row.holder == self.me {
            self.seen = None;
            return Decision::Sign(LeaseRow {
                holder: self.me.clone(),
                beat: row.beat.wrapping_add(1),
            });
        }
        match &self.seen {
            Some((seen, since)) if *seen == row => {
                if now.saturating_duration_since(*since) >= self.timeout {
                    self.seen = None;
                    Decision::Sign(LeaseRow {
                        holder: self.me.clone(),
                        beat: row.beat.wrapping_add(1),
                    })
                } else {
                    Decision::Wait
                }
            }
            _ => {
                self.seen = Some((row, now));
                Decision::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(holder: &str, beat: u64) -> Option<LeaseRow> {
        Some(LeaseRow {
            holder: holder.into(),
            beat,
        })
    }

    #[test]
    fn the_first_replica_takes_the_lease_and_renews_it() {
        let mut a = LogLease::new("a");
        let t = Instant::now();
        assert_eq!(a.decide(None, t), Decision::Sign(row("a", 0).unwrap()));
        assert_eq!(
            a.decide(row("a", 0), t),
            Decision::Sign(row("a", 1).unwrap())
        );
    }

    #[test]
    fn another_replica_waits_while_the_holder_beats_and_takes_over_when_it_stops() {
        let mut b = LogLease::new("b");
        let t = Instant::now();
        let step = Duration::from_millis(1_000);
        // The holder beats every second: b never takes it.
        for beat in 0..10u32 {
            let now = t + step * beat;
            assert_eq!(b.decide(row("a", u64::from(beat)), now), Decision::Wait);
        }
        // The holder stops at beat 9: b waits out the timeout from when it first
        // saw that row, then signs with the next beat.
        let stopped = t + step * 9;
        assert_eq!(b.decide(row("a", 9), stopped + step), Decision::Wait);
        assert_eq!(
            b.decide(
                row("a", 9),
                stopped + Duration::from_millis(LEASE_TIMEOUT_MS)
            ),
            Decision::Sign(row("b", 10).unwrap())
        );
    }

    #[test]
    fn a_row_that_is_not_a_lease_is_no_lease() {
        assert_eq!(LeaseRow::parse("12 replica-1"), row("replica-1", 12));
        assert_eq!(LeaseRow::parse("x replica"), None);
        assert_eq!(LeaseRow::parse("12"), None);
        assert_eq!(LeaseRow::parse("12 "), None);
        assert_eq!(LeaseRow::parse(&format!("1 {}", "h".repeat(65))), None);
        let r = row("a b", 3).unwrap();
        assert_eq!(LeaseRow::parse(&r.to_text()), Some(r));
    }

    proptest! {
        /// Two replicas deciding in any order, the store keeping what a signer
        /// writes: at most one of them signs in any timeout window while both are
        /// alive, and once one stops, the other signs within two timeouts.
        #[test]
        fn one_signer_at_a_time_and_a_stopped_holder_is_replaced(
            schedule in proptest::collection::vec((any::<bool>(), 1u64..1_500), 1..200),
            stop_at in 0usize..200,
        ) {
            let mut replicas = [LogLease::new("a"), LogLease::new("b")];
            let mut stored: Option<LeaseRow> = None;
            let start = Instant::now();
            let mut now = start;
            let mut signs: Vec<(usize, Instant)> = Vec::new();
            for (i, (pick, gap_ms)) in schedule.iter().enumerate() {
                now += Duration::from_millis(*gap_ms);
                // After `stop_at`, replica 0 has stopped.
                let who = if i >= stop_at { 1 } else { usize::from(*pick) };
                if let Decision::Sign(next) = replicas[who].decide(stored.clone(), now) {
                    stored = Some(next);
                    signs.push((who, now));
                }
            }
            // Every hand-over waited at least a timeout since the other's last sign.
            for pair in signs.windows(2) {
                let ((a, ta), (b, tb)) = (pair[0], pair[1]);
                if a != b {
                    prop_assert!(tb.duration_since(ta) >= Duration::from_millis(LEASE_TIMEOUT_MS));
                }
            }
            // Replica 1, alone for long enough, holds the lease at the end.
            let alone: u64 = schedule.iter().skip(stop_at.saturating_add(1)).map(|(_, g)| *g).sum();
            if alone >= 2 * LEASE_TIMEOUT_MS + 1_500 {
                prop_assert_eq!(stored.map(|r| r.holder), Some("b".to_owned()));
            }
        }
    }
}
