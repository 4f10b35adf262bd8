//! Station receipts across processes (SPEC §10, docs/PROTOCOL.md §13): after
//! `station sync` a station holds a receipt (its newest batch proved in a signed
//! checkpoint of the center's public log) that an observer checks with the log key
//! alone; and a center that later shows another history of its log, here a second
//! checkpoint of the same size signed with its own key, is caught by every station
//! that asks again.

use pollsync_proto::tlog::{self, Leaf, LogKey};
use pollsync_sim::ballots::{self, USUAL};
use pollsync_tests::{Center, Station, record_day, run, small_election, wait_for};
use serde_json::Value;

fn receipt_json(station: &Station) -> (bool, Value) {
    let out = run(station.command().args(["receipt", "--json"]));
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "station receipt --json printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

/// What an observer does with a posted receipt: check the checkpoint's signature
/// with the published log key, and the inclusion proof of the posted batch.
fn observer_checks(receipt: &Value, station: &str, log_key: &str) {
    let note = receipt["checkpoint"].as_str().expect("checkpoint");
    let checkpoint =
        tlog::open_checkpoint(note.as_bytes(), log_key).expect("signed by the log key");
    let hash: [u8; 32] = hex::decode(receipt["batch_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let leaf = Leaf::batch(station, receipt["sequence"].as_u64().unwrap(), hash).leaf_hash();
    let proof: Vec<tlog::Hash> = receipt["inclusion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| tlog::hash_of(&hex::decode(h.as_str().unwrap()).unwrap()).unwrap())
        .collect();
    tlog::check_inclusion(
        &proof,
        checkpoint.size(),
        *checkpoint.hash(),
        receipt["leaf_index"].as_u64().unwrap(),
        leaf,
    )
    .expect("the posted batch is in the log");
}

#[test]
fn a_receipt_proves_the_count_and_a_second_history_is_caught() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 21);
    let drawn = ballots::draw(&def, 21, &USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    let stations: Vec<Station> = def
        .stations
        .iter()
        .take(2)
        .map(|s| Station::init(root.path(), &center, &s.id, center.address()))
        .collect();
    for station in &stations {
        record_day(station, &drawn, root.path());
        station.ok(&["sync", "--timeout-s", "60"]);
    }
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(center.bundle(&stations[0].id)).unwrap()).unwrap();
    let log_key = bundle["log_key"]
        .as_str()
        .expect("the bundle carries the log key")
        .to_owned();

    let mut seen_sizes = Vec::new();
    for station in &stations {
        let (ok, report) = receipt_json(station);
        assert!(ok, "{report}");
        assert_eq!(report["fresh"], true, "{report}");
        assert!(report["alarm"].is_null(), "{report}");
        assert!(
            serde_json::from_str::<Value>(&station.ok(&["status", "--json"])).unwrap()["log_alarm"]
                .is_null()
        );
        let receipt = &report["receipt"];
        let status: Value =
            serde_json::from_str(&station.ok(&["status", "--json"])).expect("status JSON");
        assert_eq!(
            receipt["sequence"], status["batches"]["acknowledged"],
            "{report} {status}"
        );
        observer_checks(receipt, &station.id, &log_key);
        seen_sizes.push(receipt["tree_size"].as_u64().unwrap());
        let text = station.ok(&["receipt"]);
        for needle in [
            format!("RECEIPT of station {}", station.id),
            receipt["batch_hash"].as_str().unwrap().to_owned(),
            format!("pollsync/{}/", def.election.id),
        ] {
            assert!(text.contains(&needle), "{needle} not in:\n{text}");
        }
    }

    // The center shows another history: a second checkpoint of the newest size,
    // over another root, signed with its own log key.
    center.kill();
    let db = rusqlite::Connection::open(center.data.join("center.db")).expect("store");
    let signer: Vec<u8> = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'log_signer_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let key = LogKey::from_signer_text(std::str::from_utf8(&signer).unwrap()).unwrap();
    let size: i64 = db
        .query_row("SELECT max(size) FROM log_checkpoints", [], |r| r.get(0))
        .unwrap();
    let forged = key
        .sign_checkpoint(size as u64, &tlog::Hash([0x5a; 32]))
        .unwrap();
    db.execute("DELETE FROM log_checkpoints", []).unwrap();
    db.execute(
        "INSERT INTO log_checkpoints (size, note) VALUES (?1, ?2)",
        rusqlite::params![size, forged],
    )
    .unwrap();
    drop(db);
    center.serve();

    for station in &stations {
        let (ok, report) = receipt_json(station);
        assert!(!ok, "a second history must fail the receipt: {report}");
        let detail = report["alarm"]["detail"]
            .as_str()
            .expect("an alarm")
            .to_owned();
        assert!(
            detail.contains("different roots") || detail.contains("does not extend"),
            "{detail}"
        );
        assert_eq!(
            report["alarm"]["shown"].as_str().unwrap().as_bytes(),
            forged.as_slice()
        );
        let status: Value =
            serde_json::from_str(&station.ok(&["status", "--json"])).expect("status JSON");
        assert_eq!(
            status["log_alarm"].as_str(),
            Some(detail.as_str()),
            "{status}"
        );
        assert!(station.ok(&["status"]).contains("LOG ALARM"));
        // The alarm stays, and is the first thing the posted receipt says.
        let out = run(station.command().arg("receipt"));
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ALARM"), "{text}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not one history"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The station that saw exactly the forged size saw two roots for it.
    assert!(seen_sizes.contains(&(size as u64)), "{seen_sizes:?} {size}");
}

/// `station run` takes its receipts by itself (PROTOCOL §13.5): while the agent
/// runs, the newest batch the center acknowledged ends up proved in a signed
/// checkpoint and kept on the device, with no `station sync` or `station receipt`,
/// and the posted proof checks out for an observer holding only the log key.
#[test]
fn station_run_keeps_a_receipt_of_what_the_center_acknowledged() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 23);
    let drawn = ballots::draw(&def, 23, &USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    let station = Station::init(root.path(), &center, &def.stations[0].id, center.address());
    record_day(&station, &drawn, root.path());
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs folder");
    let mut agent = station.spawn(&["run"], &logs);
    let kept = wait_for(
        "a receipt of the station's last batch",
        std::time::Duration::from_secs(90),
        || {
            let store = pollsync_station::store::Store::open(&station.data).ok()?;
            let head = store.head().ok()?.sequence;
            let (receipt, alarm) = pollsync_station::sync::receipt::stored(&store).ok()?;
            assert!(alarm.is_none(), "{alarm:?}");
            receipt.filter(|r| head > 0 && r.sequence == head)
        },
    );
    agent.terminate(std::time::Duration::from_secs(30));
    assert!(
        agent.stderr().contains(&format!(
            "receipt kept: the center's public log holds batch {}",
            kept.sequence
        )),
        "{}",
        agent.stderr()
    );
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(center.bundle(&station.id)).unwrap()).unwrap();
    let log_key = bundle["log_key"].as_str().expect("log key");
    observer_checks(
        &serde_json::to_value(&kept).expect("JSON"),
        &station.id,
        log_key,
    );
    center.kill();
}
