//! `sim demo` end to end through the real binary: the whole day of the small preset
//! runs to the end, and the results it prints are exactly what the ballots drawn
//! for its seed say, computed here from the generator and the ballot draw alone,
//! independently of the demo's own check against the center's tallies.

use std::process::Command;

use pollsync_sim::ballots::{self, USUAL};
use pollsync_sim::generate::{SMALL, generate};
use serde_json::Value;

/// A seed of its own (not the default one), so the test does not pass by a default.
const SEED: u64 = 7;

fn demo_json(seed: u64) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "demo",
            "--preset",
            "small",
            "--seed",
            &seed.to_string(),
            "--json",
        ])
        .output()
        .expect("sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sim demo failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"))
}

fn figure(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

#[test]
fn the_small_day_ends_with_every_contest_counted_as_the_ballots_say() {
    let report = demo_json(SEED);

    // The truth, from the generator and the ballot draw with the same seed (the
    // ballot seed is the election seed, as `sim demo --help` says).
    let def = generate(&SMALL, SEED).expect("small generates");
    let drawn = ballots::draw(&def, SEED, &USUAL);
    let truth = ballots::truth_per_contest(&drawn);
    let ballots_drawn: u64 = drawn.iter().map(|sc| sc.ballots.len() as u64).sum();

    assert_eq!(report["election"], def.election.id.as_str());
    assert_eq!(figure(&report["seed"], "seed"), SEED);
    assert_eq!(figure(&report["ballot_seed"], "ballot_seed"), SEED);
    assert_eq!(
        figure(&report["stations"], "stations"),
        def.stations.len() as u64
    );
    assert_eq!(figure(&report["ballots"], "ballots"), ballots_drawn);
    assert_eq!(report["truth_matches"], true, "{report:#}");
    assert_eq!(report["audit"]["clean"], true, "{:#}", report["audit"]);
    assert_eq!(report["alerts"], serde_json::json!([]));

    let results = &report["results"];
    assert_eq!(results["election"], def.election.id.as_str());
    let contests = results["contests"]
        .as_array()
        .expect("results.contests is a list");
    assert_eq!(
        contests.len(),
        def.contests.len(),
        "every contest is reported"
    );
    for c in contests {
        let id = c["id"].as_str().expect("contest id");
        let want = truth
            .get(id)
            .unwrap_or_else(|| panic!("contest {id} has no drawn ballots"));
        assert_ne!(c["status"], "pending", "contest {id}: {c:#}");
        let b = &c["ballots"];
        assert_eq!(
            (
                figure(&b["issued"], "issued"),
                figure(&b["returned"], "returned"),
                figure(&b["valid"], "valid"),
                figure(&b["void"], "void"),
            ),
            (want.issued, want.returned, want.valid, want.void),
            "contest {id}: issued, returned, valid, void"
        );
        let contest = def.contest(id).expect("contest in the definition");
        let candidates = c["candidates"].as_array().expect("candidates");
        assert_eq!(candidates.len(), contest.candidates.len(), "contest {id}");
        for r in candidates {
            let cid = r["id"].as_str().expect("candidate id");
            assert_eq!(
                figure(&r["for"], "for"),
                want.for_of(cid),
                "contest {id}: FOR votes of {cid}"
            );
            assert_eq!(
                figure(&r["against"], "against"),
                want.against_of(cid),
                "contest {id}: AGAINST votes of {cid}"
            );
        }
        let write_ins = c["write_ins"].as_array().expect("write_ins");
        assert_eq!(write_ins.len(), want.write_in.len(), "contest {id}");
        for w in write_ins {
            let name = w["name"].as_str().expect("write-in name");
            assert_eq!(
                figure(&w["for"], "for"),
                want.write_in_of(name),
                "contest {id}: FOR votes of write-in {name}"
            );
        }
    }
    let totals = &results["totals"];
    assert_eq!(
        figure(&totals["contests"], "totals.contests"),
        def.contests.len() as u64
    );
    assert!(
        totals["contests_by_status"].get("pending").is_none(),
        "no contest is pending: {totals:#}"
    );
}
