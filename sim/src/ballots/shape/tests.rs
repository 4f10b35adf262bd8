//! Each shape produces what it claims, checked with the election crate's own rule set
//! (`prc-direct`) on the drawn truth; the truth is what the ballots say; shaping leaves
//! the other contests as `draw` gives them.

use pollsync_election::{
    BallotId, ContestInput, ContestStatus, ElectionDefinition, TallySheet, rules_by_id,
};

use super::*;
use crate::ballots::USUAL;
use crate::generate::{SMALL, generate};

const SHAPES: [Outcome; 6] = [
    Outcome::Elected,
    Outcome::Runoff,
    Outcome::Tie,
    Outcome::Invalid,
    Outcome::Void,
    Outcome::Discrepancy { extra_for: 5 },
];

/// Every contest of the definition that can take the shape, shaped alike.
fn all_shaped(def: &ElectionDefinition, outcome: Outcome) -> Scenario {
    def.contests
        .iter()
        .filter(|c| outcome != Outcome::Tie || c.seats >= 2)
        .fold(Scenario::new(USUAL), |s, c| s.with(c.id.clone(), outcome))
}

fn contest_truth(day: &Day, contest: &str) -> TallySheet {
    let mut t = TallySheet::default();
    for sc in day.drawn.iter().filter(|sc| sc.contest == contest) {
        t.merge(&sc.truth);
    }
    t
}

/// A figure as operators read it: `1090` → `1,090`.
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

fn passes(votes: u64, issued: u64) -> bool {
    votes * 2 > issued
}

#[test]
fn every_shape_gives_its_status_under_the_rule_set() {
    for seed in 0..6 {
        let def = generate(&SMALL, seed).expect("small");
        for outcome in SHAPES {
            let day = draw_with(&def, seed, &all_shaped(&def, outcome)).expect("shaped");
            for c in &def.contests {
                if !all_shaped(&def, outcome).outcomes.contains_key(&c.id) {
                    continue;
                }
                let out = day.outcome(&def, &c.id).expect("decided");
                let t = contest_truth(&day, &c.id);
                let seats = c.seats as usize;
                let why = format!("seed {seed}, {outcome:?}, {}: {out:?}", c.id);
                assert_eq!(out.status, outcome.status(), "{why}");
                match outcome {
                    Outcome::Elected => {
                        assert_eq!(out.elected.len(), seats, "{why}");
                        assert_eq!(out.runoff, None, "{why}");
                    }
                    Outcome::Runoff => {
                        assert_eq!(out.elected.len(), seats - 1, "{why}");
                        let runoff = out.runoff.as_ref().expect("runoff list");
                        assert_eq!(runoff.seats, 1, "{why}");
                        assert!(runoff.candidates.len() >= 2, "{why}");
                        for id in &runoff.candidates {
                            assert!(!passes(t.for_of(id), t.issued), "{why}");
                        }
                    }
                    Outcome::Tie => {
                        assert_eq!(out.tied.len(), 2, "{why}");
                        let votes: Vec<u64> = out.tied.iter().map(|id| t.for_of(id)).collect();
                        assert_eq!(votes[0], votes[1], "{why}");
                        assert!(passes(votes[0], t.issued), "{why}");
                        assert_eq!(out.elected.len(), seats - 1, "{why}");
                        let runoff = out.runoff.as_ref().expect("new vote");
                        assert_eq!((runoff.seats, &runoff.candidates), (1, &out.tied), "{why}");
                    }
                    Outcome::Invalid => {
                        assert!(t.issued * 2 <= c.registered, "{why}");
                        assert!(t.issued > 0, "{why}");
                    }
                    Outcome::Void => {
                        assert!(t.returned > t.issued, "{why}");
                        let over = day
                            .drawn
                            .iter()
                            .filter(|sc| sc.contest == c.id && sc.truth.returned > sc.issued)
                            .count();
                        assert_eq!(over, 1, "one box holds more than it handed out: {why}");
                    }
                    Outcome::Discrepancy { extra_for } => {
                        assert_discrepancy(&def, &day, &c.id, extra_for, &out.problems);
                    }
                }
            }
        }
    }
}

/// One station's human sheet gives the first candidate `extra_for` more FOR votes and
/// differs in nothing else; the problems name the station and both figures; with the
/// sheet as the records say, the same ballots elect.
fn assert_discrepancy(
    def: &ElectionDefinition,
    day: &Day,
    contest: &str,
    extra_for: u64,
    problems: &[String],
) {
    let sheets: Vec<&HumanSheet> = day.sheets.iter().filter(|s| s.contest == contest).collect();
    assert_eq!(sheets.len(), 1, "{contest}: one human sheet");
    let human = sheets[0];
    let records = &day
        .drawn
        .iter()
        .find(|sc| sc.station == human.station && sc.contest == contest)
        .expect("the sheet's station collects the contest")
        .truth;
    let first = &def.contest(contest).expect("contest").candidates[0].id;
    assert_eq!(human.sheet.for_of(first), records.for_of(first) + extra_for);
    assert_eq!(human.sheet.differences(records).len(), 1, "{contest}");
    let line = problems
        .iter()
        .find(|p| p.contains(&human.station) && p.contains(first.as_str()))
        .unwrap_or_else(|| panic!("{contest}: no problem names the station: {problems:?}"));
    for figure in [human.sheet.for_of(first), records.for_of(first)] {
        assert!(line.contains(&grouped(figure)), "{line}");
    }

    let rules = rules_by_id(&def.election.rules).expect("rules");
    let mut honest = day.reports(def, contest);
    for r in &mut honest {
        r.sheet = Some(r.computed.clone());
    }
    let c = def.contest(contest).expect("contest");
    let out = rules.decide(&ContestInput {
        contest: c,
        stations: honest,
    });
    assert_eq!(out.status, ContestStatus::Elected, "{contest}: {out:?}");
}

#[test]
fn the_truth_is_what_the_ballots_say() {
    let def = generate(&SMALL, 4).expect("small");
    for outcome in SHAPES {
        let day = draw_with(&def, 4, &all_shaped(&def, outcome)).expect("shaped");
        for sc in &day.drawn {
            let c = def.contest(&sc.contest).expect("contest");
            let mut recount = TallySheet::for_contest(c);
            recount.add_issued(sc.issued);
            for b in &sc.ballots {
                let ballot = b
                    .to_ballot(BallotId::from_bytes([7; 16]), c)
                    .expect("a drawn ballot passes the door checks");
                recount.add_ballot(c, &ballot);
            }
            assert_eq!(
                recount, sc.truth,
                "{outcome:?} {} {}",
                sc.station, sc.contest
            );
        }
    }
}

#[test]
fn shaping_leaves_other_contests_as_drawn_and_is_the_same_for_the_same_seed() {
    let def = generate(&SMALL, 8).expect("small");
    let plain = draw(&def, 8, &USUAL);
    let unshaped = draw_with(&def, 8, &Scenario::new(USUAL)).expect("nothing shaped");
    assert!(unshaped.sheets.is_empty());
    let same = |a: &[StationContest], b: &[StationContest], skip: &[&str]| {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!((&x.station, &x.contest), (&y.station, &y.contest));
            if !skip.contains(&x.contest.as_str()) {
                assert_eq!(x.issued, y.issued);
                assert_eq!(x.ballots, y.ballots);
                assert_eq!(x.truth, y.truth);
            }
        }
    };
    same(&plain, &unshaped.drawn, &[]);

    let tie = def
        .contests
        .iter()
        .find(|c| c.seats >= 2)
        .expect("a contest of 2 or more seats")
        .id
        .clone();
    let void = def
        .contests
        .iter()
        .find(|c| c.id != tie)
        .expect("another contest")
        .id
        .clone();
    let scenario = Scenario::new(USUAL)
        .with(tie.clone(), Outcome::Tie)
        .with(void.clone(), Outcome::Void);
    let a = draw_with(&def, 8, &scenario).expect("shaped");
    let b = draw_with(&def, 8, &scenario).expect("shaped");
    same(&a.drawn, &b.drawn, &[]);
    same(&plain, &a.drawn, &[&tie, &void]);
    assert_eq!(
        a.outcome(&def, &tie).expect("tie").status,
        ContestStatus::Tie
    );
    let other = draw_with(&def, 9, &scenario).expect("shaped");
    assert_ne!(
        contest_truth(&a, &tie),
        contest_truth(&other, &tie),
        "another seed draws another day"
    );
}

#[test]
fn what_cannot_be_shaped_is_refused_with_the_reason() {
    let mut def = generate(&SMALL, 2).expect("small");
    let id = def.contests[0].id.clone();
    let err = |def: &ElectionDefinition, s: Scenario| draw_with(def, 1, &s).expect_err("refused");
    assert_eq!(
        err(&def, Scenario::new(USUAL).with("X-999", Outcome::Tie)),
        ShapeError::UnknownContest {
            contest: "X-999".into()
        }
    );
    assert_eq!(
        err(
            &def,
            Scenario::new(USUAL).with(id.clone(), Outcome::Discrepancy { extra_for: 0 })
        ),
        ShapeError::NoDifference {
            contest: id.clone()
        }
    );
    // Half the ballots never come back: no candidate can get more than half of issued.
    let mut lossy = USUAL;
    lossy.not_returned_share = 0.6;
    let refused = err(
        &def,
        Scenario {
            turnout: lossy,
            ..Scenario::new(USUAL)
        }
        .with(id.clone(), Outcome::Elected),
    );
    assert!(
        matches!(&refused, ShapeError::Infeasible { contest, .. } if *contest == id),
        "{refused}"
    );
    let single = def
        .contests
        .iter()
        .find(|c| c.seats == 1)
        .expect("the small preset has a 1-seat contest")
        .id
        .clone();
    assert_eq!(
        err(
            &def,
            Scenario::new(USUAL).with(single.clone(), Outcome::Tie)
        ),
        ShapeError::TieNeedsTwoSeats { contest: single }
    );
    def.contests[0].registered = MIN_SHAPED_REGISTERED - 1;
    let refused = err(&def, Scenario::new(USUAL).with(id.clone(), Outcome::Runoff));
    assert_eq!(
        refused,
        ShapeError::TooFewVoters {
            contest: id,
            registered: MIN_SHAPED_REGISTERED - 1
        }
    );
    assert!(refused.to_string().contains("at least 100"), "{refused}");
}
