//! Tests of loading: a good definition loads (and round-trips), and every kind of
//! mistake is reported with its file, exact path and reason, all at once.

use super::*;
use crate::definition::{Gender, Level, StationKind, UnitKind};

const GOOD: &str = r#"
[election]
id = "beichen-2021"
name = "北辰区区、镇两级人大代表换届选举"
date = "2021-11-01"
rules = "prc-direct"

[[unit]]
id = "xiditou"
name = "西堤头镇"
kind = "town"

[[unit]]
id = "guoyuan"
name = "果园新村街道"
kind = "street"

[[contest]]
id = "D-001"
level = "district"
unit = "xiditou"
name = "区级第1选区"
seats = 2
registered = 2280
candidates = [
  { id = "D-001-1", name = "张红", gender = "F", ethnicity = "汉族", party = "中共", incumbent = true },
  { id = "D-001-2", name = "李明", gender = "M", ethnicity = "回族", party = "群众" },
  { id = "D-001-3", name = "王刚", gender = "M", ethnicity = "汉族", party = "中共" },
]

[[contest]]
id = "T-014"
level = "town"
unit = "xiditou"
name = "镇级第14选区"
seats = 1
registered = 1200
candidates = [
  { id = "T-014-1", name = "赵丽", gender = "F", ethnicity = "汉族", party = "中共" },
  { id = "T-014-2", name = "孙强", gender = "M", ethnicity = "汉族", party = "民革" },
]

[[contest]]
id = "D-002"
level = "district"
unit = "guoyuan"
name = "区级第2选区"
seats = 3
registered = 5000
[[contest.candidates]]
id = "D-002-1"
name = "甲"
gender = "F"
ethnicity = "满族"
party = "中共"
[[contest.candidates]]
id = "D-002-2"
name = "乙"
gender = "M"
ethnicity = "汉族"
party = "中共"
[[contest.candidates]]
id = "D-002-3"
name = "丙"
gender = "M"
ethnicity = "汉族"
party = "中共"
[[contest.candidates]]
id = "D-002-4"
name = "丁"
gender = "F"
ethnicity = "汉族"
party = "中共"

[[station]]
id = "S-0001"
name = "西堤头镇第1投票站"
kind = "fixed"
contests = ["D-001", "T-014"]

[[station]]
id = "S-0002"
name = "西堤头镇流动票箱"
kind = "mobile"
contests = ["D-001"]

[[station]]
id = "S-0003"
name = "果园新村第1投票站"
kind = "fixed"
contests = ["D-002"]
"#;

/// (path, reason) of every mistake, in the order reported.
fn mistakes(text: &str) -> Vec<(String, String)> {
    let errors = load("beichen.toml", text).expect_err("definition should be refused");
    errors
        .0
        .into_iter()
        .map(|e| {
            assert_eq!(e.file, "beichen.toml");
            (e.path, e.reason)
        })
        .collect()
}

fn paths(text: &str) -> Vec<String> {
    mistakes(text).into_iter().map(|(p, _)| p).collect()
}

fn reason_at(text: &str, path: &str) -> String {
    mistakes(text)
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no mistake at {path}: {:?}", mistakes(text)))
}

#[test]
fn good_definition_loads() {
    let def = load("beichen.toml", GOOD).unwrap();
    assert_eq!(def.election.id, "beichen-2021");
    assert_eq!(def.units.len(), 2);
    assert_eq!(def.units[1].kind, UnitKind::Street);
    assert_eq!(def.contests.len(), 3);
    let d1 = def.contest("D-001").unwrap();
    assert_eq!(d1.level, Level::District);
    assert_eq!((d1.seats, d1.registered), (2, 2280));
    assert_eq!(d1.candidates[0].gender, Gender::F);
    assert!(d1.candidates[0].incumbent);
    assert!(!d1.candidates[1].incumbent, "incumbent defaults to false");
    assert_eq!(def.contest("D-002").unwrap().candidates.len(), 4);
    assert_eq!(def.stations[1].kind, StationKind::Mobile);
    assert_eq!(def.stations_of("D-001").count(), 2);
}

#[test]
fn definition_round_trips_through_toml() {
    let def = load("beichen.toml", GOOD).unwrap();
    let again = load("again.toml", &def.to_toml_string()).unwrap();
    assert_eq!(def, again);
}

#[test]
fn bare_toml_date_is_accepted() {
    let text = GOOD.replace("date = \"2021-11-01\"", "date = 2021-11-01");
    assert_eq!(load("b.toml", &text).unwrap().election.date, "2021-11-01");
}

#[test]
fn syntax_error_gives_line_and_column() {
    let text = GOOD.replace("seats = 2\n", "seats = = 2\n");
    let errors = mistakes(&text);
    assert_eq!(errors.len(), 1);
    let (path, reason) = &errors[0];
    assert_eq!(path, "");
    assert!(
        reason.starts_with("not valid TOML: line 23, column 9"),
        "{reason}"
    );
}

#[test]
fn several_mistakes_are_reported_each_with_its_exact_path() {
    let text = GOOD
        // a typo for `seats`: unknown key, and then `seats` is missing
        .replacen("seats = 2\n", "seat = 2\n", 1)
        // a bad enum value
        .replace("kind = \"mobile\"", "kind = \"boat\"")
        // a wrong type
        .replace("registered = 1200", "registered = \"1200\"")
        // candidate id reused in another contest
        .replace("id = \"D-002-3\"", "id = \"D-001-2\"")
        // unknown reference in a station
        .replace("contests = [\"D-002\"]", "contests = [\"D-009\"]")
        // bad election id and date
        .replace("id = \"beichen-2021\"", "id = \"Beichen 2021\"")
        .replace("date = \"2021-11-01\"", "date = \"2021-02-30\"");
    let found = mistakes(&text);
    let found_paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        found_paths,
        vec![
            "contest[0].seat",
            "contest[0].seats",
            "contest[1].registered",
            "station[1].kind",
            "election.id",
            "election.date",
            "contest[2].candidates[2].id",
            "contest[2]",
            "station[2].contests[0]",
        ],
        "{found:#?}"
    );
    let reason = |path: &str| {
        found
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.as_str())
            .unwrap()
    };
    assert!(reason("contest[0].seat").contains("did you mean `seats`?"));
    assert_eq!(
        reason("contest[0].seats"),
        "missing; expected a whole number"
    );
    assert_eq!(
        reason("contest[1].registered"),
        "expected a whole number, found text '1200'"
    );
    assert_eq!(
        reason("station[1].kind"),
        "'boat' is not one of fixed, mobile"
    );
    assert_eq!(
        reason("contest[2].candidates[2].id"),
        "candidate id 'D-001-2' is already used by contest[0].candidates[1].id; candidate ids \
         must be unique across the whole election"
    );
    assert!(reason("contest[2]").starts_with("no station collects ballots for contest 'D-002'"));
    assert_eq!(
        reason("station[2].contests[0]"),
        "contest 'D-009' is not defined in any [[contest]]"
    );
    // Display carries file, path and reason.
    let errors = load("beichen.toml", &text).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("beichen.toml: station[1].kind: 'boat' is not one of fixed, mobile")
    );
}

#[test]
fn duplicate_ids_are_refused() {
    let text = GOOD
        .replace("id = \"guoyuan\"", "id = \"xiditou\"")
        .replace("id = \"T-014\"", "id = \"D-001\"")
        .replace("id = \"S-0003\"", "id = \"S-0001\"");
    let found = mistakes(&text);
    let reason = |path: &str| {
        found
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no mistake at {path}: {found:#?}"))
    };
    assert_eq!(
        reason("unit[1].id"),
        "unit id 'xiditou' is already used by unit[0]"
    );
    assert_eq!(
        reason("contest[1].id"),
        "contest id 'D-001' is already used by contest[0]"
    );
    assert_eq!(
        reason("station[2].id"),
        "station id 'S-0001' is already used by station[0]"
    );
}

#[test]
fn town_contest_in_a_street_is_refused() {
    let text = GOOD.replacen(
        "unit = \"xiditou\"\nname = \"镇级",
        "unit = \"guoyuan\"\nname = \"镇级",
        1,
    );
    assert_eq!(
        reason_at(&text, "contest[1].level"),
        "a town-level contest cannot be held in street 'guoyuan': streets hold district-level \
         contests only"
    );
}

#[test]
fn unknown_unit_is_refused() {
    let text = GOOD.replace("unit = \"guoyuan\"", "unit = \"nowhere\"");
    assert_eq!(
        reason_at(&text, "contest[2].unit"),
        "unit 'nowhere' is not defined in any [[unit]]"
    );
}

#[test]
fn station_contest_lists_are_checked() {
    // two district-level contests
    let text = GOOD.replace(
        "contests = [\"D-001\", \"T-014\"]",
        "contests = [\"D-001\", \"D-002\"]",
    );
    assert!(
        reason_at(&text, "station[0].contests[1]")
            .contains("already serves district-level contest 'D-001'")
    );
    // the same contest twice
    let text = GOOD.replace(
        "contests = [\"D-001\"]",
        "contests = [\"D-001\", \"D-001\"]",
    );
    assert_eq!(
        reason_at(&text, "station[1].contests[1]"),
        "contest 'D-001' is listed twice"
    );
    // no contest at all (D-002 then has no station either)
    let text = GOOD.replace("contests = [\"D-002\"]", "contests = []");
    assert_eq!(paths(&text), vec!["contest[2]", "station[2].contests"]);
    // a number instead of an id
    let text = GOOD.replace("contests = [\"D-002\"]", "contests = [\"D-002\", 7]");
    assert_eq!(paths(&text), vec!["station[2].contests[1]"]);
}

#[test]
fn registered_must_be_at_least_one() {
    for (value, ok) in [
        ("0", false),
        ("-5", false),
        ("1", true),
        ("100000000", true),
        ("100000001", false),
    ] {
        let text = GOOD.replace("registered = 2280", &format!("registered = {value}"));
        match load("b.toml", &text) {
            Ok(_) => assert!(ok, "registered = {value} accepted"),
            Err(e) => {
                assert!(!ok, "registered = {value} refused: {e}");
                assert_eq!(e.0.len(), 1);
                assert_eq!(e.0[0].path, "contest[0].registered");
            }
        }
    }
}

/// A contest of `seats` seats and `n` candidates, in the good definition's D-002 slot.
fn with_d002(seats: u32, n: usize) -> String {
    let start = GOOD.find("seats = 3").unwrap();
    let end = GOOD.find("[[station]]").unwrap();
    let mut contest = format!("seats = {seats}\nregistered = 5000\n");
    for i in 1..=n {
        contest.push_str(&format!(
            "[[contest.candidates]]\nid = \"D-002-{i}\"\nname = \"候选人{i}\"\ngender = \"M\"\n\
             ethnicity = \"汉族\"\nparty = \"中共\"\n"
        ));
    }
    format!("{}{contest}\n{}", &GOOD[..start], &GOOD[end..])
}

#[test]
fn seats_and_candidates_follow_the_rule_set() {
    // seats → (fewest, most) formal candidates under prc-direct
    for (seats, least, most) in [(1, 2, 2), (2, 3, 4), (3, 4, 6)] {
        for n in least - 1..=most + 1 {
            let result = load("b.toml", &with_d002(seats, n));
            let ok = (least..=most).contains(&n);
            match result {
                Ok(_) => assert!(ok, "seats {seats} with {n} candidates accepted"),
                Err(e) => {
                    assert!(!ok, "seats {seats} with {n} candidates refused: {e}");
                    assert_eq!(e.0.len(), 1, "{e}");
                    assert_eq!(e.0[0].path, "contest[2].candidates");
                    assert!(e.0[0].reason.contains("formal candidates (art. 31)"), "{e}");
                }
            }
        }
    }
    for seats in [0, 4] {
        let e = load("b.toml", &with_d002(seats, 4)).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].path, "contest[2].seats");
        assert_eq!(
            e.0[0].reason,
            format!("an electoral district elects 1 to 3 deputies (art. 25), not {seats}")
        );
    }
    let e = load(
        "b.toml",
        &with_d002(3, 2).replace("seats = 3", "seats = -1"),
    )
    .unwrap_err();
    assert_eq!(e.0[0].path, "contest[2].seats");
}

#[test]
fn unknown_rule_set_is_refused() {
    let text = GOOD.replace("rules = \"prc-direct\"", "rules = \"plurality\"");
    assert_eq!(paths(&text), vec!["election.rules"]);
    assert!(reason_at(&text, "election.rules").contains("known: prc-direct"));
}

#[test]
fn ids_and_names_are_checked() {
    let text = GOOD
        .replace("id = \"S-0002\"", "id = \"S 0002\"")
        .replace("id = \"D-001-3\"", "id = \"D-001,3\"")
        .replace("id = \"S-0003\"", "id = \"\"")
        .replace("name = \"区级第1选区\"", "name = \"  \"")
        .replace("name = \"果园新村街道\"", "name = \"果园\\n新村\"")
        .replace("id = \"xiditou\"", &format!("id = \"{}\"", "x".repeat(65)));
    let found = mistakes(&text);
    let at = |path: &str| {
        found
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no mistake at {path}: {found:#?}"))
    };
    assert!(at("station[1].id").contains("contains a space"));
    assert!(at("contest[0].candidates[2].id").contains("contains ','"));
    assert_eq!(at("station[2].id"), "is empty; every station needs an id");
    assert_eq!(at("contest[0].name"), "is empty");
    assert!(at("unit[1].name").contains("control character"));
    assert!(at("unit[0].id").contains("65 characters long; at most 64"));
}

#[test]
fn missing_pieces_are_named() {
    let text = r#"
[election]
id = "e"
name = "x"
date = "2021-11-01"
rules = "prc-direct"
"#;
    assert_eq!(paths(text), vec!["unit", "contest", "station"]);
    let text = "[[unit]]\nid = \"u\"\nname = \"U\"\n";
    assert_eq!(
        paths(text),
        vec!["election", "unit[0].kind", "contest", "station"]
    );
    // `[station]` where `[[station]]` is meant: one mistake, not a cascade.
    let first_station = GOOD.find("[[station]]").unwrap();
    let text = format!(
        "{}[station]\nid = \"S-0001\"\nname = \"站\"\nkind = \"fixed\"\ncontests = [\"D-001\"]\n",
        &GOOD[..first_station]
    );
    let found = mistakes(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "station");
    assert!(found[0].1.contains("write [[station]]"), "{found:?}");
}

#[test]
fn unknown_top_level_table_is_named() {
    let text = format!("{GOOD}\n[[units]]\nid = \"x\"\n");
    let found = mistakes(&text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "units");
    assert!(found[0].1.contains("did you mean `unit`?"), "{found:?}");
}

#[test]
fn mistakes_are_capped() {
    let mut text = GOOD.to_string();
    for i in 0..(MAX_REPORTED_MISTAKES + 50) {
        text.push_str(&format!(
            "\n[[unit]]\nid = \"u{i}\"\nname = \"U\"\nkind = \"village\"\n"
        ));
    }
    let errors = load("b.toml", &text).unwrap_err();
    assert_eq!(errors.0.len(), MAX_REPORTED_MISTAKES + 1);
    assert_eq!(
        errors.0.last().unwrap().reason,
        "50 more mistakes not shown"
    );
}

#[test]
fn line_and_column_count_characters() {
    assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_and_column("名字\nx", 7), (2, 1));
    assert_eq!(line_and_column("名字", 1), (1, 1));
    assert_eq!(line_and_column("", 99), (1, 1));
}

#[test]
fn the_anonymity_set_defaults_to_twenty_in_an_official_election() {
    let def = load("b.toml", GOOD).unwrap();
    assert_eq!(def.election.mode, crate::Mode::Official);
    assert_eq!(def.election.min_ballots_per_batch, 20);
    let text = GOOD.replace(
        "rules = \"prc-direct\"",
        "rules = \"prc-direct\"\nmode = \"test\"\nmin_ballots_per_batch = 1",
    );
    let def = load("b.toml", &text).unwrap();
    assert_eq!(def.election.mode, crate::Mode::Test);
    assert_eq!(def.election.min_ballots_per_batch, 1);
}

#[test]
fn an_anonymity_set_out_of_bounds_is_refused() {
    let with = |extra: &str| {
        GOOD.replace(
            "rules = \"prc-direct\"",
            &format!("rules = \"prc-direct\"\n{extra}"),
        )
    };
    let k = "election.min_ballots_per_batch";
    // One ballot a batch links a ballot to its moment: only in a test election.
    let text = with("min_ballots_per_batch = 1");
    assert_eq!(paths(&text), vec![k]);
    assert!(reason_at(&text, k).contains("mode = \"test\""));
    for bad in ["0", "-3", "1001"] {
        let text = with(&format!("min_ballots_per_batch = {bad}"));
        assert_eq!(paths(&text), vec![k], "{bad}");
        assert!(reason_at(&text, k).contains("1 to 1000"), "{bad}");
    }
    let text = with("min_ballots_per_batch = \"twenty\"");
    assert_eq!(paths(&text), vec![k]);
    let text = with("mode = \"practice\"");
    assert_eq!(paths(&text), vec!["election.mode"]);
    assert!(reason_at(&text, "election.mode").contains("official, test"));
    // K of the largest ballots (ten full-length write-ins each) must fit a group.
    let text = with("min_ballots_per_batch = 1000");
    assert_eq!(paths(&text), vec![k]);
    assert!(
        reason_at(&text, k).contains("contest 'D-001'"),
        "{}",
        reason_at(&text, k)
    );
    assert!(load("b.toml", &with("min_ballots_per_batch = 200")).is_ok());
}
