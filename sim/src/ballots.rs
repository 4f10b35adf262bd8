//! Election-day ballots drawn by seed, with their ground truth: for every station and
//! every contest it collects, how many ballots were issued and what each returned
//! ballot says. Tests and the demo feed these to real stations and compare what the
//! center reports with the truth computed here, independently of the sync.
//!
//! [`draw`] draws a usual day; [`draw_with`] shapes chosen contests on top of it so that
//! they reach a chosen status (elected, runoff, tie, invalid, void, discrepancy).

mod shape;

pub use shape::{Day, HumanSheet, MIN_SHAPED_REGISTERED, Outcome, Scenario, ShapeError, draw_with};

use std::collections::BTreeMap;

use pollsync_election::{
    Ballot, BallotChoices, BallotId, Contest, ElectionDefinition, StationKind, TallySheet,
};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How voters behave, per contest and station.
#[derive(Debug, Clone, Copy)]
pub struct Turnout {
    /// Share of registered voters handed a ballot, drawn per contest from this range.
    pub issued_share: (f64, f64),
    /// Share of issued ballots not put in the box.
    pub not_returned_share: f64,
    /// Share of ballots with more FOR votes than seats (void).
    pub void_share: f64,
    /// Share of ballots with a write-in name.
    pub write_in_share: f64,
    /// Share of the contest's voters served by each mobile ballot box.
    pub mobile_share: f64,
}

/// About the usual turnout of the model case (≈ 780k ballots of 825k places).
pub const USUAL: Turnout = Turnout {
    issued_share: (0.92, 0.97),
    not_returned_share: 0.002,
    void_share: 0.004,
    write_in_share: 0.002,
    mobile_share: 0.03,
};

/// Chance that a voter marks FOR one of the popular candidates (as many as seats)
/// on reaching them, and one of the others.
const FAVOURED: std::ops::Range<f64> = 0.6..0.95;
const OTHERS: std::ops::Range<f64> = 0.1..0.45;

/// Names voters write in.
const WRITE_IN_NAMES: [&str; 4] = ["孙立新", "马春华", "郑国强", "吕文静"];

/// One station's ballots for one contest.
#[derive(Debug, Clone)]
pub struct StationContest {
    pub station: String,
    pub contest: String,
    pub issued: u64,
    pub ballots: Vec<BallotChoices>,
    /// What these ballots and the issued count add up to.
    pub truth: TallySheet,
}

/// Draw every station's ballots for `def` with `seed`.
pub fn draw(def: &ElectionDefinition, seed: u64, turnout: &Turnout) -> Vec<StationContest> {
    // A stream of its own, so ballots do not repeat the generator's draws for one seed.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00ba_1107);
    let mut out = Vec::new();
    for contest in &def.contests {
        let stations: Vec<_> = def.stations_of(&contest.id).collect();
        // Voters split among the contest's stations: mobile boxes take a small share.
        let weights: Vec<f64> = stations
            .iter()
            .map(|s| match s.kind {
                StationKind::Mobile => turnout.mobile_share,
                StationKind::Fixed => 1.0,
            })
            .collect();
        let sum: f64 = weights.iter().sum();
        let share = rng.random_range(turnout.issued_share.0..=turnout.issued_share.1);
        // As in a real election, most voters back about as many candidates as there
        // are seats: those few are popular, the others less so, in no list order.
        let mut order: Vec<usize> = (0..contest.candidates.len()).collect();
        order.shuffle(&mut rng);
        let mut popularity = vec![0.0; contest.candidates.len()];
        for (rank, &i) in order.iter().enumerate() {
            popularity[i] = if rank < contest.seats as usize {
                rng.random_range(FAVOURED)
            } else {
                rng.random_range(OTHERS)
            };
        }
        for (station, w) in stations.iter().zip(&weights) {
            let voters = (contest.registered as f64 * w / sum).round() as u64;
            let issued = (voters as f64 * share).round() as u64;
            let returned = issued - (issued as f64 * turnout.not_returned_share).round() as u64;
            let mut truth = TallySheet::for_contest(contest);
            truth.add_issued(issued);
            let ballots: Vec<BallotChoices> = (0..returned)
                .map(|_| {
                    let choices = draw_ballot(&mut rng, contest, &popularity, turnout);
                    count(&mut truth, contest, &choices);
                    choices
                })
                .collect();
            out.push(StationContest {
                station: station.id.clone(),
                contest: contest.id.clone(),
                issued,
                ballots,
                truth,
            });
        }
    }
    out
}

fn draw_ballot(
    rng: &mut ChaCha8Rng,
    contest: &Contest,
    popularity: &[f64],
    turnout: &Turnout,
) -> BallotChoices {
    let seats = contest.seats as usize;
    let ids: Vec<&str> = contest.candidates.iter().map(|c| c.id.as_str()).collect();
    let mut for_ids = Vec::new();
    let mut against = Vec::new();
    let void = rng.random_bool(turnout.void_share);
    // Each voter goes down the list in an order of their own.
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.shuffle(rng);
    for (id, p) in order.iter().map(|&i| (ids[i], popularity[i])) {
        let draw: f64 = rng.random_range(0.0..1.0);
        if draw < p && (void || for_ids.len() < seats) {
            for_ids.push(id.to_string());
        } else if draw > 0.93 {
            against.push(id.to_string());
        }
    }
    let mut write_in = Vec::new();
    // A write-in must not be a formal candidate's name (the name generator may
    // have given one of these to a candidate of a large election).
    let free_names: Vec<&str> = WRITE_IN_NAMES
        .iter()
        .copied()
        .filter(|name| !contest.candidates.iter().any(|c| c.name == *name))
        .collect();
    if void && for_ids.len() <= seats {
        // Make it void for sure: FOR everybody not yet marked.
        for id in &ids {
            if !for_ids.iter().any(|f| f == id) {
                against.retain(|a| a != id);
                for_ids.push(id.to_string());
            }
        }
        if for_ids.len() <= seats
            && let Some(name) = free_names.first()
        {
            write_in.push((*name).to_string());
        }
    } else if !void
        && for_ids.len() < seats
        && rng.random_bool(turnout.write_in_share)
        && let Some(name) = free_names.choose(rng)
    {
        write_in.push((*name).to_string());
    }
    BallotChoices {
        contest: contest.id.clone(),
        for_ids,
        against,
        write_in,
    }
}

/// Add the choices to a tally through the election crate's own counting.
fn count(truth: &mut TallySheet, contest: &Contest, choices: &BallotChoices) {
    // The choices are drawn to be well-formed; a refusal here is a generator bug.
    let ballot: Ballot = choices
        .to_ballot(BallotId::from_bytes([0; 16]), contest)
        .unwrap_or_else(|e| panic!("generated ballot refused: {e}"));
    truth.add_ballot(contest, &ballot);
}

/// The truth per contest: every station's figures added up.
pub fn truth_per_contest(drawn: &[StationContest]) -> BTreeMap<String, TallySheet> {
    let mut totals: BTreeMap<String, TallySheet> = BTreeMap::new();
    for sc in drawn {
        totals
            .entry(sc.contest.clone())
            .or_default()
            .merge(&sc.truth);
    }
    totals
}

/// One station's ballots as the JSON lines `station import` reads.
pub fn import_lines(drawn: &[StationContest], station: &str) -> String {
    let mut out = String::new();
    for sc in drawn.iter().filter(|sc| sc.station == station) {
        for b in &sc.ballots {
            // BallotChoices is plain strings and lists: serialising cannot fail.
            out.push_str(&serde_json::to_string(b).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{BEICHEN, SMALL, generate};

    #[test]
    fn the_truth_adds_up_and_is_the_same_for_the_same_seed() {
        let def = generate(&SMALL, 3).expect("small");
        let a = draw(&def, 9, &USUAL);
        let b = draw(&def, 9, &USUAL);
        assert_eq!(truth_per_contest(&a), truth_per_contest(&b));
        for sc in &a {
            assert_eq!(sc.truth.returned, sc.ballots.len() as u64);
            assert_eq!(sc.truth.valid + sc.truth.void, sc.truth.returned);
            assert!(sc.truth.returned <= sc.issued);
        }
        assert!(
            a.iter().any(|sc| sc.truth.void > 0),
            "some void ballots are drawn"
        );
    }

    #[test]
    fn a_write_in_is_never_a_formal_candidates_name() {
        // Every write-in name is some candidate's: none may be written in, and
        // every ballot is still drawn (a refused one would panic in `count`).
        let mut def = generate(&SMALL, 3).expect("small");
        for contest in &mut def.contests {
            for (candidate, name) in contest.candidates.iter_mut().zip(WRITE_IN_NAMES) {
                candidate.name = name.to_string();
            }
        }
        let many = Turnout {
            write_in_share: 0.5,
            ..USUAL
        };
        let drawn = draw(&def, 4, &many);
        for sc in &drawn {
            let contest = def
                .contests
                .iter()
                .find(|c| c.id == sc.contest)
                .expect("contest");
            for ballot in &sc.ballots {
                for name in &ballot.write_in {
                    assert!(
                        !contest.candidates.iter().any(|c| &c.name == name),
                        "{name} is a candidate of {}",
                        contest.id
                    );
                }
            }
        }
    }

    #[test]
    fn beichen_at_the_usual_turnout_is_about_780k_ballots() {
        let def = generate(&BEICHEN, 2021).expect("beichen");
        let drawn = draw(&def, 1, &USUAL);
        // Both levels are voted on the same ballots day: count district-level ballots.
        let district: u64 = drawn
            .iter()
            .filter(|sc| sc.contest.starts_with("D-"))
            .map(|sc| sc.ballots.len() as u64)
            .sum();
        assert!(
            (480_000..=530_000).contains(&district),
            "{district} district-level ballots"
        );
        let all: u64 = drawn.iter().map(|sc| sc.ballots.len() as u64).sum();
        assert!((740_000..=820_000).contains(&all), "{all} ballots in all");
    }
}
