//! A station's identity through a whole election, over the real `center` and
//! `station` binaries (SPEC §12, G3, G4, G9): a replaced device's old certificate,
//! a clone that forks, a restored backup, release and replacement after a fork, and
//! a CA key kept off the serving machine. Each ends with exact counts against the
//! drawn ground truth and a clean audit.

use pollsync_center::store::Records as _;
use std::path::{Path, PathBuf};

use pollsync_center::store::Store;
use pollsync_sim::ballots::StationContest;
use pollsync_tests::*;

const SYNC_TIMEOUT_S: &str = "60";

fn sync(station: &Station) -> String {
    station.ok(&["sync", "--timeout-s", SYNC_TIMEOUT_S])
}

/// A sync that must fail; returns what the station said.
fn sync_fails(station: &Station) -> String {
    let out = run(station.command().args(["sync", "--timeout-s", "20"]));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the sync must fail: {said}");
    said
}

/// Copy a device's data folder byte for byte (a clone, or a backup).
fn copy_device(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// A device at `dir` set up from a replacement `bundle`, reaching the serving center.
fn device(id: &str, dir: PathBuf, bundle: &Path, center: &Center) -> Station {
    let said = ok(std::process::Command::new(bin("station"))
        .arg("--data")
        .arg(&dir)
        .args(["init", "--bundle"])
        .arg(bundle)
        .args(["--center", center.address()]));
    assert!(
        said.contains("run `station recover`"),
        "init says what to do: {said}"
    );
    Station {
        id: id.to_string(),
        data: dir,
    }
}

/// `center enroll STATION --replace --reason …`: the new bundle.
fn replace(day: &SmallDay, station: &str, reason: &str) -> PathBuf {
    let out = day.root.path().join(format!("replaced-{station}"));
    let said = ok(day.center.command().args([
        "enroll",
        station,
        "--replace",
        "--reason",
        reason,
        "--out-dir",
        &out.display().to_string(),
    ]));
    assert!(said.contains("refused from now on"), "{said}");
    out.join(format!("{station}.bundle"))
}

fn alerts(center: &Center) -> Vec<serde_json::Value> {
    center
        .json(&["alerts", "--json"])
        .as_array()
        .expect("alerts")
        .clone()
}

fn kinds_of(center: &Center, station: &str) -> Vec<String> {
    alerts(center)
        .iter()
        .filter(|a| a["station"] == station)
        .map(|a| a["kind"].as_str().expect("kind").to_owned())
        .collect()
}

fn quarantined(center: &Center, station: &str) -> bool {
    center_stations(center)
        .into_iter()
        .find(|s| s.station == station)
        .expect("station row")
        .quarantined
}

fn audit_is_clean(center: &Center) {
    let out = run(center.command().args(["audit"]));
    assert!(
        out.status.success(),
        "audit: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The station's tallies at the center are its drawn truth, every contest closed
/// with a tally sheet equal to what the center counted (no discrepancy).
fn assert_station_is_truth(day: &SmallDay, station: &str) {
    let want = truth(&drawn_for(&day.drawn, &[station]));
    assert_eq!(
        center_tallies(&day.center).remove(station),
        want.get(station).cloned(),
        "{station}: the center's counts are the ground truth"
    );
    let store = Store::open(&day.center.data).expect("store");
    for t in store.tallies().expect("tallies") {
        if t.station == station {
            assert!(t.closed, "{station} {}: closed", t.contest);
            assert_eq!(
                t.sheet.map(|s| s.without_zeros()),
                Some(t.computed.without_zeros()),
                "{station} {}: the tally sheet equals the count",
                t.contest
            );
        }
    }
}

fn first_station(day: &SmallDay) -> (String, Vec<StationContest>) {
    let id = day.def.stations[0].id.clone();
    let drawn = drawn_for(&day.drawn, &[&id]);
    assert!(ballots_of(&drawn, &id) >= 4, "enough ballots to split");
    (id, drawn)
}

#[test]
fn a_replaced_devices_certificate_is_refused_and_the_new_device_continues_the_chain() {
    let day = SmallDay::start(31);
    let (id, drawn) = first_station(&day);
    let parts = ballot_parts(&drawn, &id, 3);
    let dir = day.root.path();
    let old = Station::init(dir, &day.center, &id, day.center.address());
    issue_all(&old, &drawn);
    import_part(&old, &parts[0], dir, "a");
    sync(&old);
    import_part(&old, &parts[1], dir, "b");
    sync(&old);
    let head = center_heads(&day.center)[&id];
    assert!(head >= 2, "several batches before the replacement");

    let bundle = replace(&day, &id, "the tablet's screen broke");
    // The old device records on (its records are its own) but is refused, however
    // often it tries, with the reason; the station is not quarantined.
    let contest = &drawn[0].contest;
    old.ok(&["record", "--contest", contest]);
    for _ in 0..2 {
        let said = sync_fails(&old);
        assert!(
            said.contains("STALE_KEY"),
            "the old device is told why: {said}"
        );
    }
    assert!(!quarantined(&day.center, &id));
    assert_eq!(kinds_of(&day.center, &id), vec!["REPLACED", "STALE_KEY"]);
    let replaced = &alerts(&day.center)[0];
    assert!(
        replaced["detail"]
            .as_str()
            .expect("detail")
            .contains("the tablet's screen broke"),
        "{replaced}"
    );

    // The new device: brings back the station's earlier batches, records the rest
    // of the day, closes from its records and continues the chain.
    let new = device(&id, dir.join("new-device"), &bundle, &day.center);
    // Its records lack the day so far until it recovers: closing from them is refused.
    let out = run(new
        .command()
        .args(["close", "--contest", &drawn[0].contest, "--from-records"]));
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("station recover"), "{said}");
    let said = new.ok(&["recover"]);
    assert!(
        said.contains(&format!("recovered {head} earlier batch(es)")),
        "{said}"
    );
    import_part(&new, &parts[2], dir, "c");
    close_all(&new, &drawn);
    sync(&new);
    let batches = Store::open(&day.center.data)
        .expect("store")
        .batches(Some(&id))
        .expect("batches");
    assert!(batches.len() as u64 > head);
    assert!(batches[..head as usize].iter().all(|b| b.key_no == 1));
    assert!(batches[head as usize..].iter().all(|b| b.key_no == 2));
    assert_station_is_truth(&day, &id);
    assert!(!quarantined(&day.center, &id));
    assert_eq!(kinds_of(&day.center, &id), vec!["REPLACED", "STALE_KEY"]);
    audit_is_clean(&day.center);
}

#[test]
fn a_clone_that_forks_is_proven_by_both_signed_batches_then_release_and_replace_restore_the_station()
 {
    let day = SmallDay::start(32);
    let (id, drawn) = first_station(&day);
    let parts = ballot_parts(&drawn, &id, 3);
    let dir = day.root.path();
    let original = Station::init(dir, &day.center, &id, day.center.address());
    issue_all(&original, &drawn);
    // The clone is taken before the first batch.
    let clone = Station {
        id: id.clone(),
        data: dir.join("clone"),
    };
    copy_device(&original.data, &clone.data);
    import_part(&original, &parts[0], dir, "a");
    sync(&original);
    import_part(&original, &parts[1], dir, "b");
    sync(&original);
    original.ok(&["record", "--contest", &drawn[0].contest]);
    sync(&original);
    let before = center_tallies(&day.center);
    let head = center_heads(&day.center)[&id];
    assert!(head >= 3, "the original synced several batches");

    // The clone records ballots of its own and syncs: its batch 1 is not the
    // center's. It sends it as evidence and stops; the center raises the fork.
    // (`station run` seals every 200 ms, connected or not.)
    import_part(&clone, &parts[2], dir, "clone");
    clone.ok(&["seal"]);
    let said = sync_fails(&clone);
    assert!(said.contains("fork"), "the clone is told why: {said}");
    let forks: Vec<serde_json::Value> = alerts(&day.center)
        .into_iter()
        .filter(|a| a["kind"] == "FORK")
        .collect();
    assert_eq!(forks.len(), 1, "one fork alert: {forks:?}");
    let fork = &forks[0];
    assert_eq!(fork["station"], id.as_str());
    assert_eq!(fork["sequence"], 1);
    let evidence = &fork["evidence"][0];
    let (center_batch, other_batch) = (&evidence["center"], &evidence["other"]);
    assert_ne!(center_batch["batch_hex"], other_batch["batch_hex"]);
    for b in [center_batch, other_batch] {
        assert_eq!(b["signature_hex"].as_str().expect("signature").len(), 128);
        assert_eq!(b["key_no"], 1, "both signed with the station's key");
    }
    assert!(quarantined(&day.center, &id));
    assert_eq!(center_tallies(&day.center), before, "counts unchanged");
    // The clone holds its sealing: it would only fork further.
    let status = clone.status();
    assert!(
        status["sealing_held"]
            .as_str()
            .is_some_and(|why| why.contains("forked")),
        "the clone's status says so: {status}"
    );
    // Quarantined: the original is refused too until an operator acts.
    let said = sync_fails(&original);
    assert!(said.contains("quarantined"), "{said}");

    // Release after the investigation: the forked key stays refused, on both devices.
    let said = ok(day.center.command().args([
        "release",
        &id,
        "--reason",
        "clone found in the storeroom and wiped",
    ]));
    assert!(said.contains("retired"), "{said}");
    assert!(!quarantined(&day.center, &id));
    for device in [&original, &clone] {
        // The serving center picks the release up within its refresh interval.
        wait_for(
            "the serving center to refuse the retired key",
            std::time::Duration::from_secs(10),
            || sync_fails(device).contains("STALE_KEY").then_some(()),
        );
    }
    // The operators see what the station needs.
    let status = day.center.json(&["status", "--json"]);
    let row = status["stations"]["list"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["station"] == id.as_str()))
        .cloned()
        .expect("the station in status");
    assert_eq!(row["connection"], "needs_replacement", "{row}");
    // Replace: the new device continues the center's chain and finishes the day.
    let bundle = replace(&day, &id, "after the fork");
    let new = device(&id, dir.join("new-device"), &bundle, &day.center);
    new.ok(&["recover"]);
    // The original's extra ballot is in the center's batches: the new device, which
    // recovered them, finishes the day with the drawn ballots of the clone's part.
    import_part(&new, &parts[2], dir, "c");
    close_all(&new, &drawn);
    sync(&new);
    let mut want = truth(&drawn_for(&day.drawn, &[&id]));
    let extra_contest = &drawn[0].contest;
    if let Some(sheet) = want.get_mut(&id).and_then(|c| c.get_mut(extra_contest)) {
        // The original's one blank ballot: returned and valid, no votes.
        sheet.returned += 1;
        sheet.valid += 1;
    }
    assert_eq!(
        center_tallies(&day.center).remove(&id),
        want.remove(&id),
        "the center counts the original's batches and the new device's, not the clone's"
    );
    for device in [&original, &clone] {
        assert!(sync_fails(device).contains("STALE_KEY"));
    }
    let kinds = kinds_of(&day.center, &id);
    for k in ["FORK", "RELEASED", "STALE_KEY", "REPLACED"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    let release = alerts(&day.center)
        .into_iter()
        .find(|a| a["kind"] == "RELEASED")
        .expect("release alert");
    assert!(
        release["detail"]
            .as_str()
            .expect("detail")
            .contains("clone found in the storeroom"),
        "{release}"
    );
    audit_is_clean(&day.center);
}

#[test]
fn a_device_restored_from_a_backup_recovers_its_batches_and_counts_exactly_once() {
    let day = SmallDay::start(33);
    let (id, drawn) = first_station(&day);
    let parts = ballot_parts(&drawn, &id, 4);
    let dir = day.root.path();
    let device_a = Station::init(dir, &day.center, &id, day.center.address());
    issue_all(&device_a, &drawn);
    import_part(&device_a, &parts[0], dir, "a");
    sync(&device_a);
    // Recorded, not yet sealed, when the backup is taken.
    import_part(&device_a, &parts[1], dir, "b");
    let backup = dir.join("backup");
    copy_device(&device_a.data, &backup);
    sync(&device_a);
    import_part(&device_a, &parts[2], dir, "c");
    sync(&device_a);
    let head = center_heads(&day.center)[&id];

    // The device dies; its backup is restored onto another one.
    let restored = Station {
        id: id.clone(),
        data: dir.join("restored"),
    };
    copy_device(&backup, &restored.data);
    let said = sync_fails(&restored);
    assert!(
        said.contains("station recover"),
        "the device says what to do: {said}"
    );
    // Ballots recorded after the restore are kept through the recovery.
    import_part(&restored, &parts[3], dir, "d");
    let report: serde_json::Value =
        serde_json::from_str(&restored.ok(&["recover", "--json"])).expect("JSON");
    assert_eq!(report["center_head"], head);
    assert_eq!(report["local_head_after"], head);
    assert!(report["recovered"]["forward_batches"].as_u64() > Some(0));
    let part = |p: &str| p.lines().count() as u64;
    assert_eq!(
        report["recovered"]["pending_dropped"],
        part(&parts[1]),
        "the backup's unsealed ballots are in the center's batches: {report}"
    );
    assert_eq!(
        report["recovered"]["pending_kept"],
        part(&parts[3]),
        "{report}"
    );
    close_all(&restored, &drawn);
    sync(&restored);
    assert_station_is_truth(&day, &id);
    assert_no_alerts(&day.center);
    audit_is_clean(&day.center);
    // Nothing more to recover.
    let said = restored.ok(&["recover"]);
    assert!(said.contains("nothing to recover"), "{said}");
}

#[test]
fn the_ca_key_kept_off_the_serving_machine_is_needed_to_enroll_and_never_to_serve() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 34);
    let data = root.path().join("center-data");
    let ca_dir = root.path().join("ca-usb");
    let center = |args: &[&str]| {
        let mut cmd = std::process::Command::new(bin("center"));
        cmd.arg("--data").arg(&data).args(args);
        cmd
    };
    ok(&mut center(&[
        "init",
        "--election",
        &file.display().to_string(),
        "--ca-dir",
        &ca_dir.display().to_string(),
    ]));
    let key = ca_dir.join("ca.key.pem");
    assert_eq!(
        std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let meta = Store::open(&data).expect("store").meta().expect("meta");
    assert!(meta.ca_key_pem.is_none(), "the store holds no CA key");
    let key_text = std::fs::read_to_string(&key).expect("key");
    let body: String = key_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for file in std::fs::read_dir(&data).expect("data folder") {
        let bytes = std::fs::read(file.expect("entry").path()).expect("store file");
        assert!(
            !bytes.windows(body.len()).any(|w| w == body.as_bytes()),
            "the CA key is in no file of the store"
        );
    }

    // The USB stick is taken away: enrolling needs it, and says so.
    let moved = root.path().join("ca-elsewhere");
    std::fs::rename(&ca_dir, &moved).expect("move the CA folder");
    let bundles = root.path().join("bundles").display().to_string();
    let out = run(&mut center(&["enroll", "--all", "--out-dir", &bundles]));
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("CA key") && said.contains("ca.key.pem"),
        "{said}"
    );
    assert!(
        Store::open(&data)
            .expect("store")
            .keys_of(&def.stations[0].id)
            .expect("keys")
            .is_empty()
    );
    ok(&mut center(&[
        "enroll",
        "--all",
        "--out-dir",
        &bundles,
        "--ca-dir",
        &moved.display().to_string(),
    ]));

    // Serving never reads it: a station syncs while the CA folder is gone.
    std::fs::remove_dir_all(&moved).expect("remove the CA folder");
    let mut c = Center::existing(data.clone(), PathBuf::from(&bundles));
    c.serve();
    let id = def.stations[0].id.clone();
    let station = Station::init(root.path(), &c, &id, c.address());
    let contest = def.stations[0].contests[0].clone();
    station.ok(&["record", "--contest", &contest]);
    sync(&station);
    assert_eq!(center_ballots(&c), 1);
}
