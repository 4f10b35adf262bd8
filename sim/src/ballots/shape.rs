//! Shaped election days: ballots drawn so that chosen contests reach a chosen status of
//! SPEC §6 (elected, runoff, tie, invalid, void, discrepancy) while the ground truth
//! stays exact, so that tests can see every status the center shows.
//!
//! A shaped contest is not drawn ballot by ballot at random: the FOR votes each
//! candidate must receive are drawn first (within bounds that force the outcome), then
//! ballots are laid out to give exactly those votes, shuffled, and shared among the
//! contest's stations. The truth is still counted from the ballots by the election
//! crate, never assumed. Contests without a shape are exactly what [`draw`] gives.

use std::collections::BTreeMap;
use std::fmt;

use pollsync_election::{
    BallotChoices, Contest, ContestInput, ContestOutcome, ContestStatus, ElectionDefinition,
    StationKind, StationReport, TallySheet, rules_by_id,
};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{StationContest, Turnout, WRITE_IN_NAMES, count, draw};

/// Fewest voters on the roll a shaped contest may have: below it, rounding leaves no
/// room between "more than half" and the bounds the shapes draw from.
pub const MIN_SHAPED_REGISTERED: u64 = 100;

/// Share of registered voters handed a ballot in an [`Outcome::Invalid`] contest.
const LOW_TURNOUT_SHARE: (f64, f64) = (0.30, 0.45);

/// Share of ballots on which a formal candidate not marked FOR is marked AGAINST.
const AGAINST_SHARE: f64 = 0.05;

/// What one contest is shaped to give under `prc-direct` once every station is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exactly `seats` candidates get more than half of the ballots issued: all seats
    /// filled.
    Elected,
    /// Only `seats − 1` candidates pass: one seat open for a further ballot (另行选举).
    Runoff,
    /// `seats − 1` candidates pass with more votes, and two more pass with exactly equal
    /// votes for the last seat. Needs 2 or more seats: in a 1-seat contest each ballot
    /// carries at most one FOR vote, so two candidates cannot both get more than half.
    Tie,
    /// Ballots issued × 2 ≤ voters on the roll: the election in the district is invalid.
    /// The votes are laid out as for `Elected`.
    Invalid,
    /// One station's box holds more ballots than it handed out, by more than the
    /// ballots not returned elsewhere, so that the contest's ballots returned exceed
    /// ballots issued. The votes are laid out as for `Elected`.
    Void,
    /// Laid out as `Elected`, but the human tally sheet of one station (the first of the
    /// contest, in definition order, that has ballots) credits the contest's first
    /// candidate with `extra_for` more FOR votes than its ballots give. The sheet is in
    /// [`Day::sheets`]; the truth stays what the ballots say.
    Discrepancy { extra_for: u64 },
}

impl Outcome {
    /// The status the center must show for the contest once every station is in.
    pub fn status(self) -> ContestStatus {
        match self {
            Outcome::Elected => ContestStatus::Elected,
            Outcome::Runoff => ContestStatus::Runoff,
            Outcome::Tie => ContestStatus::Tie,
            Outcome::Invalid => ContestStatus::Invalid,
            Outcome::Void => ContestStatus::Void,
            Outcome::Discrepancy { .. } => ContestStatus::Discrepancy,
        }
    }
}

/// How a day is drawn: the usual voter behaviour, and the contests shaped on top of it.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub turnout: Turnout,
    /// Contest id → the outcome it is shaped to give.
    pub outcomes: BTreeMap<String, Outcome>,
}

impl Scenario {
    /// Nothing shaped: [`draw_with`] then gives what [`draw`] gives.
    pub fn new(turnout: Turnout) -> Self {
        Scenario {
            turnout,
            outcomes: BTreeMap::new(),
        }
    }

    /// Shape one more contest.
    pub fn with(mut self, contest: impl Into<String>, outcome: Outcome) -> Self {
        self.outcomes.insert(contest.into(), outcome);
        self
    }
}

/// A station's tally sheet from the human count that differs from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanSheet {
    pub station: String,
    pub contest: String,
    pub sheet: TallySheet,
}

/// A drawn day: every station's ballots with their truth, and the human tally sheets
/// that differ from the records (everywhere else the sheet is what the records say).
#[derive(Debug, Clone)]
pub struct Day {
    pub drawn: Vec<StationContest>,
    pub sheets: Vec<HumanSheet>,
}

impl Day {
    /// The human tally sheet a station closes a contest with, if it differs from its
    /// records (`station close --sheet`); `None` means `--from-records`.
    pub fn sheet(&self, station: &str, contest: &str) -> Option<&TallySheet> {
        self.sheets
            .iter()
            .find(|s| s.station == station && s.contest == contest)
            .map(|s| &s.sheet)
    }

    /// Every station of the contest as the center sees it once all are closed and
    /// synced: its sheet (human or from its records) and the truth of its ballots.
    pub fn reports(&self, def: &ElectionDefinition, contest: &str) -> Vec<StationReport> {
        def.stations_of(contest)
            .map(|s| {
                let computed = self
                    .drawn
                    .iter()
                    .find(|sc| sc.station == s.id && sc.contest == contest)
                    .map(|sc| sc.truth.clone())
                    .unwrap_or_default();
                let sheet = self
                    .sheet(&s.id, contest)
                    .cloned()
                    .unwrap_or(computed.clone());
                StationReport {
                    station_id: s.id.clone(),
                    closed: true,
                    synced: true,
                    sheet: Some(sheet),
                    computed,
                }
            })
            .collect()
    }

    /// What the election's rule set decides from the truth once every station of the
    /// contest has closed and synced; `None` for an unknown contest or rule set.
    pub fn outcome(&self, def: &ElectionDefinition, contest: &str) -> Option<ContestOutcome> {
        let rules = rules_by_id(&def.election.rules)?;
        let c = def.contest(contest)?;
        Some(rules.decide(&ContestInput {
            contest: c,
            stations: self.reports(def, contest),
        }))
    }
}

/// Why a scenario cannot be drawn for a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    UnknownContest {
        contest: String,
    },
    TooFewVoters {
        contest: String,
        registered: u64,
    },
    /// The turnout leaves too few valid ballots for the votes the shape needs.
    Infeasible {
        contest: String,
        detail: String,
    },
    /// `Discrepancy { extra_for: 0 }` would not differ from the records.
    NoDifference {
        contest: String,
    },
    /// A tie for the last seat between candidates who both pass cannot happen with one
    /// seat.
    TieNeedsTwoSeats {
        contest: String,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::UnknownContest { contest } => {
                write!(
                    f,
                    "cannot shape contest '{contest}': the election has no such contest"
                )
            }
            ShapeError::TooFewVoters {
                contest,
                registered,
            } => write!(
                f,
                "cannot shape contest '{contest}': {registered} voters on the roll, a shaped \
                 contest needs at least {MIN_SHAPED_REGISTERED}"
            ),
            ShapeError::Infeasible { contest, detail } => {
                write!(f, "cannot shape contest '{contest}': {detail}")
            }
            ShapeError::TieNeedsTwoSeats { contest } => write!(
                f,
                "cannot shape contest '{contest}' as a tie: it has 1 seat, and with one FOR vote \
                 per valid ballot two candidates cannot both get more than half of the ballots"
            ),
            ShapeError::NoDifference { contest } => write!(
                f,
                "cannot shape contest '{contest}' as a discrepancy of 0 votes: extra_for must \
                 be at least 1"
            ),
        }
    }
}

impl std::error::Error for ShapeError {}

/// Draw every station's ballots for `def` with `seed`, then shape the scenario's
/// contests. Deterministic per seed; contests without a shape are as [`draw`] gives.
pub fn draw_with(
    def: &ElectionDefinition,
    seed: u64,
    scenario: &Scenario,
) -> Result<Day, ShapeError> {
    let mut shaped = Vec::new();
    for (id, outcome) in &scenario.outcomes {
        let contest = def.contest(id).ok_or_else(|| ShapeError::UnknownContest {
            contest: id.clone(),
        })?;
        shaped.push(shape_contest(
            def,
            contest,
            seed,
            *outcome,
            &scenario.turnout,
        )?);
    }
    let mut drawn = draw(def, seed, &scenario.turnout);
    let mut sheets = Vec::new();
    for shape in shaped {
        // Both list the contest's stations in definition order.
        let mine = drawn.iter_mut().filter(|sc| sc.contest == shape.contest);
        for (sc, replacement) in mine.zip(shape.stations) {
            *sc = replacement;
        }
        sheets.extend(shape.sheet);
    }
    Ok(Day { drawn, sheets })
}

/// One shaped contest: its ballots per station in definition order, and a human sheet
/// when the outcome calls for one.
struct Shaped {
    contest: String,
    stations: Vec<StationContest>,
    sheet: Option<HumanSheet>,
}

/// A stable 64-bit hash of a contest id (FNV-1a), so that each shaped contest has a
/// random stream of its own, whatever else is shaped.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Draw one contest's ballots so that it gives `outcome`, with its own random stream.
fn shape_contest(
    def: &ElectionDefinition,
    contest: &Contest,
    seed: u64,
    outcome: Outcome,
    turnout: &Turnout,
) -> Result<Shaped, ShapeError> {
    let fail = |detail: String| ShapeError::Infeasible {
        contest: contest.id.clone(),
        detail,
    };
    if contest.registered < MIN_SHAPED_REGISTERED {
        return Err(ShapeError::TooFewVoters {
            contest: contest.id.clone(),
            registered: contest.registered,
        });
    }
    if outcome == (Outcome::Discrepancy { extra_for: 0 }) {
        return Err(ShapeError::NoDifference {
            contest: contest.id.clone(),
        });
    }
    if contest.seats == 0 {
        return Err(fail("it has no seat to fill".into()));
    }
    if outcome == Outcome::Tie && contest.seats < 2 {
        return Err(ShapeError::TieNeedsTwoSeats {
            contest: contest.id.clone(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005a_a9ed ^ id_hash(&contest.id));
    let stations: Vec<_> = def.stations_of(&contest.id).collect();
    if stations.is_empty() {
        return Err(fail("no station collects its ballots".into()));
    }

    // Ballots issued per station, shared as `draw` shares them.
    let weights: Vec<f64> = stations
        .iter()
        .map(|s| match s.kind {
            StationKind::Mobile => turnout.mobile_share,
            StationKind::Fixed => 1.0,
        })
        .collect();
    let sum: f64 = weights.iter().sum();
    let (lo, hi) = match outcome {
        Outcome::Invalid => LOW_TURNOUT_SHARE,
        _ => turnout.issued_share,
    };
    let share = rng.random_range(lo..=hi.max(lo));
    let mut issued: Vec<u64> = weights
        .iter()
        .map(|w| ((contest.registered as f64 * w / sum).round() * share).round() as u64)
        .collect();
    let biggest = (0..issued.len())
        .max_by_key(|&i| (issued[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    if outcome == Outcome::Invalid {
        // Rounding must not lift the turnout over half: take ballots off the biggest station.
        while issued.iter().sum::<u64>() * 2 > contest.registered && issued[biggest] > 0 {
            issued[biggest] -= 1;
        }
    }
    let mut returned: Vec<u64> = issued
        .iter()
        .map(|&n| n - ((n as f64 * turnout.not_returned_share).round() as u64).min(n))
        .collect();
    if outcome == Outcome::Void {
        // More ballots in one box than it handed out, more than all the boxes lack.
        let lacking: u64 = issued.iter().zip(&returned).map(|(i, r)| i - r).sum();
        returned[biggest] += lacking + rng.random_range(1..=3);
    }
    let total_issued: u64 = issued.iter().sum();
    let total_returned: u64 = returned.iter().sum();
    let void = ((total_returned as f64 * turnout.void_share).round() as u64).min(total_returned);
    let valid = total_returned - void;

    let targets = vote_targets(&mut rng, contest, outcome, total_issued);
    let write_in = WRITE_IN_NAMES
        .iter()
        .filter(|n| !contest.candidates.iter().any(|c| c.name == **n))
        .copied()
        .collect::<Vec<_>>()
        .choose(&mut rng)
        .map(|n| (n.to_string(), rng.random_range(1..=3u64)));

    // Every FOR vote must find a valid ballot with room for it.
    let mut entrants: Vec<(Choice, u64)> = contest
        .candidates
        .iter()
        .zip(&targets)
        .map(|(c, &f)| (Choice::Candidate(c.id.clone()), f))
        .collect();
    entrants.extend(write_in.map(|(name, f)| (Choice::WriteIn(name), f)));
    let marks: u64 = entrants.iter().map(|(_, f)| f).sum();
    if let Some((_, most)) = entrants.iter().max_by_key(|(_, f)| *f)
        && *most > valid
    {
        return Err(fail(format!(
            "a candidate needs {most} FOR votes but only {valid} ballots are valid: \
             the turnout returns too few ballots"
        )));
    }
    if marks > u64::from(contest.seats) * valid {
        return Err(fail(format!(
            "{marks} FOR votes do not fit on {valid} valid ballots of {} seat(s)",
            contest.seats
        )));
    }

    let mut ballots = lay_out(&mut rng, contest, &entrants, valid);
    // Void: FOR every formal candidate, more than the seats (candidates > seats always).
    let all: Vec<String> = contest.candidates.iter().map(|c| c.id.clone()).collect();
    ballots.extend((0..void).map(|_| BallotChoices {
        contest: contest.id.clone(),
        for_ids: all.clone(),
        ..BallotChoices::default()
    }));
    ballots.shuffle(&mut rng);

    let mut rest = ballots.into_iter();
    let mut out = Vec::new();
    for ((station, &issued), &returned) in stations.iter().zip(&issued).zip(&returned) {
        let mut truth = TallySheet::for_contest(contest);
        truth.add_issued(issued);
        let ballots: Vec<BallotChoices> = rest.by_ref().take(returned as usize).collect();
        for b in &ballots {
            count(&mut truth, contest, b);
        }
        out.push(StationContest {
            station: station.id.clone(),
            contest: contest.id.clone(),
            issued,
            ballots,
            truth,
        });
    }

    let sheet = match outcome {
        Outcome::Discrepancy { extra_for } => {
            let at = out
                .iter()
                .find(|sc| !sc.ballots.is_empty())
                .ok_or_else(|| fail("no station has ballots to miscount".into()))?;
            let first = &contest.candidates[0].id;
            let mut sheet = at.truth.clone();
            let votes = sheet.for_votes.entry(first.clone()).or_insert(0);
            *votes = votes.saturating_add(extra_for);
            Some(HumanSheet {
                station: at.station.clone(),
                contest: contest.id.clone(),
                sheet,
            })
        }
        _ => None,
    };
    Ok(Shaped {
        contest: contest.id.clone(),
        stations: out,
        sheet,
    })
}

/// A FOR vote on a ballot: a formal candidate or a written-in name.
enum Choice {
    Candidate(String),
    WriteIn(String),
}

/// A whole number of ballots between two shares of `of`.
fn between(rng: &mut ChaCha8Rng, of: u64, lo: f64, hi: f64) -> u64 {
    let a = (of as f64 * lo).round() as u64;
    let b = (of as f64 * hi).round() as u64;
    rng.random_range(a..=b.max(a))
}

/// FOR votes per formal candidate (ballot order) that force the outcome, given the
/// ballots issued. "Passes" means FOR × 2 > issued (SPEC §6.5).
fn vote_targets(
    rng: &mut ChaCha8Rng,
    contest: &Contest,
    outcome: Outcome,
    issued: u64,
) -> Vec<u64> {
    let majority = issued / 2 + 1;
    let fails = issued / 2;
    let seats = contest.seats as usize;
    let mut order: Vec<usize> = (0..contest.candidates.len()).collect();
    order.shuffle(rng);
    let mut votes = vec![0; order.len()];
    let (passing, rest): (&[usize], &[usize]) = match outcome {
        Outcome::Runoff => order.split_at(seats - 1),
        Outcome::Tie => {
            let tie = majority + between(rng, issued, 0.0, 0.03);
            let (above, rest) = order.split_at(seats - 1);
            for &i in above {
                votes[i] = tie + 1 + between(rng, issued, 0.0, 0.1);
            }
            let (tied, rest) = rest.split_at(2);
            for &i in tied {
                votes[i] = tie;
            }
            for &i in rest {
                votes[i] = between(rng, issued, 0.05, 0.2).min(fails);
            }
            return votes;
        }
        _ => order.split_at(seats),
    };
    let (pass_hi, rest_lo, rest_hi) = match outcome {
        Outcome::Runoff => (0.7, 0.1, 0.35),
        _ => (0.75, 0.05, 0.2),
    };
    for &i in passing {
        votes[i] = between(rng, issued, 0.55, pass_hi).max(majority);
    }
    for &i in rest {
        votes[i] = between(rng, issued, rest_lo, rest_hi).min(fails);
    }
    votes
}

/// `valid` ballots carrying exactly the entrants' FOR votes, at most `seats` per ballot:
/// each entrant's votes go on consecutive ballots, wrapping around, so a ballot is
/// reached at most ⌈votes / valid⌉ times and never twice by one entrant. Formal
/// candidates not marked FOR are sometimes marked AGAINST.
fn lay_out(
    rng: &mut ChaCha8Rng,
    contest: &Contest,
    entrants: &[(Choice, u64)],
    valid: u64,
) -> Vec<BallotChoices> {
    let valid = valid as usize;
    let mut ballots: Vec<BallotChoices> = (0..valid)
        .map(|_| BallotChoices {
            contest: contest.id.clone(),
            ..BallotChoices::default()
        })
        .collect();
    if valid == 0 {
        return ballots;
    }
    let mut at = 0usize;
    for (choice, votes) in entrants {
        let votes = *votes as usize;
        for k in 0..votes {
            let b = &mut ballots[(at + k) % valid];
            match choice {
                Choice::Candidate(id) => b.for_ids.push(id.clone()),
                Choice::WriteIn(name) => b.write_in.push(name.clone()),
            }
        }
        at = (at + votes) % valid;
    }
    for b in &mut ballots {
        for c in &contest.candidates {
            if !b.for_ids.contains(&c.id) && rng.random_bool(AGAINST_SHARE) {
                b.against.push(c.id.clone());
            }
        }
    }
    ballots
}

#[cfg(test)]
mod tests;
