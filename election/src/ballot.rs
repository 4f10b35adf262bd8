//! Ballots (SPEC §3): the random ballot id, the voter's marks and write-in names,
//! ballot validity, and the door checks a station applies before recording a ballot.
//!
//! A ballot carries no voter id and no time (G6). For each formal candidate the voter
//! marks FOR, AGAINST or nothing; each write-in name is a FOR vote for that name. A
//! ballot whose FOR marks plus write-ins exceed the contest's seats is void; every
//! other ballot, blank ones included, is valid.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::definition::Contest;
use crate::words::{is_invisible_format, shown};

/// Longest write-in name, in characters (not bytes): far above any real name.
pub const MAX_WRITE_IN_CHARS: usize = 50;
/// Most write-in names one ballot may carry. A ballot with more names than seats is
/// still recorded (as void); this bound only keeps a ballot small.
pub const MAX_WRITE_INS_PER_BALLOT: usize = 10;

/// Length of a ballot id in bytes (128 bits, drawn at random by the station).
pub const BALLOT_ID_BYTES: usize = 16;

/// A ballot's random 128-bit id, written as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BallotId(pub [u8; BALLOT_ID_BYTES]);

impl BallotId {
    /// The ballot id of these 16 bytes.
    pub fn from_bytes(bytes: [u8; BALLOT_ID_BYTES]) -> Self {
        BallotId(bytes)
    }

    /// The id's 16 bytes, as carried on the wire and stored.
    pub fn as_bytes(&self) -> &[u8; BALLOT_ID_BYTES] {
        &self.0
    }
}

impl fmt::Display for BallotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BallotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BallotId({self})")
    }
}

/// A ballot id that is not 32 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ballot id {shown} is not a ballot id: it must be 32 hex characters (0-9, a-f)")]
pub struct BallotIdError {
    /// The text given, quoted for display (cut short, control characters escaped).
    pub shown: String,
}

impl FromStr for BallotId {
    type Err = BallotIdError;

    /// Accepts 32 hex characters; upper case is accepted too, since a clerk may type it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || BallotIdError { shown: shown(s) };
        let digits = s.as_bytes();
        if digits.len() != 2 * BALLOT_ID_BYTES {
            return Err(err());
        }
        let mut bytes = [0u8; BALLOT_ID_BYTES];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(err)?;
            let lo = hex_value(pair[1]).ok_or_else(err)?;
            bytes[i] = (hi << 4) | lo;
        }
        Ok(BallotId(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl Serialize for BallotId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BallotId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The voter's mark next to one formal candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    /// 弃权: no mark.
    #[default]
    None,
    /// 赞成
    For,
    /// 反对
    Against,
}

/// Whether a ballot counts (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// Counted: FOR votes (marks plus write-ins) no more than the seats; blank ballots included.
    Valid,
    /// 作废: more FOR votes (marks plus write-ins) than seats.
    Void,
}

/// One ballot of one contest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// The ballot's random id, unique in the election.
    pub id: BallotId,
    /// The contest's id.
    pub contest: String,
    /// One mark per formal candidate, in the contest's candidate order.
    pub marks: Vec<Mark>,
    /// Names written in (另选其他选民), each a FOR vote for that name; trimmed.
    #[serde(default)]
    pub write_ins: Vec<String>,
}

/// A ballot as a clerk or an import file states it: candidate ids marked FOR and
/// AGAINST and the names written in (the JSON-lines shape of `station import`:
/// `{"contest": …, "for": […], "against": […], "write_in": […]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BallotChoices {
    /// The contest's id.
    pub contest: String,
    /// Ids of the candidates marked FOR (JSON key `for`).
    #[serde(rename = "for", default)]
    pub for_ids: Vec<String>,
    /// Ids of the candidates marked AGAINST.
    #[serde(default)]
    pub against: Vec<String>,
    /// Names written in, each a FOR vote for that name; trimmed by [`BallotChoices::to_ballot`].
    #[serde(default)]
    pub write_in: Vec<String>,
}

impl BallotChoices {
    /// The ballot these choices make in `contest`, through the door checks of
    /// [`Ballot::from_choices`]; the choices must name this contest.
    pub fn to_ballot(&self, id: BallotId, contest: &Contest) -> Result<Ballot, BallotError> {
        if self.contest != contest.id {
            return Err(BallotError::WrongContest {
                expected: contest.id.clone(),
                got: shown_id(&self.contest),
            });
        }
        Ballot::from_choices(id, contest, &self.for_ids, &self.against, &self.write_in)
    }
}

/// A write-in name that cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteInError {
    /// The name is empty or only spaces.
    #[error("a write-in name is empty")]
    Empty,
    /// The name is longer than [`MAX_WRITE_IN_CHARS`].
    #[error("write-in name {shown} is {chars} characters long; at most {max} are allowed")]
    TooLong {
        /// The name as given, quoted for display (cut short, control characters escaped).
        shown: String,
        /// Its length, in characters.
        chars: usize,
        /// Most characters allowed.
        max: usize,
    },
    /// The name holds a control or invisible formatting character.
    #[error("write-in name {shown} contains a control or invisible formatting character")]
    ControlCharacter {
        /// The name as given, quoted for display (cut short, control characters escaped).
        shown: String,
    },
}

/// Why a ballot is refused at the door (before it is recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BallotError {
    /// The ballot names another contest than the one it is recorded for.
    #[error("ballot belongs to contest '{got}', not to contest '{expected}'")]
    WrongContest {
        /// The contest the ballot is recorded for.
        expected: String,
        /// The contest the ballot names, cut short for display.
        got: String,
    },
    /// A candidate id not on the contest's list.
    #[error("'{candidate}' is not a candidate of contest '{contest}'")]
    UnknownCandidate {
        /// The contest's id.
        contest: String,
        /// The id given.
        candidate: String,
    },
    /// A candidate marked both FOR and AGAINST.
    #[error("candidate '{candidate}' of contest '{contest}' is marked both FOR and AGAINST")]
    ForAndAgainst {
        /// The contest's id.
        contest: String,
        /// The candidate's id.
        candidate: String,
    },
    /// A candidate given twice among the FOR or AGAINST ids.
    #[error("candidate '{candidate}' of contest '{contest}' is given twice")]
    DuplicateCandidate {
        /// The contest's id.
        contest: String,
        /// The candidate's id.
        candidate: String,
    },
    /// The ballot's marks do not match the contest's candidates one for one.
    #[error(
        "ballot of contest '{contest}' has {got} marks but the contest has {expected} candidates"
    )]
    WrongMarkCount {
        /// The contest's id.
        contest: String,
        /// Candidates on the contest's list.
        expected: usize,
        /// Marks on the ballot.
        got: usize,
    },
    /// More write-in names than [`MAX_WRITE_INS_PER_BALLOT`].
    #[error("ballot of contest '{contest}' has {count} write-in names; at most {max} are allowed")]
    TooManyWriteIns {
        /// The contest's id.
        contest: String,
        /// Write-in names on the ballot.
        count: usize,
        /// Most write-in names allowed.
        max: usize,
    },
    /// A write-in name that cannot be recorded.
    #[error("ballot of contest '{contest}': {error}")]
    WriteIn {
        /// The contest's id.
        contest: String,
        /// What is wrong with the name.
        error: WriteInError,
    },
    /// A write-in name not trimmed (a recorded ballot holds only trimmed names).
    #[error("ballot of contest '{contest}': write-in name {shown} has spaces at its start or end")]
    WriteInNotTrimmed {
        /// The contest's id.
        contest: String,
        /// The name as written, quoted for display (cut short, control characters escaped).
        shown: String,
    },
    /// The same write-in name twice on one ballot.
    #[error("ballot of contest '{contest}': write-in name {shown} is written twice")]
    DuplicateWriteIn {
        /// The contest's id.
        contest: String,
        /// The name, quoted for display (cut short, control characters escaped).
        shown: String,
    },
    /// A write-in name that is a formal candidate's name or id.
    #[error(
        "ballot of contest '{contest}': write-in name {shown} is formal candidate '{candidate}'; \
         mark the candidate FOR instead of writing the name in"
    )]
    WriteInIsCandidate {
        /// The contest's id.
        contest: String,
        /// The name as written, quoted for display (cut short, control characters escaped).
        shown: String,
        /// The id of the formal candidate it names.
        candidate: String,
    },
}

/// Trim a write-in name and check it can be recorded.
pub fn normalize_write_in(name: &str) -> Result<String, WriteInError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(WriteInError::Empty);
    }
    let chars = trimmed.chars().count();
    if chars > MAX_WRITE_IN_CHARS {
        return Err(WriteInError::TooLong {
            shown: shown(trimmed),
            chars,
            max: MAX_WRITE_IN_CHARS,
        });
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(WriteInError::ControlCharacter {
            shown: shown(trimmed),
        });
    }
    Ok(trimmed.to_string())
}

impl Ballot {
    /// Build a ballot from what the voter marked, refusing anything a clerk got wrong:
    /// unknown candidates, a candidate both FOR and AGAINST or given twice, and write-in
    /// names that are empty, too long, contain control characters, repeat, or name a
    /// formal candidate. Write-in names are trimmed.
    pub fn from_choices(
        id: BallotId,
        contest: &Contest,
        for_ids: &[String],
        against_ids: &[String],
        write_ins: &[String],
    ) -> Result<Ballot, BallotError> {
        let mut marks = vec![Mark::None; contest.candidates.len()];
        for (ids, mark) in [(for_ids, Mark::For), (against_ids, Mark::Against)] {
            for candidate in ids {
                let index = contest.candidate_index(candidate).ok_or_else(|| {
                    BallotError::UnknownCandidate {
                        contest: contest.id.clone(),
                        candidate: shown_id(candidate),
                    }
                })?;
                match marks[index] {
                    Mark::None => marks[index] = mark,
                    previous if previous == mark => {
                        return Err(BallotError::DuplicateCandidate {
                            contest: contest.id.clone(),
                            candidate: candidate.clone(),
                        });
                    }
                    _ => {
                        return Err(BallotError::ForAndAgainst {
                            contest: contest.id.clone(),
                            candidate: candidate.clone(),
                        });
                    }
                }
            }
        }
        check_write_in_count(contest, write_ins.len())?;
        let write_ins = write_ins
            .iter()
            .map(|name| {
                normalize_write_in(name).map_err(|error| BallotError::WriteIn {
                    contest: contest.id.clone(),
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_write_in_set(contest, &write_ins)?;
        Ok(Ballot {
            id,
            contest: contest.id.clone(),
            marks,
            write_ins,
        })
    }

    /// Check a ballot that arrives already in marks form (an import, a batch): it is of
    /// this contest, has one mark per candidate, and its write-ins pass the same checks
    /// as at the door (and are already trimmed).
    pub fn check(&self, contest: &Contest) -> Result<(), BallotError> {
        if self.contest != contest.id {
            return Err(BallotError::WrongContest {
                expected: contest.id.clone(),
                got: shown_id(&self.contest),
            });
        }
        if self.marks.len() != contest.candidates.len() {
            return Err(BallotError::WrongMarkCount {
                contest: contest.id.clone(),
                expected: contest.candidates.len(),
                got: self.marks.len(),
            });
        }
        check_write_in_count(contest, self.write_ins.len())?;
        for name in &self.write_ins {
            let normalized = normalize_write_in(name).map_err(|error| BallotError::WriteIn {
                contest: contest.id.clone(),
                error,
            })?;
            if &normalized != name {
                return Err(BallotError::WriteInNotTrimmed {
                    contest: contest.id.clone(),
                    shown: shown(name),
                });
            }
        }
        check_write_in_set(contest, &self.write_ins)
    }

    /// The ballot stated as choices again (ids in ballot order).
    pub fn to_choices(&self, contest: &Contest) -> BallotChoices {
        let marked = |wanted: Mark| {
            contest
                .candidates
                .iter()
                .zip(&self.marks)
                .filter(|(_, mark)| **mark == wanted)
                .map(|(c, _)| c.id.clone())
                .collect()
        };
        BallotChoices {
            contest: self.contest.clone(),
            for_ids: marked(Mark::For),
            against: marked(Mark::Against),
            write_in: self.write_ins.clone(),
        }
    }

    /// FOR votes on this ballot: FOR marks plus write-in names.
    pub fn for_count(&self) -> usize {
        let marked = self.marks.iter().filter(|m| **m == Mark::For).count();
        marked.saturating_add(self.write_ins.len())
    }

    /// Valid unless FOR marks plus write-ins exceed the seats (SPEC §3): the rule of
    /// [`validity_of`].
    pub fn validity(&self, seats: u32) -> Validity {
        validity_of(self.for_count(), seats)
    }

    /// Whether the ballot counts in a contest of `seats` seats: [`Ballot::validity`] is
    /// [`Validity::Valid`].
    pub fn is_valid(&self, seats: u32) -> bool {
        self.validity(seats) == Validity::Valid
    }
}

/// The void rule (SPEC §3), in its one place: a ballot with `for_votes` FOR votes
/// (FOR marks plus write-in names) is void when they exceed the contest's `seats`,
/// valid otherwise (a blank ballot included). [`Ballot::validity`] and every
/// reader of raw marks (the center's judge) decide with it.
pub fn validity_of(for_votes: usize, seats: u32) -> Validity {
    // usize → u64 never truncates on the platforms we build for; saturate regardless.
    let votes = u64::try_from(for_votes).unwrap_or(u64::MAX);
    if votes > u64::from(seats) {
        Validity::Void
    } else {
        Validity::Valid
    }
}

fn check_write_in_count(contest: &Contest, count: usize) -> Result<(), BallotError> {
    if count > MAX_WRITE_INS_PER_BALLOT {
        return Err(BallotError::TooManyWriteIns {
            contest: contest.id.clone(),
            count,
            max: MAX_WRITE_INS_PER_BALLOT,
        });
    }
    Ok(())
}

/// No name twice, and no formal candidate's name or id written in.
fn check_write_in_set(contest: &Contest, names: &[String]) -> Result<(), BallotError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(BallotError::DuplicateWriteIn {
                contest: contest.id.clone(),
                shown: shown(name),
            });
        }
        if let Some(candidate) = contest
            .candidates
            .iter()
            .find(|c| &c.name == name || &c.id == name)
        {
            return Err(BallotError::WriteInIsCandidate {
                contest: contest.id.clone(),
                shown: shown(name),
                candidate: candidate.id.clone(),
            });
        }
    }
    Ok(())
}

/// An untrusted id quoted back without its quotes (the messages add their own).
fn shown_id(id: &str) -> String {
    let quoted = shown(id);
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::definition::{Candidate, Gender, Level};

    pub(crate) fn contest(id: &str, seats: u32, candidates: usize) -> Contest {
        Contest {
            id: id.to_string(),
            level: Level::District,
            unit: "xiditou".to_string(),
            name: format!("区级{id}选区"),
            seats,
            registered: 2_280,
            candidates: (1..=candidates)
                .map(|i| Candidate {
                    id: format!("{id}-{i}"),
                    name: format!("候选人{i}"),
                    gender: if i % 2 == 0 { Gender::F } else { Gender::M },
                    ethnicity: "汉族".to_string(),
                    party: "中共".to_string(),
                    incumbent: false,
                })
                .collect(),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn build(
        contest: &Contest,
        for_ids: &[&str],
        against: &[&str],
        write_ins: &[&str],
    ) -> Result<Ballot, BallotError> {
        Ballot::from_choices(
            BallotId([7; 16]),
            contest,
            &strings(for_ids),
            &strings(against),
            &strings(write_ins),
        )
    }

    #[test]
    fn ballot_id_round_trips_as_lowercase_hex() {
        let id = BallotId([
            0x00, 0x01, 0xab, 0xcd, 0xef, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90,
            0xa0, 0xff,
        ]);
        let text = id.to_string();
        assert_eq!(text, "0001abcdef102030405060708090a0ff");
        assert_eq!(text.parse::<BallotId>().unwrap(), id);
        assert_eq!(
            "0001ABCDEF102030405060708090A0FF"
                .parse::<BallotId>()
                .unwrap(),
            id
        );
    }

    #[test]
    fn bad_ballot_ids_are_refused() {
        for bad in [
            "",
            "00",
            "0001abcdef102030405060708090a0f",
            "0001abcdef102030405060708090a0ff0",
            "0001abcdef102030405060708090a0fg",
            "0001abcdef102030405060708090a0é",
        ] {
            assert!(bad.parse::<BallotId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn blank_ballot_is_valid() {
        let c = contest("D-001", 2, 3);
        let b = build(&c, &[], &[], &[]).unwrap();
        assert_eq!(b.marks, vec![Mark::None; 3]);
        assert_eq!(b.validity(2), Validity::Valid);
    }

    #[test]
    fn as_many_for_votes_as_seats_is_valid() {
        let c = contest("D-001", 2, 4);
        let b = build(&c, &["D-001-1"], &["D-001-2", "D-001-3"], &["王五"]).unwrap();
        assert_eq!(b.for_count(), 2);
        assert!(b.is_valid(2));
    }

    #[test]
    fn seats_plus_one_for_marks_is_void() {
        let c = contest("D-001", 2, 4);
        let b = build(&c, &["D-001-1", "D-001-2", "D-001-3"], &[], &[]).unwrap();
        assert_eq!(b.validity(2), Validity::Void);
    }

    #[test]
    fn for_marks_plus_write_ins_over_seats_is_void() {
        let c = contest("D-001", 2, 4);
        let b = build(&c, &["D-001-1", "D-001-2"], &[], &["王五"]).unwrap();
        assert_eq!(b.validity(2), Validity::Void);
        let only_write_ins = build(&c, &[], &[], &["王五", "赵六", "孙七"]).unwrap();
        assert_eq!(only_write_ins.validity(2), Validity::Void);
    }

    #[test]
    fn the_void_rule_is_for_votes_over_seats() {
        for seats in 1..=3u32 {
            for votes in 0..=5usize {
                let void = votes as u64 > u64::from(seats);
                assert_eq!(validity_of(votes, seats) == Validity::Void, void);
            }
        }
        assert_eq!(validity_of(usize::MAX, u32::MAX), Validity::Void);
    }

    #[test]
    fn against_marks_do_not_count_toward_seats() {
        let c = contest("D-001", 1, 2);
        let b = build(&c, &["D-001-1"], &["D-001-2"], &[]).unwrap();
        assert!(b.is_valid(1));
    }

    #[test]
    fn door_refuses_unknown_candidate() {
        let c = contest("D-001", 2, 3);
        assert_eq!(
            build(&c, &["D-001-9"], &[], &[]),
            Err(BallotError::UnknownCandidate {
                contest: "D-001".into(),
                candidate: "D-001-9".into()
            })
        );
    }

    #[test]
    fn door_refuses_for_and_against_and_repeats() {
        let c = contest("D-001", 2, 3);
        assert!(matches!(
            build(&c, &["D-001-1"], &["D-001-1"], &[]),
            Err(BallotError::ForAndAgainst { candidate, .. }) if candidate == "D-001-1"
        ));
        assert!(matches!(
            build(&c, &["D-001-2", "D-001-2"], &[], &[]),
            Err(BallotError::DuplicateCandidate { candidate, .. }) if candidate == "D-001-2"
        ));
        assert!(matches!(
            build(&c, &[], &["D-001-3", "D-001-3"], &[]),
            Err(BallotError::DuplicateCandidate { .. })
        ));
    }

    #[test]
    fn door_trims_and_checks_write_ins() {
        let c = contest("D-001", 3, 4);
        let b = build(&c, &[], &[], &["  王五 "]).unwrap();
        assert_eq!(b.write_ins, vec!["王五".to_string()]);

        for blank in ["", "   ", "\t"] {
            assert!(matches!(
                build(&c, &[], &[], &[blank]),
                Err(BallotError::WriteIn {
                    error: WriteInError::Empty,
                    ..
                })
            ));
        }
        // 50 characters (150 bytes) is fine, 51 is not: characters count, not bytes.
        let fifty = "王".repeat(MAX_WRITE_IN_CHARS);
        assert!(build(&c, &[], &[], &[&fifty]).is_ok());
        let fifty_one = "王".repeat(MAX_WRITE_IN_CHARS + 1);
        assert!(matches!(
            build(&c, &[], &[], &[&fifty_one]),
            Err(BallotError::WriteIn {
                error: WriteInError::TooLong { chars: 51, .. },
                ..
            })
        ));
        for sneaky in ["王\n五", "王\u{0}五", "王\u{200B}五", "王\u{202E}五"] {
            assert!(matches!(
                build(&c, &[], &[], &[sneaky]),
                Err(BallotError::WriteIn {
                    error: WriteInError::ControlCharacter { .. },
                    ..
                })
            ));
        }
        assert!(matches!(
            build(&c, &[], &[], &["王五", " 王五"]),
            Err(BallotError::DuplicateWriteIn { .. })
        ));
        assert!(matches!(
            build(&c, &[], &[], &["候选人2"]),
            Err(BallotError::WriteInIsCandidate { candidate, .. }) if candidate == "D-001-2"
        ));
    }

    #[test]
    fn door_limits_write_ins_per_ballot() {
        let c = contest("D-001", 3, 4);
        let names: Vec<String> = (0..=MAX_WRITE_INS_PER_BALLOT)
            .map(|i| format!("选民{i}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(build(&c, &[], &[], &refs[..MAX_WRITE_INS_PER_BALLOT]).is_ok());
        assert!(matches!(
            build(&c, &[], &[], &refs),
            Err(BallotError::TooManyWriteIns { count: 11, .. })
        ));
    }

    #[test]
    fn check_accepts_a_door_ballot_and_refuses_malformed_ones() {
        let c = contest("D-001", 2, 3);
        let good = build(&c, &["D-001-1"], &["D-001-3"], &["王五"]).unwrap();
        assert_eq!(good.check(&c), Ok(()));

        let mut short = good.clone();
        short.marks.pop();
        assert!(matches!(
            short.check(&c),
            Err(BallotError::WrongMarkCount {
                expected: 3,
                got: 2,
                ..
            })
        ));

        let mut elsewhere = good.clone();
        elsewhere.contest = "T-014".into();
        assert!(matches!(
            elsewhere.check(&c),
            Err(BallotError::WrongContest { .. })
        ));

        let mut untrimmed = good.clone();
        untrimmed.write_ins = vec![" 王五".into()];
        assert!(matches!(
            untrimmed.check(&c),
            Err(BallotError::WriteInNotTrimmed { .. })
        ));

        let mut control = good.clone();
        control.write_ins = vec!["王\u{7}五".into()];
        assert!(matches!(
            control.check(&c),
            Err(BallotError::WriteIn {
                error: WriteInError::ControlCharacter { .. },
                ..
            })
        ));

        let mut twice = good;
        twice.write_ins = vec!["王五".into(), "王五".into()];
        assert!(matches!(
            twice.check(&c),
            Err(BallotError::DuplicateWriteIn { .. })
        ));
    }

    #[test]
    fn errors_name_the_contest_and_candidate() {
        let c = contest("D-001", 2, 3);
        let err = build(&c, &["D-001-1"], &["D-001-1"], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "candidate 'D-001-1' of contest 'D-001' is marked both FOR and AGAINST"
        );
    }

    #[test]
    fn import_line_becomes_a_ballot_and_back() {
        let c = contest("D-001", 2, 3);
        let line = r#"{"contest": "D-001", "for": ["D-001-2"], "against": ["D-001-1"], "write_in": [" 王五 "]}"#;
        let choices: BallotChoices = serde_json::from_str(line).unwrap();
        let ballot = choices.to_ballot(BallotId([5; 16]), &c).unwrap();
        assert_eq!(ballot.marks, vec![Mark::Against, Mark::For, Mark::None]);
        assert_eq!(ballot.write_ins, vec!["王五"]);
        let back = ballot.to_choices(&c);
        assert_eq!(back.for_ids, vec!["D-001-2"]);
        assert_eq!(back.against, vec!["D-001-1"]);
        assert_eq!(back.write_in, vec!["王五"]);

        let blank: BallotChoices = serde_json::from_str(r#"{"contest": "D-001"}"#).unwrap();
        assert!(blank.to_ballot(BallotId([5; 16]), &c).unwrap().is_valid(2));
        let other: BallotChoices = serde_json::from_str(r#"{"contest": "T-014"}"#).unwrap();
        assert!(matches!(
            other.to_ballot(BallotId([5; 16]), &c),
            Err(BallotError::WrongContest { .. })
        ));
        assert!(
            serde_json::from_str::<BallotChoices>(r#"{"contest": "D-001", "fro": []}"#).is_err()
        );
    }
}
