//! P1-style ingest measurement (ignored by default; run it in release):
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/tgt-center cargo test --release -p pollsync-center \
//!     --test bench_ingest -- --ignored --nocapture
//! ```
//!
//! 600 stations, each with one batch of 1,300 ballots (780,000 in all) plus issued
//! counts and closes, all submitted at once through `IngestHandle::submit`; timed
//! from the first submit to the last durable acknowledgement. The baseline of SPEC
//! §9 (the same ballots as one SQLite row each, WAL, synchronous=FULL, 10,000 rows
//! per transaction) is measured in the same run.

mod support;

use pollsync_center::store::Records as _;
use std::fmt::Write as _;
use std::time::Instant;

use pollsync_center::ingest;
use pollsync_center::store::Store;
use pollsync_election::{Ballot, BallotId, Mark, StationEvent, TallySheet};
use pollsync_proto::pb;
use support::*;

const STATIONS: usize = 600;
const BALLOTS_PER_STATION: usize = 1_300;
const CONTESTS_PER_LEVEL: usize = STATIONS / 2;

fn election() -> String {
    let mut t = String::from(
        "[election]\nid = \"bench-2021\"\nname = \"bench\"\ndate = \"2021-11-01\"\nrules = \"prc-direct\"\n\n[[unit]]\nid = \"town\"\nname = \"镇\"\nkind = \"town\"\n",
    );
    for level in ["D", "T"] {
        for c in 0..CONTESTS_PER_LEVEL {
            let id = format!("{level}-{c:03}");
            let lv = if level == "D" { "district" } else { "town" };
            let _ = write!(
                t,
                "\n[[contest]]\nid = \"{id}\"\nlevel = \"{lv}\"\nunit = \"town\"\nname = \"{id}\"\nseats = 2\nregistered = 3000\ncandidates = [\n"
            );
            for k in 1..=3 {
                let _ = writeln!(
                    t,
                    "  {{ id = \"{id}-{k}\", name = \"候选人{level}{c}{k}\", gender = \"F\", ethnicity = \"汉族\", party = \"中共\" }},"
                );
            }
            t.push_str("]\n");
        }
    }
    for s in 0..STATIONS {
        let c = s / 2;
        let _ = write!(
            t,
            "\n[[station]]\nid = \"S-{s:04}\"\nname = \"站{s}\"\nkind = \"fixed\"\ncontests = [\"D-{c:03}\", \"T-{c:03}\"]\n"
        );
    }
    t
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn mark(r: u64) -> Mark {
    match r % 3 {
        0 => Mark::None,
        1 => Mark::For,
        _ => Mark::Against,
    }
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn p1_ingest_780k_ballots_from_600_stations() {
    let toml = election();
    let center = Center::with_election(&toml);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut batches: Vec<(String, pb::SignedBatch)> = Vec::with_capacity(STATIONS);
    let t_build = Instant::now();
    for s in 0..STATIONS {
        let station = format!("S-{s:04}");
        let c = s / 2;
        let mut chain = center.chain(&station);
        let mut events = Vec::with_capacity(BALLOTS_PER_STATION + 4);
        for i in 0..BALLOTS_PER_STATION {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next().to_le_bytes());
            id[8..].copy_from_slice(&rng.next().to_le_bytes());
            let r = rng.next();
            let contest = if i % 2 == 0 {
                format!("D-{c:03}")
            } else {
                format!("T-{c:03}")
            };
            let write_ins = if r.is_multiple_of(97) {
                vec!["王五".to_string()]
            } else {
                vec![]
            };
            events.push(StationEvent::Ballot(Ballot {
                id: BallotId::from_bytes(id),
                contest,
                marks: vec![mark(r >> 8), mark(r >> 16), mark(r >> 24)],
                write_ins,
            }));
        }
        for level in ["D", "T"] {
            events.push(issued(
                &format!("{level}-{c:03}"),
                (BALLOTS_PER_STATION / 2) as u64,
            ));
        }
        for level in ["D", "T"] {
            events.push(StationEvent::Close {
                contest: format!("{level}-{c:03}"),
                sheet: TallySheet::default(),
            });
        }
        batches.push((station, chain.batch(&events)));
    }
    let bytes: usize = batches.iter().map(|(_, b)| b.batch.len()).sum();
    eprintln!(
        "built {STATIONS} signed batches, {} ballots, {:.1} MB, in {:.2?}",
        STATIONS * BALLOTS_PER_STATION,
        bytes as f64 / 1e6,
        t_build.elapsed()
    );

    {
        // The stateless part alone, on one core.
        let store = Store::open(&center.data).unwrap();
        let meta = store.meta().unwrap();
        let ctx = ingest::judge::Context::new(meta.definition().unwrap(), meta.definition_sha256);
        let t = Instant::now();
        for (_, b) in batches.iter().take(100) {
            let p = ingest::judge::prepare(&ctx, None, b.clone());
            assert!(matches!(p.stage, ingest::judge::Stage::Decoded(_)));
        }
        let per = t.elapsed().as_secs_f64() / (100 * BALLOTS_PER_STATION) as f64;
        eprintln!(
            "prepare (no signature) on one core: {:.0} ns per ballot",
            per * 1e9
        );
        let t = Instant::now();
        for (_, b) in batches.iter().take(100) {
            let _ = pollsync_proto::envelope::decode_batch(b).unwrap();
        }
        let per = t.elapsed().as_secs_f64() / (100 * BALLOTS_PER_STATION) as f64;
        eprintln!("  of which decode_batch: {:.0} ns per ballot", per * 1e9);
        let t = Instant::now();
        for (_, b) in batches.iter().take(100) {
            let _ = pollsync_proto::chain_hash(&b.batch);
        }
        let per = t.elapsed().as_secs_f64() / (100 * BALLOTS_PER_STATION) as f64;
        eprintln!("  of which sha256: {:.0} ns per ballot", per * 1e9);
    }

    let (h, writer) = ingest::start(&center.data).unwrap();
    let t0 = Instant::now();
    let receivers: Vec<_> = batches
        .into_iter()
        .map(|(station, b)| h.submit(&station, b))
        .collect();
    let submitted = t0.elapsed();
    for rx in receivers {
        let ack = rx.blocking_recv().unwrap();
        assert_eq!(ack.kind(), pb::AckKind::Accepted, "{ack:?}");
    }
    let elapsed = t0.elapsed();
    h.shutdown();
    writer.join().unwrap();
    let ballots = (STATIONS * BALLOTS_PER_STATION) as f64;
    eprintln!(
        "ingest: {} ballots in {:.3} s (submit calls {:.3} s): {:.0} ballots/s",
        ballots,
        elapsed.as_secs_f64(),
        submitted.as_secs_f64(),
        ballots / elapsed.as_secs_f64()
    );
    let store = Store::open(&center.data).unwrap();
    let returned: u64 = store
        .tallies()
        .unwrap()
        .iter()
        .map(|t| t.computed.returned)
        .sum();
    assert_eq!(returned, (STATIONS * BALLOTS_PER_STATION) as u64);
    assert!(store.alerts().unwrap().is_empty());

    // Baseline: one row per ballot, nothing else.
    let path = center.path("baseline.db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE ballots (id INTEGER PRIMARY KEY, ballot_id BLOB NOT NULL, station TEXT NOT NULL, contest TEXT NOT NULL, marks BLOB NOT NULL)",
    )
    .unwrap();
    let t1 = Instant::now();
    let total = STATIONS * BALLOTS_PER_STATION;
    let mut done = 0;
    while done < total {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO ballots (ballot_id, station, contest, marks) VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            for i in done..(done + 10_000).min(total) {
                let id = (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
                stmt.execute(rusqlite::params![
                    id.to_le_bytes().as_slice(),
                    "S-0001",
                    "D-001",
                    [1u8, 0, 2].as_slice()
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        done = (done + 10_000).min(total);
    }
    let base = t1.elapsed();
    eprintln!(
        "baseline (one row per ballot, 10k rows/tx): {:.3} s: {:.0} ballots/s",
        base.as_secs_f64(),
        total as f64 / base.as_secs_f64()
    );
}
