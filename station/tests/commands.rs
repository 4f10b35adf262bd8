//! Every station command as an election worker uses it: the real binary, its output,
//! its refusals.

mod support;

use support::{contest, enrolled, write};

#[test]
fn a_worker_records_issues_cancels_and_closes() {
    let s = enrolled("S-0001");
    s.ok(&["issue", "--contest", "D-001", "--count", "3"]);
    let a = s
        .ok(&["record", "--contest", "D-001", "--for", "D-001-1,D-001-2"])
        .trim()
        .to_string();
    assert_eq!(a.len(), 32, "a ballot id is 32 hex characters: {a}");
    s.ok(&[
        "record",
        "--contest",
        "D-001",
        "--for",
        "D-001-1",
        "--against",
        "D-001-3",
        "--write-in",
        "孙立",
    ]);
    // Three FOR votes for two seats: void.
    s.ok(&[
        "record",
        "--contest",
        "D-001",
        "--for",
        "D-001-1,D-001-2,D-001-3",
    ]);
    let mistake = s
        .ok(&["record", "--contest", "D-001", "--for", "D-001-3"])
        .trim()
        .to_string();
    s.ok(&["cancel", &mistake, "--reason", "entered twice"]);

    let t = s.tally();
    let d = contest(&t, "D-001");
    assert_eq!(
        (
            d["issued"].as_u64(),
            d["returned"].as_u64(),
            d["valid"].as_u64(),
            d["void"].as_u64()
        ),
        (Some(3), Some(3), Some(2), Some(1))
    );
    assert_eq!(d["for"]["D-001-1"], 2);
    assert_eq!(d["for"]["D-001-2"], 1);
    assert_eq!(
        d["for"]["D-001-3"], 0,
        "the cancelled ballot and the void one add no votes"
    );
    assert_eq!(d["against"]["D-001-3"], 1);
    assert_eq!(d["write_in"]["孙立"], 1);
    assert_eq!(d["closed"], false);
    assert_eq!(t["station"], "S-0001");

    let closed = s.ok(&["close", "--contest", "D-001", "--from-records"]);
    assert!(closed.contains("D-001"), "{closed}");
    assert_eq!(contest(&s.tally(), "D-001")["closed"], true);

    // After close: nothing more for that contest, with a clear reason.
    for args in [
        vec!["record", "--contest", "D-001", "--for", "D-001-1"],
        vec!["issue", "--contest", "D-001", "--count", "1"],
        vec!["cancel", a.as_str(), "--reason", "late"],
        vec!["close", "--contest", "D-001", "--from-records"],
    ] {
        let err = s.fails(&args);
        assert!(
            err.contains("D-001") && err.contains("closed"),
            "{args:?}: {err}"
        );
    }
    // The other contest is still open.
    s.ok(&["record", "--contest", "T-001", "--for", "T-001-2"]);
    let status = s.status();
    assert_eq!(status["closed"], serde_json::json!(["D-001"]));
    // The zero report `station init` opened the log with, then what was recorded.
    assert_eq!(status["events"]["pending"], 1 + 7 + 1);
    // Of them, the five ballots wait for their seal (the cancel rides with the
    // ballot it withdraws).
    assert_eq!(status["ballots_waiting"], 5);
}

#[test]
fn the_door_refuses_bad_ballots_with_the_reason_and_writes_nothing() {
    let s = enrolled("S-0001");
    let cases: &[(&[&str], &str)] = &[
        (
            &["record", "--contest", "T-002", "--for", "T-002-1"],
            "T-002",
        ),
        (&["record", "--contest", "X-999"], "X-999"),
        (
            &["record", "--contest", "D-001", "--for", "T-001-1"],
            "T-001-1",
        ),
        (
            &[
                "record",
                "--contest",
                "D-001",
                "--for",
                "D-001-1",
                "--against",
                "D-001-1",
            ],
            "D-001-1",
        ),
        (
            &["record", "--contest", "D-001", "--for", "D-001-1,D-001-1"],
            "D-001-1",
        ),
        (
            &["record", "--contest", "D-001", "--write-in", "   "],
            "write-in",
        ),
        (
            &[
                "record",
                "--contest",
                "D-001",
                "--write-in",
                &"长".repeat(51),
            ],
            "50",
        ),
        (&["issue", "--contest", "D-001", "--count", "0"], "count"),
        (&["issue", "--contest", "D-001", "--count", "-5"], "count"),
        (
            &["issue", "--contest", "D-001", "--count", "100000000"],
            "100,000",
        ),
        (&["cancel", "nothex", "--reason", "x"], "32 hex"),
        (
            &[
                "cancel",
                "00000000000000000000000000000000",
                "--reason",
                "x",
            ],
            "not recorded",
        ),
    ];
    for (args, names) in cases {
        let err = s.fails(args);
        assert!(err.contains(names), "{args:?} should name {names:?}: {err}");
    }
    let status = s.status();
    assert_eq!(
        status["events"]["pending"], 1,
        "nothing was written but the zero report `station init` opened the log with"
    );
    assert_eq!(status["events"]["sealed"], 0);
}

#[test]
fn close_with_a_human_tally_sheet_keeps_it_and_warns_of_differences() {
    let s = enrolled("S-0001");
    s.ok(&["issue", "--contest", "T-001", "--count", "2"]);
    s.ok(&["record", "--contest", "T-001", "--for", "T-001-1"]);
    s.ok(&["record", "--contest", "T-001", "--for", "T-001-1"]);
    let sheet = s.path("sheet.json");
    write(
        &sheet,
        r#"{"issued": 2, "returned": 2, "valid": 2, "void": 0, "for": {"T-001-1": 1, "T-001-2": 1}}"#,
    );
    let out = s.run(&[
        "close",
        "--contest",
        "T-001",
        "--sheet",
        &sheet.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("T-001-1") && warning.contains("discrepancy"),
        "{warning}"
    );
    assert_eq!(contest(&s.tally(), "T-001")["closed"], true);

    // A sheet that is not a tally sheet is refused, naming the file; nothing closes.
    let bad = s.path("bad.json");
    write(&bad, r#"{"issued": 2, "retuned": 2}"#);
    let err = s.fails(&[
        "close",
        "--contest",
        "D-001",
        "--sheet",
        &bad.display().to_string(),
    ]);
    assert!(err.contains("bad.json") && err.contains("retuned"), "{err}");
    assert_eq!(contest(&s.tally(), "D-001")["closed"], false);
}

#[test]
fn init_refuses_to_overwrite_and_commands_need_init() {
    let s = enrolled("S-0002");
    let err = s.fails(&["init", "--bundle", &s.bundle.display().to_string()]);
    assert!(err.contains("S-0002") && err.contains("already"), "{err}");
    let other = support::bundle_for("S-0001");
    let err = other.fails(&["record", "--contest", "D-001"]);
    assert!(err.contains("station init"), "{err}");
    let err = other.fails(&["init", "--bundle", "/nonexistent/bundle"]);
    assert!(err.contains("/nonexistent/bundle"), "{err}");
    let err = other.fails(&[
        "init",
        "--bundle",
        &other.bundle.display().to_string(),
        "--center",
        "nowhere",
    ]);
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[test]
fn the_store_and_the_bundle_secrets_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = enrolled("S-0001");
    s.ok(&["record", "--contest", "D-001"]);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&s.data), 0o700);
    assert_eq!(mode(&s.data.join("station.db")), 0o600);
}

#[test]
fn sealed_batches_chain_and_export_carries_the_unacknowledged_ones() {
    let s = enrolled("S-0001");
    for _ in 0..5 {
        s.ok(&["record", "--contest", "D-001", "--for", "D-001-2"]);
    }
    let sealed: serde_json::Value = serde_json::from_str(&s.ok(&["seal", "--json"])).expect("json");
    assert_eq!(sealed["sealed"][0]["ballots"], 5);
    s.ok(&["close", "--contest", "D-001", "--from-records"]);
    let out = s.path("S-0001.export");
    s.ok(&["export", "--out", &out.display().to_string()]);
    let export = pollsync_proto::read_export(&out).expect("export reads");
    assert_eq!(export.station_id, "S-0001");
    assert_eq!(
        export.batches.len(),
        2,
        "the ballots' batch and the close's"
    );
    let head =
        pollsync_proto::check_chain("test-2021", "S-0001", &export.batches).expect("a valid chain");
    assert_eq!(head.sequence, 2);
    // Every batch is signed by the key in the station's certificate.
    let bundle = pollsync_proto::EnrollmentBundle::read(&s.bundle).expect("bundle");
    let key = pollsync_proto::verifying_key_from_cert_der(&bundle.station_cert_der().expect("der"))
        .expect("key");
    pollsync_proto::verify_batches(&key, &export.batches).expect("signatures verify");
    let status = s.status();
    assert_eq!(status["batches"]["sealed"], 2);
    assert_eq!(status["events"]["pending"], 0);
    assert_eq!(
        contest(&s.tally(), "D-001")["for"]["D-001-2"],
        5,
        "the tally reads sealed batches too"
    );
}
