//! G4 at rest: `center audit` re-verifies the stored batches and re-tallies them, and
//! catches a tally row and a batch byte changed behind the center's back.

use pollsync_sim::ballots::{self, USUAL};
use pollsync_tests::copy_dir;
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

/// Audit is an independent recount (issue 11): a key row forged in the store (a
/// certificate the election CA never issued, every batch re-signed with it) and a
/// batch that breaks a content rule of ingest, written straight into the store
/// with the station's real key, are both named.
#[test]
fn audit_names_a_forged_key_row_and_a_batch_that_breaks_the_rules() {
    use pollsync_proto::chain::ChainWriter;
    use pollsync_proto::{ChainHead, ElectionCa, EnrollmentBundle, chain_hash, pb};
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 12);
    let drawn = ballots::draw(&def, 12, &USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    let ids: Vec<String> = def.stations.iter().take(2).map(|s| s.id.clone()).collect();
    for id in &ids {
        let station = Station::init(root.path(), &center, id, center.address());
        record_day(&station, &drawn, root.path());
        station.ok(&["sync", "--timeout-s", "60"]);
    }
    center.kill();
    assert_eq!(center.json(&["audit", "--json"])["ok"], true);
    let db = rusqlite::Connection::open(center.data.join("center.db")).expect("open store");

    // 1. A forged key for the first station: a CA of the forger's own.
    let (forged, honest) = (&ids[0], &ids[1]);
    let fake_ca = ElectionCa::generate(&def.election.id, def.election.mode).expect("fake CA");
    let fake = fake_ca.issue_station(forged).expect("fake certificate");
    let fake_key = pollsync_proto::signing_key_from_pem(&fake.key_pem).expect("key");
    let fake_der = pollsync_proto::identity::cert_der_from_pem(&fake.cert_pem).expect("der");
    db.execute(
        "UPDATE station_keys SET cert_der = ?1, public_key = ?2 WHERE station = ?3",
        rusqlite::params![
            fake_der,
            fake_key.verifying_key().to_bytes().to_vec(),
            forged
        ],
    )
    .expect("forge the key row");
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt = db
            .prepare("SELECT sequence, batch FROM batches WHERE station = ?1")
            .expect("select");
        stmt.query_map([forged], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    for (sequence, batch) in rows {
        let signed = pollsync_proto::sign_batch(&fake_key, batch);
        db.execute(
            "UPDATE batches SET signature = ?1 WHERE station = ?2 AND sequence = ?3",
            rusqlite::params![signed.signature, forged, sequence],
        )
        .expect("re-sign");
    }

    // 2. The other station's next batch, signed with its real key and chained: a
    // ballot for a contest it closed long ago.
    let bundle = EnrollmentBundle::read(&center.bundle(honest)).expect("bundle");
    let (head, hash): (i64, Vec<u8>) = db
        .query_row(
            "SELECT head_sequence, head_hash FROM stations WHERE station = ?1",
            [honest],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("head");
    let contest = def.station(honest).expect("station").contests[0].clone();
    let candidates = def.contest(&contest).expect("contest").candidates.len();
    let head_hash: [u8; 32] = hash.as_slice().try_into().expect("a 32-byte head hash");
    let mut chain = ChainWriter::from_bundle(&bundle)
        .expect("key")
        .after(ChainHead {
            sequence: head as u64,
            hash: head_hash,
        });
    let batch = chain.unsigned(vec![pb::Event {
        kind: Some(pb::event::Kind::Ballot(pb::Ballot {
            id: vec![7; 16],
            contest: contest.clone(),
            marks: vec![0; candidates],
            write_in: vec![],
        })),
    }]);
    let signed = chain.seal(&batch);
    db.execute(
        "INSERT INTO batches (station, sequence, hash, batch, signature, key_no, events, ballots, leaf)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, 1, 1, 999999)",
        rusqlite::params![
            honest,
            head + 1,
            chain_hash(&signed.batch).to_vec(),
            signed.batch,
            signed.signature
        ],
    )
    .expect("insert the rule-breaking batch");
    drop(db);

    let out = run(center.command().args(["audit", "--json"]));
    assert_eq!(out.status.code(), Some(1), "audit must fail");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let differences = report["differences"].to_string();
    assert!(
        differences.contains(&format!("station {forged} key #1"))
            && differences.contains("not from the election CA"),
        "the forged key row is named: {differences}"
    );
    assert!(
        differences.contains(&format!("station {honest} batch {}", head + 1))
            && differences.contains("breaks the log's rules")
            && differences.contains("closed"),
        "the rule-breaking batch is named: {differences}"
    );
}

/// Issue 15: `center audit` checks the transparency log against what it records,
/// from the store alone. An honest store with batches and a standing change
/// passes; each of five edits behind the center's back (a leaf record, a stored
/// tree hash, a batch's leaf number, a standing change's text, the signed
/// checkpoint) is named, each on its own copy of the store.
#[test]
fn audit_checks_the_transparency_log_against_what_it_records() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 13);
    let drawn = ballots::draw(&def, 13, &USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    for s in def.stations.iter().take(2) {
        let station = Station::init(root.path(), &center, &s.id, center.address());
        record_day(&station, &drawn, root.path());
        station.ok(&["sync", "--timeout-s", "60"]);
    }
    center.kill();
    let revoked = &def.stations[2].id;
    pollsync_tests::ok(
        center
            .command()
            .args(["revoke", revoked, "--reason", "device lost"]),
    );
    let clean = center.json(&["audit", "--json"]);
    assert_eq!(clean["ok"], true, "{clean}");

    type Edit = fn(&rusqlite::Connection);
    let edits: [(&str, Edit, &str); 5] = [
        (
            "a batch leaf's record",
            |db| {
                let (leaf, mut entry): (i64, Vec<u8>) = db
                    .query_row(
                        "SELECT l.leaf, l.entry FROM log_leaves l JOIN batches b ON b.leaf = l.leaf LIMIT 1",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .expect("a batch leaf");
                let last = entry.len() - 1;
                entry[last] ^= 1;
                db.execute(
                    "UPDATE log_leaves SET entry = ?1 WHERE leaf = ?2",
                    rusqlite::params![entry, leaf],
                )
                .expect("edit");
            },
            "its log leaf records another chain hash",
        ),
        (
            "a stored tree hash",
            |db| {
                db.execute(
                    "UPDATE log_hashes SET hash = zeroblob(32) WHERE idx = (SELECT max(idx) FROM log_hashes)",
                    [],
                )
                .expect("edit");
            },
            "are not the tree of its",
        ),
        (
            "a batch's leaf number",
            |db| {
                db.execute(
                    "UPDATE batches SET leaf = leaf + 1 WHERE rowid = (SELECT min(rowid) FROM batches)",
                    [],
                )
                .expect("edit");
            },
            "but it is leaf",
        ),
        (
            "a standing change's text",
            |db| {
                db.execute("UPDATE standing_records SET record = record || ' '", [])
                    .expect("edit");
            },
            "the standing change's text is not the one the leaf records",
        ),
        (
            "the newest checkpoint",
            |db| {
                db.execute(
                    "UPDATE log_checkpoints SET note = CAST(replace(CAST(note AS TEXT), 'pollsync/', 'pollsync-') AS BLOB) WHERE size = (SELECT max(size) FROM log_checkpoints)",
                    [],
                )
                .expect("edit");
            },
            "does not open with the log key",
        ),
    ];
    for (n, (what, edit, named)) in edits.iter().enumerate() {
        let copy = root.path().join(format!("edited-{n}"));
        copy_dir(&center.data, &copy);
        let db = rusqlite::Connection::open(copy.join("center.db")).expect("open copy");
        edit(&db);
        drop(db);
        let edited = Center::existing(copy, center.bundles.clone());
        let out = run(edited.command().args(["audit", "--json"]));
        assert_eq!(out.status.code(), Some(1), "{what}: the audit must fail");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let differences = report["differences"].to_string();
        assert!(differences.contains(named), "{what}: {differences}");
    }
}
