//! The log's formats: leaf records, checkpoints, tile paths, entry bundles, proofs.

use super::*;

fn leaves(n: u64) -> Vec<Leaf> {
    (1..=n)
        .map(|i| Leaf::batch(&format!("S-{:04}", i % 7), i, [i as u8; 32]))
        .collect()
}

#[test]
fn a_leaf_record_reads_back_and_refuses_anything_else() {
    let leaf = Leaf::fork("S-0001", 42, [7; 32]);
    let bytes = leaf.to_bytes();
    assert_eq!(bytes.len(), leaf_len(6));
    assert_eq!(Leaf::from_bytes(&bytes), Ok(leaf.clone()));
    assert!(Leaf::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Leaf::from_bytes(&longer).is_err());
    let mut kind = bytes.clone();
    kind[LEAF_DOMAIN.len()] = 9;
    assert_eq!(Leaf::from_bytes(&kind), Err(LeafError::Kind(9)));
    let mut domain = bytes;
    domain[0] ^= 1;
    assert!(Leaf::from_bytes(&domain).is_err());
}

#[test]
fn a_standing_leaf_hashes_its_record_text() {
    let record = StandingRecord {
        station: "S-0002".into(),
        change: "REVOKED".into(),
        head_sequence: 3,
        new_cert_sha256: String::new(),
        unix_ms: 1_700_000_000_000,
        reason: "stolen\nat night".into(),
    };
    let text = record.to_text();
    assert!(text.ends_with("reason \"stolen\\nat night\"\n"), "{text}");
    assert_eq!(text.lines().count(), 7);
    let leaf = Leaf::standing(&record);
    assert_eq!(leaf.hash, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
    assert_eq!(leaf.sequence, 3);
}

#[test]
fn a_checkpoint_opens_only_with_its_key_and_unchanged() {
    let key = LogKey::generate(&origin("beichen-2021", "official")).unwrap();
    let again = LogKey::from_signer_text(key.signer_text()).unwrap();
    assert_eq!(again.verifier_text(), key.verifier_text());
    let root = Hash([9; 32]);
    let note = key.sign_checkpoint(12, &root).unwrap();
    let text = String::from_utf8(note.clone()).unwrap();
    assert!(
        text.starts_with("pollsync/beichen-2021/official\n12\n"),
        "{text}"
    );

    let checkpoint = open_checkpoint(&note, key.verifier_text()).unwrap();
    assert_eq!((checkpoint.size(), *checkpoint.hash()), (12, root));

    let other = LogKey::generate(&origin("beichen-2021", "official")).unwrap();
    assert!(matches!(
        open_checkpoint(&note, other.verifier_text()),
        Err(CheckpointError::Signature(_))
    ));
    let mut flipped = note.clone();
    flipped[text.find('\n').unwrap() + 1] = b'3';
    assert!(open_checkpoint(&flipped, key.verifier_text()).is_err());
    let test_mode = LogKey::generate(&origin("beichen-2021", "test")).unwrap();
    let foreign = test_mode.sign_checkpoint(12, &root).unwrap();
    assert!(open_checkpoint(&foreign, key.verifier_text()).is_err());
}

#[test]
fn tile_paths_are_the_c2sp_ones() {
    let full = Tile::new(TILE_HEIGHT, 0, 1_234_067, 256, false);
    assert_eq!(tile_path(&full), "tile/0/x001/x234/067");
    let partial = Tile::new(TILE_HEIGHT, 1, 3, 8, false);
    assert_eq!(tile_path(&partial), "tile/1/003.p/8");
    let mut data = Tile::new(TILE_HEIGHT, 0, 5, 17, false);
    data.set_is_data();
    assert_eq!(tile_path(&data), "tile/entries/005.p/17");
    for tile in [full, partial, data] {
        assert_eq!(parse_tile_path(&tile_path(&tile)), Some(tile));
    }
    for bad in [
        "tile/8/0/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/x/000",
        "log/0/000",
        "tile/0/x000/001",
        "tile/0/1",
        "tile/0/000.p/",
    ] {
        assert_eq!(parse_tile_path(bad), None, "{bad}");
    }
}

#[test]
fn an_entry_bundle_reads_back_and_a_cut_one_does_not() {
    let records: Vec<Vec<u8>> = leaves(3).iter().map(Leaf::to_bytes).collect();
    let bundle = entry_bundle(records.iter().map(Vec::as_slice));
    let read = parse_entry_bundle(&bundle).unwrap();
    assert_eq!(read, records.iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert_eq!(parse_entry_bundle(&bundle[..bundle.len() - 1]), None);
}

#[test]
fn proofs_hold_for_every_leaf_and_fail_for_any_other() {
    let all = leaves(300);
    let mut tree = MemoryLog::default();
    for leaf in &all {
        tree.append(&leaf.to_bytes());
    }
    for size in [1u64, 2, 3, 7, 8, 255, 256, 257, 300] {
        let root = tree.root(size).unwrap();
        for index in [0, size / 2, size - 1] {
            let proof = tree.inclusion_proof(size, index).unwrap();
            let leaf = all[index as usize].leaf_hash();
            check_inclusion(&proof, size, root, index, leaf).unwrap();
            let wrong = all[((index + 1) % 300) as usize].leaf_hash();
            assert!(check_inclusion(&proof, size, root, index, wrong).is_err());
        }
        for old in [1u64, size / 2, size] {
            if old == 0 {
                continue;
            }
            let proof = tree.consistency_proof(size, old).unwrap();
            check_consistency(&proof, size, root, old, tree.root(old).unwrap()).unwrap();
            // Another history of the same size is not consistent.
            let forged = Hash([1; 32]);
            if old < size {
                assert!(check_consistency(&proof, size, root, old, forged).is_err());
            }
        }
    }
}

#[test]
fn a_memory_log_serves_the_tiles_of_its_checkpoints() {
    let mut log = MemoryLog::default();
    for leaf in leaves(260) {
        log.append(&leaf.to_bytes());
    }
    let mut entries = Tile::new(TILE_HEIGHT, 0, 1, 4, false);
    entries.set_is_data();
    let bundle = log.tile(&entries, 260).unwrap();
    assert_eq!(parse_entry_bundle(&bundle).unwrap().len(), 4);
    assert_eq!(log.tile(&entries, 259), None, "not covered by 259 leaves");
    let full = Tile::new(TILE_HEIGHT, 0, 0, 256, false);
    assert_eq!(log.tile(&full, 260).unwrap().len(), 256 * HASH_SIZE);
    let top = Tile::new(TILE_HEIGHT, 1, 0, 1, false);
    assert_eq!(
        Tile::subtree_hash(&log.tile(&top, 260).unwrap()),
        log.root(256).unwrap()
    );
}
