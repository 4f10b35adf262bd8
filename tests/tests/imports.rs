//! Hostile files carried to `center import`, over the real binary (SPEC §7, §13,
//! G3, G7, G8): nothing a file claims is charged to a station unless that station's
//! signature proves it, memory stays bounded whatever the file holds, everything
//! from the file is shown escaped, and a reader that goes away ends the command
//! quietly.

use std::path::Path;

use pollsync_proto::chain::ChainWriter;
use pollsync_proto::convert::event_to_pb;
use pollsync_proto::export::new_export;
use pollsync_proto::{ChainHead, EnrollmentBundle, pb, seal_batch, write_export};
use pollsync_sim::bench::hostile::{run_measuring_peak_mib, write_empty_entries_export};
use pollsync_tests::*;

/// A center initialised and enrolled for a small election (not serving).
fn center(root: &Path) -> (Center, pollsync_election::ElectionDefinition) {
    let (file, def) = small_election(root, 41);
    (Center::init(root, &file), def)
}

fn bundle(center: &Center, station: &str) -> EnrollmentBundle {
    EnrollmentBundle::read(&center.bundle(station)).expect("bundle")
}

/// A batch naming `station` at `sequence`, signed with `signer`'s key.
fn batch_signed_by(
    named: &EnrollmentBundle,
    signer: &EnrollmentBundle,
    station: &str,
    sequence: u64,
) -> pb::SignedBatch {
    let chain = ChainWriter::new(
        named.election_id.clone(),
        named.mode,
        station,
        named.definition_sha256(),
        signer.signing_key().expect("key"),
        ChainHead::GENESIS,
    );
    let mut batch = chain.unsigned(vec![event_to_pb(
        &pollsync_election::StationEvent::Issued {
            contest: "nowhere".into(),
            count: 1,
        },
    )]);
    batch.sequence = sequence;
    seal_batch(chain.key(), &batch)
}

fn no_control_bytes(what: &str, text: &[u8]) {
    assert!(
        !text.iter().any(|&b| b < 0x20 && b != b'\n' || b == 0x7f),
        "{what} prints raw control bytes: {:?}",
        String::from_utf8_lossy(text)
    );
}

#[test]
fn a_forged_file_naming_a_station_is_charged_to_nobody_and_leaves_its_alerts_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let (center, def) = center(root.path());
    let victim = def.stations[0].id.clone();
    let attacker = def.stations[1].id.clone();
    let (v, a) = (bundle(&center, &victim), bundle(&center, &attacker));
    // 1,100 batches naming the victim, signed by another station's key: more than
    // the victim's whole alert quota, in a file of a few hundred kilobytes.
    let forged: Vec<pb::SignedBatch> = (1..=1_100)
        .map(|seq| batch_signed_by(&v, &a, &victim, seq))
        .collect();
    let file = root.path().join("forged.psync");
    write_export(&file, &new_export(&v.election_id, &victim, forged)).expect("write");
    let out = run(center
        .command()
        .args(["import", &file.display().to_string()]));
    assert!(!out.status.success(), "a forged file fails the import");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1100 charged to no station"), "{said}");
    assert!(said.contains("… and 1000 more not listed"), "{said}");
    let alerts = center.json(&["alerts", "--json"]);
    let list = alerts.as_array().expect("alerts");
    assert_eq!(list.len(), 1, "one alert, about the file: {alerts}");
    assert_eq!(list[0]["kind"], "BAD_FILE");
    assert_eq!(list[0]["station"], "");
    assert!(center_tallies(&center).is_empty(), "nothing counted");
}

#[test]
fn a_crafted_50_mb_export_is_refused_within_bounded_memory() {
    let root = tempfile::tempdir().expect("tempdir");
    let (center, _) = center(root.path());
    let file = root.path().join("crafted.psync");
    let bytes = 50 * 1024 * 1024;
    write_empty_entries_export(&file, bytes).expect("crafted file");
    let (out, peak_mib) = run_measuring_peak_mib(center.command().args([
        "import",
        "--json",
        &file.display().to_string(),
    ]))
    .expect("center import runs");
    assert!(!out.status.success(), "refused");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let entries = (bytes - 8) / 2;
    assert_eq!(report["unattributed"], entries, "every entry refused");
    assert_eq!(report["accepted"], 0);
    assert!(
        report["files"][0]["rejections"]
            .as_array()
            .expect("list")
            .len()
            <= 100,
        "the report stays bounded"
    );
    // It once took 7 GB; the bound is one entry plus what is in flight.
    assert!(peak_mib < 128.0, "peak {peak_mib:.0} MiB");
    let alerts = center.json(&["alerts", "--json"]);
    assert_eq!(alerts.as_array().map(Vec::len), Some(1), "{alerts}");
}

#[test]
fn text_from_a_file_is_shown_escaped_and_a_closed_pipe_ends_quietly() {
    let root = tempfile::tempdir().expect("tempdir");
    let (center, def) = center(root.path());
    let s = bundle(&center, &def.stations[0].id);
    let evil = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}S-0001";
    let batches: Vec<pb::SignedBatch> = (1..=150)
        .map(|seq| batch_signed_by(&s, &s, evil, seq))
        .collect();
    let file = root.path().join("evil.psync");
    write_export(&file, &new_export(&s.election_id, evil, batches)).expect("write");
    let f = file.display().to_string();
    for args in [vec!["import", &f], vec!["import", "--json", &f]] {
        let out = run(center.command().args(&args));
        assert!(!out.status.success());
        no_control_bytes("center import", &out.stdout);
        no_control_bytes("center import (stderr)", &out.stderr);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("u{1b}") && !shown.contains('\u{202e}'),
            "{shown}"
        );
    }
    for args in [vec!["alerts"], vec!["alerts", "--json"]] {
        let out = run(center.command().args(&args));
        no_control_bytes("center alerts", &out.stdout);
        assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{202e}'));
    }
    // A reader that stops after one line, while the report (the file named twenty
    // times) is far larger than a pipe holds: the command ends quietly.
    let files = vec![format!("\"{f}\""); 20].join(" ");
    let out = run(std::process::Command::new("sh").args([
        "-c",
        &format!(
            "\"{}\" --data \"{}\" import {files} | head -1",
            bin("center").display(),
            center.data.display()
        ),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
