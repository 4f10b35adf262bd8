//! Receipts against a log kept in memory: kept when the proofs hold, the alarm when
//! the center shows two histories or a log that shrank.

use super::*;
use pollsync_proto::tlog::{LogKey, MemoryLog};

const STATION: &str = "S-0001";

struct Center {
    key: LogKey,
    log: MemoryLog,
}

impl Center {
    fn new() -> Center {
        Center {
            key: LogKey::generate(&tlog::origin("test-2021", "test")).unwrap(),
            log: MemoryLog::default(),
        }
    }

    /// Appends a batch of `station` and some other station's; returns its leaf.
    fn accept(&mut self, station: &str, sequence: u64) -> u64 {
        self.log
            .append(&Leaf::batch("S-0009", sequence, [9; 32]).to_bytes());
        self.log
            .append(&Leaf::batch(station, sequence, hash_of(sequence)).to_bytes())
    }

    fn checkpoint(&self, size: u64) -> Vec<u8> {
        self.key
            .sign_checkpoint(size, &self.log.root(size).unwrap())
            .unwrap()
    }

    fn prove(&self, leaf: u64, known_size: u64) -> pb::ProveReply {
        let size = self.log.size();
        let raw = |hashes: Vec<Hash>| hashes.into_iter().map(|h| h.0.to_vec()).collect();
        pb::ProveReply {
            checkpoint: self.checkpoint(size),
            leaf_index: leaf,
            inclusion: raw(self.log.inclusion_proof(size, leaf).unwrap()),
            consistency: if known_size == 0 || known_size == size {
                Vec::new()
            } else {
                raw(self.log.consistency_proof(size, known_size).unwrap())
            },
        }
    }
}

fn hash_of(sequence: u64) -> [u8; 32] {
    [sequence as u8; 32]
}

fn receipt(
    center: &Center,
    seen: Option<&str>,
    sequence: u64,
    reply: &pb::ProveReply,
) -> Result<Receipt, ReceiptError> {
    check(
        center.key.verifier_text(),
        STATION,
        sequence,
        hash_of(sequence),
        seen,
        reply,
    )
}

#[test]
fn a_receipt_is_kept_when_the_log_holds_the_batch_and_grows_from_the_last_seen() {
    let mut center = Center::new();
    let first = center.accept(STATION, 1);
    let r1 = receipt(&center, None, 1, &center.prove(first, 0)).unwrap();
    assert_eq!((r1.sequence, r1.leaf_index, r1.tree_size), (1, first, 2));
    assert_eq!(
        checkpoint_size(&r1.checkpoint, center.key.verifier_text()),
        Some(2)
    );
    for sequence in 2..40 {
        center.accept(STATION, sequence);
    }
    let last = center.accept(STATION, 40);
    let r2 = receipt(
        &center,
        Some(&r1.checkpoint),
        40,
        &center.prove(last, r1.tree_size),
    )
    .unwrap();
    assert_eq!(r2.tree_size, 80);
    // The same checkpoint again is fine.
    receipt(
        &center,
        Some(&r2.checkpoint),
        40,
        &center.prove(last, r2.tree_size),
    )
    .unwrap();
}

#[test]
fn two_checkpoints_of_one_size_with_different_roots_raise_the_alarm() {
    let mut center = Center::new();
    let leaf = center.accept(STATION, 1);
    let seen = receipt(&center, None, 1, &center.prove(leaf, 0)).unwrap();
    // The same center, signing another tree of the same size.
    let mut other = Center {
        key: center.key.clone(),
        log: MemoryLog::default(),
    };
    other
        .log
        .append(&Leaf::batch("S-0009", 7, [7; 32]).to_bytes());
    let forged_leaf = other
        .log
        .append(&Leaf::batch(STATION, 1, hash_of(1)).to_bytes());
    let reply = other.prove(forged_leaf, seen.tree_size);
    match receipt(&other, Some(&seen.checkpoint), 1, &reply) {
        Err(ReceiptError::TwoHistories(alarm)) => {
            assert!(
                alarm.detail.contains("two checkpoints of 2 leaves"),
                "{}",
                alarm.detail
            );
            assert_eq!(alarm.seen, seen.checkpoint);
            assert_eq!(alarm.shown.as_bytes(), reply.checkpoint.as_slice());
        }
        other => panic!("expected the alarm, got {other:?}"),
    }
}

#[test]
fn a_bigger_tree_that_does_not_extend_the_seen_one_raises_the_alarm() {
    let mut center = Center::new();
    let leaf = center.accept(STATION, 1);
    let seen = receipt(&center, None, 1, &center.prove(leaf, 0)).unwrap();
    let mut rewritten = Center {
        key: center.key.clone(),
        log: MemoryLog::default(),
    };
    rewritten
        .log
        .append(&Leaf::batch("S-0009", 1, [8; 32]).to_bytes());
    let leaf = rewritten.accept(STATION, 1);
    // Any proof the rewritten log can give is not a consistency proof from the seen tree.
    let reply = rewritten.prove(leaf, seen.tree_size);
    assert!(matches!(
        receipt(&rewritten, Some(&seen.checkpoint), 1, &reply),
        Err(ReceiptError::TwoHistories(_))
    ));
    // A log that shrank.
    let smaller = Center {
        key: center.key.clone(),
        log: {
            let mut log = MemoryLog::default();
            log.append(&Leaf::batch(STATION, 1, hash_of(1)).to_bytes());
            log
        },
    };
    let seen_bigger = String::from_utf8(rewritten.checkpoint(rewritten.log.size())).unwrap();
    match receipt(&smaller, Some(&seen_bigger), 1, &smaller.prove(0, 0)) {
        Err(ReceiptError::TwoHistories(alarm)) => {
            assert!(alarm.detail.contains("shrank"), "{}", alarm.detail)
        }
        other => panic!("expected the alarm, got {other:?}"),
    }
}

#[test]
fn a_proof_of_something_else_or_a_foreign_checkpoint_is_refused() {
    let mut center = Center::new();
    let leaf = center.accept(STATION, 1);
    let mut reply = center.prove(leaf, 0);
    // The batch this station sealed is not the one the center logged.
    let wrong = check(
        center.key.verifier_text(),
        STATION,
        1,
        [3; 32],
        None,
        &reply,
    );
    assert!(
        matches!(wrong, Err(ReceiptError::NotIncluded { sequence: 1, .. })),
        "{wrong:?}"
    );
    // A proof hash of the wrong length.
    reply.inclusion[0].pop();
    assert!(matches!(
        receipt(&center, None, 1, &reply),
        Err(ReceiptError::Malformed(_))
    ));
    // A checkpoint signed by another key.
    let stranger = Center::new();
    let foreign = pb::ProveReply {
        checkpoint: stranger
            .key
            .sign_checkpoint(2, &center.log.root(2).unwrap())
            .unwrap(),
        ..center.prove(leaf, 0)
    };
    assert!(matches!(
        receipt(&center, None, 1, &foreign),
        Err(ReceiptError::Checkpoint(_))
    ));
}
