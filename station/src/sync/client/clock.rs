//! The driver's clock: tokio's monotonic `Instant` as milliseconds since the
//! command started, the `now_ms` the sync core takes, and back.

use std::time::Duration;

use tokio::time::Instant;

/// Milliseconds since `origin`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock reading 0 at `origin`.
    pub(super) fn starting_at(origin: Instant) -> Clock {
        Clock { origin }
    }

    /// Now, in ms since the origin.
    pub(super) fn now_ms(&self) -> u64 {
        ms(self.origin.elapsed())
    }

    /// The instant `at_ms` ms after the origin.
    pub(super) fn instant_at(&self, at_ms: u64) -> Instant {
        self.origin + Duration::from_millis(at_ms)
    }
}

/// A duration in whole milliseconds.
pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Sleeps until `at`, or forever if there is no such time.
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_since_the_origin_and_back() {
        let now = Instant::now();
        let origin = now
            .checked_sub(Duration::from_millis(1_500))
            .expect("the monotonic clock has run for 1.5 s");
        let clock = Clock::starting_at(origin);
        assert!(clock.now_ms() >= 1_500);
        assert_eq!(clock.instant_at(1_500), now);
        assert_eq!(ms(Duration::from_micros(2_999)), 2);
    }
}
