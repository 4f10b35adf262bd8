//! Property tests of `prc-direct` over generated elections: the outcome does not depend
//! on ballot order, on the order of station reports, or on how the ballots are split
//! among stations; valid + void = returned; nobody is elected beyond the seats, and
//! everyone elected has more than half of the ballots issued.

use proptest::prelude::*;

use super::*;
use crate::ballot::tests::contest;
use crate::ballot::{Ballot, BallotId, Mark};
use crate::definition::Contest;
use crate::rules::StationReport;
use crate::tally::TallySheet;

const WRITE_IN_POOL: [&str; 3] = ["王五", "赵六", "孙七"];
/// FOR-mark likelihoods (in tenths) a candidate may have.
const POPULARITY: &[u8] = &[0, 1, 2, 5, 8, 9, 10];
/// Ballots whose choice is below this copy one of the first ballots.
const COPIES: usize = 3;

#[derive(Debug, Clone)]
struct Case {
    contest: Contest,
    /// Each ballot with the station (index) it was cast at.
    ballots: Vec<(Ballot, usize)>,
    /// Extra ballots issued per station beyond those returned (may be negative to make
    /// more returned than issued).
    extra_issued: Vec<i64>,
}

fn case() -> impl Strategy<Value = Case> {
    (1u32..=3)
        .prop_flat_map(|seats| {
            let (least, most) = PrcDirect::candidate_range(seats);
            (Just(seats), least..=most)
        })
        .prop_flat_map(|(seats, n)| {
            // How likely each candidate is to get a FOR mark, in tenths: skewed
            // popularity makes candidates pass and fail.
            let popularity = prop::collection::vec(prop::sample::select(POPULARITY), n);
            let ballot = (
                prop::collection::vec(0u8..10, n),
                prop::collection::vec(0u8..3, n),
                prop::collection::btree_set(0usize..WRITE_IN_POOL.len(), 0..=2),
                // Below COPIES: a copy of an earlier ballot, so that counts cluster and
                // ties happen.
                0usize..6,
                // In a "full" case: the candidates marked FOR, as many as the seats.
                prop::collection::btree_set(0..n, seats as usize),
            );
            (
                Just(seats),
                Just(n),
                popularity,
                prop::collection::vec((ballot, 0usize..4), 0..40),
                1usize..=4,
                prop::collection::vec(prop_oneof![9 => 0i64..3, 1 => Just(-1i64)], 4),
                0u64..=250,
                any::<bool>(),
            )
        })
        .prop_map(
            |(seats, n, popularity, raw_ballots, stations, extra_issued, roll_percent, full)| {
                let mut c = contest("D-001", seats, n);
                let mut ballots: Vec<(Ballot, usize)> = Vec::new();
                for (i, ((draws, others, write_ins, copy, chosen), station)) in
                    raw_ballots.into_iter().enumerate()
                {
                    let mut id = [0u8; 16];
                    id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    let (marks, write_ins) = if copy < COPIES && copy < i {
                        let model = &ballots[copy].0;
                        (model.marks.clone(), model.write_ins.clone())
                    } else if full {
                        // Every ballot uses all its votes on formal candidates: more
                        // candidates pass than there are seats, and ties at the last seat.
                        let marks = (0..n)
                            .map(|k| {
                                if chosen.contains(&k) {
                                    Mark::For
                                } else {
                                    Mark::None
                                }
                            })
                            .collect();
                        (marks, Vec::new())
                    } else {
                        let marks = draws
                            .iter()
                            .zip(&others)
                            .zip(&popularity)
                            .map(|((draw, other), p)| {
                                if draw < p {
                                    Mark::For
                                } else if *other == 0 {
                                    Mark::Against
                                } else {
                                    Mark::None
                                }
                            })
                            .collect();
                        let names = write_ins
                            .into_iter()
                            .map(|w| WRITE_IN_POOL[w].to_string())
                            .collect();
                        (marks, names)
                    };
                    let ballot = Ballot {
                        id: BallotId(id),
                        contest: c.id.clone(),
                        marks,
                        write_ins,
                    };
                    ballots.push((ballot, station % stations));
                }
                // Voters on the roll: 0 to 2.5 times the ballots returned, at least 1.
                c.registered = (ballots.len() as u64 * roll_percent / 100).max(1);
                Case {
                    contest: c,
                    ballots,
                    extra_issued: extra_issued[..stations].to_vec(),
                }
            },
        )
}

/// The station reports of a case: every station closed and synced, its sheet agreeing.
fn reports(case: &Case, ballots: &[(Ballot, usize)]) -> Vec<StationReport> {
    let mut sheets = vec![TallySheet::default(); case.extra_issued.len()];
    for (ballot, station) in ballots {
        sheets[*station].add_ballot(&case.contest, ballot);
    }
    sheets
        .into_iter()
        .zip(&case.extra_issued)
        .enumerate()
        .map(|(i, (mut sheet, extra))| {
            sheet.add_issued(sheet.returned.saturating_add_signed(*extra));
            StationReport {
                station_id: format!("S-{i:04}"),
                closed: true,
                synced: true,
                sheet: Some(sheet.clone()),
                computed: sheet,
            }
        })
        .collect()
}

fn decide(case: &Case, stations: Vec<StationReport>) -> ContestOutcome {
    PrcDirect.decide(&ContestInput {
        contest: &case.contest,
        stations,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn outcome_does_not_depend_on_ballot_or_report_order(
        case in case(),
        seed in any::<u64>(),
    ) {
        let base = decide(&case, reports(&case, &case.ballots));
        // A deterministic shuffle of the ballots and of the reports.
        let mut shuffled = case.ballots.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut stations = reports(&case, &shuffled);
        stations.reverse();
        prop_assert_eq!(decide(&case, stations), base);
    }

    #[test]
    fn outcome_does_not_depend_on_how_ballots_are_split_among_stations(case in case()) {
        let split = decide(&case, reports(&case, &case.ballots));
        // The same ballots and ballots issued, all at one station.
        let issued: u64 = reports(&case, &case.ballots).iter().map(|r| r.computed.issued).sum();
        let mut sheet = TallySheet::default();
        for (ballot, _) in &case.ballots {
            sheet.add_ballot(&case.contest, ballot);
        }
        sheet.add_issued(issued);
        let one = StationReport {
            station_id: "S-0000".into(),
            closed: true,
            synced: true,
            sheet: Some(sheet.clone()),
            computed: sheet,
        };
        let mut whole = decide(&case, vec![one]);
        whole.stations = split.stations;
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn figures_add_up_and_seats_are_never_exceeded(case in case()) {
        let stations = reports(&case, &case.ballots);
        for s in &stations {
            prop_assert_eq!(s.computed.valid + s.computed.void, s.computed.returned);
        }
        let out = decide(&case, stations);
        prop_assert_eq!(out.valid + out.void, out.returned);
        prop_assert_eq!(out.returned, case.ballots.len() as u64);
        prop_assert!(out.elected.len() <= case.contest.seats as usize);
        let elected_flags = out.candidates.iter().filter(|c| c.elected).count()
            + out.write_ins.iter().filter(|w| w.elected).count();
        prop_assert_eq!(elected_flags, out.elected.len());
        for c in out.candidates.iter().filter(|c| c.elected) {
            prop_assert!(c.for_votes * 2 > out.issued);
        }
        for w in out.write_ins.iter().filter(|w| w.elected) {
            prop_assert!(w.for_votes * 2 > out.issued);
        }
        match out.status {
            ContestStatus::Elected => {
                prop_assert_eq!(out.elected.len(), case.contest.seats as usize);
            }
            ContestStatus::Runoff | ContestStatus::Tie => {
                let open = out.runoff.as_ref().map_or(0, |r| r.seats as usize);
                prop_assert_eq!(out.elected.len() + open, case.contest.seats as usize);
            }
            _ => prop_assert!(out.elected.is_empty()),
        }
        prop_assert!(!out.problems.is_empty(), "every status is explained");
    }
}

/// The generator is worth its salt: its cases reach every status a decided contest
/// can have, ties included.
#[test]
fn generated_cases_reach_every_decided_status() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..2_000 {
        let case = case().new_tree(&mut runner).unwrap().current();
        let out = decide(&case, reports(&case, &case.ballots));
        *seen.entry(out.status).or_insert(0) += 1;
    }
    for status in [
        ContestStatus::Void,
        ContestStatus::Invalid,
        ContestStatus::Tie,
        ContestStatus::Runoff,
        ContestStatus::Elected,
    ] {
        assert!(
            seen.contains_key(&status),
            "{status} never generated: {seen:?}"
        );
    }
}
