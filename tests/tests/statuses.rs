//! Issue 5's end-to-end check of SPEC §6 over the real `center` and `station` binaries:
//! a small generated election whose day is shaped (pollsync-sim's `draw_with`) so that
//! its contests reach every status — pending, discrepancy, void, invalid, tie, runoff,
//! elected — and `center results --format json` shows exactly the ground truth, the
//! status, the further-ballot list, who is elected and problems an operator can act
//! on. No contest is shown final while one of its stations is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pollsync_election::{ContestOutcome, ElectionDefinition, TallySheet};
use pollsync_sim::ballots::{Day, Outcome, Scenario, USUAL, draw_with};
use pollsync_tests::{Center, Station, record_ballots, small_election, station_with_two_contests};
use serde_json::{Value, json};

const SEED: u64 = 21;

/// FOR votes the discrepancy station's human count adds to the first candidate.
const MISCOUNT_FOR: u64 = 7;

#[test]
fn every_status_is_reached_and_matches_the_ground_truth() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), SEED);
    let shapes = shapes(&def);
    let scenario = shapes
        .iter()
        .fold(Scenario::new(USUAL), |s, (c, o)| s.with(c.clone(), *o));
    let day = draw_with(&def, SEED, &scenario).expect("the day can be shaped");

    // One station of the runoff contest stays away at first: its contests must wait.
    let runoff = shaped(&shapes, Outcome::Runoff);
    let held = def
        .stations_of(&runoff)
        .last()
        .expect("the runoff contest has a station")
        .clone();

    let mut center = Center::init(root.path(), &file);
    center.serve();
    for s in def.stations.iter().filter(|s| s.id != held.id) {
        let station = Station::init(root.path(), &center, &s.id, center.address());
        record_ballots(&station, &day.drawn, root.path());
        close(&station, &day, root.path());
        station.ok(&["sync", "--timeout-s", "60"]);
    }

    let mut seen = BTreeSet::new();

    // 1. The held station has never connected.
    let results = center.json(&["results", "--format", "json"]);
    for c in &def.contests {
        let r = contest_result(&results, &c.id);
        if held.contests.contains(&c.id) {
            assert_pending(
                r,
                &held.id,
                "has neither closed the contest nor finished syncing",
            );
            // A station never heard from is neither closed nor synced.
            let n = def.stations_of(&c.id).count();
            assert_eq!(
                r["stations"],
                json!({"expected": n, "closed": n - 1, "synced": n - 1}),
                "{r}"
            );
            seen.insert("pending".to_string());
        } else {
            assert_final(r, &def, &day, &c.id, shapes.get(&c.id).copied());
        }
    }
    assert_status_agrees(&center, &results, &def, Some(&held.id));

    // 2. It records and syncs everything but has not closed: still not final, even with
    //    every ballot in.
    let station = Station::init(root.path(), &center, &held.id, center.address());
    record_ballots(&station, &day.drawn, root.path());
    station.ok(&["sync", "--timeout-s", "60"]);
    let results = center.json(&["results", "--format", "json"]);
    for c in &held.contests {
        let r = contest_result(&results, c);
        assert_pending(r, &held.id, "has not closed the contest");
        let n = def.stations_of(c).count();
        assert_eq!(
            r["stations"],
            json!({"expected": n, "closed": n - 1, "synced": n}),
            "{r}"
        );
        let t = contest_truth(&day, c);
        assert_eq!(r["ballots"]["returned"], t.returned, "{c}: {r}");
    }
    assert_status_agrees(&center, &results, &def, Some(&held.id));

    // 3. It closes and syncs: each of its contests turns to its real status.
    close(&station, &day, root.path());
    station.ok(&["sync", "--timeout-s", "60"]);
    let results = center.json(&["results", "--format", "json"]);
    for c in &def.contests {
        let r = contest_result(&results, &c.id);
        assert_final(r, &def, &day, &c.id, shapes.get(&c.id).copied());
        seen.insert(r["status"].as_str().expect("status").to_string());
    }
    assert_status_agrees(&center, &results, &def, None);
    let filled: usize = results["contests"]
        .as_array()
        .expect("contests")
        .iter()
        .flat_map(|r| {
            let c = r["candidates"].as_array().expect("candidates").iter();
            c.chain(r["write_ins"].as_array().expect("write_ins"))
        })
        .filter(|e| e["elected"] == true)
        .count();
    assert_eq!(
        results["totals"]["elected"], filled,
        "{}",
        results["totals"]
    );
    let seats: u32 = def.contests.iter().map(|c| c.seats).sum();
    assert_eq!(results["totals"]["seats"], seats, "{}", results["totals"]);

    // The box with more ballots than it handed out (art. 44's 所投的票数多于投票人数):
    // `station` does not refuse a ballot because fewer were issued — the workers enter
    // what they find in the box, and the device's own tally shows returned > issued.
    // So `void` is reached through the ordinary commands, with no alert.
    let void = shaped(&shapes, Outcome::Void);
    let stuffed = day
        .drawn
        .iter()
        .find(|sc| sc.contest == void && sc.truth.returned > sc.issued)
        .expect("one box of the void contest holds more than it handed out");
    let tally = station_tally(root.path(), &stuffed.station, &void);
    assert_eq!(tally["issued"], stuffed.issued, "{tally}");
    assert_eq!(tally["returned"], stuffed.truth.returned, "{tally}");

    let every: BTreeSet<String> = [
        "pending",
        "discrepancy",
        "void",
        "invalid",
        "tie",
        "runoff",
        "elected",
    ]
    .map(String::from)
    .into();
    assert_eq!(seen, every, "every status of SPEC §6 was shown");
    assert!(
        center
            .json(&["alerts", "--json"])
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "stations that record what their boxes hold raise no alert"
    );
}

/// Contest id → the shape it is given: the tie in a contest of 2 or more seats (one
/// seat cannot tie with both over half), then the others in definition order.
fn shapes(def: &ElectionDefinition) -> BTreeMap<String, Outcome> {
    let tie = def
        .contests
        .iter()
        .find(|c| c.seats >= 2)
        .expect("a contest of 2 or more seats");
    let mut out = BTreeMap::from([(tie.id.clone(), Outcome::Tie)]);
    let rest = [
        Outcome::Discrepancy {
            extra_for: MISCOUNT_FOR,
        },
        Outcome::Void,
        Outcome::Invalid,
        Outcome::Runoff,
        Outcome::Elected,
    ];
    let others = def.contests.iter().filter(|c| c.id != tie.id);
    for (c, outcome) in others.zip(rest) {
        out.insert(c.id.clone(), outcome);
    }
    assert_eq!(
        out.len(),
        6,
        "the election has enough contests for every shape"
    );
    out
}

fn shaped(shapes: &BTreeMap<String, Outcome>, outcome: Outcome) -> String {
    shapes
        .iter()
        .find(|(_, o)| **o == outcome)
        .map(|(c, _)| c.clone())
        .expect("shape given")
}

/// Close every contest of the station: with the human tally sheet where the day has
/// one (`--sheet`), else as the records say.
fn close(station: &Station, day: &Day, root: &Path) {
    for sc in day.drawn.iter().filter(|sc| sc.station == station.id) {
        match day.sheet(&station.id, &sc.contest) {
            Some(sheet) => {
                let file = root.join(format!("{}-{}.sheet.json", station.id, sc.contest));
                std::fs::write(&file, serde_json::to_string(sheet).expect("sheet JSON"))
                    .expect("write sheet");
                let out = station
                    .command()
                    .args(["close", "--contest", &sc.contest, "--sheet"])
                    .arg(&file)
                    .output()
                    .expect("close runs");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    String::from_utf8_lossy(&out.stderr).contains("discrepancy"),
                    "the station warns that its sheet differs from its records"
                );
            }
            None => {
                station.ok(&["close", "--contest", &sc.contest, "--from-records"]);
            }
        }
    }
}

/// `station tally --json` of one contest at a station (opened again from its folder).
fn station_tally(root: &Path, station: &str, contest: &str) -> Value {
    let s = Station {
        id: station.to_string(),
        data: root.join(format!("station-{station}")),
    };
    let v: Value = serde_json::from_str(&s.ok(&["tally", "--json"])).expect("tally JSON");
    v["contests"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == contest))
        .cloned()
        .unwrap_or_else(|| panic!("no contest {contest} in {v}"))
}

fn contest_result<'a>(results: &'a Value, id: &str) -> &'a Value {
    results["contests"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no contest {id} in the results"))
}

/// The truth of a contest: every station's drawn figures added up.
fn contest_truth(day: &Day, contest: &str) -> TallySheet {
    let mut t = TallySheet::default();
    for sc in day.drawn.iter().filter(|sc| sc.contest == contest) {
        t.merge(&sc.truth);
    }
    t
}

/// A figure as the problems write it: `2280` → `2,280`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Not final: status pending, the missing station named with what it still owes,
/// nobody elected, no further ballot.
fn assert_pending(r: &Value, station: &str, owes: &str) {
    assert_eq!(r["status"], "pending", "{r}");
    let problems: Vec<&str> = r["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("station {station} ")) && p.contains(owes)),
        "pending must name {station} ({owes}): {r}"
    );
    assert!(
        problems.iter().any(|p| p.contains("not final")),
        "pending says the results are not final: {r}"
    );
    let elected = |key: &str| {
        r[key]
            .as_array()
            .expect(key)
            .iter()
            .any(|c| c["elected"] == true)
    };
    assert!(!elected("candidates") && !elected("write_ins"), "{r}");
    assert_eq!(r["runoff"], Value::Null, "{r}");
    let expected = r["stations"]["expected"].as_u64().expect("expected");
    let closed = r["stations"]["closed"].as_u64().expect("closed");
    assert!(closed < expected, "a station has not closed: {r}");
}

/// Every figure is the ground truth; status, elected, further ballot and problems are
/// what the rule set decides from that truth; and the shape's own claim holds.
fn assert_final(
    r: &Value,
    def: &ElectionDefinition,
    day: &Day,
    contest: &str,
    shape: Option<Outcome>,
) {
    let c = def.contest(contest).expect("contest");
    let t = contest_truth(day, contest);
    let expected: ContestOutcome = day.outcome(def, contest).expect("decided");
    let stations = def.stations_of(contest).count();

    // Figures: the truth, independent of any rule.
    assert_eq!(
        r["stations"],
        json!({"expected": stations, "closed": stations, "synced": stations}),
        "{contest}"
    );
    assert_eq!(
        r["ballots"],
        json!({"issued": t.issued, "returned": t.returned, "valid": t.valid, "void": t.void}),
        "{contest}"
    );
    let turnout = r["turnout"].as_f64().expect("turnout");
    assert!(
        (turnout - t.issued as f64 / c.registered as f64).abs() < 1e-4,
        "{contest}: turnout {turnout}"
    );
    let candidates = r["candidates"].as_array().expect("candidates");
    assert_eq!(candidates.len(), c.candidates.len(), "{contest}");
    for (shown, want) in candidates.iter().zip(&expected.candidates) {
        let id = want.id.as_str();
        assert_eq!(shown["id"], id, "{contest}");
        assert_eq!(shown["for"], t.for_of(id), "{contest} {id} FOR");
        assert_eq!(shown["against"], t.against_of(id), "{contest} {id} AGAINST");
        assert_eq!(shown["elected"], want.elected, "{contest} {id} elected");
    }
    let write_ins: BTreeMap<String, u64> = r["write_ins"]
        .as_array()
        .expect("write_ins")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().expect("name").to_string(),
                w["for"].as_u64().expect("for"),
            )
        })
        .collect();
    assert_eq!(write_ins, t.write_in, "{contest} write-ins");

    // The decision: as the rule set decides from the truth.
    assert_eq!(r["status"], expected.status.as_str(), "{contest}: {r}");
    assert_eq!(
        r["runoff"],
        serde_json::to_value(&expected.runoff).expect("runoff"),
        "{contest}"
    );
    assert_eq!(
        r["write_ins"],
        serde_json::to_value(&expected.write_ins).expect("write-ins"),
        "{contest}"
    );
    assert_eq!(
        r["problems"],
        serde_json::to_value(&expected.problems).expect("problems"),
        "{contest}: no alert adds to them"
    );

    // The shape's own claim, from the truth and the SPEC's words.
    let Some(shape) = shape else { return };
    assert_eq!(
        r["status"],
        shape.status().as_str(),
        "{contest} shaped {shape:?}: {r}"
    );
    let elected = candidates.iter().filter(|c| c["elected"] == true).count();
    let problems = r["problems"].to_string();
    let seats = c.seats as usize;
    match shape {
        Outcome::Elected => assert_eq!(elected, seats, "{contest}: {r}"),
        Outcome::Runoff => {
            assert_eq!(elected, seats - 1, "{contest}: {r}");
            assert_eq!(r["runoff"]["seats"], 1, "{contest}: {r}");
            let list = r["runoff"]["candidates"].as_array().expect("list");
            assert!(list.len() >= 2, "{contest}: {r}");
            for id in list {
                let votes = t.for_of(id.as_str().expect("id"));
                assert!(votes * 2 <= t.issued, "{contest}: {id} passed: {r}");
            }
        }
        Outcome::Tie => {
            assert_eq!(elected, seats - 1, "{contest}: {r}");
            assert_eq!(r["runoff"]["seats"], 1, "{contest}: {r}");
            let tied: Vec<u64> = r["runoff"]["candidates"]
                .as_array()
                .expect("tied")
                .iter()
                .map(|id| t.for_of(id.as_str().expect("id")))
                .collect();
            assert_eq!(tied.len(), 2, "{contest}: {r}");
            assert_eq!(tied[0], tied[1], "{contest}: {r}");
            assert!(tied[0] * 2 > t.issued, "{contest}: {r}");
            assert!(problems.contains(&grouped(tied[0])), "{contest}: {r}");
        }
        Outcome::Invalid => {
            assert_eq!(elected, 0, "{contest}: {r}");
            assert!(t.issued * 2 <= c.registered, "{contest}");
            for figure in [t.issued, c.registered] {
                assert!(problems.contains(&grouped(figure)), "{contest}: {r}");
            }
            assert!(problems.contains("held again"), "{contest}: {r}");
        }
        Outcome::Void => {
            assert_eq!(elected, 0, "{contest}: {r}");
            assert!(t.returned > t.issued, "{contest}");
            for figure in [t.returned, t.issued] {
                assert!(problems.contains(&grouped(figure)), "{contest}: {r}");
            }
            assert!(problems.contains("held again"), "{contest}: {r}");
        }
        Outcome::Discrepancy { extra_for } => {
            assert_eq!(elected, 0, "{contest}: {r}");
            assert_eq!(r["runoff"], Value::Null, "{contest}");
            let human = day
                .sheets
                .iter()
                .find(|s| s.contest == contest)
                .expect("the human sheet");
            let first = c.candidates[0].id.as_str();
            let records = day
                .drawn
                .iter()
                .find(|sc| sc.station == human.station && sc.contest == contest)
                .expect("its station")
                .truth
                .for_of(first);
            let lines: Vec<&str> = r["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                lines.iter().any(|p| p.contains(&human.station)
                    && p.contains(first)
                    && p.contains(&grouped(records + extra_for))
                    && p.contains(&grouped(records))),
                "{contest}: the problems name {} and both figures: {r}",
                human.station
            );
        }
    }
}

/// `center status --json` agrees with the results: each contest's status, the
/// contests by status, and who is not yet in.
fn assert_status_agrees(
    center: &Center,
    results: &Value,
    def: &ElectionDefinition,
    missing: Option<&str>,
) {
    let status = center.json(&["status", "--json"]);
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for r in results["contests"].as_array().expect("contests") {
        *counted
            .entry(r["status"].as_str().expect("status").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        status["contests"]["by_status"],
        serde_json::to_value(&counted).expect("counts"),
        "{status}"
    );
    assert_eq!(
        results["totals"]["contests_by_status"],
        serde_json::to_value(&counted).expect("counts")
    );
    for c in status["contests"]["list"].as_array().expect("contests") {
        let id = c["id"].as_str().expect("id");
        assert_eq!(c["status"], contest_result(results, id)["status"], "{c}");
        let waiting = match missing {
            Some(station)
                if def
                    .station(station)
                    .is_some_and(|s| s.contests.iter().any(|x| x == id)) =>
            {
                json!([station])
            }
            _ => json!([]),
        };
        assert_eq!(c["not_yet_in"], waiting, "{c}");
    }
}

/// Issue 13, item 1: both levels are counted separately at a station that serves
/// two, so it closes them at different times. Once its first contest is closed and
/// synced, that contest shows the station as reporting, everywhere alike (`center
/// status`, `center results`), while the second still waits for it; once the second
/// is closed, the station is fully in.
#[test]
fn a_station_closing_its_two_contests_at_different_times_reports_each_when_closed() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), SEED);
    let s = station_with_two_contests(&def);
    let (first, second) = (s.contests[0].clone(), s.contests[1].clone());
    let drawn = pollsync_sim::ballots::draw(&def, SEED, &USUAL);
    let mine: Vec<_> = drawn.into_iter().filter(|sc| sc.station == s.id).collect();

    let mut center = Center::init(root.path(), &file);
    center.serve();
    let station = Station::init(root.path(), &center, &s.id, center.address());
    record_ballots(&station, &mine, root.path());
    station.ok(&["close", "--contest", &first, "--from-records"]);
    station.ok(&["sync", "--timeout-s", "60"]);

    let in_status = |status: &Value, contest: &str| -> bool {
        let c = status["contests"]["list"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == contest))
            .unwrap_or_else(|| panic!("no contest {contest} in the status"));
        let missing: Vec<&str> = c["not_yet_in"]
            .as_array()
            .expect("not_yet_in")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        !missing.contains(&s.id.as_str())
    };
    let in_results = |results: &Value, contest: &str| -> (u64, u64) {
        let r = contest_result(results, contest);
        (
            r["stations"]["closed"].as_u64().expect("closed"),
            r["stations"]["synced"].as_u64().expect("synced"),
        )
    };
    let station_of = |status: &Value| -> Value {
        status["stations"]["list"]
            .as_array()
            .and_then(|a| a.iter().find(|st| st["station"] == s.id.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("no station {} in the status", s.id))
    };

    let status = center.json(&["status", "--json"]);
    let results = center.json(&["results", "--format", "json"]);
    assert!(
        in_status(&status, &first),
        "{first}: the station reports: {status}"
    );
    assert!(!in_status(&status, &second), "{second}: not yet: {status}");
    assert_eq!(in_results(&results, &first), (1, 1), "{first}");
    assert_eq!(in_results(&results, &second).0, 0, "{second}");
    let st = station_of(&status);
    assert_eq!(st["fully_synced"], false, "{st}");

    station.ok(&["close", "--contest", &second, "--from-records"]);
    station.ok(&["sync", "--timeout-s", "60"]);
    let status = center.json(&["status", "--json"]);
    let results = center.json(&["results", "--format", "json"]);
    for contest in [&first, &second] {
        assert!(in_status(&status, contest), "{contest}: {status}");
        assert_eq!(in_results(&results, contest), (1, 1), "{contest}");
    }
    let st = station_of(&status);
    assert_eq!(st["fully_synced"], true, "{st}");
}
