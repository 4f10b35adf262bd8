//! A contest's outcome as any rule set reports it: status, ballot figures, each
//! candidate's and write-in name's votes, who is elected, a tie or a further ballot, and
//! the problems an operator must act on. Also the deterministic ranking of everyone
//! who received votes, shared by rule sets.

use std::cmp::Reverse;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::definition::Contest;
use crate::tally::TallySheet;

/// The state of a contest (SPEC §6.6), in the order the rules test them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContestStatus {
    /// Stations not all closed and synced.
    Pending,
    /// A station's tally sheet differs from its ballots.
    Discrepancy,
    /// More ballots returned than issued (art. 44): held again.
    Void,
    /// Not more than half of the voters on the roll took part (art. 45): held again.
    Invalid,
    /// A tie at the last seat: a new vote between the tied.
    Tie,
    /// Seats open for a further ballot (另行选举).
    Runoff,
    /// All seats filled.
    Elected,
}

impl ContestStatus {
    /// Every status, in the order the rules test them.
    pub const ALL: [ContestStatus; 7] = [
        ContestStatus::Pending,
        ContestStatus::Discrepancy,
        ContestStatus::Void,
        ContestStatus::Invalid,
        ContestStatus::Tie,
        ContestStatus::Runoff,
        ContestStatus::Elected,
    ];

    /// The word of the results and the API, e.g. `runoff`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContestStatus::Pending => "pending",
            ContestStatus::Discrepancy => "discrepancy",
            ContestStatus::Void => "void",
            ContestStatus::Invalid => "invalid",
            ContestStatus::Tie => "tie",
            ContestStatus::Runoff => "runoff",
            ContestStatus::Elected => "elected",
        }
    }
}

impl fmt::Display for ContestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stations of a contest: expected, closed, fully synced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationProgress {
    /// Stations that serve the contest.
    pub expected: u64,
    /// Of those, stations whose close has reached the center.
    pub closed: u64,
    /// Of those, stations whose sealed events have all reached the center and that are not cut off.
    pub synced: u64,
}

/// A formal candidate's votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateResult {
    /// The candidate's id.
    pub id: String,
    /// The candidate's name as printed on the ballot.
    pub name: String,
    /// FOR votes (JSON key `for`), from valid ballots.
    #[serde(rename = "for")]
    pub for_votes: u64,
    /// AGAINST votes, from valid ballots.
    pub against: u64,
    /// Whether the candidate takes a seat.
    pub elected: bool,
}

/// A write-in name's votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteInResult {
    /// The name as written in, trimmed.
    pub name: String,
    /// FOR votes (JSON key `for`), from valid ballots.
    #[serde(rename = "for")]
    pub for_votes: u64,
    /// Whether the name takes a seat.
    pub elected: bool,
}

/// Seats left open and who stands for them in the next vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runoff {
    /// Seats still to fill in the next vote.
    pub seats: u32,
    /// Candidate ids or write-in names, best first.
    pub candidates: Vec<String>,
}

/// A contest's outcome under a rule set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContestOutcome {
    /// The contest's id.
    pub contest: String,
    /// Where the contest stands.
    pub status: ContestStatus,
    /// The contest's stations: expected, closed, fully synced.
    pub stations: StationProgress,
    /// Ballots issued ("voters who took part"), summed over the stations.
    pub issued: u64,
    /// Ballots returned (所投的票数), summed over the stations.
    pub returned: u64,
    /// Valid ballots, summed over the stations.
    pub valid: u64,
    /// Void ballots, summed over the stations.
    pub void: u64,
    /// Ballots issued / voters on the roll.
    pub turnout: f64,
    /// Every formal candidate, in ballot order.
    pub candidates: Vec<CandidateResult>,
    /// Every write-in name with at least one vote, most votes first.
    pub write_ins: Vec<WriteInResult>,
    /// Candidate ids or write-in names elected, best first.
    pub elected: Vec<String>,
    /// Tied at the last seat (status `tie`).
    pub tied: Vec<String>,
    /// Seats open and who stands in the next vote (status `tie` or `runoff`).
    pub runoff: Option<Runoff>,
    /// What decided the status and what an operator must do, in words.
    pub problems: Vec<String>,
}

impl ContestOutcome {
    /// The figures of a contest with nobody elected yet; the rule set then decides the
    /// status, who is elected, and the problems.
    pub fn counted(contest: &Contest, total: &TallySheet) -> Self {
        let turnout = if contest.registered == 0 {
            0.0
        } else {
            total.issued as f64 / contest.registered as f64
        };
        let mut write_ins: Vec<WriteInResult> = total
            .write_in
            .iter()
            .filter(|(_, votes)| **votes > 0)
            .map(|(name, votes)| WriteInResult {
                name: name.clone(),
                for_votes: *votes,
                elected: false,
            })
            .collect();
        write_ins.sort_by(|a, b| {
            b.for_votes
                .cmp(&a.for_votes)
                .then_with(|| a.name.cmp(&b.name))
        });
        ContestOutcome {
            contest: contest.id.clone(),
            status: ContestStatus::Pending,
            stations: StationProgress::default(),
            issued: total.issued,
            returned: total.returned,
            valid: total.valid,
            void: total.void,
            turnout,
            candidates: contest
                .candidates
                .iter()
                .map(|c| CandidateResult {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    for_votes: total.for_of(&c.id),
                    against: total.against_of(&c.id),
                    elected: false,
                })
                .collect(),
            write_ins,
            elected: Vec::new(),
            tied: Vec::new(),
            runoff: None,
            problems: Vec::new(),
        }
    }

    /// Mark these entrants elected, best first.
    pub fn elect(&mut self, entrants: &[&Entrant]) {
        for entrant in entrants {
            match &entrant.kind {
                EntrantKind::Candidate(index) => {
                    if let Some(c) = self.candidates.get_mut(*index) {
                        c.elected = true;
                    }
                }
                EntrantKind::WriteIn => {
                    if let Some(w) = self.write_ins.iter_mut().find(|w| w.name == entrant.key) {
                        w.elected = true;
                    }
                }
            }
            self.elected.push(entrant.key.clone());
        }
    }
}

/// Whether an entrant is a formal candidate (at its ballot position) or a write-in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntrantKind {
    /// A formal candidate, at this index in the contest's ballot order.
    Candidate(usize),
    /// A name written in.
    WriteIn,
}

/// Anyone who can receive votes: a formal candidate or a write-in name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrant {
    /// Formal candidate or write-in (and the candidate's ballot position).
    pub kind: EntrantKind,
    /// Candidate id, or the write-in name.
    pub key: String,
    /// How an operator reads it: `候选人1 (D-001-1)` or `write-in 王五`.
    pub label: String,
    /// FOR votes.
    pub votes: u64,
}

/// Everyone in the running, most FOR votes first. Among equal votes, formal candidates
/// come in ballot order, then write-in names in name order: this order only lists, it
/// never breaks a tie for a seat. Write-in names with no vote are left out.
pub fn ranking(outcome: &ContestOutcome) -> Vec<Entrant> {
    let mut entrants: Vec<Entrant> = outcome
        .candidates
        .iter()
        .enumerate()
        .map(|(index, c)| Entrant {
            kind: EntrantKind::Candidate(index),
            key: c.id.clone(),
            label: format!("{} ({})", c.name, c.id),
            votes: c.for_votes,
        })
        .chain(
            outcome
                .write_ins
                .iter()
                .filter(|w| w.for_votes > 0)
                .map(|w| Entrant {
                    kind: EntrantKind::WriteIn,
                    key: w.name.clone(),
                    label: format!("write-in {}", w.name),
                    votes: w.for_votes,
                }),
        )
        .collect();
    entrants.sort_by(|a, b| {
        (Reverse(a.votes), &a.kind, &a.key).cmp(&(Reverse(b.votes), &b.kind, &b.key))
    });
    entrants
}
