//! A station's side of its hash chain: the one place where a batch is given its
//! election, station, definition, sequence and previous hash, then signed, and the
//! chain's head moves past it. The station's store seals with it; so do sim's
//! stations, the rogue test clients and every test that needs signed batches.
//!
//! The Hello a device opens a sync with, which claims its chain's head, is built
//! here too ([`ChainWriter::hello`], [`hello_of`]), and so is the zero report that
//! opens a chain's first batch ([`zero_report`], [`ChainWriter::opening`]).
//!
//! Checking a chain is the other side ([`crate::envelope::ChainHead::check_next`]).

use ed25519_dalek::SigningKey;
use pollsync_election::{Mode, Station, StationEvent};

use crate::bundle::EnrollmentBundle;
use crate::convert::event_to_pb;
use crate::envelope::{ChainHead, chain_hash, seal_batch};
use crate::identity::IdentityError;
use crate::pb;

/// Builds and signs a station's next batches.
#[derive(Clone)]
pub struct ChainWriter {
    election_id: String,
    mode: Mode,
    station_id: String,
    definition_sha256: [u8; 32],
    key: SigningKey,
    head: ChainHead,
}

impl std::fmt::Debug for ChainWriter {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainWriter")
            .field("election_id", &self.election_id)
            .field("mode", &self.mode)
            .field("station_id", &self.station_id)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl ChainWriter {
    /// A chain of `station_id` in `election_id` (whose mode is `mode`) under the
    /// definition whose SHA-256 is `definition_sha256`, signed with `key`,
    /// continuing after `head`.
    pub fn new(
        election_id: impl Into<String>,
        mode: Mode,
        station_id: impl Into<String>,
        definition_sha256: [u8; 32],
        key: SigningKey,
        head: ChainHead,
    ) -> ChainWriter {
        ChainWriter {
            election_id: election_id.into(),
            mode,
            station_id: station_id.into(),
            definition_sha256,
            key,
            head,
        }
    }

    /// The chain of the device `bundle` provisions, from genesis: its election,
    /// station, definition and key.
    pub fn from_bundle(bundle: &EnrollmentBundle) -> Result<ChainWriter, IdentityError> {
        Ok(ChainWriter::new(
            bundle.election_id.clone(),
            bundle.mode,
            bundle.station_id.clone(),
            bundle.definition_sha256(),
            bundle.signing_key()?,
            ChainHead::GENESIS,
        ))
    }

    /// Continues after `head` from now on.
    pub fn after(mut self, head: ChainHead) -> ChainWriter {
        self.head = head;
        self
    }

    /// Signs with `key` from now on.
    pub fn signing_with(mut self, key: SigningKey) -> ChainWriter {
        self.key = key;
        self
    }

    /// The last batch sealed (or where the chain was taken up).
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// The election its batches are for.
    pub fn election_id(&self) -> &str {
        &self.election_id
    }

    /// Whether its election is official or a test.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The station whose chain it writes.
    pub fn station_id(&self) -> &str {
        &self.station_id
    }

    /// SHA-256 of the election definition its batches name.
    pub fn definition_sha256(&self) -> [u8; 32] {
        self.definition_sha256
    }

    /// The key it signs with.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The next batch holding `events`, not signed: the head does not move. A test
    /// may alter it before [`ChainWriter::seal`].
    pub fn unsigned(&self, events: Vec<pb::Event>) -> pb::Batch {
        pb::Batch {
            election_id: self.election_id.clone(),
            station_id: self.station_id.clone(),
            sequence: self.head.next_sequence(),
            prev_hash: self.head.hash.to_vec(),
            definition_sha256: self.definition_sha256.to_vec(),
            events,
            mode: self.mode.as_str().to_owned(),
        }
    }

    /// Signs `batch`, whatever it holds, and moves the head to it: its sequence and
    /// its chain hash.
    pub fn seal(&mut self, batch: &pb::Batch) -> pb::SignedBatch {
        let signed = seal_batch(&self.key, batch);
        self.head = ChainHead {
            sequence: batch.sequence,
            hash: chain_hash(&signed.batch),
        };
        signed
    }

    /// The next batch holding `events`, signed; the head moves past it.
    pub fn next(&mut self, events: Vec<pb::Event>) -> pb::SignedBatch {
        let batch = self.unsigned(events);
        self.seal(&batch)
    }

    /// The event the next batch opens with: the zero report of `station` when the
    /// next batch is the chain's first (sequence 1), else none (a replacement
    /// device's chain goes on after its bundle's head, which never is genesis).
    pub fn opening(&self, station: &Station) -> Option<pb::Event> {
        (self.head.next_sequence() == 1).then(|| zero_report(station))
    }

    /// The next batch holding `events`, opened by [`ChainWriter::opening`] (the
    /// zero report of `station` in the chain's first batch), signed; the head moves
    /// past it. What an honest device seals when it builds its batches itself.
    pub fn next_opened(&mut self, station: &Station, events: Vec<pb::Event>) -> pb::SignedBatch {
        let events = self.opening(station).into_iter().chain(events).collect();
        self.next(events)
    }

    /// The Hello of a device whose sealed head is this chain's head.
    pub fn hello(&self) -> pb::HelloRequest {
        hello(
            &self.election_id,
            &self.station_id,
            &self.definition_sha256,
            self.head,
        )
    }
}

/// The zero report of `station` as the wire carries it (SPEC §3): every contest it
/// serves stands at zero. It is the first event of the station's batch 1.
pub fn zero_report(station: &Station) -> pb::Event {
    event_to_pb(&StationEvent::zero_report_of(station))
}

/// The Hello of the device `bundle` provisions, whose sealed head is `head`.
pub fn hello_of(bundle: &EnrollmentBundle, head: ChainHead) -> pb::HelloRequest {
    hello(
        &bundle.election_id,
        &bundle.station_id,
        &bundle.definition_sha256(),
        head,
    )
}

fn hello(
    election_id: &str,
    station_id: &str,
    definition_sha256: &[u8; 32],
    head: ChainHead,
) -> pb::HelloRequest {
    pb::HelloRequest {
        election_id: election_id.to_owned(),
        station_id: station_id.to_owned(),
        definition_sha256: definition_sha256.to_vec(),
        local_head_sequence: head.sequence,
        local_head_hash: head.hash.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{check_chain, verify_batch};

    #[test]
    fn batches_chain_from_genesis_and_verify_under_the_key() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut chain = ChainWriter::new(
            "e-1",
            Mode::Official,
            "S-0001",
            [7; 32],
            key.clone(),
            ChainHead::GENESIS,
        );
        let signed: Vec<pb::SignedBatch> = (0..3).map(|_| chain.next(vec![])).collect();
        for s in &signed {
            verify_batch(&key.verifying_key(), s).expect("signed by the chain's key");
        }
        let head = check_chain("e-1", "S-0001", &signed).expect("one chain");
        assert_eq!(head, chain.head());
        assert_eq!(chain.head().sequence, 3);
        assert_eq!(chain.hello().local_head_sequence, 3);
    }

    #[test]
    fn only_the_first_batch_opens_with_the_zero_report() {
        let station = Station {
            id: "S-0001".into(),
            name: "s".into(),
            kind: pollsync_election::StationKind::Fixed,
            contests: vec!["D-001".into(), "T-001".into()],
        };
        let mut chain = ChainWriter::new(
            "e-1",
            Mode::Official,
            "S-0001",
            [7; 32],
            SigningKey::from_bytes(&[3; 32]),
            ChainHead::GENESIS,
        );
        let issued = crate::convert::event_to_pb(&StationEvent::Issued {
            contest: "D-001".into(),
            count: 1,
        });
        let first = chain.next_opened(&station, vec![issued.clone()]);
        let first = crate::envelope::decode_batch(&first).expect("decodes");
        assert_eq!(first.events, vec![zero_report(&station), issued.clone()]);
        assert_eq!(
            first.events[0].kind,
            Some(pb::event::Kind::ZeroReport(pb::ZeroReport {
                contests: vec!["D-001".into(), "T-001".into()]
            }))
        );
        let second = chain.next_opened(&station, vec![issued.clone()]);
        let second = crate::envelope::decode_batch(&second).expect("decodes");
        assert_eq!(second.events, vec![issued]);
        assert_eq!(chain.opening(&station), None);
    }

    #[test]
    fn an_altered_batch_moves_the_head_to_what_was_sealed() {
        let mut chain = ChainWriter::new(
            "e-1",
            Mode::Official,
            "S-0001",
            [7; 32],
            SigningKey::from_bytes(&[3; 32]),
            ChainHead::GENESIS,
        );
        let mut skipping = chain.unsigned(vec![]);
        skipping.sequence = 5;
        let signed = chain.seal(&skipping);
        assert_eq!(chain.head().sequence, 5);
        assert_eq!(chain.head().hash, chain_hash(&signed.batch));
        assert_eq!(chain.unsigned(vec![]).sequence, 6);
    }
}
