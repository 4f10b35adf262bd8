//! The anonymity set on the real store (issue 12): whatever the schedule of
//! records, cancels, seals and closes, every batch the station seals carries a
//! contest's ballots only in groups of at least K (a contest with fewer than K
//! ballots goes whole, with its close), every ballot not withdrawn is sealed exactly
//! once, and a withdrawn one never counts.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use pollsync_proto::{ElectionCa, EnrollmentBundle, pb};
use pollsync_station::Store;
use pollsync_station::commands::{self, SheetSource};
use proptest::prelude::*;
use support::ELECTION;

const K: u64 = 3;
const CONTESTS: [&str; 2] = ["D-001", "T-001"];

#[derive(Debug, Clone)]
enum Step {
    Record(usize),
    Cancel(usize),
    Seal,
    Close(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (0..2usize).prop_map(Step::Record),
        2 => (0..1000usize).prop_map(Step::Cancel),
        3 => Just(Step::Seal),
        1 => (0..2usize).prop_map(Step::Close),
    ]
}

/// A station of the shared test election, with K = 3 (an official election).
fn station() -> (tempfile::TempDir, std::path::PathBuf) {
    station_from(None)
}

/// [`station`], set up from a bundle that carries `start_head` (a replacement
/// device's) when given.
fn station_from(
    start_head: Option<pollsync_proto::bundle::BundleHead>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = ELECTION.replace(
        "mode = \"test\"\nmin_ballots_per_batch = 1",
        &format!("min_ballots_per_batch = {K}"),
    );
    assert!(text.contains("min_ballots_per_batch = 3"));
    let ca = ElectionCa::generate("test-2021", pollsync_election::Mode::Official).expect("CA");
    let mut bundle =
        EnrollmentBundle::issue(&ca, "S-0001", &["127.0.0.1:7443"], &text).expect("bundle");
    bundle.start_head = start_head;
    let path = tmp.path().join("S-0001.bundle");
    bundle.write(&path).expect("write bundle");
    let data = tmp.path().join("station-data");
    commands::init(&data, &path, &[]).expect("init");
    (tmp, data)
}

/// Every sealed batch's events, in sequence.
fn sealed_events(data: &std::path::Path) -> Vec<Vec<pb::Event>> {
    let store = Store::open(data).expect("store");
    store
        .batches_from(1, 100_000)
        .expect("batches")
        .iter()
        .map(|signed| {
            pollsync_proto::decode_batch(signed)
                .expect("decodes")
                .events
        })
        .collect()
}

/// The zero report of S-0001 as its batch 1 must open with.
fn zero_report() -> pb::Event {
    pb::Event {
        kind: Some(pb::event::Kind::ZeroReport(pb::ZeroReport {
            contests: CONTESTS.iter().map(|c| c.to_string()).collect(),
        })),
    }
}

#[test]
fn a_new_station_opens_batch_1_with_its_zero_report_before_any_ballot() {
    let (_tmp, data) = station();
    let status = commands::status(&data).expect("status");
    assert_eq!(
        status.events.pending, 1,
        "init put the zero report in the log"
    );
    // Enough ballots before the first seal that a group of them goes in batch 1.
    commands::issue(&data, "D-001", 10).expect("issue");
    for _ in 0..3 * K {
        commands::record(&data, "D-001", &["D-001-1".into()], &[], &[]).expect("record");
    }
    let made = commands::seal(&data).expect("seal");
    assert_eq!(made.len(), 1);
    let batches = sealed_events(&data);
    let first = &batches[0];
    assert_eq!(
        first[0],
        zero_report(),
        "batch 1 opens with the zero report"
    );
    assert!(matches!(first[1].kind, Some(pb::event::Kind::Ballot(_))));
    let ballots = first
        .iter()
        .filter(|e| matches!(e.kind, Some(pb::event::Kind::Ballot(_))))
        .count() as u64;
    assert_eq!(ballots, 2 * K, "all but K of the contest leave");
    assert_eq!(made[0].ballots, ballots, "the zero report is no ballot");
    // It is the log's only zero report, and counts nothing.
    commands::close(&data, "D-001", SheetSource::FromRecords).expect("close");
    commands::seal(&data).expect("seal");
    let reports = sealed_events(&data)
        .iter()
        .flatten()
        .filter(|e| matches!(e.kind, Some(pb::event::Kind::ZeroReport(_))))
        .count();
    assert_eq!(reports, 1);
    let (_, tallies) = commands::tally(&data).expect("tally");
    let d = tallies.iter().find(|t| t.id == "D-001").expect("D-001");
    assert_eq!((d.records.issued, d.records.returned), (10, 3 * K));
    let t = tallies.iter().find(|t| t.id == "T-001").expect("T-001");
    assert_eq!((t.records.issued, t.records.returned), (0, 0));
    let status = commands::status(&data).expect("status");
    assert_eq!(status.ballots_sealed, 3 * K);
}

#[test]
fn the_zero_report_leads_batch_1_even_when_ballot_groups_fill_whole_batches() {
    let (tmp, data) = station();
    // More ballots before the first seal than one batch holds.
    let n = pollsync_proto::limits::MAX_BATCH_EVENTS + 1_000;
    commands::issue(&data, "D-001", n as u64).expect("issue");
    let file = tmp.path().join("ballots.jsonl");
    let line = "{\"contest\":\"D-001\",\"for\":[\"D-001-1\"],\"against\":[],\"write_in\":[]}\n";
    std::fs::write(&file, line.repeat(n)).expect("write ballots");
    let mut store = Store::open(&data).expect("store");
    let prov = store.provisioned().expect("provisioned");
    pollsync_station::import::import(&mut store, &prov, &file).expect("import");
    drop(store);
    let made = commands::seal(&data).expect("seal");
    assert!(made.len() >= 2, "{made:?}");
    let batches = sealed_events(&data);
    assert_eq!(
        batches[0][0],
        zero_report(),
        "batch 1 opens with the zero report"
    );
    let reports: Vec<(usize, usize)> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, events)| {
            events
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e.kind, Some(pb::event::Kind::ZeroReport(_))))
                .map(move |(i, _)| (b, i))
        })
        .collect();
    assert_eq!(
        reports,
        vec![(0, 0)],
        "one zero report, event #0 of batch 1"
    );
}

#[test]
fn a_replacement_device_seals_no_zero_report() {
    let head = pollsync_proto::bundle::BundleHead {
        sequence: 4,
        hash: "ab".repeat(32),
    };
    let (_tmp, data) = station_from(Some(head));
    assert_eq!(commands::status(&data).expect("status").events.pending, 0);
    commands::issue(&data, "D-001", 1).expect("issue");
    commands::seal(&data).expect("seal");
    let store = Store::open(&data).expect("store");
    let batches = store.batches_from(5, 10).expect("batches");
    assert_eq!(batches.len(), 1);
    let batch = pollsync_proto::decode_batch(&batches[0]).expect("decodes");
    assert_eq!(batch.sequence, 5);
    assert!(
        batch
            .events
            .iter()
            .all(|e| !matches!(e.kind, Some(pb::event::Kind::ZeroReport(_))))
    );
}

/// Per sealed batch: contest -> (ballot ids, cancelled ids, closed).
type Sealed = Vec<BTreeMap<String, (Vec<Vec<u8>>, bool)>>;

fn sealed(data: &std::path::Path) -> (Sealed, BTreeSet<Vec<u8>>) {
    let store = Store::open(data).expect("store");
    let mut batches = Vec::new();
    let mut cancels = BTreeSet::new();
    for signed in store.batches_from(1, 100_000).expect("batches") {
        let batch = pollsync_proto::decode_batch(&signed).expect("decodes");
        let mut contests: BTreeMap<String, (Vec<Vec<u8>>, bool)> = BTreeMap::new();
        for e in batch.events {
            match e.kind {
                Some(pb::event::Kind::Ballot(b)) => {
                    contests.entry(b.contest).or_default().0.push(b.id)
                }
                Some(pb::event::Kind::Close(c)) => contests.entry(c.contest).or_default().1 = true,
                Some(pb::event::Kind::Cancel(c)) => {
                    cancels.insert(c.ballot_id);
                }
                _ => {}
            }
        }
        batches.push(contests);
    }
    (batches, cancels)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_sealed_batch_keeps_the_rule_and_every_ballot_is_sealed_once(
        steps in proptest::collection::vec(step(), 0..60)
    ) {
        let (_tmp, data) = station();
        for contest in CONTESTS {
            commands::issue(&data, contest, 1_000).expect("issue");
        }
        let mut recorded: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut cancelled: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut closed = [false; 2];
        for s in steps {
            match s {
                Step::Record(c) if !closed[c] => {
                    let id = commands::record(&data, CONTESTS[c], &[], &[], &[]).expect("record");
                    recorded.push((id.as_bytes().to_vec(), c));
                }
                Step::Cancel(i) if !recorded.is_empty() => {
                    let (id, c) = recorded[i % recorded.len()].clone();
                    if closed[c] || cancelled.contains(&id) {
                        continue;
                    }
                    commands::cancel(&data, &hex::encode(&id), "entered twice").expect("cancel");
                    cancelled.insert(id);
                }
                Step::Seal => {
                    commands::seal(&data).expect("seal");
                }
                Step::Close(c) if !closed[c] => {
                    commands::close(&data, CONTESTS[c], SheetSource::FromRecords).expect("close");
                    closed[c] = true;
                }
                _ => {}
            }
        }
        for (c, contest) in CONTESTS.iter().enumerate() {
            if !closed[c] {
                commands::close(&data, contest, SheetSource::FromRecords).expect("close");
            }
        }
        commands::seal(&data).expect("seal");
        let status = commands::status(&data).expect("status");
        prop_assert_eq!(status.ballots_waiting, 0);
        prop_assert_eq!(status.events.pending, 0);

        // Batch 1 opens with the zero report; no other event is one.
        let events = sealed_events(&data);
        prop_assert_eq!(&events[0][0], &zero_report());
        prop_assert_eq!(
            events.iter().flatten().filter(|e| matches!(e.kind, Some(pb::event::Kind::ZeroReport(_)))).count(),
            1
        );
        let (batches, cancels) = sealed(&data);
        let mut times: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        for contest in CONTESTS {
            let groups: Vec<usize> = batches
                .iter()
                .filter_map(|b| b.get(contest))
                .map(|(ids, _)| ids.len())
                .filter(|&n| n > 0)
                .collect();
            if groups.len() > 1 {
                prop_assert!(groups.iter().all(|&n| n as u64 >= K), "{contest}: {groups:?}");
            }
            // The close comes with or after the contest's last group.
            let last_group = batches.iter().rposition(|b| b.get(contest).is_some_and(|(ids, _)| !ids.is_empty()));
            let close = batches.iter().position(|b| b.get(contest).is_some_and(|(_, closes)| *closes));
            prop_assert!(close.is_some());
            prop_assert!(last_group <= close, "{contest}: close before a group");
        }
        for b in &batches {
            for (ids, _) in b.values() {
                for id in ids {
                    *times.entry(id.clone()).or_default() += 1;
                }
            }
        }
        prop_assert!(times.values().all(|&n| n == 1), "a ballot in two batches");
        for (id, _) in &recorded {
            if cancelled.contains(id) {
                // Withdrawn: either never sealed, or sealed with its cancel.
                prop_assert!(!times.contains_key(id) || cancels.contains(id));
            } else {
                prop_assert!(times.contains_key(id), "a recorded ballot was not sealed");
            }
        }
        prop_assert!(cancels.iter().all(|id| cancelled.contains(id)));
        // The station's own count: every ballot not withdrawn, once.
        let (_, tallies) = commands::tally(&data).expect("tally");
        let returned: u64 = tallies.iter().map(|t| t.records.returned).sum();
        prop_assert_eq!(returned, (recorded.len() - cancelled.len()) as u64);
    }
}
