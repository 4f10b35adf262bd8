//! What the store keeps about each station and what an accepted batch writes: the
//! types that the store and the ingest above it both speak. The store defines them
//! so that it depends on nothing above it; the judge decides their values.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::VerifyingKey;
use pollsync_election::{Contest, TallySheet};
use pollsync_proto::ChainHead;
use pollsync_proto::limits::HASH_BYTES;

/// Number of a station's enrolled key: 1 for the first enrollment, then 2, 3 …
pub type KeyNo = u32;

/// An enrolled station key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationKey {
    /// Which enrollment of the station.
    pub key_no: KeyNo,
    /// The Ed25519 key of its certificate.
    pub key: VerifyingKey,
}

/// What the center holds about the authenticated station, as the writer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StationState {
    /// Its current enrolled key (`None`: not in the election or never enrolled).
    pub current_key: Option<KeyNo>,
    /// Revoked by an operator.
    pub revoked: bool,
    /// Quarantined after a fork.
    pub quarantined: bool,
    /// Why its newest key was retired (`center release` after a fork), if it was:
    /// then `current_key` is `None` until the station is replaced.
    pub retired: Option<String>,
    /// The last batch durably applied.
    pub head: ChainHead,
    /// Contests this station has closed.
    pub closed: BTreeSet<String>,
}

impl StationState {
    /// The state after an accepted batch's effects.
    pub fn advance(&mut self, effects: &Effects) {
        assert_eq!(
            effects.sequence,
            self.head.sequence + 1,
            "an accepted batch is the next of its station's chain"
        );
        self.head = ChainHead {
            sequence: effects.sequence,
            hash: effects.hash,
        };
        for (contest, _) in &effects.closes {
            self.closed.insert(contest.clone());
        }
    }
}

/// The change one batch makes to a station's tallies of one contest. Signed, as a
/// cancel takes a ballot back. Candidate vectors follow the definition's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContestDelta {
    /// Ballots issued.
    pub issued: u64,
    /// Ballots returned (recorded, not cancelled).
    pub returned: i64,
    /// Valid ballots.
    pub valid: i64,
    /// Void ballots.
    pub void: i64,
    /// FOR per formal candidate (definition order).
    pub for_votes: Vec<i64>,
    /// AGAINST per formal candidate (definition order).
    pub against: Vec<i64>,
    /// FOR per write-in name.
    pub write_in: BTreeMap<String, i64>,
}

impl ContestDelta {
    /// A zero delta with one FOR and one AGAINST figure per formal candidate.
    pub fn for_contest(contest: &Contest) -> Self {
        let n = contest.candidates.len();
        Self {
            for_votes: vec![0; n],
            against: vec![0; n],
            ..Self::default()
        }
    }

    /// Adds another delta.
    pub fn merge(&mut self, other: &ContestDelta) {
        self.issued = self.issued.saturating_add(other.issued);
        self.returned += other.returned;
        self.valid += other.valid;
        self.void += other.void;
        if self.for_votes.len() < other.for_votes.len() {
            self.for_votes.resize(other.for_votes.len(), 0);
            self.against.resize(other.against.len(), 0);
        }
        for (i, v) in other.for_votes.iter().enumerate() {
            self.for_votes[i] += v;
        }
        for (i, v) in other.against.iter().enumerate() {
            self.against[i] += v;
        }
        for (name, v) in &other.write_in {
            *self.write_in.entry(name.clone()).or_insert(0) += v;
        }
        self.write_in.retain(|_, v| *v != 0);
    }
}

/// What an accepted batch changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Its sequence (the station's new head).
    pub sequence: u64,
    /// Its chain hash.
    pub hash: [u8; HASH_BYTES],
    /// The enrolled key that verified it.
    pub key_no: KeyNo,
    /// Events in the batch.
    pub events: u64,
    /// Ballot events in the batch.
    pub ballots: u64,
    /// Tally changes per contest, cancels applied.
    pub deltas: BTreeMap<String, ContestDelta>,
    /// Contests closed by this batch, with the station's tally sheet.
    pub closes: Vec<(String, TallySheet)>,
}
