//! `sim bench` runs its measurements end to end and reports them in the JSON shape
//! of SPEC §7. Only the cheap ones run here (P4 station import, P5 catch-up), and
//! only the report is checked, never a timing: each measurement itself fails if
//! what it measured is wrong (every ballot imported, every ballot counted at the
//! center), so a passing run means the figures are of correct work.

use std::process::Command;

#[test]
fn bench_reports_p4_and_p5_in_the_spec_json_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["bench", "--only", "p4,P5", "--json", "--dir"])
        .arg(dir.path().join("bench"))
        .output()
        .expect("sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Exit 1 only means a target did not hold on this (debug, busy) build.
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "sim bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let figures = figures.as_array().expect("an array");
    let ids: Vec<&str> = figures.iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(ids, ["P4", "P5"]);
    for (f, unit, target) in [
        (&figures[0], "ballots/s", 100_000.0),
        (&figures[1], "ms", 2_000.0),
    ] {
        assert!(f["measured"].as_f64().is_some_and(|m| m > 0.0), "{f}");
        assert_eq!(f["unit"], unit, "{f}");
        assert_eq!(f["target"].as_f64(), Some(target), "{f}");
        assert!(f["baseline"].is_null(), "{f}");
        let holds = f["holds"].as_bool().expect("holds is a bool");
        let m = f["measured"].as_f64().unwrap_or_default();
        assert_eq!(
            holds,
            if unit == "ms" {
                m <= target
            } else {
                m >= target
            },
            "{f}"
        );
    }
    // The exit code says whether every target held.
    let all_hold = figures.iter().all(|f| f["holds"] == true);
    assert_eq!(out.status.success(), all_hold);
}

#[test]
fn an_unknown_measurement_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["bench", "--only", "P9"])
        .output()
        .expect("sim runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("P9") && err.contains("P1, P1PG, P2, P3, P4, P5, P6, P7"),
        "{err}"
    );
}
