//! The `center` offline commands as an operator runs them: the real binary on real
//! files (init, enroll, revoke, alerts, import).

mod support;

use pollsync_center::store::Records as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use pollsync_center::store::Store;
use pollsync_election::Mark::{For as F, None as N};
use pollsync_proto::EnrollmentBundle;
use pollsync_proto::export::{new_export, write_export};
use support::*;

fn center(args: &[&str]) -> Output {
    Command::new(center_bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "should fail: {}", text(&out.stdout));
    text(&out.stderr)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `center init` + `center enroll --all` through the binary.
fn setup(tmp: &Path) -> (String, String) {
    let election = tmp.join("election.toml");
    std::fs::write(&election, ELECTION).unwrap();
    let data = tmp.join("center-data").display().to_string();
    ok(&center(&[
        "init",
        "--election",
        &election.display().to_string(),
        "--data",
        &data,
    ]));
    let bundles = tmp.join("bundles").display().to_string();
    ok(&center(&[
        "enroll",
        "--all",
        "--out-dir",
        &bundles,
        "--data",
        &data,
    ]));
    (data, bundles)
}

fn bundle(bundles: &str, station: &str) -> EnrollmentBundle {
    EnrollmentBundle::read(&Path::new(bundles).join(format!("{station}.bundle"))).unwrap()
}

#[test]
fn init_creates_a_private_store_and_refuses_to_overwrite_it() {
    let tmp = tempfile::tempdir().unwrap();
    let election = tmp.path().join("election.toml");
    std::fs::write(&election, ELECTION).unwrap();
    let data = tmp.path().join("center-data");
    let e = election.display().to_string();
    let d = data.display().to_string();
    let out = ok(&center(&[
        "init",
        "--election",
        &e,
        "--data",
        &d,
        "--advertise",
        "10.0.0.5:7443",
        "--advertise",
        "center.example:7443",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["election"], "test-2021");
    assert_eq!(
        report["server_names"],
        serde_json::json!(["10.0.0.5", "center.example", "localhost", "127.0.0.1"])
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("center.db")), 0o600);
    let meta = Store::open(&data).unwrap().meta().unwrap();
    assert_eq!(meta.election_toml, ELECTION);
    assert_eq!(meta.advertise[0], "10.0.0.5:7443");

    let err = failed(&center(&["init", "--election", &e, "--data", &d]));
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("test-2021"), "{err}");
    let again = Store::open(&data).unwrap().meta().unwrap();
    assert_eq!(again.ca_key_pem, meta.ca_key_pem);
    assert_eq!(again.server_key_pem, meta.server_key_pem);
}

#[test]
fn init_names_every_mistake_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let election = tmp.path().join("bad.toml");
    std::fs::write(&election, ELECTION.replace("seats = 2", "seats = 7")).unwrap();
    let data = tmp.path().join("center-data");
    let err = failed(&center(&[
        "init",
        "--election",
        &election.display().to_string(),
        "--data",
        &data.display().to_string(),
    ]));
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("contest[0]"), "{err}");
    assert!(!data.join("center.db").exists());
    let err = failed(&center(&[
        "init",
        "--election",
        &election.display().to_string(),
        "--advertise",
        "no-port",
    ]));
    assert!(err.contains("no-port"), "{err}");
    // The list must fit in an enrollment bundle: no repeats, at most 8.
    let err = failed(&center(&[
        "init",
        "--election",
        &election.display().to_string(),
        "--advertise",
        "10.0.0.5:7443",
        "--advertise",
        "10.0.0.5:7443",
    ]));
    assert!(err.contains("10.0.0.5:7443"), "{err}");
    assert!(err.contains("twice"), "{err}");
    let mut many = vec![
        "init".to_owned(),
        "--election".to_owned(),
        election.display().to_string(),
    ];
    for i in 1..=9 {
        many.push("--advertise".to_owned());
        many.push(format!("10.0.0.{i}:7443"));
    }
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = failed(&center(&many));
    assert!(err.contains("9 addresses"), "{err}");
    assert!(!data.join("center.db").exists());
}

#[test]
fn enroll_writes_private_bundles_that_a_station_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let election = tmp.path().join("election.toml");
    std::fs::write(&election, ELECTION).unwrap();
    let data = tmp.path().join("center-data").display().to_string();
    ok(&center(&[
        "init",
        "--election",
        &election.display().to_string(),
        "--data",
        &data,
        "--advertise",
        "127.0.0.1:7443",
        "--advertise",
        "center.example:7444",
    ]));
    let out_dir = tmp.path().join("bundles");
    let o = out_dir.display().to_string();

    // An unknown station: named, and nothing written.
    let err = failed(&center(&[
        "enroll",
        "S-0001",
        "S-0404",
        "--out-dir",
        &o,
        "--data",
        &data,
    ]));
    assert!(err.contains("S-0404"), "{err}");
    assert!(!out_dir.join("S-0001.bundle").exists());

    let out = ok(&center(&[
        "enroll",
        "S-0001",
        "S-0002",
        "--out-dir",
        &o,
        "--data",
        &data,
    ]));
    assert!(out.contains("S-0001.bundle"), "{out}");
    for s in ["S-0001", "S-0002"] {
        let path = out_dir.join(format!("{s}.bundle"));
        assert_eq!(mode(&path), 0o600, "{s}");
        let b = EnrollmentBundle::read(&path).unwrap();
        assert_eq!(b.station_id, s);
        assert_eq!(b.election_id, "test-2021");
        // Every advertised address, in --advertise order (fail-over, SPEC §11).
        assert_eq!(
            b.center_addresses,
            ["127.0.0.1:7443", "center.example:7444"]
        );
        assert_eq!(b.election_toml, ELECTION);
    }
    assert!(!out_dir.join("S-0003.bundle").exists());
    let first = bundle(&o, "S-0001");

    // Re-enrolling needs --replace; the old key stays on record.
    let err = failed(&center(&[
        "enroll",
        "S-0001",
        "--out-dir",
        &o,
        "--data",
        &data,
    ]));
    assert!(err.contains("--replace") && err.contains("S-0001"), "{err}");
    ok(&center(&[
        "enroll",
        "S-0001",
        "--replace",
        "--out-dir",
        &o,
        "--data",
        &data,
    ]));
    let second = bundle(&o, "S-0001");
    assert_ne!(first.station_cert_pem, second.station_cert_pem);
    let keys = Store::open(Path::new(&data))
        .unwrap()
        .keys_of("S-0001")
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!keys[0].current && keys[1].current);

    // --all then enrolls only after naming those enrolled already.
    let err = failed(&center(&[
        "enroll",
        "--all",
        "--out-dir",
        &o,
        "--data",
        &data,
    ]));
    assert!(err.contains("S-0001") && err.contains("S-0002"), "{err}");
}

#[test]
fn importing_the_same_export_twice_counts_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, bundles) = setup(tmp.path());
    let mut chain = StationChain::from_bundle(&bundle(&bundles, "S-0001"));
    let b1 = vec![ballot(1, "D-001", &[F, N, N], &[]), issued("D-001", 2)];
    let b2 = vec![ballot(2, "T-001", &[N, F], &[]), cancel(1)];
    let batches = vec![chain.batch(&b1), chain.batch(&b2)];
    let file = tmp.path().join("S-0001.psync");
    write_export(&file, &new_export("test-2021", "S-0001", batches)).unwrap();
    let f = file.display().to_string();

    let out = ok(&center(&["import", &f, "--data", &data]));
    assert!(out.contains("2 accepted, 0 duplicate, 0 rejected"), "{out}");
    let out = ok(&center(&["import", &f, &f, "--data", &data, "--json"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["accepted"], 0);
    assert_eq!(json["duplicate"], 4);
    assert_eq!(json["rejected"], 0);
    assert_eq!(json["files"][0]["station"], "S-0001");

    let tallies = Store::open(Path::new(&data)).unwrap().tally_map().unwrap();
    assert_eq!(tallies["S-0001"], truth(&[b1, b2].concat()));
    let alerts = ok(&center(&["alerts", "--data", &data, "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&alerts).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn a_rejected_import_exits_non_zero_and_its_alert_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, bundles) = setup(tmp.path());
    // S-0001's batch, signed with S-0002's key.
    let mut chain = StationChain::from_bundle(&bundle(&bundles, "S-0001"));
    chain.set_key(bundle(&bundles, "S-0002").signing_key().unwrap());
    let file = tmp.path().join("forged.psync");
    write_export(
        &file,
        &new_export(
            "test-2021",
            "S-0001",
            vec![chain.batch(&[ballot(1, "D-001", &[F, N, N], &[])])],
        ),
    )
    .unwrap();
    let out = center(&["import", &file.display().to_string(), "--data", &data]);
    let stdout = text(&out.stdout);
    failed(&out);
    // Nothing signs the station id in a file: the batch is charged to nobody.
    assert!(stdout.contains("1 charged to no station"), "{stdout}");
    assert!(
        stdout.contains("entry #0") && stdout.contains("not signed by that station's current key"),
        "{stdout}"
    );

    // A file that is not an export: named, non-zero.
    let junk = tmp.path().join("junk.psync");
    std::fs::write(&junk, b"hello").unwrap();
    let out = center(&["import", &junk.display().to_string(), "--data", &data]);
    failed(&out);
    assert!(
        text(&out.stdout).contains("junk.psync"),
        "{}",
        text(&out.stdout)
    );

    // One alert per bad file, about the file, none about the station it names.
    let alerts = ok(&center(&["alerts", "--data", &data, "--json"]));
    let alerts: serde_json::Value = serde_json::from_str(&alerts).unwrap();
    let list = alerts.as_array().unwrap();
    assert_eq!(list.len(), 2, "{alerts}");
    for (alert, name) in list.iter().zip(["forged.psync", "junk.psync"]) {
        assert_eq!(alert["station"], "", "{alert}");
        assert_eq!(alert["kind"], "BAD_FILE", "{alert}");
        assert!(alert["detail"].as_str().unwrap().contains(name), "{alert}");
        assert!(alert["time"].as_str().unwrap().ends_with('Z'));
    }
    let human = ok(&center(&["alerts", "--data", &data]));
    assert!(
        human.contains("BAD_FILE") && !human.contains("S-0001"),
        "{human}"
    );
    assert!(
        Store::open(Path::new(&data))
            .unwrap()
            .tally_map()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn revoke_refuses_the_station_from_then_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, bundles) = setup(tmp.path());
    let reason = ["--reason", "device stolen from the school gym"];
    let err = failed(&center(
        &[&["revoke", "S-0404", "--data", &data][..], &reason].concat(),
    ));
    assert!(err.contains("S-0404"), "{err}");
    // A standing change needs its reason, and an empty one is refused.
    failed(&center(&["revoke", "S-0002", "--data", &data]));
    let err = failed(&center(&[
        "revoke", "S-0002", "--reason", " ", "--data", &data,
    ]));
    assert!(err.contains("--reason"), "{err}");
    let out = ok(&center(
        &[&["revoke", "S-0002", "--data", &data][..], &reason].concat(),
    ));
    assert!(out.contains("revoked"), "{out}");
    let out = ok(&center(
        &[&["revoke", "S-0002", "--data", &data][..], &reason].concat(),
    ));
    assert!(out.contains("already"), "{out}");

    let mut chain = StationChain::from_bundle(&bundle(&bundles, "S-0002"));
    let file = tmp.path().join("S-0002.psync");
    write_export(
        &file,
        &new_export(
            "test-2021",
            "S-0002",
            vec![chain.batch(&[ballot(1, "D-001", &[F, N, N], &[])])],
        ),
    )
    .unwrap();
    let out = center(&[
        "import",
        &file.display().to_string(),
        "--data",
        &data,
        "--json",
    ]);
    failed(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["files"][0]["rejections"][0]["reason"], "REVOKED");

    let alerts: serde_json::Value =
        serde_json::from_str(&ok(&center(&["alerts", "--data", &data, "--json"]))).unwrap();
    let kinds: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["REVOKED", "REVOKED"]);
    // The operator's reason and the time are on record (G9).
    let revoked = &alerts[0];
    assert!(
        revoked["detail"]
            .as_str()
            .unwrap()
            .contains("device stolen from the school gym"),
        "{revoked}"
    );
    assert!(revoked["unix_ms"].as_u64().unwrap() > 0, "{revoked}");
}

#[test]
fn commands_without_a_store_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("nothing").display().to_string();
    for args in [
        vec!["alerts", "--data", &data],
        vec!["revoke", "S-0001", "--reason", "r", "--data", &data],
        vec!["enroll", "--all", "--out-dir", &data, "--data", &data],
        vec!["import", "x.psync", "--data", &data],
    ] {
        let err = failed(&center(&args));
        assert!(err.contains("no center store"), "{args:?}: {err}");
    }
}
