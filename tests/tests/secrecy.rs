//! G6 while stations sync live (issue 12).
//!
//! - On the station's disk: once ballots are sealed, no file of the station's store
//!   (database, WAL, journal) keeps them in the order they were recorded. Ballots
//!   are recorded one at a time, as a polling station records them live; every
//!   store file is then scanned for the ballot ids, and the order in which a file
//!   holds the ballots of one batch must not follow the recording order.
//! - At the center: with `station run` sending as ballots are recorded one at a
//!   time, no batch ever carries fewer than K ballots of a contest, except a
//!   station's whole contest when it has fewer than K; the counts are exact.

use pollsync_center::store::Records as _;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pollsync_election::BallotId;
use pollsync_proto::pb;
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

/// Scans every file of the store in `dir` (database, WAL, journal) for the ids of
/// sealed ballots, given per batch in recording order: no file may hold the
/// ballots of a batch in recording order. (Which batch a ballot went in is what the
/// center sees as well; the grouping bounds it. A WAL may hold a sealed batch
/// again, when its acknowledgement rewrote its page, but only as sealed: shuffled.)
fn assert_no_recording_order(dir: &Path, batches: &[Vec<[u8; 16]>]) {
    let sealed: usize = batches.iter().map(Vec::len).sum();
    let mut found_in_database = 0;
    for entry in std::fs::read_dir(dir).expect("store folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("store file");
        let (mut ordered, mut pairs) = (0.0, 0usize);
        for ids in batches {
            let offsets = first_offsets(&bytes, ids);
            if name == "station.db" {
                found_in_database += offsets.len();
            }
            let n = offsets.len() * offsets.len().saturating_sub(1) / 2;
            ordered += ordered_share(&offsets) * n as f64;
            pairs += n;
        }
        if pairs >= 45 {
            let share = ordered / pairs as f64;
            assert!(
                share < 0.75,
                "{name} holds the ballots of a batch {:.0}% in recording order ({pairs} pairs)",
                share * 100.0,
            );
        }
    }
    assert!(
        found_in_database >= sealed,
        "the sealed batches hold the ballots ({found_in_database} of {sealed} found)",
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
    assert_no_recording_order(&station.data, &[ids]);
}

/// The small election as an official one with anonymity set `k`.
fn small_election_with_k(root: &Path, seed: u64, k: u32) -> std::path::PathBuf {
    let (path, _) = small_election(root, seed);
    let text = std::fs::read_to_string(&path).expect("definition");
    let text = text
        .replace("mode = \"test\"", "mode = \"official\"")
        .replace(
            "min_ballots_per_batch = 1\n",
            &format!("min_ballots_per_batch = {k}\n"),
        );
    let def = pollsync_election::load("election.toml", &text).expect("still a good definition");
    assert_eq!(def.election.min_ballots_per_batch, k);
    std::fs::write(&path, text).expect("write definition");
    path
}

/// One batch as the test reads it: contest -> its ballot ids in the batch's order,
/// and whether the batch closes the contest.
type BatchContests = BTreeMap<String, (Vec<[u8; 16]>, bool)>;

/// Every batch the center holds from `station`, in sequence.
fn center_batches(center: &Center, station: &str) -> Vec<BatchContests> {
    let store = pollsync_center::store::Store::open(&center.data).expect("center store");
    let mut out = Vec::new();
    for stored in store.batches(Some(station)).expect("batches") {
        let batch = pollsync_proto::envelope::decode_batch_bytes(&stored.batch)
            .expect("a stored batch decodes");
        let mut contests = BatchContests::new();
        for event in batch.events {
            match event.kind {
                Some(pb::event::Kind::Ballot(b)) => contests
                    .entry(b.contest)
                    .or_default()
                    .0
                    .push(b.id.try_into().expect("16-byte id")),
                Some(pb::event::Kind::Close(c)) => contests.entry(c.contest).or_default().1 = true,
                _ => {}
            }
        }
        out.push(contests);
    }
    out
}

/// Issue 12, "done when": `station run` sends while ballots are recorded one at a
/// time with K = 6. Ballots of the big contest reach the center in groups during
/// the day (live sync still works); no batch the center ever held carries fewer
/// than K of a contest's ballots, except the small contest's whole two; cancels of
/// waiting ballots count; the center's counts equal what was recorded; and the
/// station's store keeps no recording order within any batch.
#[test]
fn a_live_day_sends_ballots_only_in_groups_of_k_and_counts_exactly() {
    const K: usize = 6;
    let root = tempfile::tempdir().expect("tempdir");
    let file = small_election_with_k(root.path(), 63, K as u32);
    let def = pollsync_election::load(
        "election.toml",
        &std::fs::read_to_string(&file).expect("read"),
    )
    .expect("definition");
    let mut center = Center::init(root.path(), &file);
    center.serve();
    let s = station_with_two_contests(&def);
    let (big, small) = (s.contests[0].clone(), s.contests[1].clone());
    let first_candidate = |contest: &str| {
        def.contest(contest).expect("contest").candidates[0]
            .id
            .clone()
    };
    let station = Station::init(root.path(), &center, &s.id, center.address());
    let mut run = station.spawn(&["run", "--seal-interval-ms", "50"], root.path());

    // The big contest: 41 ballots one at a time, every third one FOR the first
    // candidate; two are cancelled soon after they are recorded.
    let mut ids = Vec::new();
    let mut cancelled = Vec::new();
    let mut for_first = 0;
    for i in 0..41 {
        let mut args = vec!["record", "--contest", big.as_str()];
        let candidate = first_candidate(&big);
        if i % 3 == 0 {
            args.extend(["--for", candidate.as_str()]);
        }
        let id = id_bytes(&station.ok(&args));
        if i == 20 || i == 33 {
            station.ok(&["cancel", &hex::encode(id), "--reason", "entered twice"]);
            cancelled.push(id);
        } else if i % 3 == 0 {
            for_first += 1;
        }
        ids.push(id);
        if i == 2 * K {
            // Groups go out during the day, not only at the close.
            wait_for(
                "a first group at the center",
                Duration::from_secs(60),
                || (center_ballots(&center) >= K as u64).then_some(()),
            );
            let status = station.status();
            assert!(
                status["ballots_waiting"].as_u64() >= Some(K as u64),
                "{status}"
            );
        }
    }
    // The small contest: two ballots, fewer than K.
    for _ in 0..2 {
        ids.push(id_bytes(&station.ok(&["record", "--contest", &small])));
    }
    station.ok(&["issue", "--contest", &big, "--count", "41"]);
    station.ok(&["issue", "--contest", &small, "--count", "2"]);
    for contest in [&big, &small] {
        station.ok(&["close", "--contest", contest, "--from-records"]);
    }
    let expected = ids.len() as u64 - cancelled.len() as u64;
    wait_for(
        "the center to hold the whole day",
        Duration::from_secs(60),
        || {
            let status = station.status();
            (status["events"]["pending"] == 0
                && status["batches"]["sealed"] == status["batches"]["acknowledged"]
                && center_ballots(&center) == expected)
                .then_some(())
        },
    );

    // Every batch the center ever accepted from the station.
    let batches = center_batches(&center, &s.id);
    let mut sealed: BTreeMap<[u8; 16], usize> = BTreeMap::new();
    let mut groups_of_small = 0;
    for (i, contests) in batches.iter().enumerate() {
        for (contest, (ballots, _)) in contests {
            for id in ballots {
                *sealed.entry(*id).or_default() += 1;
            }
            if ballots.is_empty() {
                continue;
            }
            if *contest == small {
                groups_of_small += 1;
                assert_eq!(
                    ballots.len(),
                    2,
                    "the small contest goes whole, at its close"
                );
            } else {
                assert!(
                    ballots.len() >= K,
                    "batch {} carries {} ballots of {contest}",
                    i + 1,
                    ballots.len()
                );
            }
        }
    }
    assert_eq!(groups_of_small, 1);
    assert!(
        sealed.values().all(|&n| n == 1),
        "every ballot in one batch only"
    );
    for id in &ids {
        assert!(
            sealed.contains_key(id) || cancelled.contains(id),
            "ballot {} was sealed",
            hex::encode(id)
        );
    }
    // Exact counts: the center's tally of each contest is the recorded one.
    let tallies = center_tallies(&center);
    let sheet = &tallies[&s.id][&big];
    assert_eq!(sheet.returned, 41 - 2);
    assert_eq!(sheet.issued, 41);
    assert_eq!(
        sheet
            .for_votes
            .get(&first_candidate(&big))
            .copied()
            .unwrap_or(0),
        for_first
    );
    assert_eq!(tallies[&s.id][&small].returned, 2);
    assert_no_alerts(&center);

    // The station's store after the live day, while the agent still holds it open
    // (so SQLite keeps its WAL): no order within any batch.
    let order: BTreeMap<[u8; 16], usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let per_batch: Vec<Vec<[u8; 16]>> = batches
        .iter()
        .map(|contests| {
            let mut in_batch: Vec<[u8; 16]> = contests
                .values()
                .flat_map(|(ballots, _)| ballots.iter().copied())
                .collect();
            in_batch.sort_by_key(|id| order[id]);
            in_batch
        })
        .filter(|b| !b.is_empty())
        .collect();
    assert_no_recording_order(&station.data, &per_batch);
    let stopped = run.terminate(Duration::from_secs(30));
    assert!(stopped.success(), "station run ended with {stopped}");
}
