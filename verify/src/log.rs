//! V5: the transparency log rebuilt from its entry bundles: every record a leaf
//! record, their root the checkpoint's, every published hash tile the rebuilt
//! tree's. Then the leaves say what the log holds, for V7–V9.

use std::collections::BTreeMap;

use pollsync_proto::tlog::{self, Leaf, LeafKind, MemoryLog, TILE_HEIGHT, Tile};

use crate::evidence::Evidence;
use crate::{Failure, Step};

/// The rebuilt log.
#[derive(Debug)]
pub struct Log {
    leaves: Vec<Leaf>,
    batches: BTreeMap<(String, u64), (u64, [u8; 32])>,
}

impl Log {
    /// Rebuilds the log of the checkpoint's size from the folder's tiles (V5).
    pub fn rebuild(evidence: &Evidence) -> Step<Log> {
        let size = evidence.checkpoint.size();
        let mut tree = MemoryLog::default();
        let mut leaves = Vec::new();
        let tiles = Tile::new_tiles(TILE_HEIGHT, 0, size);
        for tile in tiles.iter().filter(|t| t.level() == 0) {
            let mut data = *tile;
            data.set_is_data();
            let path = tlog::tile_path(&data);
            let bundle = evidence.read(&path, "V5.1")?;
            let entries = tlog::parse_entry_bundle(&bundle)
                .ok_or_else(|| Failure::new("V5.1", &path, "not an entry bundle (cut short)"))?;
            if entries.len() != data.width() as usize {
                return Err(Failure::new(
                    "V5.1",
                    &path,
                    format!(
                        "{} entries, the checkpoint needs {}",
                        entries.len(),
                        data.width()
                    ),
                ));
            }
            for entry in entries {
                let index = tree.append(entry);
                let leaf = Leaf::from_bytes(entry).map_err(|e| {
                    Failure::new("V5.2", format!("{path} leaf {index}"), e.to_string())
                })?;
                leaves.push(leaf);
            }
        }
        let root = tree
            .root(size)
            .map_err(|e| Failure::new("V5.3", "tile/entries", e.to_string()))?;
        if root != *evidence.checkpoint.hash() {
            return Err(Failure::new(
                "V5.3",
                "tile/entries",
                format!(
                    "the leaves' root is {}, the checkpoint's {}",
                    hex::encode(root.0),
                    hex::encode(evidence.checkpoint.hash().0)
                ),
            ));
        }
        for tile in &tiles {
            let path = tlog::tile_path(tile);
            let published = evidence.read(&path, "V5.4")?;
            if tree.tile(tile, size).as_deref() != Some(published.as_slice()) {
                return Err(Failure::new(
                    "V5.4",
                    &path,
                    "not the hashes of the tree the entries make",
                ));
            }
        }
        let mut batches = BTreeMap::new();
        for (index, leaf) in leaves.iter().enumerate() {
            if leaf.kind == LeafKind::Batch
                && batches
                    .insert(
                        (leaf.station.clone(), leaf.sequence),
                        (index as u64, leaf.hash),
                    )
                    .is_some()
            {
                return Err(Failure::new(
                    "V7.9",
                    format!("log leaf {index}"),
                    format!(
                        "a second batch leaf for {} batch {}",
                        leaf.station, leaf.sequence
                    ),
                ));
            }
        }
        Ok(Log { leaves, batches })
    }

    /// Leaves in the log.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Every leaf, in log order.
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The batch leaves: (station, sequence) → (leaf index, chain hash).
    pub fn batches(&self) -> &BTreeMap<(String, u64), (u64, [u8; 32])> {
        &self.batches
    }
}
