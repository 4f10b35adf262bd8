//! G6 on the station's disk (issue 12, item 2): once ballots are sealed, no file of
//! the station's store (database, WAL, journal) keeps them in the order they were
//! recorded. Ballots are recorded one at a time, as a polling station records them
//! live; after sealing, every store file is scanned for the ballot ids, and the
//! order in which a file holds them must not follow the recording order.
//!
//! (A live day where each seal makes a batch of a ballot or two keeps coarse order
//! in the sequence of batches itself; that is what the anonymity set of issue 12,
//! item 1, removes, and its live-day test comes with it.)

use std::path::Path;

use pollsync_election::BallotId;
use pollsync_tests::*;

/// Where each id first occurs in `bytes` (ids not found are left out), in the order
/// of `ids`.
fn first_offsets(bytes: &[u8], ids: &[[u8; 16]]) -> Vec<usize> {
    ids.iter()
        .filter_map(|id| bytes.windows(16).position(|w| w == id))
        .collect()
}

/// The share of pairs (i < j) that a file holds in recording order: about 1/2 for
/// a shuffle, near 1 for a log kept in order.
fn ordered_share(offsets: &[usize]) -> f64 {
    let (mut ordered, mut pairs) = (0u64, 0u64);
    for i in 0..offsets.len() {
        for j in i + 1..offsets.len() {
            pairs += 1;
            ordered += u64::from(offsets[i] < offsets[j]);
        }
    }
    if pairs == 0 {
        0.5
    } else {
        ordered as f64 / pairs as f64
    }
}

/// Scans every file of the store in `dir` for `ids` (in recording order): none may
/// be in the WAL or a journal, and no file may hold them in recording order.
fn assert_no_recording_order(dir: &Path, ids: &[[u8; 16]]) {
    let mut found_anywhere = 0;
    for entry in std::fs::read_dir(dir).expect("store folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("store file");
        let offsets = first_offsets(&bytes, ids);
        if name.ends_with("-wal") || name.ends_with("-journal") {
            assert!(
                offsets.is_empty(),
                "{name} still holds {} sealed ballot ids",
                offsets.len()
            );
            continue;
        }
        found_anywhere += offsets.len();
        if offsets.len() >= 10 {
            let share = ordered_share(&offsets);
            assert!(
                share < 0.75,
                "{name} holds {} ballot ids {:.0}% in recording order",
                offsets.len(),
                share * 100.0
            );
        }
    }
    assert!(
        found_anywhere >= ids.len(),
        "the sealed batches hold the ballots ({found_anywhere} of {} found)",
        ids.len()
    );
}

fn id_bytes(printed: &str) -> [u8; 16] {
    let id: BallotId = printed.trim().parse().expect("a ballot id");
    *id.as_bytes()
}

#[test]
fn ballots_recorded_one_by_one_then_sealed_leave_no_order_behind() {
    let day = SmallDay::start(62);
    let s = &day.def.stations[0];
    let contest = s.contests[0].clone();
    let station = Station::init(day.root.path(), &day.center, &s.id, day.center.address());
    // An open connection, as a running agent holds: SQLite then keeps the WAL
    // between commands instead of folding it in when the last one closes.
    let _agent = pollsync_station::Store::open(&station.data).expect("store");
    let mut ids = Vec::new();
    for _ in 0..30 {
        let printed = station.ok(&["record", "--contest", &contest]);
        ids.push(id_bytes(&printed));
    }
    station.ok(&["seal"]);
    assert_no_recording_order(&station.data, &ids);
}
