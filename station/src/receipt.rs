//! A station's receipts (SPEC §10): what the center's transparency log proves about
//! this station's batches, checked here before it is kept. Pure: it reads a
//! `ProveReply` and the checkpoint seen before, and says whether to keep the new
//! receipt or to raise the alarm (docs/PROTOCOL.md §13.5).
//!
//! The station keeps the receipt of its newest acknowledged batch (the chain links
//! every earlier batch to it) and the newest checkpoint it has seen. Each new
//! checkpoint must be the log's key's, and the same tree as the one seen before or
//! an extension of it (a consistency proof): a center that shows two histories, or a
//! log that shrank, is caught here and the alarm is kept with both checkpoints.

use pollsync_proto::pb;
use pollsync_proto::tlog::{self, Checkpoint, Hash, Leaf};
use serde::{Deserialize, Serialize};

/// Most hashes a proof may hold (a tree of 2^64 leaves needs 64).
pub const MAX_PROOF_HASHES: usize = 64;

/// Meta key of the newest receipt (JSON [`Receipt`]).
pub const META_RECEIPT: &str = "log_receipt";
/// Meta key of the alarm, once raised (JSON [`LogAlarm`]); it is never cleared.
pub const META_LOG_ALARM: &str = "log_alarm";

/// Proof that one of this station's batches is in the center's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The station.
    pub station: String,
    /// The batch proved (the newest acknowledged when the receipt was taken).
    pub sequence: u64,
    /// Its chain hash (hex): SHA-256 of the batch's bytes.
    pub batch_hash: String,
    /// Its leaf in the log.
    pub leaf_index: u64,
    /// The signed checkpoint (C2SP signed note) the proof is against.
    pub checkpoint: String,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Its root hash (hex).
    pub root_hash: String,
    /// The inclusion proof, hashes in hex.
    pub inclusion: Vec<String>,
}

/// Evidence that the center's log is not one append-only history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAlarm {
    /// What is wrong, in words.
    pub detail: String,
    /// The checkpoint seen before (signed note).
    pub seen: String,
    /// The checkpoint shown now (signed note).
    pub shown: String,
}

/// Why a reply is not kept as a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The enrollment bundle carries no log key (a bundle from an older center).
    #[error("the enrollment bundle carries no transparency log key: receipts cannot be checked")]
    NoLogKey,
    /// The checkpoint is not the log's, or is malformed.
    #[error("the center's checkpoint does not verify: {0}")]
    Checkpoint(#[from] tlog::CheckpointError),
    /// A proof hash is not 32 bytes, or a proof is too long.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The inclusion proof does not prove the batch in the checkpoint.
    #[error(
        "the log's checkpoint of {size} leaves does not hold batch {sequence} as this station sealed it (leaf {leaf_index})"
    )]
    NotIncluded {
        /// The batch.
        sequence: u64,
        /// The leaf the center named.
        leaf_index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The center's log showed two histories, or shrank.
    #[error("the center's transparency log is not one history: {}", .0.detail)]
    TwoHistories(Box<LogAlarm>),
}

fn hashes(raw: &[Vec<u8>], what: &str) -> Result<Vec<Hash>, ReceiptError> {
    if raw.len() > MAX_PROOF_HASHES {
        return Err(ReceiptError::Malformed(format!(
            "{what} proof of {} hashes (at most {MAX_PROOF_HASHES})",
            raw.len()
        )));
    }
    raw.iter()
        .map(|h| {
            tlog::hash_of(h).ok_or_else(|| {
                ReceiptError::Malformed(format!("a {what} hash of {} bytes", h.len()))
            })
        })
        .collect()
}

/// The size of the checkpoint `note`, if it is the log's (`None` otherwise).
pub fn checkpoint_size(note: &str, log_key: &str) -> Option<u64> {
    tlog::open_checkpoint(note.as_bytes(), log_key)
        .ok()
        .map(|c| c.size())
}

/// Checks `reply` for `station`'s batch `sequence` (chain hash `batch_hash`)
/// against the log key and the checkpoint seen before (`seen`, a signed note):
/// the receipt to keep, or why not.
pub fn check(
    log_key: &str,
    station: &str,
    sequence: u64,
    batch_hash: [u8; 32],
    seen: Option<&str>,
    reply: &pb::ProveReply,
) -> Result<Receipt, ReceiptError> {
    let shown = tlog::open_checkpoint(&reply.checkpoint, log_key)?;
    let shown_text = String::from_utf8_lossy(&reply.checkpoint).into_owned();
    let consistency = hashes(&reply.consistency, "consistency")?;
    if let Some(seen_text) = seen {
        let seen = tlog::open_checkpoint(seen_text.as_bytes(), log_key)?;
        if let Some(detail) = history_break(&seen, &shown, &consistency) {
            return Err(ReceiptError::TwoHistories(Box::new(LogAlarm {
                detail,
                seen: seen_text.to_owned(),
                shown: shown_text,
            })));
        }
    }
    let inclusion = hashes(&reply.inclusion, "inclusion")?;
    let leaf = Leaf::batch(station, sequence, batch_hash).leaf_hash();
    tlog::check_inclusion(
        &inclusion,
        shown.size(),
        *shown.hash(),
        reply.leaf_index,
        leaf,
    )
    .map_err(|_| ReceiptError::NotIncluded {
        sequence,
        leaf_index: reply.leaf_index,
        size: shown.size(),
    })?;
    Ok(Receipt {
        station: station.to_owned(),
        sequence,
        batch_hash: hex::encode(batch_hash),
        leaf_index: reply.leaf_index,
        checkpoint: shown_text,
        tree_size: shown.size(),
        root_hash: hex::encode(shown.hash().0),
        inclusion: inclusion.iter().map(|h| hex::encode(h.0)).collect(),
    })
}

/// Why `shown` cannot follow `seen` in one append-only log (`None`: it can).
fn history_break(seen: &Checkpoint, shown: &Checkpoint, consistency: &[Hash]) -> Option<String> {
    let (old, new) = (seen.size(), shown.size());
    if new < old {
        return Some(format!(
            "the log shrank: a checkpoint of {new} leaves after one of {old}"
        ));
    }
    if new == old {
        return (seen.hash() != shown.hash()).then(|| {
            format!(
                "two checkpoints of {new} leaves with different roots ({} and {})",
                hex::encode(seen.hash().0),
                hex::encode(shown.hash().0)
            )
        });
    }
    if old == 0 {
        return None;
    }
    tlog::check_consistency(consistency, new, *shown.hash(), old, *seen.hash())
        .err()
        .map(|_| {
            format!(
                "the checkpoint of {new} leaves does not extend the one of {old} seen before (no valid consistency proof)"
            )
        })
}

#[cfg(test)]
mod tests;
