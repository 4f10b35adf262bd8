//! How a station's ballots are grouped into batches so that a batch never narrows
//! down when a ballot was cast (G6, SPEC §3): the anonymity set K
//! (`min_ballots_per_batch`).
//!
//! A batch carries a contest's ballots only in groups of at least K. While a contest
//! is open the station keeps at least K of its ballots back, so that even the group
//! sealed with its close holds K; a contest with fewer than K ballots at a station
//! goes in one group at its close. The station holds the most recent back as far as
//! it knows them: it keeps of a waiting ballot only which batch was the last when it
//! was recorded, so ballots recorded between two seals are indistinguishable.
//!
//! The rule is counted here, once, for the station's store (which seals) and for the
//! tests of both ends; nothing here knows about storage or bytes on a wire beyond the
//! bound a group must fit in.

use crate::ballot::{BALLOT_ID_BYTES, MAX_WRITE_IN_CHARS, MAX_WRITE_INS_PER_BALLOT};

/// K when the definition does not state it.
pub const DEFAULT_MIN_BALLOTS_PER_BATCH: u32 = 20;
/// The largest K a definition may state.
pub const MAX_MIN_BALLOTS_PER_BATCH: u32 = 1_000;
/// Bytes that K of a contest's largest possible ballots may take together: twice this
/// fits in one batch with room for its header and the day's other events, so a group
/// of K to 2K−1 ballots always fits (checked where the wire limit lives).
pub const MAX_BALLOT_GROUP_BYTES: usize = 480 * 1024;
/// Bytes of framing an encoded field may need (tag and length).
const FIELD_FRAMING_BYTES: usize = 4;

/// An upper bound of one encoded ballot of a contest: its id, the contest id, one
/// byte per formal candidate, and the most write-ins at the longest length (4 bytes a
/// character in UTF-8), each with its framing.
pub fn largest_ballot_bytes(contest_id_bytes: usize, candidates: usize) -> usize {
    FIELD_FRAMING_BYTES
        + BALLOT_ID_BYTES
        + FIELD_FRAMING_BYTES
        + contest_id_bytes
        + FIELD_FRAMING_BYTES
        + candidates
        + MAX_WRITE_INS_PER_BALLOT * (FIELD_FRAMING_BYTES + 4 * MAX_WRITE_IN_CHARS)
        + FIELD_FRAMING_BYTES
}

/// The largest K for which K of a contest's largest ballots fit in
/// [`MAX_BALLOT_GROUP_BYTES`].
pub fn max_k_for(contest_id_bytes: usize, candidates: usize) -> u64 {
    (MAX_BALLOT_GROUP_BYTES / largest_ballot_bytes(contest_id_bytes, candidates)) as u64
}

/// How many of a contest's `held` ballots a seal may release now: all of them once
/// the contest is closed; otherwise all but K, and only when that leaves a group of
/// at least K to release (so nothing is released until 2K wait).
pub fn releasable(held: u64, closed: bool, k: u64) -> u64 {
    assert!(k >= 1, "K is at least 1");
    // K = 1 (test elections only): a group of one is always allowed, nothing waits.
    if closed || k == 1 {
        held
    } else if held >= 2 * k {
        held - k
    } else {
        0
    }
}

/// The size of the next group to put in a batch, out of `release` ballots that a
/// seal releases for one contest, when at most `room` more ballots fit in the batch
/// being made. Every group is at least K, so what remains after it is either nothing
/// or again at least K; the exception is a `release` below K (a whole small contest
/// at its close), which goes as one group. `None`: the batch has no room for a group
/// of this contest (start a new batch).
pub fn next_group(release: u64, room: u64, k: u64) -> Option<u64> {
    assert!(k >= 1, "K is at least 1");
    if release == 0 {
        return None;
    }
    if release <= room {
        return Some(release);
    }
    // Take as many as fit, leaving at least K behind.
    let take = room.min(release.saturating_sub(k));
    (take >= k).then_some(take)
}

/// Whether a cancel of a ballot that still waits for its group removes it at once:
/// yes while more than K of its contest wait, so the group left still holds K. When
/// K or fewer wait, the ballot stays and its cancel travels with it in the group.
pub fn cancel_removes_held(held: u64, k: u64) -> bool {
    // With K = 1 nothing is grouped, and a cancel travels as it does for a sealed
    // ballot.
    k > 1 && held > k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn nothing_is_released_until_two_groups_wait() {
        assert_eq!(releasable(39, false, 20), 0);
        assert_eq!(releasable(40, false, 20), 20);
        assert_eq!(releasable(57, false, 20), 37);
        assert_eq!(releasable(7, true, 20), 7);
        assert_eq!(releasable(57, true, 20), 57);
        assert_eq!(releasable(1, false, 1), 1);
        assert_eq!(releasable(2, false, 1), 2);
    }

    #[test]
    fn groups_split_so_that_each_keeps_k() {
        // 100 to release, room for 90: take 80, leaving 20.
        assert_eq!(next_group(100, 90, 20), Some(80));
        assert_eq!(next_group(20, 90, 20), Some(20));
        // Room for 15 only: no group of 20 fits.
        assert_eq!(next_group(100, 15, 20), None);
        // A whole small contest at its close.
        assert_eq!(next_group(3, 90, 20), Some(3));
        assert_eq!(next_group(0, 90, 20), None);
    }

    #[test]
    fn the_bound_holds_the_largest_ballot() {
        // 64-byte contest id, 1024 candidates, ten write-ins of 50 four-byte characters.
        let bound = largest_ballot_bytes(64, 1024);
        assert!(bound >= 16 + 64 + 1024 + 10 * 200, "{bound}");
        assert_eq!(
            max_k_for(5, 4) as usize,
            MAX_BALLOT_GROUP_BYTES / bound_of(5, 4)
        );
    }

    fn bound_of(id: usize, candidates: usize) -> usize {
        largest_ballot_bytes(id, candidates)
    }

    /// One step a station may take.
    #[derive(Debug, Clone)]
    enum Step {
        Record(usize),
        Cancel(usize),
        Seal { room: u64 },
        Close(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0..3usize).prop_map(Step::Record),
            1 => (0..64usize).prop_map(Step::Cancel),
            3 => (1..200u64).prop_map(|room| Step::Seal { room }),
            1 => (0..3usize).prop_map(Step::Close),
        ]
    }

    /// A model station following the rules above: per contest, the ballots waiting
    /// (each with whether its cancel travels with it), the groups sealed.
    #[derive(Default)]
    struct Model {
        held: BTreeMap<usize, Vec<(u64, bool)>>,
        closed: BTreeMap<usize, bool>,
        sealed: BTreeMap<u64, usize>,
        groups: BTreeMap<usize, Vec<u64>>,
        removed: u64,
        next_id: u64,
    }

    impl Model {
        fn seal(&mut self, room: u64, k: u64) {
            // One batch of `room` ballots at a time, until nothing more is released.
            loop {
                let mut left = room.max(2 * k);
                let mut made = false;
                for (&contest, held) in self.held.iter_mut() {
                    let closed = self.closed.get(&contest).copied().unwrap_or(false);
                    let release = releasable(held.len() as u64, closed, k);
                    let Some(n) = next_group(release, left, k) else {
                        continue;
                    };
                    for _ in 0..n {
                        let (id, _) = held.pop().expect("released ballots wait");
                        *self.sealed.entry(id).or_default() += 1;
                    }
                    self.groups.entry(contest).or_default().push(n);
                    left -= n;
                    made = true;
                }
                if !made {
                    break;
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the schedule of records, cancels, seals and closes: every group
        /// holds K ballots of its contest unless it is the contest's only group, and
        /// every ballot not removed by a cancel is sealed exactly once.
        #[test]
        fn every_group_holds_k(k in 1..8u64, steps in proptest::collection::vec(step(), 0..300)) {
            let mut m = Model::default();
            for s in steps {
                match s {
                    Step::Record(c) => {
                        if !m.closed.get(&c).copied().unwrap_or(false) {
                            m.next_id += 1;
                            let id = m.next_id;
                            m.held.entry(c).or_default().insert(0, (id, false));
                        }
                    }
                    Step::Cancel(i) => {
                        let Some((&c, held)) = m.held.iter_mut().find(|(_, h)| !h.is_empty()) else {
                            continue;
                        };
                        if m.closed.get(&c).copied().unwrap_or(false) {
                            continue;
                        }
                        let at = i % held.len();
                        if held[at].1 {
                            continue;
                        }
                        if cancel_removes_held(held.len() as u64, k) {
                            held.remove(at);
                            m.removed += 1;
                        } else {
                            held[at].1 = true;
                        }
                    }
                    Step::Seal { room } => m.seal(room, k),
                    Step::Close(c) => {
                        m.closed.insert(c, true);
                    }
                }
            }
            for c in 0..3 {
                m.closed.insert(c, true);
            }
            m.seal(u64::MAX / 4, k);
            for held in m.held.values() {
                prop_assert!(held.is_empty());
            }
            prop_assert_eq!(m.sealed.len() as u64 + m.removed, m.next_id);
            prop_assert!(m.sealed.values().all(|&n| n == 1));
            for groups in m.groups.values() {
                if groups.len() > 1 {
                    prop_assert!(groups.iter().all(|&n| n >= k), "{groups:?}");
                }
            }
        }
    }
}
