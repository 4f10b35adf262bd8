//! The tally sheet (计票结果) of one contest: ballots issued and returned, valid and void,
//! FOR and AGAINST per candidate, FOR per write-in name.
//!
//! The same shape serves as a station's own count sealed at close (SPEC §7's JSON) and
//! as the running count the station and the center keep from the ballots themselves.
//! Figures come from outside, so all arithmetic saturates and nothing panics.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ballot::{Ballot, Mark, Validity, WriteInError, normalize_write_in};
use crate::definition::{Contest, MAX_REGISTERED};
use crate::words::{figure, shown};

/// Largest figure a tally sheet may carry: no contest has more voters on the roll.
pub const MAX_SHEET_FIGURE: u64 = MAX_REGISTERED;
/// Most write-in names one tally sheet may list.
pub const MAX_SHEET_WRITE_INS: usize = 10_000;

/// One contest's count, at one station or summed over several.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TallySheet {
    /// Ballots handed to voters (发出选票, "voters who took part").
    pub issued: u64,
    /// Ballots recorded (所投的票数).
    pub returned: u64,
    /// Ballots valid: FOR votes no more than the seats; blank ballots included.
    pub valid: u64,
    /// Ballots void (作废): more FOR votes than seats; they add no votes.
    pub void: u64,
    /// FOR votes per formal candidate id.
    #[serde(rename = "for", default)]
    pub for_votes: BTreeMap<String, u64>,
    /// AGAINST votes per formal candidate id.
    #[serde(default)]
    pub against: BTreeMap<String, u64>,
    /// FOR votes per write-in name.
    #[serde(default)]
    pub write_in: BTreeMap<String, u64>,
}

/// Why a tally sheet cannot be accepted for a contest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    /// A `for` or `against` entry names a candidate not on the contest's list.
    #[error(
        "tally sheet of contest '{contest}': '{candidate}' in \"{map}\" is not a candidate of this contest"
    )]
    UnknownCandidate {
        /// The contest's id.
        contest: String,
        /// The map the entry is in: `for` or `against`.
        map: &'static str,
        /// The candidate id given, quoted for display (cut short, control characters escaped).
        candidate: String,
    },
    /// A figure over [`MAX_SHEET_FIGURE`].
    #[error("tally sheet of contest '{contest}': {what} is {value}; no figure may exceed {max}")]
    FigureTooLarge {
        /// The contest's id.
        contest: String,
        /// Which figure, e.g. `ballots issued` or `for of candidate 'D-001-1'`.
        what: String,
        /// The figure on the sheet.
        value: u64,
        /// Largest figure allowed.
        max: u64,
    },
    /// More write-in names than [`MAX_SHEET_WRITE_INS`].
    #[error(
        "tally sheet of contest '{contest}' lists {count} write-in names; at most {max} are allowed"
    )]
    TooManyWriteIns {
        /// The contest's id.
        contest: String,
        /// Write-in names on the sheet.
        count: usize,
        /// Most write-in names allowed.
        max: usize,
    },
    /// A write-in name that cannot be recorded.
    #[error("tally sheet of contest '{contest}': {error}")]
    WriteIn {
        /// The contest's id.
        contest: String,
        /// What is wrong with the name.
        error: WriteInError,
    },
    /// A write-in name not trimmed.
    #[error(
        "tally sheet of contest '{contest}': write-in name {shown} has spaces at its start or end"
    )]
    WriteInNotTrimmed {
        /// The contest's id.
        contest: String,
        /// The name, quoted for display (cut short, control characters escaped).
        shown: String,
    },
}

impl TallySheet {
    /// An empty sheet listing every candidate of the contest with 0 FOR and 0 AGAINST,
    /// as a count sheet is printed.
    pub fn for_contest(contest: &Contest) -> Self {
        let zeros: BTreeMap<String, u64> = contest
            .candidates
            .iter()
            .map(|c| (c.id.clone(), 0))
            .collect();
        TallySheet {
            for_votes: zeros.clone(),
            against: zeros,
            ..TallySheet::default()
        }
    }

    /// The same sheet without the entries at zero, so that a sheet listing every
    /// candidate and one listing only those with votes compare equal.
    pub fn without_zeros(&self) -> TallySheet {
        let mut s = self.clone();
        for map in [&mut s.for_votes, &mut s.against, &mut s.write_in] {
            map.retain(|_, v| *v > 0);
        }
        s
    }

    /// FOR votes of a formal candidate (0 when not listed).
    pub fn for_of(&self, candidate_id: &str) -> u64 {
        self.for_votes.get(candidate_id).copied().unwrap_or(0)
    }

    /// AGAINST votes of a formal candidate (0 when not listed).
    pub fn against_of(&self, candidate_id: &str) -> u64 {
        self.against.get(candidate_id).copied().unwrap_or(0)
    }

    /// FOR votes of a write-in name (0 when not listed).
    pub fn write_in_of(&self, name: &str) -> u64 {
        self.write_in.get(name).copied().unwrap_or(0)
    }

    /// N more ballots handed to voters.
    pub fn add_issued(&mut self, count: u64) {
        self.issued = self.issued.saturating_add(count);
    }

    /// Count one ballot: returned + 1, valid or void + 1; a valid ballot adds its FOR
    /// and AGAINST marks and a FOR per write-in name, a void one adds no votes. The
    /// ballot is expected to have passed [`Ballot::check`] for this contest; marks past
    /// the contest's candidates are ignored.
    pub fn add_ballot(&mut self, contest: &Contest, ballot: &Ballot) {
        self.returned = self.returned.saturating_add(1);
        match ballot.validity(contest.seats) {
            Validity::Void => self.void = self.void.saturating_add(1),
            Validity::Valid => {
                self.valid = self.valid.saturating_add(1);
                for (candidate, mark) in contest.candidates.iter().zip(&ballot.marks) {
                    let map = match mark {
                        Mark::For => &mut self.for_votes,
                        Mark::Against => &mut self.against,
                        Mark::None => continue,
                    };
                    let votes = map.entry(candidate.id.clone()).or_insert(0);
                    *votes = votes.saturating_add(1);
                }
                for name in &ballot.write_ins {
                    let votes = self.write_in.entry(name.clone()).or_insert(0);
                    *votes = votes.saturating_add(1);
                }
            }
        }
    }

    /// Take back a ballot counted by [`add_ballot`](Self::add_ballot) (a cancel). A
    /// write-in name left with no vote disappears from the sheet.
    pub fn remove_ballot(&mut self, contest: &Contest, ballot: &Ballot) {
        self.returned = self.returned.saturating_sub(1);
        match ballot.validity(contest.seats) {
            Validity::Void => self.void = self.void.saturating_sub(1),
            Validity::Valid => {
                self.valid = self.valid.saturating_sub(1);
                for (candidate, mark) in contest.candidates.iter().zip(&ballot.marks) {
                    let map = match mark {
                        Mark::For => &mut self.for_votes,
                        Mark::Against => &mut self.against,
                        Mark::None => continue,
                    };
                    if let Some(votes) = map.get_mut(&candidate.id) {
                        *votes = votes.saturating_sub(1);
                    }
                }
                for name in &ballot.write_ins {
                    if let Some(votes) = self.write_in.get_mut(name) {
                        *votes = votes.saturating_sub(1);
                        if *votes == 0 {
                            self.write_in.remove(name);
                        }
                    }
                }
            }
        }
    }

    /// Add another sheet's figures (e.g. several stations of one contest).
    pub fn merge(&mut self, other: &TallySheet) {
        self.issued = self.issued.saturating_add(other.issued);
        self.returned = self.returned.saturating_add(other.returned);
        self.valid = self.valid.saturating_add(other.valid);
        self.void = self.void.saturating_add(other.void);
        for (mine, theirs) in [
            (&mut self.for_votes, &other.for_votes),
            (&mut self.against, &other.against),
            (&mut self.write_in, &other.write_in),
        ] {
            for (key, votes) in theirs {
                let total = mine.entry(key.clone()).or_insert(0);
                *total = total.saturating_add(*votes);
            }
        }
    }

    /// Every difference that makes a discrepancy (SPEC §6.2, §7): ballots issued,
    /// returned, valid, void, each candidate's FOR and each write-in name's FOR. `self`
    /// is the station's sheet, `computed` what was computed from its records.
    pub fn differences(&self, computed: &TallySheet) -> Vec<String> {
        self.differences_as(computed, "the station's sheet", "its records")
    }

    /// [`differences`](Self::differences) with the two sides named by the caller.
    pub fn differences_as(&self, other: &TallySheet, this: &str, that: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut compare = |what: String, a: u64, b: u64| {
            if a != b {
                out.push(format!(
                    "{what}: {this} says {}, {that} say {}",
                    figure(a),
                    figure(b)
                ));
            }
        };
        compare("ballots issued".into(), self.issued, other.issued);
        compare("ballots returned".into(), self.returned, other.returned);
        compare("valid ballots".into(), self.valid, other.valid);
        compare("void ballots".into(), self.void, other.void);
        let candidates: BTreeSet<&String> = self
            .for_votes
            .keys()
            .chain(other.for_votes.keys())
            .collect();
        for id in candidates {
            compare(
                format!("FOR votes of candidate {}", shown(id)),
                self.for_of(id),
                other.for_of(id),
            );
        }
        let names: BTreeSet<&String> = self.write_in.keys().chain(other.write_in.keys()).collect();
        for name in names {
            compare(
                format!("FOR votes of write-in name {}", shown(name)),
                self.write_in_of(name),
                other.write_in_of(name),
            );
        }
        out
    }

    /// Whether the figures hold together: valid + void = returned, and no candidate has
    /// more FOR plus AGAINST votes than there are valid ballots. Each line says what
    /// does not add up; an empty list means the sheet is consistent.
    pub fn inconsistencies(&self) -> Vec<String> {
        let mut out = Vec::new();
        let counted = u128::from(self.valid) + u128::from(self.void);
        if counted != u128::from(self.returned) {
            out.push(format!(
                "valid {} plus void {} make {}, not the {} ballots returned",
                figure(self.valid),
                figure(self.void),
                counted,
                figure(self.returned)
            ));
        }
        let candidates: BTreeSet<&String> =
            self.for_votes.keys().chain(self.against.keys()).collect();
        for id in candidates {
            let marked = u128::from(self.for_of(id)) + u128::from(self.against_of(id));
            if marked > u128::from(self.valid) {
                out.push(format!(
                    "candidate {} has {} FOR and {} AGAINST, more than the {} valid ballots",
                    shown(id),
                    figure(self.for_of(id)),
                    figure(self.against_of(id)),
                    figure(self.valid)
                ));
            }
        }
        for (name, votes) in &self.write_in {
            if *votes > self.valid {
                out.push(format!(
                    "write-in name {} has {} FOR, more than the {} valid ballots",
                    shown(name),
                    figure(*votes),
                    figure(self.valid)
                ));
            }
        }
        out
    }

    /// Check a sheet handed in for a contest (a station's close): it names only this
    /// contest's candidates, its write-in names are acceptable and trimmed, and no
    /// figure is absurd. Whether the figures agree with the ballots is a separate matter
    /// (a discrepancy, SPEC §6.2), not a reason to refuse the sheet.
    pub fn check(&self, contest: &Contest) -> Result<(), SheetError> {
        let too_large = |what: String, value: u64| {
            if value > MAX_SHEET_FIGURE {
                Err(SheetError::FigureTooLarge {
                    contest: contest.id.clone(),
                    what,
                    value,
                    max: MAX_SHEET_FIGURE,
                })
            } else {
                Ok(())
            }
        };
        too_large("ballots issued".into(), self.issued)?;
        too_large("ballots returned".into(), self.returned)?;
        too_large("valid ballots".into(), self.valid)?;
        too_large("void ballots".into(), self.void)?;
        for (map, name) in [(&self.for_votes, "for"), (&self.against, "against")] {
            for (id, votes) in map {
                if contest.candidate_index(id).is_none() {
                    return Err(SheetError::UnknownCandidate {
                        contest: contest.id.clone(),
                        map: name,
                        candidate: shown(id),
                    });
                }
                too_large(format!("{name} of candidate '{id}'"), *votes)?;
            }
        }
        if self.write_in.len() > MAX_SHEET_WRITE_INS {
            return Err(SheetError::TooManyWriteIns {
                contest: contest.id.clone(),
                count: self.write_in.len(),
                max: MAX_SHEET_WRITE_INS,
            });
        }
        for (name, votes) in &self.write_in {
            let normalized = normalize_write_in(name).map_err(|error| SheetError::WriteIn {
                contest: contest.id.clone(),
                error,
            })?;
            if &normalized != name {
                return Err(SheetError::WriteInNotTrimmed {
                    contest: contest.id.clone(),
                    shown: shown(name),
                });
            }
            too_large(format!("write-in name {}", shown(name)), *votes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::BallotId;
    use crate::ballot::tests::contest;

    fn ballot(marks: &[Mark], write_ins: &[&str]) -> Ballot {
        Ballot {
            id: BallotId([1; 16]),
            contest: "D-001".into(),
            marks: marks.to_vec(),
            write_ins: write_ins.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_sheet_without_zeros_equals_one_that_never_listed_them() {
        let c = contest("D-001", 2, 3);
        let mut full = TallySheet::for_contest(&c);
        full.add_ballot(&c, &ballot(&[Mark::For, Mark::None, Mark::Against], &[]));
        let mut sparse = TallySheet::default();
        sparse.add_ballot(&c, &ballot(&[Mark::For, Mark::None, Mark::Against], &[]));
        assert_ne!(full, sparse);
        assert_eq!(full.without_zeros(), sparse.without_zeros());
        assert_eq!(full.without_zeros().for_votes.len(), 1);
    }

    #[test]
    fn counts_valid_and_void_ballots() {
        let c = contest("D-001", 2, 3);
        let mut sheet = TallySheet::default();
        sheet.add_issued(5);
        let valid = ballot(&[Mark::For, Mark::Against, Mark::None], &["王五"]);
        let void = ballot(&[Mark::For, Mark::For, Mark::None], &["王五"]);
        let blank = ballot(&[Mark::None; 3], &[]);
        sheet.add_ballot(&c, &valid);
        sheet.add_ballot(&c, &void);
        sheet.add_ballot(&c, &blank);
        assert_eq!(sheet.issued, 5);
        assert_eq!(sheet.returned, 3);
        assert_eq!(sheet.valid, 2);
        assert_eq!(sheet.void, 1);
        assert_eq!(sheet.for_of("D-001-1"), 1);
        assert_eq!(sheet.for_of("D-001-2"), 0, "a void ballot adds no votes");
        assert_eq!(sheet.against_of("D-001-2"), 1);
        assert_eq!(sheet.write_in_of("王五"), 1);
        assert!(sheet.inconsistencies().is_empty());

        sheet.remove_ballot(&c, &valid);
        assert_eq!(sheet.returned, 2);
        assert_eq!(sheet.valid, 1);
        assert_eq!(sheet.for_of("D-001-1"), 0);
        assert!(sheet.write_in.is_empty());
        sheet.remove_ballot(&c, &void);
        assert_eq!((sheet.returned, sheet.valid, sheet.void), (1, 1, 0));
    }

    #[test]
    fn hostile_figures_saturate() {
        let c = contest("D-001", 1, 2);
        let mut sheet = TallySheet {
            issued: u64::MAX,
            returned: u64::MAX,
            valid: u64::MAX,
            void: u64::MAX,
            ..TallySheet::default()
        };
        sheet.add_issued(1);
        sheet.add_ballot(&c, &ballot(&[Mark::None; 2], &[]));
        assert_eq!(sheet.issued, u64::MAX);
        let mut empty = TallySheet::default();
        empty.remove_ballot(&c, &ballot(&[Mark::For, Mark::None], &["x"]));
        assert_eq!(empty.returned, 0);
        empty.merge(&sheet);
        empty.merge(&sheet);
        assert_eq!(empty.valid, u64::MAX);
        assert!(!sheet.inconsistencies().is_empty());
    }

    #[test]
    fn differences_name_both_figures() {
        let mut sheet = TallySheet {
            issued: 1_000,
            returned: 998,
            valid: 990,
            void: 8,
            ..TallySheet::default()
        };
        sheet.for_votes.insert("D-001-1".into(), 700);
        sheet.against.insert("D-001-1".into(), 5);
        let mut computed = sheet.clone();
        assert!(sheet.differences(&computed).is_empty());
        computed.against.insert("D-001-1".into(), 6);
        assert!(
            sheet.differences(&computed).is_empty(),
            "AGAINST is not part of the station check"
        );
        computed.issued = 1_001;
        computed.for_votes.insert("D-001-1".into(), 699);
        computed.write_in.insert("王五".into(), 1);
        assert_eq!(
            sheet.differences(&computed),
            vec![
                "ballots issued: the station's sheet says 1,000, its records say 1,001".to_string(),
                "FOR votes of candidate 'D-001-1': the station's sheet says 700, its records say 699"
                    .to_string(),
                "FOR votes of write-in name '王五': the station's sheet says 0, its records say 1"
                    .to_string(),
            ]
        );
        // A listed zero is the same as not listed.
        let mut zero = TallySheet::default();
        zero.for_votes.insert("D-001-2".into(), 0);
        assert!(zero.differences(&TallySheet::default()).is_empty());
    }

    #[test]
    fn check_refuses_unknown_candidates_and_absurd_figures() {
        let c = contest("D-001", 2, 3);
        let mut sheet = TallySheet::for_contest(&c);
        sheet.issued = 10;
        assert_eq!(sheet.check(&c), Ok(()));
        let mut unknown = sheet.clone();
        unknown.for_votes.insert("D-009-1".into(), 1);
        assert!(matches!(
            unknown.check(&c),
            Err(SheetError::UnknownCandidate { map: "for", .. })
        ));
        let mut huge = sheet.clone();
        huge.void = u64::MAX;
        assert!(matches!(
            huge.check(&c),
            Err(SheetError::FigureTooLarge { .. })
        ));
        let mut bad_name = sheet;
        bad_name.write_in.insert("王\n五".into(), 1);
        assert!(matches!(
            bad_name.check(&c),
            Err(SheetError::WriteIn { .. })
        ));
    }

    #[test]
    fn inconsistent_sheet_is_explained() {
        let mut sheet = TallySheet {
            issued: 10,
            returned: 10,
            valid: 8,
            void: 1,
            ..TallySheet::default()
        };
        sheet.for_votes.insert("D-001-1".into(), 6);
        sheet.against.insert("D-001-1".into(), 3);
        assert_eq!(
            sheet.inconsistencies(),
            vec![
                "valid 8 plus void 1 make 9, not the 10 ballots returned".to_string(),
                "candidate 'D-001-1' has 6 FOR and 3 AGAINST, more than the 8 valid ballots"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn reads_and_writes_the_spec_json_shape() {
        let text = r#"{"issued": 10, "returned": 9, "valid": 8, "void": 1,
                       "for": {"D-001-1": 5}, "against": {"D-001-1": 2}, "write_in": {"王五": 1}}"#;
        let sheet: TallySheet = serde_json::from_str(text).unwrap();
        assert_eq!(
            (sheet.issued, sheet.returned, sheet.valid, sheet.void),
            (10, 9, 8, 1)
        );
        assert_eq!(sheet.for_of("D-001-1"), 5);
        assert_eq!(sheet.against_of("D-001-1"), 2);
        assert_eq!(sheet.write_in_of("王五"), 1);
        let back = serde_json::to_value(&sheet).unwrap();
        assert_eq!(back["for"]["D-001-1"], 5);
        assert_eq!(back["write_in"]["王五"], 1);

        let bare: TallySheet =
            serde_json::from_str(r#"{"issued": 1, "returned": 1, "valid": 1, "void": 0}"#).unwrap();
        assert!(bare.for_votes.is_empty() && bare.against.is_empty() && bare.write_in.is_empty());

        // A typo is an error, not a silently empty map.
        let typo = r#"{"issued": 1, "returned": 1, "valid": 1, "void": 0, "fro": {}}"#;
        assert!(serde_json::from_str::<TallySheet>(typo).is_err());
        let negative = r#"{"issued": -1, "returned": 1, "valid": 1, "void": 0}"#;
        assert!(serde_json::from_str::<TallySheet>(negative).is_err());
    }

    #[test]
    fn sheet_can_be_flattened_into_a_larger_record() {
        // `station tally --json` puts id and closed beside the sheet's figures.
        #[derive(Debug, Deserialize, Serialize)]
        struct ContestTally {
            id: String,
            closed: bool,
            #[serde(flatten)]
            sheet: TallySheet,
        }
        let text = r#"{"id": "D-001", "closed": false, "issued": 3, "returned": 2,
                       "valid": 2, "void": 0, "for": {"D-001-1": 2}}"#;
        let tally: ContestTally = serde_json::from_str(text).unwrap();
        assert_eq!(tally.id, "D-001");
        assert_eq!(tally.sheet.for_of("D-001-1"), 2);
        let back = serde_json::to_value(&tally).unwrap();
        assert_eq!(back["issued"], 3);
    }
}
