//! Which of the center's addresses the next connection attempt goes to (SPEC §11,
//! fail-over): round robin over the list, moving to the next address after any
//! failed attempt or lost connection, staying on an address once it answered Hello.
//! Sans-IO: the driver reports what happened and asks which index to dial.

/// The position in a station's list of center addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// How many addresses the list holds (at least 1).
    count: usize,
    /// The index the next attempt dials.
    current: usize,
    /// The index whose center last answered Hello in this command, if any.
    reached: Option<usize>,
}

impl Default for Rotation {
    /// A list of one address.
    fn default() -> Self {
        Rotation::new(1, 0)
    }
}

impl Rotation {
    /// Over `count` addresses (at least 1), trying `first` first (taken modulo
    /// `count`).
    pub fn new(count: usize, first: usize) -> Self {
        let count = count.max(1);
        Rotation {
            count,
            current: first % count,
            reached: None,
        }
    }

    /// The index the next (or current) attempt dials.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The index whose center last answered Hello in this command, if any.
    pub fn reached(&self) -> Option<usize> {
        self.reached
    }

    /// The center at [`Rotation::current`] answered Hello: stay there.
    pub fn on_reached(&mut self) {
        self.reached = Some(self.current);
    }

    /// An attempt failed, or a connection was lost: the next attempt goes to the
    /// next address, after the last back to the first. Returns its index.
    pub fn on_failed(&mut self) -> usize {
        self.current = (self.current + 1) % self.count;
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_on_after_a_failure_round_robin() {
        let mut r = Rotation::new(3, 0);
        assert_eq!(r.current(), 0);
        assert_eq!(r.on_failed(), 1);
        assert_eq!(r.on_failed(), 2);
        assert_eq!(r.on_failed(), 0, "after the last, the first again");
        assert_eq!(r.current(), 0);
        assert_eq!(r.reached(), None);
    }

    #[test]
    fn stays_where_hello_was_answered() {
        let mut r = Rotation::new(2, 0);
        r.on_failed();
        r.on_reached();
        assert_eq!(r.current(), 1);
        assert_eq!(r.reached(), Some(1));
        // Nothing but a failure moves it.
        r.on_reached();
        assert_eq!(r.current(), 1);
        // A lost connection moves on; what was reached is remembered until the
        // next Hello.
        assert_eq!(r.on_failed(), 0);
        assert_eq!(r.reached(), Some(1));
    }

    #[test]
    fn starts_where_asked_and_a_single_address_stays() {
        assert_eq!(Rotation::new(3, 2).current(), 2);
        assert_eq!(Rotation::new(3, 5).current(), 2, "taken modulo the count");
        let mut one = Rotation::new(0, 7);
        assert_eq!(one.current(), 0);
        assert_eq!(one.on_failed(), 0);
        assert_eq!(Rotation::default(), Rotation::new(1, 0));
    }
}
