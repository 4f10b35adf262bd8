//! Exponential backoff with jitter between reconnection attempts: 200 ms doubling to
//! a 10 s cap, each wait drawn at random between half and all of the current step so
//! that many stations coming back at once after an outage do not knock in step.
//! Reset after a successful Hello. The random numbers come from the caller (the
//! driver uses the operating system's source), so this stays testable.

/// First wait after a failure.
pub const INITIAL_BACKOFF_MS: u64 = 200;
/// Longest wait between attempts.
pub const MAX_BACKOFF_MS: u64 = 10_000;

/// The backoff between one station's reconnection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    step_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL_BACKOFF_MS, MAX_BACKOFF_MS)
    }
}

impl Backoff {
    /// A backoff whose first step is `initial_ms` (at least 1) and whose step
    /// doubles up to `max_ms` (at least the first step).
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        let initial_ms = initial_ms.max(1);
        Backoff {
            initial_ms,
            max_ms: max_ms.max(initial_ms),
            step_ms: initial_ms,
        }
    }

    /// The wait before the next attempt, in ms, given a random number; the step
    /// doubles for the attempt after.
    pub fn next_delay_ms(&mut self, random: u64) -> u64 {
        let step = self.step_ms;
        self.step_ms = step.saturating_mul(2).min(self.max_ms);
        let half = step / 2;
        half + random % (step - half + 1)
    }

    /// A connection worked: start again from the first step.
    pub fn reset(&mut self) {
        self.step_ms = self.initial_ms;
    }
}

/// A random number from the operating system (0 if it cannot give one: the jitter is
/// only there to spread reconnections).
pub fn os_random() -> u64 {
    getrandom::u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let lows: Vec<u64> = (0..8).map(|_| b.next_delay_ms(0)).collect();
        assert_eq!(lows, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        let highs: Vec<u64> = (0..8).map(|_| b.next_delay_ms(u64::MAX - 1)).collect();
        for (i, d) in highs.iter().enumerate() {
            assert!(*d <= MAX_BACKOFF_MS, "{i}: {d}");
            assert!(*d >= lows[i], "{i}: {d}");
        }
        b.reset();
        assert!(b.next_delay_ms(os_random()) <= INITIAL_BACKOFF_MS);
    }

    #[test]
    fn every_wait_is_between_half_and_all_of_its_step() {
        let mut b = Backoff::default();
        let mut step = INITIAL_BACKOFF_MS;
        for r in [0u64, 1, 7, 99, 12345, u64::MAX] {
            let d = b.next_delay_ms(r);
            assert!(d >= step / 2 && d <= step, "{d} for step {step}");
            step = (step * 2).min(MAX_BACKOFF_MS);
        }
    }
}
