//! The ledger against a plain fold: any sequence of events, lawful or not, leaves
//! the tallies of adding every ballot taken and not cancelled, and a refused event
//! changes nothing.

use proptest::prelude::*;

use super::*;
use crate::ballot::Mark;
use crate::load;
use crate::log::tests::DEF;

const CONTESTS: [&str; 2] = ["D-1", "T-1"];
const WRITE_INS: [&str; 3] = ["王五", "赵六", "孙七"];

fn setup() -> (ElectionDefinition, Station) {
    let def = load("t.toml", DEF).expect("the test election loads");
    let station = def.station("S-1").expect("S-1").clone();
    (def, station)
}

fn ballot(
    def: &ElectionDefinition,
    id: u8,
    contest: usize,
    marks: &[u8],
    names: &[usize],
) -> Ballot {
    let contest = def.contest(CONTESTS[contest]).expect("contest");
    Ballot {
        id: BallotId::from_bytes([id; 16]),
        contest: contest.id.clone(),
        marks: marks
            .iter()
            .take(contest.candidates.len())
            .map(|m| match m {
                1 => Mark::For,
                2 => Mark::Against,
                _ => Mark::None,
            })
            .collect(),
        write_ins: names.iter().map(|&i| WRITE_INS[i].to_string()).collect(),
    }
}

fn cancel(id: u8) -> StationEvent {
    StationEvent::Cancel {
        ballot_id: BallotId::from_bytes([id; 16]),
        reason: "entered twice".into(),
    }
}

#[test]
fn a_cancel_takes_its_ballot_back_and_a_close_ends_the_contest() {
    let (def, station) = setup();
    let mut ledger = Ledger::new(&def, &station);
    let ids: Vec<&str> = ledger.contests().iter().map(ContestLedger::id).collect();
    assert_eq!(ids, ["D-1", "T-1"]);
    let one = ballot(&def, 1, 0, &[1, 2], &[]);
    let void = ballot(&def, 2, 0, &[1, 0], &[0]);
    for event in [
        StationEvent::Ballot(one),
        StationEvent::Ballot(void.clone()),
    ] {
        assert_eq!(ledger.apply(&def, &event), Ok(()));
    }
    let d1 = ledger.contest("D-1").expect("D-1").computed().clone();
    assert_eq!((d1.returned, d1.valid, d1.void), (2, 1, 1));
    assert_eq!(d1.for_of("D-1-1"), 1);
    assert_eq!(ledger.apply(&def, &cancel(2)), Ok(()));
    let d1 = ledger.contest("D-1").expect("D-1").computed();
    assert_eq!((d1.returned, d1.valid, d1.void), (1, 1, 0));
    assert_eq!(
        (ledger.ballots_recorded(), ledger.ballots_counted()),
        (2, 1)
    );

    let before = ledger.clone();
    assert!(matches!(
        ledger.apply(&def, &cancel(2)),
        Err(LogError::CancelledTwice { .. })
    ));
    assert!(matches!(
        ledger.apply(&def, &StationEvent::Ballot(void)),
        Err(LogError::BallotTwice { .. })
    ));
    assert_eq!(ledger, before, "a refused event changes nothing");

    let mut sheet = TallySheet::default();
    sheet.add_issued(3);
    let close = StationEvent::Close {
        contest: "D-1".into(),
        sheet: sheet.clone(),
    };
    assert_eq!(ledger.apply(&def, &close), Ok(()));
    assert!(ledger.is_closed("D-1") && !ledger.is_closed("T-1"));
    let d1 = ledger.contest("D-1").expect("D-1");
    assert!(d1.closed());
    assert_eq!(d1.closing_sheet(), Some(&sheet));
    let after = ledger.apply(&def, &cancel(1)).expect_err("after close");
    assert!(after.is_after_close(), "{after}");
}

#[derive(Debug, Clone)]
enum Op {
    Ballot {
        id: u8,
        contest: usize,
        marks: Vec<u8>,
        names: Vec<usize>,
    },
    Issued {
        contest: usize,
        count: u64,
    },
    Cancel {
        id: u8,
    },
    Close {
        contest: usize,
    },
    /// The station's zero report (every contest), or one that leaves a contest out.
    ZeroReport {
        whole: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            0u8..24,
            0usize..2,
            prop::collection::vec(0u8..3, 3),
            prop::collection::btree_set(0usize..WRITE_INS.len(), 0..=2),
        )
            .prop_map(|(id, contest, marks, names)| Op::Ballot {
                id,
                contest,
                marks,
                names: names.into_iter().collect(),
            }),
        2 => (0usize..2, 0u64..4).prop_map(|(contest, count)| Op::Issued { contest, count }),
        3 => (0u8..24).prop_map(|id| Op::Cancel { id }),
        1 => (0usize..2).prop_map(|contest| Op::Close { contest }),
        1 => any::<bool>().prop_map(|whole| Op::ZeroReport { whole }),
    ]
}

fn event(def: &ElectionDefinition, op: &Op) -> StationEvent {
    match op {
        Op::Ballot {
            id,
            contest,
            marks,
            names,
        } => StationEvent::Ballot(ballot(def, *id, *contest, marks, names)),
        Op::Issued { contest, count } => StationEvent::Issued {
            contest: CONTESTS[*contest].into(),
            count: *count,
        },
        Op::Cancel { id } => cancel(*id),
        Op::Close { contest } => StationEvent::Close {
            contest: CONTESTS[*contest].into(),
            sheet: TallySheet::default(),
        },
        Op::ZeroReport { whole } => StationEvent::ZeroReport {
            contests: CONTESTS[..if *whole { 2 } else { 1 }]
                .iter()
                .map(|c| c.to_string())
                .collect(),
        },
    }
}

proptest! {
    #[test]
    fn the_ledger_counts_every_ballot_taken_and_not_cancelled(
        opening in any::<bool>(),
        ops in prop::collection::vec(op(), 0..80)
    ) {
        let (def, station) = setup();
        // Half the logs open with the station's zero report, as a station's do.
        let ops: Vec<Op> = opening
            .then_some(Op::ZeroReport { whole: true })
            .into_iter()
            .chain(ops)
            .collect();
        let mut ledger = Ledger::new(&def, &station);
        let mut taken = Vec::new();
        for op in &ops {
            let event = event(&def, op);
            let before = ledger.clone();
            // A zero report is taken only whole and as the log's first event.
            let lawful_zero_report = taken.is_empty() && matches!(op, Op::ZeroReport { whole: true });
            let result = ledger.apply(&def, &event);
            if matches!(op, Op::ZeroReport { .. }) {
                prop_assert_eq!(result.is_ok(), lawful_zero_report, "{:?}", result);
            }
            match result {
                Ok(()) => taken.push(event),
                Err(_) => prop_assert_eq!(&ledger, &before, "a refused event changes nothing"),
            }
        }
        // The plain fold: every ballot taken and never cancelled, every issued count.
        let cancelled: Vec<BallotId> = taken
            .iter()
            .filter_map(|e| match e {
                StationEvent::Cancel { ballot_id, .. } => Some(*ballot_id),
                _ => None,
            })
            .collect();
        let mut ballots = 0u64;
        for id in CONTESTS {
            let contest = def.contest(id).expect("contest");
            let mut expected = TallySheet::for_contest(contest);
            for e in &taken {
                match e {
                    StationEvent::Ballot(b) if b.contest == id && !cancelled.contains(&b.id) => {
                        expected.add_ballot(contest, b);
                        ballots += 1;
                    }
                    StationEvent::Issued { contest: c, count } if c == id => {
                        expected.add_issued(*count);
                    }
                    _ => {}
                }
            }
            let got = ledger.contest(id).expect("served");
            prop_assert_eq!(got.computed().without_zeros(), expected.without_zeros());
            prop_assert!(got.computed().inconsistencies().is_empty());
            let closed = taken.iter().any(
                |e| matches!(e, StationEvent::Close { contest: c, .. } if c == id),
            );
            prop_assert_eq!(got.closed(), closed);
        }
        prop_assert_eq!(ledger.ballots_counted(), ballots);
        // The log starts with a zero report when it opened with one.
        if opening {
            prop_assert!(crate::log::starts_with_zero_report(taken.first()));
        }
    }
}
