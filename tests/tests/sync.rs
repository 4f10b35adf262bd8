//! G2, G3, G5 across processes: real `center serve` and `station` binaries over mTLS
//! on loopback, checked against a ground truth drawn independently of the sync.

use std::process::Stdio;
use std::time::Duration;

use pollsync_sim::ballots::{self, USUAL};
use pollsync_tests::{
    Center, Station, center_tallies, ok, record_day, run, small_election, truth, wait_for,
};

#[test]
fn every_station_syncs_and_the_center_holds_exactly_the_truth() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 5);
    let drawn = ballots::draw(&def, 5, &USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    let last = def.stations.last().expect("stations").clone();
    for s in &def.stations {
        let station = Station::init(root.path(), &center, &s.id, center.address());
        record_day(&station, &drawn, root.path());
        if s.id == last.id {
            // Before the last station is in, none of its contests is final, and each
            // names it.
            let results = center.json(&["results", "--format", "json"]);
            for c in &last.contests {
                let r = contest_result(&results, c);
                assert_eq!(r["status"], "pending", "{c}: {r}");
                assert!(
                    r["problems"].to_string().contains(&last.id),
                    "{c} must name {}: {r}",
                    last.id
                );
            }
            let status = center.json(&["status", "--json"]);
            for c in status["contests"]["list"].as_array().expect("contests") {
                if last.contests.iter().any(|id| c["id"] == id.as_str()) {
                    assert_eq!(c["not_yet_in"], serde_json::json!([last.id]), "{c}");
                }
            }
        }
        station.ok(&["sync", "--timeout-s", "60"]);
        let status: serde_json::Value =
            serde_json::from_str(&station.ok(&["status", "--json"])).expect("json");
        assert_eq!(
            status["batches"]["sealed"], status["batches"]["acknowledged"],
            "{}",
            s.id
        );
    }
    assert_eq!(center_tallies(&center), truth(&drawn));
    assert!(
        center
            .json(&["alerts", "--json"])
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "honest stations raise no alert"
    );

    let status = center.json(&["status", "--json"]);
    assert_eq!(
        status["stations"]["fully_synced"],
        def.stations.len(),
        "{status}"
    );
    for c in status["contests"]["list"].as_array().expect("contests") {
        assert_eq!(c["not_yet_in"], serde_json::json!([]), "{c}");
    }

    // The results the operators see are the truth, decided.
    let results = center.json(&["results", "--format", "json"]);
    for (contest, t) in ballots::truth_per_contest(&drawn) {
        let r = contest_result(&results, &contest);
        assert_ne!(
            r["status"], "pending",
            "{contest}: every station closed and synced: {r}"
        );
        let seen = [
            &r["ballots"]["issued"],
            &r["ballots"]["returned"],
            &r["ballots"]["valid"],
            &r["ballots"]["void"],
        ];
        let want: [serde_json::Value; 4] = [
            t.issued.into(),
            t.returned.into(),
            t.valid.into(),
            t.void.into(),
        ];
        assert_eq!(
            seen,
            want.iter().collect::<Vec<_>>().as_slice(),
            "{contest}"
        );
        for cand in r["candidates"].as_array().expect("candidates") {
            let id = cand["id"].as_str().expect("id");
            assert_eq!(cand["for"], t.for_of(id), "{contest} {id} FOR");
            assert_eq!(cand["against"], t.against_of(id), "{contest} {id} AGAINST");
        }
    }
}

#[test]
fn killing_the_center_mid_sync_and_syncing_again_gives_exactly_the_truth() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 6);
    let drawn = ballots::draw(&def, 6, &USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    let stations: Vec<Station> = def
        .stations
        .iter()
        .map(|s| {
            let st = Station::init(root.path(), &center, &s.id, center.address());
            record_day(&st, &drawn, root.path());
            st
        })
        .collect();
    // Every station pushes at once; the center dies part-way through.
    let mut children: Vec<_> = stations
        .iter()
        .map(|s| {
            s.command()
                .args(["sync", "--timeout-s", "60"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sync starts")
        })
        .collect();
    wait_for(
        "some batches to reach the center",
        Duration::from_secs(60),
        || {
            let held: u64 = center_tallies(&center)
                .values()
                .flat_map(|c| c.values())
                .map(|t| t.returned)
                .sum();
            (held > 0).then_some(())
        },
    );
    center.kill();
    center.serve();
    for (child, s) in children.iter_mut().zip(&stations) {
        let status = child.wait().expect("sync ends");
        if !status.success() {
            // It gave up while the center was down or cut off: one more sync.
            ok(s.command().args(["sync", "--timeout-s", "60"]));
        }
    }
    for s in &stations {
        ok(s.command().args(["sync", "--timeout-s", "60"]));
    }
    assert_eq!(center_tallies(&center), truth(&drawn));
    assert!(
        center
            .json(&["alerts", "--json"])
            .as_array()
            .is_some_and(|a| a.is_empty())
    );
}

#[test]
fn the_same_batches_by_usb_twice_and_by_network_count_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 7);
    let drawn = ballots::draw(&def, 7, &USUAL);
    let mut center = Center::init(root.path(), &file);
    // Serving while the files are imported: both paths write the same store.
    center.serve();
    let first = &def.stations[0];
    let station = Station::init(root.path(), &center, &first.id, center.address());
    record_day(&station, &drawn, root.path());
    let export = root.path().join("usb.export");
    station.ok(&["export", "--out", &export.display().to_string()]);
    ok(center.command().arg("import").arg(&export));
    let again = run(center.command().args(["import", "--json"]).arg(&export));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let report = String::from_utf8_lossy(&again.stdout);
    assert!(
        report.contains("duplicate"),
        "a second import is all duplicates: {report}"
    );

    // Now the network too: the station learns the center holds everything.
    ok(station.command().args(["sync", "--timeout-s", "30"]));
    let expected = truth(&drawn).remove(&first.id).expect("station's truth");
    assert_eq!(
        center_tallies(&center)
            .remove(&first.id)
            .expect("center holds the station"),
        expected
    );
}

/// One contest's entry of `center results --format json`.
fn contest_result<'a>(results: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    results["contests"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no contest {id} in the results"))
}

#[test]
fn a_cloned_station_that_forks_is_raised_and_quarantined_and_counts_stay_honest() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 8);
    let mut center = Center::init(root.path(), &file);
    center.serve();
    let id = def.stations[0].id.clone();
    let contest = def.stations[0].contests[0].clone();
    let candidate = def.contest(&contest).expect("contest").candidates[0]
        .id
        .clone();
    let original = Station::init(root.path(), &center, &id, center.address());
    original.ok(&["record", "--contest", &contest, "--for", &candidate]);
    original.ok(&["sync", "--timeout-s", "30"]);

    let clone = Station {
        id: id.clone(),
        data: root.path().join("clone"),
    };
    pollsync_tests::copy_dir(&original.data, &clone.data);
    original.ok(&["record", "--contest", &contest, "--for", &candidate]);
    original.ok(&["sync", "--timeout-s", "30"]);
    clone.ok(&["record", "--contest", &contest, "--against", &candidate]);
    clone.ok(&["seal"]);
    let out = run(clone.command().args(["sync", "--timeout-s", "30"]));
    assert!(!out.status.success(), "the clone's sync must fail");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("fork"), "the clone is told why: {said}");

    let alerts = center.json(&["alerts", "--json"]);
    let forks: Vec<_> = alerts
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["kind"] == "FORK" && a["station"] == id.as_str())
        .collect();
    assert_eq!(forks.len(), 1, "one fork alert for {id}: {alerts}");
    // Quarantined: the original is refused too until an operator acts.
    original.ok(&["record", "--contest", &contest, "--for", &candidate]);
    let out = run(original.command().args(["sync", "--timeout-s", "10"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("quarantined"));
    // Only the two honest ballots count.
    let held = center_tallies(&center)
        .remove(&id)
        .expect("station's tallies")
        .remove(&contest)
        .expect("contest");
    assert_eq!(
        (
            held.returned,
            held.for_votes.get(&candidate).copied(),
            held.against.get(&candidate).copied()
        ),
        (2, Some(2), None)
    );
}
