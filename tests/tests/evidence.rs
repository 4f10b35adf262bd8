//! The public record end to end (SPEC §10, G10): a small election with a replaced
//! device, a revoked station and a fork, exported by `center export-evidence` and
//! verified by `pollsync-verify` and by the independent Python verifier
//! (`verify/python/`, written from PROTOCOL.md alone); then one byte flipped in
//! files of every kind must make both fail, naming the step.

use std::path::{Path, PathBuf};
use std::process::Command;

use pollsync_sim::ballots::{self, USUAL};
use pollsync_tests::{Center, Station, bin, ok, record_day, run, small_election};
use pollsync_tests::{copy_dir, python, python_verifier};

/// A day's evidence: every station of a small election records and closes; one
/// device is replaced, one station revoked, one clone forks and is released.
fn day_evidence(root: &Path) -> PathBuf {
    let (file, def) = small_election(root, 5);
    let drawn = ballots::draw(&def, 5, &USUAL);
    let mut center = Center::init(root, &file);
    center.serve();
    let ids: Vec<String> = def.stations.iter().take(4).map(|s| s.id.clone()).collect();
    let stations: Vec<Station> = ids
        .iter()
        .map(|id| Station::init(root, &center, id, center.address()))
        .collect();
    // A clone of the first station seals its own batch 2: a fork.
    let first = &stations[0];
    let contest = def.station(&first.id).unwrap().contests[0].clone();
    first.ok(&["issue", "--contest", &contest, "--count", "1"]);
    first.ok(&["sync", "--timeout-s", "60"]);
    let clone_dir = root.join("clone");
    copy_dir(&first.data, &clone_dir);
    let clone = Station {
        id: first.id.clone(),
        data: clone_dir,
    };
    first.ok(&["issue", "--contest", &contest, "--count", "1"]);
    first.ok(&["sync", "--timeout-s", "60"]);
    clone.ok(&["issue", "--contest", &contest, "--count", "2"]);
    clone.ok(&["seal"]);
    let forked = run(clone.command().args(["sync", "--timeout-s", "20"]));
    assert!(!forked.status.success(), "the clone's batch is a fork");
    for station in &stations[1..] {
        record_day(station, &drawn, root);
        station.ok(&["sync", "--timeout-s", "60"]);
    }
    ok(center.command().args([
        "release",
        &stations[0].id,
        "--reason",
        "clone found and destroyed",
    ]));
    ok(center
        .command()
        .args([
            "enroll",
            &stations[1].id,
            "--replace",
            "--reason",
            "screen broken",
            "--out-dir",
        ])
        .arg(root.join("replacement")));
    ok(center
        .command()
        .args(["revoke", &stations[2].id, "--reason", "device lost"]));
    let out = root.join("evidence");
    ok(center.command().arg("export-evidence").arg(&out));
    out
}

fn files_of(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_of(&path, base, out);
        } else {
            out.push(path.strip_prefix(base).unwrap().to_owned());
        }
    }
}

#[test]
fn the_evidence_of_a_day_verifies_and_any_flipped_byte_is_named() {
    let root = tempfile::tempdir().expect("tempdir");
    let evidence = day_evidence(root.path());
    let python_script = python_verifier();

    // Both verifiers accept the honest evidence, each from its own process.
    let rust = ok(Command::new(bin("pollsync-verify")).arg(&evidence));
    assert!(rust.contains("OK: the evidence of"), "{rust}");
    for step in [
        "V5",
        "V7",
        "V8 forks: 1",
        "V9 standing changes: 3",
        "V10",
        "V12",
    ] {
        assert!(rust.contains(step), "{step} missing:\n{rust}");
    }
    if let Some(script) = &python_script {
        let out = run(Command::new(python()).arg(script).arg(&evidence));
        assert!(
            out.status.success(),
            "the Python verifier refused honest evidence:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // One byte flipped, at several places of every file: both must fail.
    let mut files = Vec::new();
    files_of(&evidence, &evidence, &mut files);
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    let copy = root.path().join("tampered");
    for file in &files {
        let original = std::fs::read(evidence.join(file)).unwrap();
        let len = original.len();
        let mut places = vec![0, len / 3, len / 2, len - 1];
        places.dedup();
        for (n, at) in places.into_iter().enumerate() {
            if copy.exists() {
                std::fs::remove_dir_all(&copy).unwrap();
            }
            copy_dir(&evidence, &copy);
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            std::fs::write(copy.join(file), &bytes).unwrap();
            let failure = pollsync_verify::verify(&copy, None).expect_err(&format!(
                "{} with byte {at} flipped verified",
                file.display()
            ));
            assert!(failure.step.starts_with('V'), "{failure}");
            // The Python verifier on the first place of each file (each run is a
            // process start).
            if n == 0
                && let Some(script) = &python_script
            {
                let out = run(Command::new(python()).arg(script).arg(&copy));
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    !out.status.success() && said.contains("FAIL V"),
                    "python verifier, {} byte {at} flipped: {said}",
                    file.display()
                );
            }
        }
    }
}
