//! G4 at rest: `center audit` re-verifies the stored batches and re-tallies them, and
//! catches a tally row and a batch byte changed behind the center's back.

use pollsync_sim::ballots::{self, USUAL};
use pollsync_tests::{Center, Station, record_day, run, small_election};

#[test]
fn audit_passes_on_an_honest_store_and_names_a_changed_tally_and_a_changed_batch() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 11);
    let drawn = ballots::draw(&def, 11, &USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    for s in def.stations.iter().take(3) {
        let station = Station::init(root.path(), &center, &s.id, center.address());
        record_day(&station, &drawn, root.path());
        station.ok(&["sync", "--timeout-s", "60"]);
    }
    center.kill();

    let clean = center.json(&["audit", "--json"]);
    assert_eq!(clean["ok"], true, "{clean}");
    assert!(clean["batches"].as_u64().is_some_and(|n| n >= 3), "{clean}");
    assert!(
        clean["ballots"].as_u64().is_some_and(|n| n > 1000),
        "{clean}"
    );

    // Someone edits the store directly: one more FOR vote in a tally row, and one
    // byte of a stored batch.
    let db = rusqlite::Connection::open(center.data.join("center.db")).expect("open store");
    let (station, contest, candidate): (String, String, String) = db
        .query_row(
            "SELECT station, contest, candidate FROM tally_candidate WHERE for_votes > 0 LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("a tally row");
    db.execute(
        "UPDATE tally_candidate SET for_votes = for_votes + 1 WHERE station = ?1 AND contest = ?2 AND candidate = ?3",
        [&station, &contest, &candidate],
    )
    .expect("change a tally");
    let (batch_station, sequence, mut bytes): (String, i64, Vec<u8>) = db
        .query_row(
            "SELECT station, sequence, batch FROM batches ORDER BY station DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("a batch");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    db.execute(
        "UPDATE batches SET batch = ?1 WHERE station = ?2 AND sequence = ?3",
        rusqlite::params![bytes, batch_station, sequence],
    )
    .expect("change a batch");
    drop(db);

    let out = run(center.command().args(["audit", "--json"]));
    assert_eq!(out.status.code(), Some(1), "audit must fail");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let differences = report["differences"].to_string();
    assert!(
        differences.contains(&format!("station {station}, contest {contest}"))
            && differences.contains(&candidate),
        "the changed tally is named: {differences}"
    );
    assert!(
        differences.contains(&format!("station {batch_station} batch {sequence}"))
            && differences.contains("signature"),
        "the changed batch is named: {differences}"
    );
}
