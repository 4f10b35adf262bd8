//! Totals over contests as the official summary reports them (SPEC §6): per unit, per
//! level and for the whole election — contests, seats and seats filled, contests by
//! status, ballots issued against voters on the roll, and the make-up of the elected
//! deputies (women, ethnic minorities, non-CPC, re-elected; write-in deputies apart,
//! since nothing is known of them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::definition::{Contest, ElectionDefinition, Level};
use crate::rules::{ContestOutcome, ContestStatus};

/// A count and its share of the elected deputies (0 when none is elected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Deputies counted.
    pub count: u64,
    /// Their share of the deputies elected, a fraction from 0 to 1.
    pub share: f64,
}

/// Who the elected deputies are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Makeup {
    /// Deputies elected (formal candidates and write-ins).
    pub elected: u64,
    /// Gender F.
    pub women: Share,
    /// Ethnicity other than 汉族.
    pub minorities: Share,
    /// 党外: party other than 中共.
    pub non_cpc: Share,
    /// Incumbents elected again.
    pub re_elected: Share,
    /// Elected by write-in: their attributes are unknown and counted in none of the above.
    pub write_in: Share,
}

/// Figures summed over a set of contests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TotalFigures {
    /// Contests summed.
    pub contests: u64,
    /// Seats to fill over those contests.
    pub seats: u64,
    /// Seats filled.
    pub elected: u64,
    /// Contests per status; statuses with no contest are left out.
    pub contests_by_status: BTreeMap<ContestStatus, u64>,
    /// Ballots issued over those contests, as their outcomes count them.
    pub issued: u64,
    /// Voters on the roll over those contests.
    pub registered: u64,
    /// Ballots issued / voters on the roll.
    pub turnout: f64,
    /// Who the elected deputies are.
    pub makeup: Makeup,
}

/// Totals for the whole election, each level, and each unit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Figures for the whole election (flattened into the top level of the JSON).
    #[serde(flatten)]
    pub overall: TotalFigures,
    /// Levels that have contests.
    pub levels: BTreeMap<Level, TotalFigures>,
    /// Every unit of the definition, by id.
    pub units: BTreeMap<String, TotalFigures>,
}

/// Raw counts of the make-up before shares are taken.
#[derive(Default)]
struct Tallies {
    women: u64,
    minorities: u64,
    non_cpc: u64,
    re_elected: u64,
    write_in: u64,
}

#[derive(Default)]
struct Sum {
    figures: TotalFigures,
    tallies: Tallies,
}

impl Totals {
    /// Totals from the definition and the outcome of each contest. A contest with no
    /// outcome counts as pending; outcomes of contests not in the definition are ignored.
    pub fn of(def: &ElectionDefinition, outcomes: &[ContestOutcome]) -> Totals {
        let mut by_contest: BTreeMap<&str, &ContestOutcome> = BTreeMap::new();
        for outcome in outcomes {
            by_contest
                .entry(outcome.contest.as_str())
                .or_insert(outcome);
        }
        let mut overall = Sum::default();
        let mut levels: BTreeMap<Level, Sum> = BTreeMap::new();
        let mut units: BTreeMap<String, Sum> = def
            .units
            .iter()
            .map(|u| (u.id.clone(), Sum::default()))
            .collect();
        for contest in &def.contests {
            let outcome = by_contest.get(contest.id.as_str()).copied();
            overall.add(contest, outcome);
            levels
                .entry(contest.level)
                .or_default()
                .add(contest, outcome);
            if let Some(unit) = units.get_mut(&contest.unit) {
                unit.add(contest, outcome);
            }
        }
        Totals {
            overall: overall.finish(),
            levels: levels.into_iter().map(|(k, s)| (k, s.finish())).collect(),
            units: units.into_iter().map(|(k, s)| (k, s.finish())).collect(),
        }
    }
}

impl Sum {
    fn add(&mut self, contest: &Contest, outcome: Option<&ContestOutcome>) {
        let f = &mut self.figures;
        f.contests += 1;
        f.seats = f.seats.saturating_add(u64::from(contest.seats));
        f.registered = f.registered.saturating_add(contest.registered);
        let status = outcome.map_or(ContestStatus::Pending, |o| o.status);
        *f.contests_by_status.entry(status).or_insert(0) += 1;
        let Some(outcome) = outcome else { return };
        f.issued = f.issued.saturating_add(outcome.issued);
        // Never count more deputies than the contest has seats, whatever the outcome says.
        for elected in outcome.elected.iter().take(contest.seats as usize) {
            f.elected += 1;
            let t = &mut self.tallies;
            match contest.candidates.iter().find(|c| &c.id == elected) {
                Some(c) => {
                    t.women += u64::from(c.is_woman());
                    t.minorities += u64::from(c.is_minority());
                    t.non_cpc += u64::from(c.is_non_cpc());
                    t.re_elected += u64::from(c.incumbent);
                }
                None => t.write_in += 1,
            }
        }
    }

    fn finish(self) -> TotalFigures {
        let mut f = self.figures;
        f.turnout = ratio(f.issued, f.registered);
        let elected = f.elected;
        let share = |count| Share {
            count,
            share: ratio(count, elected),
        };
        f.makeup = Makeup {
            elected,
            women: share(self.tallies.women),
            minorities: share(self.tallies.minorities),
            non_cpc: share(self.tallies.non_cpc),
            re_elected: share(self.tallies.re_elected),
            write_in: share(self.tallies.write_in),
        };
        f
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::tests::contest;
    use crate::definition::{ElectionHeader, Gender, Unit, UnitKind};
    use crate::tally::TallySheet;

    fn election() -> ElectionDefinition {
        let mut d1 = contest("D-001", 2, 3);
        d1.candidates[0].gender = Gender::F;
        d1.candidates[0].ethnicity = "回族".into();
        d1.candidates[0].incumbent = true;
        d1.candidates[1].gender = Gender::M;
        d1.candidates[1].party = "民革".into();
        let mut t1 = contest("T-001", 1, 2);
        t1.level = Level::Town;
        let mut d2 = contest("D-002", 1, 2);
        d2.unit = "guoyuan".into();
        ElectionDefinition {
            election: ElectionHeader {
                id: "beichen-2021".into(),
                name: "北辰".into(),
                date: "2021-11-01".into(),
                rules: "prc-direct".into(),
                mode: Default::default(),
                min_ballots_per_batch: crate::batching::DEFAULT_MIN_BALLOTS_PER_BATCH,
            },
            units: vec![
                Unit {
                    id: "xiditou".into(),
                    name: "西堤头镇".into(),
                    kind: UnitKind::Town,
                },
                Unit {
                    id: "guoyuan".into(),
                    name: "果园新村街道".into(),
                    kind: UnitKind::Street,
                },
            ],
            contests: vec![d1, t1, d2],
            stations: vec![],
        }
    }

    fn outcome(
        def: &ElectionDefinition,
        id: &str,
        status: ContestStatus,
        elected: &[&str],
    ) -> ContestOutcome {
        let contest = def.contest(id).unwrap();
        let mut sheet = TallySheet::default();
        sheet.add_issued(2_000);
        let mut o = ContestOutcome::counted(contest, &sheet);
        o.status = status;
        o.elected = elected.iter().map(|s| s.to_string()).collect();
        o
    }

    #[test]
    fn totals_per_unit_level_and_overall() {
        let def = election();
        let outcomes = vec![
            outcome(
                &def,
                "D-001",
                ContestStatus::Elected,
                &["D-001-1", "D-001-2"],
            ),
            outcome(&def, "T-001", ContestStatus::Runoff, &["王五"]),
            // D-002 has no outcome yet: pending.
        ];
        let t = Totals::of(&def, &outcomes);
        let all = &t.overall;
        assert_eq!((all.contests, all.seats, all.elected), (3, 4, 3));
        assert_eq!(all.registered, 3 * 2_280);
        assert_eq!(all.issued, 4_000);
        assert!((all.turnout - 4_000.0 / 6_840.0).abs() < 1e-12);
        assert_eq!(
            all.contests_by_status,
            BTreeMap::from([
                (ContestStatus::Pending, 1),
                (ContestStatus::Runoff, 1),
                (ContestStatus::Elected, 1)
            ])
        );
        let m = &all.makeup;
        assert_eq!(m.elected, 3);
        assert_eq!(m.women.count, 1);
        assert_eq!(m.minorities.count, 1);
        assert_eq!(m.non_cpc.count, 1);
        assert_eq!(m.re_elected.count, 1);
        assert_eq!(m.write_in.count, 1);
        assert!((m.women.share - 1.0 / 3.0).abs() < 1e-12);

        let town = &t.levels[&Level::Town];
        assert_eq!((town.contests, town.seats, town.elected), (1, 1, 1));
        assert_eq!(town.makeup.write_in.count, 1);
        assert_eq!(t.levels[&Level::District].elected, 2);

        let street = &t.units["guoyuan"];
        assert_eq!((street.contests, street.elected, street.issued), (1, 0, 0));
        assert_eq!(street.makeup.women.share, 0.0);
        assert_eq!(t.units["xiditou"].contests, 2);
    }

    #[test]
    fn elected_never_exceeds_seats_in_totals() {
        let def = election();
        let outcomes = vec![outcome(
            &def,
            "D-002",
            ContestStatus::Elected,
            &["D-002-1", "D-002-2"],
        )];
        assert_eq!(Totals::of(&def, &outcomes).overall.elected, 1);
    }
}
