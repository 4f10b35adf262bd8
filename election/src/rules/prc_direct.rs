//! Rule set `prc-direct`: direct election of deputies to district- and town-level
//! people's congresses under the Electoral Law of the PRC (2020), arts. 25, 31, 41–46,
//! as SPEC §6 states it.
//!
//! Definition check: 1 ≤ seats ≤ 3 per electoral district; formal candidates exceed the
//! seats by at least a third of them and at most the seats. Outcome: the first status
//! that applies of pending, discrepancy, void (returned > issued), invalid (issued × 2 ≤
//! registered), tie, runoff, elected; a candidate or write-in name passes with FOR × 2 >
//! ballots issued (void ballots included in the ballots issued).

use super::outcome::{ContestOutcome, ContestStatus, Entrant, Runoff, ranking};
use super::{ContestInput, Rules};
use crate::words::{counted, figure, joined};

/// Fewest and most deputies one electoral district elects (art. 25).
pub const MIN_SEATS: u32 = 1;
/// Most deputies one electoral district elects (art. 25).
pub const MAX_SEATS: u32 = 3;

/// The `prc-direct` rule set.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrcDirect;

impl PrcDirect {
    /// Formal candidates allowed for these seats (art. 31): from seats plus a third of
    /// the seats (rounded up) to twice the seats.
    pub fn candidate_range(seats: u32) -> (usize, usize) {
        let seats = seats as usize;
        (
            seats.saturating_add(seats.div_ceil(3)),
            seats.saturating_mul(2),
        )
    }
}

/// Whether `votes` FOR are more than half of `issued` ballots.
fn more_than_half(votes: u64, issued: u64) -> bool {
    u128::from(votes) * 2 > u128::from(issued)
}

/// Fewest FOR votes that are more than half of `issued`.
fn majority_of(issued: u64) -> u64 {
    issued / 2 + 1
}

impl Rules for PrcDirect {
    fn id(&self) -> &'static str {
        "prc-direct"
    }

    fn check_contest(&self, seats: u32, candidates: usize) -> Vec<String> {
        if !(MIN_SEATS..=MAX_SEATS).contains(&seats) {
            return vec![format!(
                "an electoral district elects {MIN_SEATS} to {MAX_SEATS} deputies (art. 25), \
                 not {seats}"
            )];
        }
        let (least, most) = Self::candidate_range(seats);
        if !(least..=most).contains(&candidates) {
            let allowed = if least == most {
                format!("exactly {least}")
            } else {
                format!("{least} to {most}")
            };
            return vec![format!(
                "{} need {allowed} formal candidates (art. 31), not {candidates}",
                counted(u64::from(seats), "seat", "seats")
            )];
        }
        Vec::new()
    }

    fn decide(&self, input: &ContestInput) -> ContestOutcome {
        let contest = input.contest;
        let mut out = ContestOutcome::counted(contest, &input.total());
        out.stations = input.progress();

        let missing = input.missing();
        if !missing.is_empty() {
            out.status = ContestStatus::Pending;
            out.problems = missing;
            // Differences already visible at stations that are done are worth acting on now.
            out.problems.extend(input.discrepancies());
            return out;
        }

        let discrepancies = input.discrepancies();
        if !discrepancies.is_empty() {
            out.status = ContestStatus::Discrepancy;
            out.problems = discrepancies;
            return out;
        }

        if out.returned > out.issued {
            out.status = ContestStatus::Void;
            out.problems.push(format!(
                "ballots returned {} exceed ballots issued {}: the vote in this contest is \
                 void (art. 44) and must be held again",
                figure(out.returned),
                figure(out.issued)
            ));
            return out;
        }

        if !more_than_half(out.issued, contest.registered) {
            out.status = ContestStatus::Invalid;
            out.problems.push(format!(
                "turnout {} of {} registered is not more than half: the election in this \
                 district is invalid (art. 45) and must be held again",
                figure(out.issued),
                figure(contest.registered)
            ));
            return out;
        }

        decide_seats(&mut out, contest.seats);
        out
    }
}

/// Fill the seats from the ranking (SPEC §6.5): elected, tie, or runoff.
fn decide_seats(out: &mut ContestOutcome, seats: u32) {
    let issued = out.issued;
    let ranked = ranking(out);
    let passing: Vec<&Entrant> = ranked
        .iter()
        .filter(|e| more_than_half(e.votes, issued))
        .collect();
    let seat_count = seats as usize;
    let needed = format!(
        "more than half of the {} ballots issued, i.e. at least {}",
        figure(issued),
        figure(majority_of(issued))
    );

    if passing.len() > seat_count {
        // More pass than there are seats: the most votes win, unless the last seat is tied.
        let last_votes = seat_count
            .checked_sub(1)
            .and_then(|i| passing.get(i))
            .map_or(u64::MAX, |e| e.votes);
        let above: Vec<&Entrant> = passing
            .iter()
            .copied()
            .filter(|e| e.votes > last_votes)
            .collect();
        let tied: Vec<&Entrant> = passing
            .iter()
            .copied()
            .filter(|e| e.votes == last_votes)
            .collect();
        if above.len() + tied.len() > seat_count {
            let open = seat_count - above.len();
            out.elect(&above);
            out.status = ContestStatus::Tie;
            out.tied = tied.iter().map(|e| e.key.clone()).collect();
            out.runoff = Some(Runoff {
                seats: u32::try_from(open).unwrap_or(u32::MAX),
                candidates: out.tied.clone(),
            });
            out.problems.push(format!(
                "{} passed ({needed}) for {}; {} tie with {} votes for the last {}: \
                 a new vote between them decides",
                counted(passing.len() as u64, "candidate", "candidates"),
                counted(u64::from(seats), "seat", "seats"),
                labels(&tied),
                figure(last_votes),
                counted(open as u64, "seat", "seats"),
            ));
            if !above.is_empty() {
                out.problems
                    .push(format!("elected: {}", with_votes(&above)));
            }
            return;
        }
        let (winners, beaten) = passing.split_at(seat_count);
        out.elect(winners);
        out.status = ContestStatus::Elected;
        out.problems.push(format!(
            "all {} filled: {} ({needed})",
            counted(u64::from(seats), "seat", "seats"),
            with_votes(winners)
        ));
        out.problems.push(format!(
            "{} also passed but had fewer votes than the elected",
            labels(beaten)
        ));
        return;
    }

    out.elect(&passing);
    if passing.len() == seat_count {
        out.status = ContestStatus::Elected;
        out.problems.push(if passing.is_empty() {
            "the contest has no seats to fill".to_string()
        } else {
            format!(
                "all {} filled: {} ({needed})",
                counted(u64::from(seats), "seat", "seats"),
                with_votes(&passing)
            )
        });
        return;
    }

    // Fewer pass than seats: the open seats go to a further ballot (另行选举).
    let open = seat_count - passing.len();
    let rest: Vec<&Entrant> = ranked
        .iter()
        .filter(|e| !more_than_half(e.votes, issued))
        .collect();
    let wanted = open.saturating_mul(2);
    let mut list: Vec<&Entrant> = rest.iter().copied().take(wanted).collect();
    let mut straddle = None;
    if let (Some(last), Some(next)) = (list.last().copied(), rest.get(wanted))
        && last.votes == next.votes
    {
        let tied_after: Vec<&Entrant> = rest[wanted..]
            .iter()
            .copied()
            .take_while(|e| e.votes == last.votes)
            .collect();
        list.extend(tied_after);
        straddle = Some(last.votes);
    }
    out.status = ContestStatus::Runoff;
    out.runoff = Some(Runoff {
        seats: u32::try_from(open).unwrap_or(u32::MAX),
        candidates: list.iter().map(|e| e.key.clone()).collect(),
    });
    let filled = if passing.is_empty() {
        format!(
            "no one received {needed}; 0 of {} filled",
            counted(u64::from(seats), "seat", "seats")
        )
    } else {
        format!(
            "{} of {} filled: {} ({needed})",
            figure(passing.len() as u64),
            counted(u64::from(seats), "seat", "seats"),
            with_votes(&passing)
        )
    };
    out.problems.push(filled);
    if list.is_empty() {
        out.problems.push(format!(
            "{} open but no one is left to stand: nominate candidates for a further ballot",
            counted(open as u64, "seat", "seats")
        ));
        return;
    }
    out.problems.push(format!(
        "{} open: hold a further ballot (另行选举) between {}; there the most votes win \
         provided they reach one third of its ballots (art. 45)",
        counted(open as u64, "seat", "seats"),
        labels(&list)
    ));
    if let Some(votes) = straddle {
        let tied: Vec<&Entrant> = list.iter().copied().filter(|e| e.votes == votes).collect();
        out.problems.push(format!(
            "{} tie with {} votes at the end of the further-ballot list of {}: all of them \
             are on it",
            labels(&tied),
            figure(votes),
            figure(wanted as u64)
        ));
    }
}

fn labels(entrants: &[&Entrant]) -> String {
    let labels: Vec<&str> = entrants.iter().map(|e| e.label.as_str()).collect();
    joined(&labels)
}

fn with_votes(entrants: &[&Entrant]) -> String {
    let parts: Vec<String> = entrants
        .iter()
        .map(|e| format!("{} with {}", e.label, figure(e.votes)))
        .collect();
    joined(&parts)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
