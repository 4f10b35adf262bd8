//! Test elections never mix with official ones (SPEC §10): a rehearsal of the
//! same election (same id, same stations, `mode = "test"`) run beside the official
//! center, over the real binaries. Its device cannot reach the official center, its
//! export file is refused by name at import, its bundle cannot be passed off as an
//! official one, and its evidence fails a verifier asked for the official election.
//! Nothing of it changes what the official center holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use pollsync_election::Mode;
use pollsync_sim::ballots::{self, USUAL};
use pollsync_sim::generate::{Preset, SMALL, generate_to_file};
use pollsync_tests::python_verifier;
use pollsync_tests::{Center, Station, bin, center_heads, ok, record_day, run};

const SEED: u64 = 61;

/// The election of `SMALL` by `SEED` in `mode`, written to `root/election.toml`.
fn election(root: &Path, mode: Mode) -> (PathBuf, pollsync_election::ElectionDefinition) {
    std::fs::create_dir_all(root).expect("folder");
    let path = root.join("election.toml");
    // The official election groups ballots as the law asks; the rehearsal may
    // seal them one by one (K = 1 is allowed in test mode only).
    let preset = match mode {
        Mode::Official => Preset {
            mode,
            min_ballots_per_batch: pollsync_election::batching::DEFAULT_MIN_BALLOTS_PER_BATCH,
            ..SMALL
        },
        Mode::Test => Preset { mode, ..SMALL },
    };
    let def = generate_to_file(&preset, SEED, &path).expect("election");
    (path, def)
}

/// What the official center shows the public and its operators: its results and
/// its alerts.
fn official_state(center: &Center) -> (serde_json::Value, serde_json::Value) {
    (
        center.json(&["results", "--format", "json"]),
        center.json(&["alerts", "--json"]),
    )
}

#[test]
fn a_rehearsal_never_counts_at_the_official_center_and_every_refusal_names_the_mode() {
    let root = tempfile::tempdir().expect("tempdir");
    let (official_file, def) = election(&root.path().join("official"), Mode::Official);
    let (test_file, test_def) = election(&root.path().join("test"), Mode::Test);
    assert_eq!(
        def.election.id, test_def.election.id,
        "one election, two modes"
    );
    let mut official = Center::init(&root.path().join("official"), &official_file);
    let mut rehearsal = Center::init(&root.path().join("test"), &test_file);
    official.serve();
    rehearsal.serve();

    // The official day: one station syncs honestly.
    let drawn = ballots::draw(&def, SEED, &USUAL);
    let honest = Station::init(
        &root.path().join("official"),
        &official,
        &def.stations[0].id,
        official.address(),
    );
    record_day(&honest, &drawn, root.path());
    honest.ok(&["sync", "--timeout-s", "60"]);
    let before = official_state(&official);
    let heads_before = center_heads(&official);
    assert!(heads_before[&def.stations[0].id] > 0, "{heads_before:?}");

    // A rehearsal device of another station, pointed at the official center by
    // mistake: its test certificate is not the official CA's, so nothing it
    // sealed is taken, whatever it tries.
    let id = def.stations[1].id.clone();
    let device = Station::init(
        &root.path().join("test"),
        &rehearsal,
        &id,
        official.address(),
    );
    let shown = device.ok(&["status"]);
    assert!(shown.contains("(TEST election"), "{shown}");
    record_day(&device, &drawn, root.path());
    let pushed = run(device.command().args(["sync", "--timeout-s", "5"]));
    assert!(!pushed.status.success(), "the official center refuses it");
    assert_eq!(official_state(&official), before);

    // Its export file, carried to the official center: refused entry by entry,
    // naming the mode; charged to no station; one BAD_FILE alert about the file.
    let file = root.path().join("rehearsal.psync");
    device.ok(&["export", "--out", &file.display().to_string()]);
    let imported = run(official
        .command()
        .args(["import", &file.display().to_string()]));
    assert!(
        !imported.status.success(),
        "a rehearsal's file fails the import"
    );
    let said = String::from_utf8_lossy(&imported.stdout);
    assert!(
        said.contains("is of mode \"test\", this center counts the official election")
            && said.contains("test and official elections never mix"),
        "{said}"
    );
    let (results, alerts) = official_state(&official);
    assert_eq!(results, before.0, "the results did not move");
    assert_eq!(center_heads(&official), heads_before);
    let kinds: Vec<(&str, &str)> = alerts
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or(""),
                a["station"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(kinds, vec![("BAD_FILE", "")], "{alerts}");

    // The rehearsal's bundle, relabelled official, or carrying the official
    // definition: `station init` refuses both, naming the mode.
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rehearsal.bundle(&id)).expect("bundle"))
            .expect("JSON");
    let mut relabelled = bundle.clone();
    relabelled["mode"] = "official".into();
    let mut redefined = bundle.clone();
    redefined["election_toml"] = std::fs::read_to_string(&official_file)
        .expect("definition")
        .into();
    for (name, forged, expected) in [
        (
            "relabelled",
            relabelled,
            "ca_cert_pem names mode \"test\", but the bundle's mode is \"official\"",
        ),
        (
            "redefined",
            redefined,
            "its certificates are of mode \"test\" but its election definition says mode = \"official\"",
        ),
    ] {
        let path = root.path().join(format!("{name}.bundle.json"));
        std::fs::write(&path, serde_json::to_vec(&forged).expect("JSON")).expect("write");
        let data = root.path().join(format!("device-{name}"));
        let out = run(Command::new(bin("station"))
            .arg("--data")
            .arg(&data)
            .args(["init", "--bundle"])
            .arg(&path));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.contains("never mix"), "{name}: {err}");
    }

    // The rehearsal's evidence verifies as what it is, and fails any verifier
    // asked for the official election, at V1.
    let evidence = root.path().join("rehearsal-evidence");
    ok(rehearsal
        .command()
        .args(["export-evidence", &evidence.display().to_string()]));
    let plain = ok(Command::new(bin("pollsync-verify")).arg(&evidence));
    assert!(plain.contains(&format!("({})", "test")), "{plain}");
    let asked = run(Command::new(bin("pollsync-verify"))
        .args(["--mode", "official"])
        .arg(&evidence));
    assert_eq!(asked.status.code(), Some(1));
    let err = String::from_utf8_lossy(&asked.stderr);
    assert!(
        err.contains("FAIL V1 election.toml: the evidence is of a test election"),
        "{err}"
    );
    ok(Command::new(bin("pollsync-verify"))
        .args(["--mode", "test"])
        .arg(&evidence));
    if let Some(script) = python_verifier() {
        let python = pollsync_tests::python();
        let out = run(Command::new(&python)
            .arg(&script)
            .args(["--mode", "official"])
            .arg(&evidence));
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("FAIL V1 election.toml"), "{said}");
        assert!(said.contains("test election"), "{said}");
        let out = run(Command::new(&python).arg(&script).arg(&evidence));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // And the official center's own evidence is official.
    let official_evidence = root.path().join("official-evidence");
    ok(official
        .command()
        .args(["export-evidence", &official_evidence.display().to_string()]));
    ok(Command::new(bin("pollsync-verify"))
        .args(["--mode", "official"])
        .arg(&official_evidence));
    official.kill();
    rehearsal.kill();
}
