//! The transparency log kept in the store (SPEC §10): appending a leaf with the
//! tree's new stored hashes, signing a checkpoint, and reading tiles, entry bundles
//! and proofs back. Engine-neutral: it works through [`IngestOps`] (inside the
//! writer's or an offline command's transaction, so a leaf is durable exactly when
//! what it records is) and [`Records`] (readers). The formats are
//! `pollsync_proto::tlog`'s; the tree arithmetic is `tlog_tiles`'.

use pollsync_proto::tlog::{self, Hash, Leaf, LogKey, StandingRecord, Tile, tlog_tiles};

use super::engine::{IngestOps, Records};
use crate::error::{CenterError, Result};

/// Reads the log's stored hashes through what the store offers (the writer's
/// operations, or a reader): one [`tlog_tiles::HashReader`] for both.
struct StoredHashes<F: Fn(&[u64]) -> Result<Vec<[u8; 32]>>>(F);

impl<F: Fn(&[u64]) -> Result<Vec<[u8; 32]>>> tlog_tiles::HashReader for StoredHashes<F> {
    fn read_hashes(&self, indexes: &[u64]) -> std::result::Result<Vec<Hash>, tlog_tiles::Error> {
        let raw = (self.0)(indexes).map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))?;
        if raw.len() != indexes.len() {
            return Err(tlog_tiles::Error::IndexesNotInTree);
        }
        Ok(raw.into_iter().map(Hash).collect())
    }
}

fn ops_hashes(ops: &dyn IngestOps) -> StoredHashes<impl Fn(&[u64]) -> Result<Vec<[u8; 32]>> + '_> {
    StoredHashes(move |indexes: &[u64]| ops.log_hashes(indexes))
}

fn record_hashes<R: Records + ?Sized>(
    records: &R,
) -> StoredHashes<impl Fn(&[u64]) -> Result<Vec<[u8; 32]>> + '_> {
    StoredHashes(move |indexes: &[u64]| records.log_hashes(indexes))
}

fn corrupt(e: tlog_tiles::Error) -> CenterError {
    CenterError::Corrupt {
        detail: format!("transparency log: {e}"),
    }
}

/// Appends `leaf` to the log inside the caller's transaction; returns its index.
pub fn append(ops: &dyn IngestOps, leaf: &Leaf) -> Result<u64> {
    let entry = leaf.to_bytes();
    let index = ops.log_size()?;
    let hashes = tlog_tiles::stored_hashes(index, &entry, &ops_hashes(ops)).map_err(corrupt)?;
    let first = tlog_tiles::stored_hash_index(0, index);
    let hashes: Vec<[u8; 32]> = hashes.into_iter().map(|h| h.0).collect();
    ops.log_put(index, &entry, first, &hashes)?;
    Ok(index)
}

/// Records a change of a station's standing: its text and its leaf.
pub fn append_standing(ops: &dyn IngestOps, record: &StandingRecord) -> Result<u64> {
    let index = append(ops, &Leaf::standing(record))?;
    ops.put_standing_record(index, &record.station, &record.to_text())?;
    Ok(index)
}

/// Signs and stores a checkpoint of the log as it stands, unless the newest one
/// already covers it. Returns the new checkpoint's size.
pub fn checkpoint(ops: &dyn IngestOps, key: &LogKey) -> Result<Option<u64>> {
    let size = ops.log_size()?;
    if ops.latest_checkpoint_size()? == Some(size) {
        return Ok(None);
    }
    let root = tlog_tiles::tree_hash(size, &ops_hashes(ops)).map_err(corrupt)?;
    let note = key
        .sign_checkpoint(size, &root)
        .map_err(|e| CenterError::Corrupt {
            detail: format!("cannot sign a checkpoint: {e}"),
        })?;
    ops.log_put_checkpoint(size, &note)?;
    Ok(Some(size))
}

/// The root hash of the log's first `size` leaves.
pub fn root<R: Records + ?Sized>(records: &R, size: u64) -> Result<Hash> {
    tlog_tiles::tree_hash(size, &record_hashes(records)).map_err(corrupt)
}

/// The bytes of `tile` if the published checkpoint of `size` leaves covers it
/// (`None`: not published yet, or not a tile of this log).
pub fn tile<R: Records + ?Sized>(records: &R, tile: &Tile, size: u64) -> Result<Option<Vec<u8>>> {
    let Some((start, end)) = tlog::tile_span(tile, size) else {
        return Ok(None);
    };
    if tile.is_data() {
        let entries = records.log_entries(start, end)?;
        return Ok(Some(tlog::entry_bundle(entries.iter().map(Vec::as_slice))));
    }
    tile.read_data(&record_hashes(records))
        .map(Some)
        .map_err(corrupt)
}

/// An inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<R: Records + ?Sized>(
    records: &R,
    size: u64,
    index: u64,
) -> Result<Vec<Hash>> {
    tlog_tiles::prove_record(size, index, &record_hashes(records)).map_err(corrupt)
}

/// A consistency proof from the tree of `old_size` leaves to that of `size`.
pub fn consistency_proof<R: Records + ?Sized>(
    records: &R,
    size: u64,
    old_size: u64,
) -> Result<Vec<Hash>> {
    tlog_tiles::prove_tree(size, old_size, &record_hashes(records)).map_err(corrupt)
}
