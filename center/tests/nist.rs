//! `center results --format nist` against the published JSON Schema of NIST SP
//! 1500-100 v2 (`docs/standards/`), and against the results it restates: the counts
//! per station and per electoral district are the center's, the status says whether
//! every station reports, and a test election says so.

mod support;

use std::process::Command;

use pollsync_center::ingest;
use pollsync_election::Mark::{Against as A, For as F, None as N};
use pollsync_election::{StationEvent, TallySheet};
use pollsync_proto::pb::AckKind;
use serde_json::Value;
use support::*;

const SCHEMA: &str = include_str!("../../docs/standards/NIST_V2_election_results_reporting.json");

fn results(center: &Center, format: &str) -> Value {
    let out = Command::new(center_bin())
        .args(["--data"])
        .arg(&center.data)
        .args(["results", "--format", format])
        .output()
        .expect("center runs");
    assert!(
        out.status.success(),
        "center results --format {format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Every way `report` breaks the schema, one line each.
fn schema_errors(report: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    let validator = jsonschema::draft4::new(&schema).expect("the schema compiles");
    validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// `center results --format nist`, checked against the schema.
fn valid_report(center: &Center) -> Value {
    let report = results(center, "nist");
    let errors = schema_errors(&report);
    assert!(
        errors.is_empty(),
        "schema violations:\n{}",
        errors.join("\n")
    );
    report
}

/// The vote count of `selection` at `gpu` of `kind` (`total`, or `other` with
/// `OtherType` `against`).
fn count(report: &Value, selection: &str, gpu: &str, against: bool) -> Option<u64> {
    let contests = report["Election"][0]["Contest"].as_array()?;
    let sel = contests
        .iter()
        .flat_map(|c| c["ContestSelection"].as_array().into_iter().flatten())
        .find(|s| s["@id"] == selection)?;
    sel["VoteCounts"]
        .as_array()?
        .iter()
        .find(|v| {
            v["GpUnitId"] == gpu
                && if against {
                    v["OtherType"] == "against"
                } else {
                    v["Type"] == "total"
                }
        })
        .and_then(|v| v["Count"].as_u64())
}

fn contest<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["Election"][0]["Contest"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["@id"] == format!("contest-{id}")))
        .unwrap_or_else(|| panic!("contest {id} in the report"))
}

fn closing(events: &[StationEvent], contest: &str) -> StationEvent {
    let sheet: TallySheet = truth(events).remove(contest).unwrap_or_default();
    close(contest, sheet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nist_report_is_valid_and_restates_the_counts_per_station_and_district() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.data).expect("ingest starts");
    let mut s1 = center.chain("S-0001");
    let mut s2 = center.chain("S-0002");
    let day1 = vec![
        issued("D-001", 4),
        issued("T-001", 2),
        ballot(1, "D-001", &[F, A, N], &[]),
        ballot(2, "D-001", &[F, F, F], &[]), // void: three FOR for two seats
        ballot(3, "D-001", &[N, F, N], &["王五"]),
        ballot(4, "T-001", &[A, F], &[]),
        ballot(5, "T-001", &[F, N], &[]),
    ];
    let day2 = vec![
        issued("D-001", 1),
        ballot(11, "D-001", &[A, F, N], &["王五"]),
    ];
    let mut closed1 = day1.clone();
    closed1.push(closing(&day1, "D-001"));
    closed1.push(closing(&day1, "T-001"));
    for (peer, batch) in [("S-0001", s1.batch(&closed1)), ("S-0002", s2.batch(&day2))] {
        let ack = h.submit(peer, batch).await.expect("the writer answers");
        assert_eq!(ack.kind(), AckKind::Accepted, "{ack:?}");
    }

    let report = valid_report(&center);
    assert_eq!(report["@type"], "ElectionResults.ElectionReport");
    assert_eq!(
        report["Status"], "unofficial-partial",
        "S-0002 has not closed"
    );
    assert_eq!(report["IsTest"], true, "the fixture is a test election");

    // Per station: the center's tallies of each station's ballots.
    let t1 = truth(&day1);
    let t2 = truth(&day2);
    for (station, t) in [("S-0001", &t1), ("S-0002", &t2)] {
        let gpu = format!("gpu-station-{station}");
        let d = &t["D-001"];
        assert_eq!(
            count(&report, "sel-D-001-1", &gpu, false),
            Some(d.for_of("D-001-1"))
        );
        assert_eq!(
            count(&report, "sel-D-001-1", &gpu, true),
            Some(d.against_of("D-001-1"))
        );
        assert_eq!(
            count(&report, "sel-D-001-2", &gpu, false),
            Some(d.for_of("D-001-2"))
        );
    }
    // Per district: what `center results --format json` says.
    let json = results(&center, "json");
    let d001 = json["contests"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == "D-001"))
        .expect("D-001 in the results");
    for cand in d001["candidates"].as_array().expect("candidates") {
        let id = cand["id"].as_str().expect("id");
        let sel = format!("sel-{id}");
        assert_eq!(
            count(&report, &sel, "gpu-district-D-001", false),
            cand["for"].as_u64()
        );
        assert_eq!(
            count(&report, &sel, "gpu-district-D-001", true),
            cand["against"].as_u64()
        );
    }
    // The write-in name, with its votes at each station and in the district.
    let write_in = contest(&report, "D-001")["ContestSelection"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["IsWriteIn"] == true))
        .expect("a write-in selection");
    let write_in_id = write_in["@id"].as_str().expect("id");
    assert_eq!(
        count(&report, write_in_id, "gpu-district-D-001", false),
        Some(2)
    );
    assert_eq!(
        count(&report, write_in_id, "gpu-station-S-0001", false),
        Some(1)
    );
    // Void ballots are overvotes; ballots returned are the district's ballots cast.
    let other = contest(&report, "D-001")["OtherCounts"]
        .as_array()
        .expect("other counts");
    let overvotes_at = |gpu: &str| {
        other
            .iter()
            .find(|o| o["GpUnitId"] == gpu)
            .and_then(|o| o["Overvotes"].as_u64())
    };
    assert_eq!(overvotes_at("gpu-station-S-0001"), Some(1));
    assert_eq!(
        overvotes_at("gpu-district-D-001"),
        d001["ballots"]["void"].as_u64()
    );
    // T-001 is served by S-0001 and S-0002; only S-0001 reports.
    let t001 = contest(&report, "T-001");
    assert_eq!(
        (
            t001["SubUnitsReported"].as_u64(),
            t001["TotalSubUnits"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(t001["VotesAllowed"], 1);

    // Every station closes every contest: the report is complete, and still valid.
    let mut s3 = center.chain("S-0003");
    let closes2 = vec![
        closing(&day2, "D-001"),
        close("T-001", TallySheet::default()),
    ];
    let closes3 = vec![
        close("D-001", TallySheet::default()),
        close("T-002", TallySheet::default()),
    ];
    for (peer, batch) in [
        ("S-0002", s2.batch(&closes2)),
        ("S-0003", s3.batch(&closes3)),
    ] {
        let ack = h.submit(peer, batch).await.expect("the writer answers");
        assert_eq!(ack.kind(), AckKind::Accepted, "{ack:?}");
    }
    h.shutdown();
    writer.join().expect("the writer ends");
    let report = valid_report(&center);
    assert_eq!(report["Status"], "unofficial-complete");
}

#[test]
fn a_report_that_breaks_the_schema_is_caught() {
    // The validation is real: a report without its required status fails it.
    let center = Center::new();
    let mut report = results(&center, "nist");
    assert!(schema_errors(&report).is_empty());
    report.as_object_mut().expect("an object").remove("Status");
    assert!(
        !schema_errors(&report).is_empty(),
        "a missing Status must fail"
    );
    report["Status"] = "final".into();
    assert!(
        !schema_errors(&report).is_empty(),
        "an unknown Status must fail"
    );
}
