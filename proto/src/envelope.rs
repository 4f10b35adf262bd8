//! The signed-batch envelope and the per-station hash chain.
//!
//! A station encodes a [`pb::Batch`] once, signs `SIGNATURE_DOMAIN || batch bytes`
//! with its Ed25519 key and sends the bytes and the signature as a
//! [`pb::SignedBatch`]. The chain hash of a batch is SHA-256 of those same bytes;
//! each batch carries the chain hash of the one before it (`prev_hash`), and the
//! first batch carries [`GENESIS_HASH`]. Verifiers always work on the received
//! bytes, never on a re-encoding. docs/PROTOCOL.md describes the same rules for
//! third-party verifiers.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::limits::{HASH_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, SIGNATURE_BYTES};
use crate::pb;

/// Domain-separation prefix of the signature input (18 bytes, ends with a NUL).
pub const SIGNATURE_DOMAIN: &[u8] = b"pollsync/batch/v1\0";

/// `prev_hash` of the batch with sequence 1.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// Why one signed batch is not acceptable on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The batch bytes exceed [`MAX_BATCH_BYTES`].
    #[error("batch is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// Size of `SignedBatch.batch`.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The signature is not 64 bytes.
    #[error("signature is {len} bytes, an Ed25519 signature is 64 bytes")]
    SignatureLength {
        /// Length found.
        len: usize,
    },
    /// The station key is a weak (small-order) Ed25519 key.
    #[error("the station's public key is a weak (small-order) Ed25519 key")]
    WeakKey,
    /// The signature does not verify with the station's key.
    #[error("Ed25519 signature does not verify with the station's key")]
    BadSignature,
    /// The bytes do not decode as a `pollsync.v1.Batch`.
    #[error("batch bytes do not decode as a pollsync.v1.Batch: {0}")]
    Decode(String),
    /// The bytes decode, but are not the canonical encoding of what they decode to
    /// (unknown fields, repeated or out-of-order fields, non-minimal varints, ...).
    #[error(
        "batch bytes are not the canonical protobuf encoding of a pollsync.v1.Batch (unknown, repeated or out-of-order fields)"
    )]
    NonCanonical,
    /// Sequence 0 (sequences start at 1).
    #[error("batch has sequence 0; sequences start at 1")]
    ZeroSequence,
    /// `prev_hash` is not 32 bytes.
    #[error("batch {sequence}: prev_hash is {len} bytes, expected 32")]
    PrevHashLength {
        /// Sequence of the batch.
        sequence: u64,
        /// Length found.
        len: usize,
    },
    /// `definition_sha256` is not 32 bytes.
    #[error("batch {sequence}: definition_sha256 is {len} bytes, expected 32")]
    DefinitionDigestLength {
        /// Sequence of the batch.
        sequence: u64,
        /// Length found.
        len: usize,
    },
    /// More events than [`MAX_BATCH_EVENTS`].
    #[error("batch {sequence}: {count} events, more than the limit of {max}")]
    TooManyEvents {
        /// Sequence of the batch.
        sequence: u64,
        /// Events found.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// One batch of a list failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("batch #{index} of the list: {source}")]
pub struct VerifyBatchesError {
    /// Position in the list (0-based).
    pub index: usize,
    /// What is wrong with it.
    pub source: EnvelopeError,
}

/// Where a station's chain stands: the last batch's sequence and chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHead {
    /// Sequence of the last batch (0 = no batch yet).
    pub sequence: u64,
    /// Chain hash of the last batch ([`GENESIS_HASH`] when there is none).
    pub hash: [u8; 32],
}

impl Default for ChainHead {
    fn default() -> Self {
        Self::GENESIS
    }
}

impl ChainHead {
    /// The head of an empty chain.
    pub const GENESIS: ChainHead = ChainHead {
        sequence: 0,
        hash: GENESIS_HASH,
    };

    /// The sequence the next batch must carry.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.saturating_add(1)
    }

    /// The chain hash in lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// Where a batch claiming `sequence` and `prev_hash` falls against this head:
    /// the one rule of the chain that the center's judge and [`Self::check_next`]
    /// share. A batch at or below the head is a resend or a fork (the caller tells
    /// them apart by the bytes it holds); above the next sequence, a gap; at the
    /// next sequence, it must link to this head's hash.
    pub fn place(&self, sequence: u64, prev_hash: &[u8]) -> Placement {
        let expected = self.next_sequence();
        if sequence <= self.sequence {
            Placement::AtOrBelowHead
        } else if sequence > expected {
            Placement::Gap { expected }
        } else if prev_hash != self.hash.as_slice() {
            Placement::BrokenChain
        } else {
            Placement::Next
        }
    }

    /// Checks that `batch` (decoded from `batch_bytes`) is the next link after this
    /// head: sequence `self.sequence + 1` and `prev_hash == self.hash`. Returns the
    /// new head. A batch with this head's own sequence is reported as
    /// [`ChainError::Duplicate`] (same bytes) or [`ChainError::Fork`] (different
    /// bytes); an older one as [`ChainError::Behind`].
    ///
    /// Election, station and definition are not checked here (see [`check_chain`]).
    pub fn check_next(
        &self,
        batch: &pb::Batch,
        batch_bytes: &[u8],
    ) -> Result<ChainHead, ChainError> {
        let hash = chain_hash(batch_bytes);
        match self.place(batch.sequence, &batch.prev_hash) {
            Placement::Next => {
                return Ok(ChainHead {
                    sequence: batch.sequence,
                    hash,
                });
            }
            Placement::BrokenChain => {
                return Err(ChainError::BrokenChain {
                    sequence: batch.sequence,
                    expected_prev: hex::encode(self.hash),
                    found_prev: hex::encode(&batch.prev_hash),
                });
            }
            Placement::Gap { expected } => {
                return Err(ChainError::Gap {
                    expected,
                    found: batch.sequence,
                });
            }
            Placement::AtOrBelowHead => {}
        }
        if batch.sequence == self.sequence && self.sequence > 0 {
            return Err(if hash == self.hash {
                ChainError::Duplicate {
                    sequence: batch.sequence,
                }
            } else {
                ChainError::Fork {
                    sequence: batch.sequence,
                    known: hex::encode(self.hash),
                    found: hex::encode(hash),
                }
            });
        }
        Err(ChainError::Behind {
            sequence: batch.sequence,
            head: self.sequence,
        })
    }
}

/// Where a batch falls against a chain's head ([`ChainHead::place`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The next link: the next sequence, linked to the head's hash.
    Next,
    /// The next sequence, linked to another hash.
    BrokenChain,
    /// Beyond the next sequence: batches are missing before it.
    Gap {
        /// The sequence the chain needs next.
        expected: u64,
    },
    /// At or below the head: the same batch again, or a fork.
    AtOrBelowHead,
}

/// Why a list of batches is not one well-formed chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A batch is not acceptable on its own (size, encoding, field lengths).
    #[error("batch #{index} of the list: {source}")]
    Envelope {
        /// Position in the list (0-based).
        index: usize,
        /// What is wrong with it.
        source: EnvelopeError,
    },
    /// A batch names another election.
    #[error("batch {sequence}: election {found:?}, expected {expected:?}")]
    WrongElection {
        /// Sequence of the batch.
        sequence: u64,
        /// The election expected.
        expected: String,
        /// The election in the batch.
        found: String,
    },
    /// A batch names another station.
    #[error("batch {sequence}: station {found:?}, expected {expected:?}")]
    WrongStation {
        /// Sequence of the batch.
        sequence: u64,
        /// The station expected.
        expected: String,
        /// The station in the batch.
        found: String,
    },
    /// A batch pins another election definition than the batches before it.
    #[error(
        "batch {sequence}: definition_sha256 {found} differs from {expected} carried by the batches before it"
    )]
    DefinitionChanged {
        /// Sequence of the batch.
        sequence: u64,
        /// Digest (hex) of the earlier batches.
        expected: String,
        /// Digest (hex) in this batch.
        found: String,
    },
    /// Batches are missing: the sequence jumps past the expected one.
    #[error(
        "gap: expected sequence {expected}, found {found} (batches {expected}..{found} are missing)"
    )]
    Gap {
        /// The sequence that should come next.
        expected: u64,
        /// The sequence found instead.
        found: u64,
    },
    /// Two different batches with the same sequence.
    #[error(
        "fork at sequence {sequence}: a different batch with that sequence is known (chain hash {known}, this one {found})"
    )]
    Fork {
        /// The sequence.
        sequence: u64,
        /// Chain hash (hex) of the known batch.
        known: String,
        /// Chain hash (hex) of the other batch.
        found: String,
    },
    /// The same batch (same bytes) twice.
    #[error("duplicate: batch {sequence} appears again with the same bytes")]
    Duplicate {
        /// The sequence.
        sequence: u64,
    },
    /// A sequence older than the head, whose bytes are not known here.
    #[error("batch {sequence} is at or below the chain head {head}")]
    Behind {
        /// The sequence found.
        sequence: u64,
        /// The head's sequence.
        head: u64,
    },
    /// `prev_hash` does not link to the previous batch.
    #[error(
        "broken chain at sequence {sequence}: prev_hash {found_prev}, but the previous batch hashes to {expected_prev}"
    )]
    BrokenChain {
        /// The sequence whose link is broken.
        sequence: u64,
        /// Chain hash (hex) of the previous batch.
        expected_prev: String,
        /// `prev_hash` (hex) found in the batch.
        found_prev: String,
    },
}

/// The bytes that are signed: `SIGNATURE_DOMAIN || batch_bytes`.
pub fn signature_input(batch_bytes: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNATURE_DOMAIN.len() + batch_bytes.len());
    input.extend_from_slice(SIGNATURE_DOMAIN);
    input.extend_from_slice(batch_bytes);
    input
}

/// The chain hash of a batch: SHA-256 of its exact bytes (`SignedBatch.batch`).
pub fn chain_hash(batch_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(batch_bytes).into()
}

/// The definition digest: SHA-256 of the election definition file's exact bytes
/// (`Batch.definition_sha256`, `HelloRequest.definition_sha256`).
pub fn definition_sha256(definition_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(definition_bytes).into()
}

/// Encodes a batch (canonical prost encoding). Encode once and keep the bytes:
/// those bytes, not the struct, are what is signed, hashed and resent.
pub fn encode_batch(batch: &pb::Batch) -> Vec<u8> {
    batch.encode_to_vec()
}

/// Signs already-encoded batch bytes.
pub fn sign_batch(key: &SigningKey, batch_bytes: Vec<u8>) -> pb::SignedBatch {
    let signature = key.sign(&signature_input(&batch_bytes));
    pb::SignedBatch {
        batch: batch_bytes,
        signature: signature.to_bytes().to_vec(),
    }
}

/// Encodes and signs a batch in one step.
pub fn seal_batch(key: &SigningKey, batch: &pb::Batch) -> pb::SignedBatch {
    sign_batch(key, encode_batch(batch))
}

fn check_sizes(signed: &pb::SignedBatch) -> Result<Signature, EnvelopeError> {
    if signed.batch.len() > MAX_BATCH_BYTES {
        return Err(EnvelopeError::TooLarge {
            size: signed.batch.len(),
            max: MAX_BATCH_BYTES,
        });
    }
    let bytes: &[u8; SIGNATURE_BYTES] =
        signed
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::SignatureLength {
                len: signed.signature.len(),
            })?;
    Ok(Signature::from_bytes(bytes))
}

/// Verifies one signed batch with the station's key (`verify_strict`: RFC 8032
/// with canonical `s` and no small-order `R` or key).
pub fn verify_batch(key: &VerifyingKey, signed: &pb::SignedBatch) -> Result<(), EnvelopeError> {
    let signature = check_sizes(signed)?;
    if key.is_weak() {
        return Err(EnvelopeError::WeakKey);
    }
    key.verify_strict(&signature_input(&signed.batch), &signature)
        .map_err(|_| EnvelopeError::BadSignature)
}

/// Verifies many signed batches of one station at once with Ed25519 batch
/// verification; when the batch check fails, falls back to [`verify_batch`] one
/// by one to name the first bad one.
///
/// For signatures produced by an honest signer the verdict equals
/// [`verify_batch`] on each. The normative check (used by audits) is
/// [`verify_batch`]: only the key holder could craft a signature that passes here
/// and fails there.
pub fn verify_batches(
    key: &VerifyingKey,
    signed: &[pb::SignedBatch],
) -> Result<(), VerifyBatchesError> {
    if signed.is_empty() {
        return Ok(());
    }
    let mut signatures = Vec::with_capacity(signed.len());
    for (index, one) in signed.iter().enumerate() {
        signatures.push(check_sizes(one).map_err(|source| VerifyBatchesError { index, source })?);
    }
    if key.is_weak() {
        return Err(VerifyBatchesError {
            index: 0,
            source: EnvelopeError::WeakKey,
        });
    }
    if signed.len() == 1 {
        return verify_batch(key, &signed[0])
            .map_err(|source| VerifyBatchesError { index: 0, source });
    }
    let inputs: Vec<Vec<u8>> = signed.iter().map(|s| signature_input(&s.batch)).collect();
    let messages: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    let keys = vec![*key; signed.len()];
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    for (index, (input, signature)) in inputs.iter().zip(&signatures).enumerate() {
        if key.verify_strict(input, signature).is_err() {
            return Err(VerifyBatchesError {
                index,
                source: EnvelopeError::BadSignature,
            });
        }
    }
    // Every signature verifies strictly on its own (then the batch equation holds
    // too, so this is not reached in practice): strict verification decides.
    Ok(())
}

/// Decodes the batch inside a signed envelope, with the size limits checked
/// before decoding and the structural rules after it: canonical encoding,
/// sequence ≥ 1, 32-byte `prev_hash` and `definition_sha256`, at most
/// [`MAX_BATCH_EVENTS`] events. Does not verify the signature.
pub fn decode_batch(signed: &pb::SignedBatch) -> Result<pb::Batch, EnvelopeError> {
    check_sizes(signed)?;
    decode_batch_bytes(&signed.batch)
}

/// [`decode_batch`] on bare batch bytes.
pub fn decode_batch_bytes(batch_bytes: &[u8]) -> Result<pb::Batch, EnvelopeError> {
    if batch_bytes.len() > MAX_BATCH_BYTES {
        return Err(EnvelopeError::TooLarge {
            size: batch_bytes.len(),
            max: MAX_BATCH_BYTES,
        });
    }
    // Counted on the wire first: prost would build every entry before a check after.
    crate::wire::check_batch_counts(batch_bytes).map_err(|e| match e {
        crate::wire::WireError::TooMany {
            what: "events of the batch",
            count,
            max,
        } => EnvelopeError::TooManyEvents {
            sequence: crate::wire::varint_field(batch_bytes, 3).unwrap_or(0),
            count,
            max,
        },
        other => EnvelopeError::Decode(other.to_string()),
    })?;
    let batch = pb::Batch::decode(batch_bytes).map_err(|e| EnvelopeError::Decode(e.to_string()))?;
    if batch.sequence == 0 {
        return Err(EnvelopeError::ZeroSequence);
    }
    if batch.prev_hash.len() != HASH_BYTES {
        return Err(EnvelopeError::PrevHashLength {
            sequence: batch.sequence,
            len: batch.prev_hash.len(),
        });
    }
    if batch.definition_sha256.len() != HASH_BYTES {
        return Err(EnvelopeError::DefinitionDigestLength {
            sequence: batch.sequence,
            len: batch.definition_sha256.len(),
        });
    }
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(EnvelopeError::TooManyEvents {
            sequence: batch.sequence,
            count: batch.events.len(),
            max: MAX_BATCH_EVENTS,
        });
    }
    if batch.encoded_len() != batch_bytes.len() || batch.encode_to_vec() != batch_bytes {
        return Err(EnvelopeError::NonCanonical);
    }
    Ok(batch)
}

/// Checks that `signed` is the complete chain of one station from sequence 1:
/// every batch decodes ([`decode_batch`]), names `election_id` and `station_id`,
/// carries the same definition digest as the first, and the sequences run
/// 1, 2, 3 … with each `prev_hash` the chain hash of the batch before (genesis:
/// 32 zero bytes). Signatures are not checked here (see [`verify_batches`]).
/// Returns the head of the chain ([`ChainHead::GENESIS`] for an empty list).
pub fn check_chain(
    election_id: &str,
    station_id: &str,
    signed: &[pb::SignedBatch],
) -> Result<ChainHead, ChainError> {
    check_chain_from(ChainHead::GENESIS, election_id, station_id, signed)
}

/// Like [`check_chain`], but the list continues an existing chain whose head is
/// `start` (the first batch must have sequence `start.sequence + 1` and link to
/// `start.hash`). Use it for an export file or the batches a center lacks.
pub fn check_chain_from(
    start: ChainHead,
    election_id: &str,
    station_id: &str,
    signed: &[pb::SignedBatch],
) -> Result<ChainHead, ChainError> {
    let mut head = start;
    let mut definition: Option<Vec<u8>> = None;
    // Chain hashes seen in this list (and the start), to tell forks from duplicates.
    let mut seen: HashMap<u64, [u8; 32]> = HashMap::new();
    if start.sequence > 0 {
        seen.insert(start.sequence, start.hash);
    }
    for (index, one) in signed.iter().enumerate() {
        let batch = decode_batch(one).map_err(|source| ChainError::Envelope { index, source })?;
        if batch.election_id != election_id {
            return Err(ChainError::WrongElection {
                sequence: batch.sequence,
                expected: election_id.to_owned(),
                found: batch.election_id,
            });
        }
        if batch.station_id != station_id {
            return Err(ChainError::WrongStation {
                sequence: batch.sequence,
                expected: station_id.to_owned(),
                found: batch.station_id,
            });
        }
        match &definition {
            None => definition = Some(batch.definition_sha256.clone()),
            Some(first) if *first != batch.definition_sha256 => {
                return Err(ChainError::DefinitionChanged {
                    sequence: batch.sequence,
                    expected: hex::encode(first),
                    found: hex::encode(&batch.definition_sha256),
                });
            }
            Some(_) => {}
        }
        if batch.sequence <= head.sequence {
            let hash = chain_hash(&one.batch);
            return Err(match seen.get(&batch.sequence) {
                Some(known) if *known == hash => ChainError::Duplicate {
                    sequence: batch.sequence,
                },
                Some(known) => ChainError::Fork {
                    sequence: batch.sequence,
                    known: hex::encode(known),
                    found: hex::encode(hash),
                },
                None => ChainError::Behind {
                    sequence: batch.sequence,
                    head: head.sequence,
                },
            });
        }
        head = head.check_next(&batch, &one.batch)?;
        seen.insert(head.sequence, head.hash);
    }
    Ok(head)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn test_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    pub(crate) fn ballot_event(id: u8, contest: &str, marks: &[u8]) -> pb::Event {
        pb::Event {
            kind: Some(pb::event::Kind::Ballot(pb::Ballot {
                id: vec![id; 16],
                contest: contest.to_owned(),
                marks: marks.to_vec(),
                write_in: vec![],
            })),
        }
    }

    /// A chain of `n` signed batches for election "e-1", station "S-0001".
    pub(crate) fn make_chain(key: &SigningKey, n: u64) -> Vec<pb::SignedBatch> {
        let mut chain = crate::chain::ChainWriter::new(
            "e-1",
            pollsync_election::Mode::Official,
            "S-0001",
            [7; 32],
            key.clone(),
            ChainHead::GENESIS,
        );
        (1..=n)
            .map(|sequence| {
                chain.next(vec![
                    ballot_event(sequence as u8, "D-001", &[1, 0, 2]),
                    pb::Event {
                        kind: Some(pb::event::Kind::Issued(pb::Issued {
                            contest: "D-001".into(),
                            count: 1,
                        })),
                    },
                ])
            })
            .collect()
    }

    #[test]
    fn domain_prefix_is_18_bytes_ending_in_nul() {
        assert_eq!(SIGNATURE_DOMAIN.len(), 18);
        assert_eq!(SIGNATURE_DOMAIN.last(), Some(&0));
        assert_eq!(signature_input(b"ab"), b"pollsync/batch/v1\0ab".to_vec());
    }

    #[test]
    fn sign_then_verify_roundtrip_and_wrong_key_fails() {
        let key = test_key(1);
        let chain = make_chain(&key, 1);
        verify_batch(&key.verifying_key(), &chain[0]).unwrap();
        assert_eq!(
            verify_batch(&test_key(2).verifying_key(), &chain[0]),
            Err(EnvelopeError::BadSignature)
        );
        // The signature covers the domain prefix: a plain signature over the bytes fails.
        let plain = pb::SignedBatch {
            batch: chain[0].batch.clone(),
            signature: key.sign(&chain[0].batch).to_bytes().to_vec(),
        };
        assert_eq!(
            verify_batch(&key.verifying_key(), &plain),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn chain_hash_is_sha256_of_the_batch_bytes() {
        // SHA-256("abc")
        assert_eq!(
            hex::encode(chain_hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn signature_length_and_size_limits_are_checked() {
        let key = test_key(1);
        let mut signed = make_chain(&key, 1).remove(0);
        signed.signature.pop();
        assert_eq!(
            verify_batch(&key.verifying_key(), &signed),
            Err(EnvelopeError::SignatureLength { len: 63 })
        );
        let big = pb::SignedBatch {
            batch: vec![0; MAX_BATCH_BYTES + 1],
            signature: vec![0; 64],
        };
        assert!(matches!(
            decode_batch(&big),
            Err(EnvelopeError::TooLarge { .. })
        ));
        assert!(matches!(
            verify_batch(&key.verifying_key(), &big),
            Err(EnvelopeError::TooLarge { .. })
        ));
    }

    #[test]
    fn decode_checks_structure() {
        let key = test_key(1);
        let good = make_chain(&key, 1).remove(0);
        let batch = decode_batch(&good).unwrap();
        assert_eq!(batch.sequence, 1);

        let mut b = batch.clone();
        b.sequence = 0;
        assert_eq!(
            decode_batch(&seal_batch(&key, &b)),
            Err(EnvelopeError::ZeroSequence)
        );
        let mut b = batch.clone();
        b.prev_hash = vec![0; 31];
        assert_eq!(
            decode_batch(&seal_batch(&key, &b)),
            Err(EnvelopeError::PrevHashLength {
                sequence: 1,
                len: 31
            })
        );
        let mut b = batch.clone();
        b.definition_sha256 = vec![];
        assert_eq!(
            decode_batch(&seal_batch(&key, &b)),
            Err(EnvelopeError::DefinitionDigestLength {
                sequence: 1,
                len: 0
            })
        );
        let mut b = batch.clone();
        b.events = vec![ballot_event(1, "D-001", &[1]); MAX_BATCH_EVENTS + 1];
        assert!(matches!(
            decode_batch(&seal_batch(&key, &b)),
            Err(EnvelopeError::TooManyEvents { count, .. }) if count == MAX_BATCH_EVENTS + 1
        ));
        let garbage = sign_batch(&key, vec![0xff; 10]);
        assert!(matches!(
            decode_batch(&garbage),
            Err(EnvelopeError::Decode(_))
        ));
    }

    #[test]
    fn decode_rejects_non_canonical_encodings() {
        let key = test_key(1);
        let good = make_chain(&key, 1).remove(0);
        // An unknown field (number 15, varint 1) appended.
        let mut bytes = good.batch.clone();
        bytes.extend_from_slice(&[0x78, 0x01]);
        assert_eq!(
            decode_batch(&sign_batch(&key, bytes)),
            Err(EnvelopeError::NonCanonical)
        );
        // The sequence field repeated (last one wins in protobuf).
        let mut bytes = good.batch.clone();
        bytes.extend_from_slice(&[0x18, 0x01]);
        assert_eq!(
            decode_batch(&sign_batch(&key, bytes)),
            Err(EnvelopeError::NonCanonical)
        );
    }

    #[test]
    fn check_chain_accepts_a_good_chain() {
        let key = test_key(1);
        let chain = make_chain(&key, 5);
        let head = check_chain("e-1", "S-0001", &chain).unwrap();
        assert_eq!(head.sequence, 5);
        assert_eq!(head.hash, chain_hash(&chain[4].batch));
        assert_eq!(
            check_chain("e-1", "S-0001", &[]).unwrap(),
            ChainHead::GENESIS
        );
        verify_batches(&key.verifying_key(), &chain).unwrap();
        // A continuation from a known head.
        let mid = check_chain("e-1", "S-0001", &chain[..2]).unwrap();
        assert_eq!(
            check_chain_from(mid, "e-1", "S-0001", &chain[2..]).unwrap(),
            head
        );
    }

    #[test]
    fn check_chain_names_gap_fork_duplicate_and_broken_link() {
        let key = test_key(1);
        let chain = make_chain(&key, 4);

        let gap = vec![chain[0].clone(), chain[2].clone()];
        assert_eq!(
            check_chain("e-1", "S-0001", &gap),
            Err(ChainError::Gap {
                expected: 2,
                found: 3
            })
        );
        let missing_first = &chain[1..];
        assert_eq!(
            check_chain("e-1", "S-0001", missing_first),
            Err(ChainError::Gap {
                expected: 1,
                found: 2
            })
        );

        let dup = vec![chain[0].clone(), chain[1].clone(), chain[1].clone()];
        assert_eq!(
            check_chain("e-1", "S-0001", &dup),
            Err(ChainError::Duplicate { sequence: 2 })
        );

        // A different batch 2 that links correctly: a fork.
        let mut other = decode_batch(&chain[1]).unwrap();
        other.events.push(ballot_event(99, "D-001", &[0, 0, 1]));
        let other = seal_batch(&key, &other);
        let fork = vec![chain[0].clone(), chain[1].clone(), other.clone()];
        assert!(matches!(
            check_chain("e-1", "S-0001", &fork),
            Err(ChainError::Fork { sequence: 2, .. })
        ));

        // Batch 3 after the other batch 2: broken link (3 links to the first 2).
        let broken = vec![chain[0].clone(), other, chain[2].clone()];
        let err = check_chain("e-1", "S-0001", &broken).unwrap_err();
        assert!(
            matches!(err, ChainError::BrokenChain { sequence: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("broken chain at sequence 3"));

        // Sequence 1 with a non-genesis prev_hash.
        let mut first = decode_batch(&chain[0]).unwrap();
        first.prev_hash = vec![1; 32];
        assert!(matches!(
            check_chain("e-1", "S-0001", &[seal_batch(&key, &first)]),
            Err(ChainError::BrokenChain { sequence: 1, .. })
        ));
    }

    #[test]
    fn check_chain_checks_ids_and_definition() {
        let key = test_key(1);
        let chain = make_chain(&key, 2);
        assert!(matches!(
            check_chain("e-2", "S-0001", &chain),
            Err(ChainError::WrongElection { sequence: 1, .. })
        ));
        assert!(matches!(
            check_chain("e-1", "S-0002", &chain),
            Err(ChainError::WrongStation { sequence: 1, .. })
        ));
        let mut second = decode_batch(&chain[1]).unwrap();
        second.definition_sha256 = vec![8; 32];
        let changed = vec![chain[0].clone(), seal_batch(&key, &second)];
        assert!(matches!(
            check_chain("e-1", "S-0001", &changed),
            Err(ChainError::DefinitionChanged { sequence: 2, .. })
        ));
        let bad = vec![chain[0].clone(), sign_batch(&key, vec![1, 2, 3])];
        assert!(matches!(
            check_chain("e-1", "S-0001", &bad),
            Err(ChainError::Envelope { index: 1, .. })
        ));
    }

    #[test]
    fn head_check_next_tells_duplicate_fork_behind() {
        let key = test_key(1);
        let chain = make_chain(&key, 3);
        let head = check_chain("e-1", "S-0001", &chain[..2]).unwrap();
        let b2 = decode_batch(&chain[1]).unwrap();
        assert_eq!(
            head.check_next(&b2, &chain[1].batch),
            Err(ChainError::Duplicate { sequence: 2 })
        );
        let mut other = b2.clone();
        other.events.clear();
        let other_bytes = encode_batch(&other);
        assert!(matches!(
            head.check_next(&other, &other_bytes),
            Err(ChainError::Fork { sequence: 2, .. })
        ));
        let b1 = decode_batch(&chain[0]).unwrap();
        assert_eq!(
            head.check_next(&b1, &chain[0].batch),
            Err(ChainError::Behind {
                sequence: 1,
                head: 2
            })
        );
        let b3 = decode_batch(&chain[2]).unwrap();
        assert_eq!(head.check_next(&b3, &chain[2].batch).unwrap().sequence, 3);
    }

    #[test]
    fn verify_batches_names_the_bad_one() {
        let key = test_key(1);
        let mut chain = make_chain(&key, 6);
        verify_batches(&key.verifying_key(), &chain).unwrap();
        chain[4].signature[10] ^= 1;
        let err = verify_batches(&key.verifying_key(), &chain).unwrap_err();
        assert_eq!(err.index, 4);
        assert_eq!(err.source, EnvelopeError::BadSignature);
        chain[2].signature.truncate(10);
        let err = verify_batches(&key.verifying_key(), &chain).unwrap_err();
        assert_eq!(err.index, 2);
        assert_eq!(err.source, EnvelopeError::SignatureLength { len: 10 });
        // Another station's key fails on the first.
        let chain = make_chain(&key, 3);
        assert_eq!(
            verify_batches(&test_key(9).verifying_key(), &chain)
                .unwrap_err()
                .index,
            0
        );
        verify_batches(&key.verifying_key(), &[]).unwrap();
        verify_batches(&key.verifying_key(), &chain[..1]).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_flipped_byte_is_rejected(in_signature in any::<bool>(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let key = test_key(3);
            let signed = make_chain(&key, 1).remove(0);
            let mut tampered = signed.clone();
            let target = if in_signature { &mut tampered.signature } else { &mut tampered.batch };
            let i = pos.index(target.len());
            target[i] ^= 1 << bit;
            prop_assert!(verify_batch(&key.verifying_key(), &tampered).is_err());
            let pair = vec![signed, tampered];
            prop_assert_eq!(verify_batches(&key.verifying_key(), &pair).map_err(|e| e.index), Err(1));
        }
    }
}
