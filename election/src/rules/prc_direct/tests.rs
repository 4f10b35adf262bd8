//! Tests of `prc-direct`: the definition check at every seat count, each of the seven
//! statuses, and the boundaries where one vote or one ballot changes the outcome.

use super::*;
use crate::ballot::tests::contest;
use crate::ballot::{Ballot, BallotId};
use crate::definition::Contest;
use crate::rules::{StationReport, rules_by_id};
use crate::tally::TallySheet;

/// A computed sheet with these figures: FOR per candidate in ballot order, write-ins.
fn sheet(
    c: &Contest,
    issued: u64,
    returned: u64,
    void: u64,
    for_votes: &[u64],
    write_ins: &[(&str, u64)],
) -> TallySheet {
    let mut s = TallySheet::for_contest(c);
    s.issued = issued;
    s.returned = returned;
    s.void = void;
    s.valid = returned - void;
    for (candidate, votes) in c.candidates.iter().zip(for_votes) {
        s.for_votes.insert(candidate.id.clone(), *votes);
    }
    for (name, votes) in write_ins {
        s.write_in.insert(name.to_string(), *votes);
    }
    s
}

/// A station that has closed and synced, its sheet equal to what was computed.
fn done(station: &str, computed: TallySheet) -> StationReport {
    StationReport {
        station_id: station.into(),
        closed: true,
        synced: true,
        sheet: Some(computed.clone()),
        computed,
    }
}

fn decide(c: &Contest, stations: Vec<StationReport>) -> ContestOutcome {
    PrcDirect.decide(&ContestInput {
        contest: c,
        stations,
    })
}

/// One station, everything agreed.
fn decide_one(c: &Contest, s: TallySheet) -> ContestOutcome {
    decide(c, vec![done("S-0001", s)])
}

#[test]
fn rule_set_is_found_by_id() {
    assert_eq!(
        rules_by_id("prc-direct").map(|r| r.id()),
        Some("prc-direct")
    );
    assert!(rules_by_id("plurality").is_none());
}

#[test]
fn definition_check_at_every_seat_count() {
    // seats → (fewest, most) formal candidates; one fewer and one more are refused.
    for (seats, least, most) in [(1u32, 2usize, 2usize), (2, 3, 4), (3, 4, 6)] {
        assert!(
            !PrcDirect.check_contest(seats, least - 1).is_empty(),
            "seats {seats}, {} candidates",
            least - 1
        );
        for n in least..=most {
            assert_eq!(PrcDirect.check_contest(seats, n), Vec::<String>::new());
        }
        assert!(
            !PrcDirect.check_contest(seats, most + 1).is_empty(),
            "seats {seats}, {} candidates",
            most + 1
        );
    }
    assert_eq!(
        PrcDirect.check_contest(2, 5),
        vec!["2 seats need 3 to 4 formal candidates (art. 31), not 5".to_string()]
    );
    assert_eq!(
        PrcDirect.check_contest(1, 3),
        vec!["1 seat need exactly 2 formal candidates (art. 31), not 3".to_string()]
    );
    for seats in [0, 4, u32::MAX] {
        assert_eq!(
            PrcDirect.check_contest(seats, 2),
            vec![format!(
                "an electoral district elects 1 to 3 deputies (art. 25), not {seats}"
            )]
        );
    }
}

#[test]
fn pending_names_each_missing_station_and_what_is_missing() {
    let c = contest("D-001", 1, 2);
    let s = sheet(&c, 100, 100, 0, &[60, 40], &[]);
    let mut not_closed = done("S-0002", s.clone());
    not_closed.closed = false;
    not_closed.sheet = None;
    let mut not_synced = done("S-0003", s.clone());
    not_synced.synced = false;
    let mut no_sheet = done("S-0004", s.clone());
    no_sheet.sheet = None;
    let out = decide(
        &c,
        vec![no_sheet, not_synced, done("S-0001", s.clone()), not_closed],
    );
    assert_eq!(out.status, ContestStatus::Pending);
    assert_eq!(
        out.problems,
        vec![
            "waiting for 3 of 4 stations: results are not final",
            "station S-0002 has not closed the contest",
            "station S-0003 has closed the contest but not finished syncing",
            "station S-0004 has closed the contest but its tally sheet has not arrived",
        ]
    );
    assert!(out.elected.is_empty());
    assert_eq!(out.issued, 400, "running figures are shown while pending");
    assert_eq!(
        (
            out.stations.expected,
            out.stations.closed,
            out.stations.synced
        ),
        (4, 3, 3)
    );
}

#[test]
fn pending_also_shows_discrepancies_already_known() {
    let c = contest("D-001", 1, 2);
    let s = sheet(&c, 100, 100, 0, &[60, 40], &[]);
    let mut wrong = done("S-0001", s.clone());
    wrong.computed.issued = 99;
    let mut open = done("S-0002", s);
    open.closed = false;
    let out = decide(&c, vec![wrong, open]);
    assert_eq!(out.status, ContestStatus::Pending);
    assert!(
        out.problems
            .iter()
            .any(|p| p.starts_with("station S-0001: ballots issued")),
        "{:?}",
        out.problems
    );
}

#[test]
fn contest_with_no_station_is_pending() {
    let c = contest("D-001", 1, 2);
    let out = decide(&c, vec![]);
    assert_eq!(out.status, ContestStatus::Pending);
    assert!(out.problems[0].contains("no station reports"));
}

#[test]
fn discrepancy_names_station_and_figures() {
    let c = contest("D-001", 1, 2);
    let computed = sheet(&c, 1_000, 998, 2, &[600, 300], &[]);
    let mut station_sheet = computed.clone();
    station_sheet.issued = 1_001;
    station_sheet.for_votes.insert("D-001-2".into(), 301);
    let mut report = done("S-0002", computed.clone());
    report.sheet = Some(station_sheet);
    let out = decide(&c, vec![done("S-0001", computed), report]);
    assert_eq!(out.status, ContestStatus::Discrepancy);
    assert_eq!(
        out.problems,
        vec![
            "station S-0002: ballots issued: the station's sheet says 1,001, its records say 1,000",
            "station S-0002: FOR votes of candidate 'D-001-2': the station's sheet says 301, its \
             records say 300",
            "the tally sheet of station S-0002 does not match the ballots the center received: \
             recount there and resolve before results are declared",
        ]
    );
    assert!(out.elected.is_empty());
}

#[test]
fn returned_equal_to_issued_is_fine_one_more_is_void() {
    let c = contest("D-001", 1, 2);
    let fine = decide_one(&c, sheet(&c, 2_000, 2_000, 0, &[1_200, 800], &[]));
    assert_eq!(fine.status, ContestStatus::Elected);

    let void = decide_one(&c, sheet(&c, 2_000, 2_001, 0, &[1_200, 801], &[]));
    assert_eq!(void.status, ContestStatus::Void);
    assert!(void.elected.is_empty());
    assert_eq!(
        void.problems,
        vec![
            "ballots returned 2,001 exceed ballots issued 2,000: the vote in this contest is \
             void (art. 44) and must be held again"
        ]
    );
}

#[test]
fn turnout_exactly_half_is_invalid_half_plus_one_is_valid() {
    let c = contest("D-001", 1, 2); // 2,280 registered
    let half = decide_one(&c, sheet(&c, 1_140, 1_140, 0, &[1_000, 140], &[]));
    assert_eq!(half.status, ContestStatus::Invalid);
    assert!(half.elected.is_empty());
    assert_eq!(
        half.problems,
        vec![
            "turnout 1,140 of 2,280 registered is not more than half: the election in this \
             district is invalid (art. 45) and must be held again"
        ]
    );
    assert!((half.turnout - 0.5).abs() < 1e-12);

    let more = decide_one(&c, sheet(&c, 1_141, 1_141, 0, &[1_000, 141], &[]));
    assert_eq!(more.status, ContestStatus::Elected);
    assert_eq!(more.elected, vec!["D-001-1"]);
}

#[test]
fn exactly_half_of_issued_is_not_elected_half_plus_one_is() {
    let c = contest("D-001", 1, 2);
    let half = decide_one(&c, sheet(&c, 2_000, 2_000, 0, &[1_000, 900], &[]));
    assert_eq!(half.status, ContestStatus::Runoff);
    assert!(half.elected.is_empty());
    assert!(!half.candidates[0].elected);

    let more = decide_one(&c, sheet(&c, 2_000, 2_000, 0, &[1_001, 900], &[]));
    assert_eq!(more.status, ContestStatus::Elected);
    assert_eq!(more.elected, vec!["D-001-1"]);
    assert!(more.candidates[0].elected);
    assert!(!more.candidates[1].elected);
    assert_eq!(
        more.problems,
        vec![
            "all 1 seat filled: 候选人1 (D-001-1) with 1,001 (more than half of the 2,000 \
             ballots issued, i.e. at least 1,001)"
        ]
    );
}

#[test]
fn odd_ballots_issued_need_the_next_whole_vote() {
    let c = contest("D-001", 1, 2);
    // 2,001 issued: 1,000 is not more than half, 1,001 is.
    let out = decide_one(&c, sheet(&c, 2_001, 2_001, 0, &[1_000, 900], &[]));
    assert_eq!(out.status, ContestStatus::Runoff);
    let out = decide_one(&c, sheet(&c, 2_001, 2_001, 0, &[1_001, 900], &[]));
    assert_eq!(out.status, ContestStatus::Elected);
}

#[test]
fn void_ballots_count_in_the_denominator() {
    let c = contest("D-001", 1, 2);
    // 960 of 1,800 valid is more than half of the valid ballots, but 2,000 were issued
    // (200 void): 960 is not more than half of them.
    let out = decide_one(&c, sheet(&c, 2_000, 2_000, 200, &[960, 800], &[]));
    assert_eq!(out.status, ContestStatus::Runoff);
    assert!(out.elected.is_empty());
    assert_eq!((out.valid, out.void), (1_800, 200));
}

#[test]
fn write_in_can_be_elected() {
    let c = contest("D-001", 1, 2);
    let out = decide_one(
        &c,
        sheet(&c, 2_000, 2_000, 0, &[300, 200], &[("王五", 1_200)]),
    );
    assert_eq!(out.status, ContestStatus::Elected);
    assert_eq!(out.elected, vec!["王五"]);
    assert!(out.write_ins[0].elected);
    assert!(out.candidates.iter().all(|c| !c.elected));
    assert!(out.problems[0].contains("write-in 王五 with 1,200"));
}

#[test]
fn more_passing_than_seats_most_votes_win() {
    let c = contest("D-001", 2, 3);
    // Each valid ballot has at most 2 FOR, so 3 can pass with 2,000 issued.
    let out = decide_one(&c, sheet(&c, 2_000, 2_000, 0, &[1_300, 1_400, 1_200], &[]));
    assert_eq!(out.status, ContestStatus::Elected);
    assert_eq!(out.elected, vec!["D-001-2", "D-001-1"]);
    assert!(!out.candidates[2].elected);
    assert!(out.problems[1].contains("候选人3 (D-001-3) also passed"));
}

#[test]
fn tie_at_the_last_seat_with_more_passing_than_seats() {
    let c = contest("D-001", 2, 3);
    let out = decide_one(&c, sheet(&c, 2_000, 2_000, 0, &[1_400, 1_300, 1_300], &[]));
    assert_eq!(out.status, ContestStatus::Tie);
    assert_eq!(
        out.elected,
        vec!["D-001-1"],
        "those above the tie are elected"
    );
    assert_eq!(out.tied, vec!["D-001-2", "D-001-3"]);
    assert_eq!(
        out.runoff,
        Some(Runoff {
            seats: 1,
            candidates: vec!["D-001-2".into(), "D-001-3".into()]
        })
    );
    assert_eq!(
        out.problems,
        vec![
            "3 candidates passed (more than half of the 2,000 ballots issued, i.e. at least \
             1,001) for 2 seats; 候选人2 (D-001-2) and 候选人3 (D-001-3) tie with 1,300 votes \
             for the last 1 seat: a new vote between them decides",
            "elected: 候选人1 (D-001-1) with 1,400",
        ]
    );
}

#[test]
fn tie_between_all_passing_for_every_seat() {
    let c = contest("D-001", 2, 4);
    // Three tie for both seats: nobody is above the tie.
    let out = decide_one(
        &c,
        sheet(&c, 3_000, 3_000, 0, &[1_600, 1_600, 1_600, 0], &[]),
    );
    assert_eq!(out.status, ContestStatus::Tie);
    assert!(out.elected.is_empty());
    assert_eq!(out.tied.len(), 3);
    assert_eq!(out.runoff.as_ref().map(|r| r.seats), Some(2));
}

#[test]
fn two_passing_with_equal_votes_for_two_seats_are_both_elected() {
    let c = contest("D-001", 2, 3);
    let out = decide_one(&c, sheet(&c, 2_000, 2_000, 0, &[1_300, 1_300, 1_200], &[]));
    assert_eq!(out.status, ContestStatus::Elected);
    assert_eq!(out.elected, vec!["D-001-1", "D-001-2"]);
}

#[test]
fn runoff_lists_twice_the_open_seats() {
    let c = contest("D-001", 2, 4);
    let out = decide_one(
        &c,
        sheet(
            &c,
            2_000,
            2_000,
            0,
            &[1_500, 400, 700, 600],
            &[("王五", 650)],
        ),
    );
    assert_eq!(out.status, ContestStatus::Runoff);
    assert_eq!(out.elected, vec!["D-001-1"]);
    assert_eq!(
        out.runoff,
        Some(Runoff {
            seats: 1,
            candidates: vec!["D-001-3".into(), "王五".into()]
        })
    );
    assert!(out.problems[0].starts_with("1 of 2 seats filled: 候选人1 (D-001-1) with 1,500"));
    assert!(out.problems[1].starts_with(
        "1 seat open: hold a further ballot (另行选举) between 候选人3 (D-001-3) and write-in 王五"
    ));
}

#[test]
fn runoff_with_no_one_passing_lists_four_for_two_seats() {
    let c = contest("D-001", 2, 4);
    let out = decide_one(
        &c,
        sheet(&c, 2_000, 2_000, 0, &[900, 800, 700, 600], &[("王五", 100)]),
    );
    assert_eq!(out.status, ContestStatus::Runoff);
    assert!(out.elected.is_empty());
    let runoff = out.runoff.unwrap();
    assert_eq!(runoff.seats, 2);
    assert_eq!(
        runoff.candidates,
        vec!["D-001-1", "D-001-2", "D-001-3", "D-001-4"]
    );
}

#[test]
fn runoff_list_takes_everyone_tied_at_its_end() {
    let c = contest("D-001", 1, 2);
    let out = decide_one(
        &c,
        sheet(
            &c,
            2_000,
            2_000,
            0,
            &[900, 500],
            &[("王五", 500), ("赵六", 10)],
        ),
    );
    assert_eq!(out.status, ContestStatus::Runoff);
    assert_eq!(
        out.runoff.unwrap().candidates,
        vec!["D-001-1", "D-001-2", "王五"]
    );
    assert_eq!(
        out.problems[2],
        "候选人2 (D-001-2) and write-in 王五 tie with 500 votes at the end of the further-ballot \
         list of 2: all of them are on it"
    );
}

#[test]
fn statuses_apply_in_order() {
    let c = contest("D-001", 1, 2);
    // Void and invalid at once: void comes first.
    let out = decide_one(&c, sheet(&c, 100, 101, 0, &[90, 0], &[]));
    assert_eq!(out.status, ContestStatus::Void);
    // Discrepancy and void at once: discrepancy comes first.
    let s = sheet(&c, 2_000, 2_001, 0, &[1_500, 0], &[]);
    let mut report = done("S-0001", s);
    report.sheet.as_mut().unwrap().returned = 2_000;
    assert_eq!(decide(&c, vec![report]).status, ContestStatus::Discrepancy);
}

#[test]
fn statuses_serialise_lowercase() {
    let names: Vec<String> = ContestStatus::ALL
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "\"pending\"",
            "\"discrepancy\"",
            "\"void\"",
            "\"invalid\"",
            "\"tie\"",
            "\"runoff\"",
            "\"elected\""
        ]
    );
}

#[test]
fn outcome_serialises_in_the_results_shape() {
    let c = contest("D-001", 1, 2);
    let out = decide_one(
        &c,
        sheet(&c, 2_000, 2_000, 0, &[1_200, 800], &[("王五", 3)]),
    );
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["status"], "elected");
    assert_eq!(json["candidates"][0]["for"], 1_200);
    assert_eq!(json["candidates"][0]["elected"], true);
    assert_eq!(json["write_ins"][0]["name"], "王五");
    assert_eq!(json["write_ins"][0]["for"], 3);
    assert_eq!(json["runoff"], serde_json::Value::Null);
}

/// From real ballots, through the door, the tally and the rules.
#[test]
fn ballots_to_outcome() {
    let c = contest("D-001", 2, 3);
    let mut computed = TallySheet::default();
    computed.add_issued(7);
    let choices: [(&[&str], &[&str], &[&str]); 6] = [
        (&["D-001-1", "D-001-2"], &["D-001-3"], &[]),
        (&["D-001-1"], &[], &["王五"]),
        (&["D-001-1", "D-001-2"], &[], &[]),
        (&["D-001-2"], &["D-001-1"], &[]),
        (&["D-001-1", "D-001-2", "D-001-3"], &[], &[]), // void: 3 FOR for 2 seats
        (&[], &[], &[]),                                // blank: valid
    ];
    for (i, (f, a, w)) in choices.iter().enumerate() {
        let strings = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ballot = Ballot::from_choices(
            BallotId([i as u8; 16]),
            &c,
            &strings(f),
            &strings(a),
            &strings(w),
        )
        .unwrap();
        computed.add_ballot(&c, &ballot);
    }
    let mut c = c;
    c.registered = 10;
    let out = decide_one(&c, computed);
    assert_eq!(
        (out.issued, out.returned, out.valid, out.void),
        (7, 6, 5, 1)
    );
    // D-001-1 has 3 FOR of 7 issued (not more than half); D-001-2 has 3 too.
    assert_eq!(out.status, ContestStatus::Runoff);
    assert_eq!(out.candidates[0].for_votes, 3);
    assert_eq!(out.candidates[0].against, 1);
    assert_eq!(out.write_ins[0].for_votes, 1);
}
