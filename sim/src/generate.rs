//! `sim generate`: elections of a preset's size and make-up, deterministic per seed.
//!
//! The `beichen` preset reproduces the 2021 Beichen District election's published
//! figures exactly (seats, formal candidates and voters on the roll at both levels);
//! everything else (how voters, seats and candidates fall into electoral districts,
//! where the stations are, who the candidates are) is drawn from the seed.

use anyhow::{Context, bail};
use pollsync_election::{
    Candidate, Contest, ElectionDefinition, ElectionHeader, Gender, Level, Mode, Station,
    StationKind, Unit, UnitKind,
};
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::names;

/// Published totals of one level of the election.
#[derive(Debug, Clone, Copy)]
pub struct LevelTargets {
    pub seats: u32,
    pub candidates: u32,
    pub registered: u64,
}

/// Everything that sizes a generated election.
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: &'static str,
    pub election_id: &'static str,
    pub election_name: &'static str,
    pub date: &'static str,
    pub towns: &'static [(&'static str, &'static str)],
    pub streets: &'static [(&'static str, &'static str)],
    /// District level: contests in every unit. Its `registered` includes the towns'.
    pub district: LevelTargets,
    /// Town level: contests only in towns; its voters are the towns' voters.
    pub town: LevelTargets,
    /// One fixed station per this many voters (a range the seed picks from per area).
    pub voters_per_fixed_station: (u64, u64),
    /// Chance that an area also has a mobile ballot box.
    pub mobile_box_chance: f64,
    /// `[election] mode`.
    pub mode: Mode,
    /// `[election] min_ballots_per_batch` (K).
    pub min_ballots_per_batch: u32,
}

/// The 2021 Beichen District election (SPEC's model case).
pub const BEICHEN: Preset = Preset {
    name: "beichen",
    election_id: "beichen-2021",
    election_name: "北辰区区、镇两级人大代表换届选举",
    date: "2021-11-01",
    towns: &names::BEICHEN_TOWNS,
    streets: &names::BEICHEN_STREETS,
    district: LevelTargets {
        seats: 237,
        candidates: 365,
        registered: 541_000,
    },
    town: LevelTargets {
        seats: 643,
        candidates: 928,
        registered: 284_000,
    },
    voters_per_fixed_station: (1_000, 1_500),
    mobile_box_chance: 0.2,
    mode: Mode::Official,
    min_ballots_per_batch: pollsync_election::batching::DEFAULT_MIN_BALLOTS_PER_BATCH,
};

/// A small election of the same shape, for tests and trying things out.
pub const SMALL: Preset = Preset {
    name: "small",
    election_id: "small-2021",
    election_name: "小型测试选举",
    date: "2021-11-01",
    towns: &[("xiditou", "西堤头镇"), ("tianmu", "天穆镇")],
    streets: &[("jixianli", "集贤里街")],
    district: LevelTargets {
        seats: 8,
        candidates: 13,
        registered: 12_000,
    },
    town: LevelTargets {
        seats: 9,
        candidates: 14,
        registered: 8_000,
    },
    voters_per_fixed_station: (1_000, 1_500),
    mobile_box_chance: 0.2,
    // A test election: ballots are sealed as they come, so that tests of the
    // protocol see each one; grouping has tests of its own.
    mode: Mode::Test,
    min_ballots_per_batch: 1,
};

pub const PRESETS: [&Preset; 2] = [&BEICHEN, &SMALL];

pub fn preset_by_name(name: &str) -> Option<&'static Preset> {
    PRESETS.into_iter().find(|p| p.name == name)
}

/// Shares of 1-, 2- and 3-seat electoral districts drawn at each level.
const DISTRICT_SEAT_WEIGHTS: [f64; 3] = [0.15, 0.45, 0.40];
const TOWN_SEAT_WEIGHTS: [f64; 3] = [0.05, 0.35, 0.60];

/// prc-direct's bounds on formal candidates for a contest of `seats` (SPEC §6).
fn candidate_bounds(seats: u32) -> (u32, u32) {
    (seats + seats.div_ceil(3), 2 * seats)
}

/// A contest before its candidates and name are made.
struct Draft {
    level: Level,
    unit: usize,
    seats: u32,
    registered: u64,
    candidates: u32,
}

/// Generate an election for `preset` from `seed`. The same preset and seed always give
/// the same election.
pub fn generate(preset: &Preset, seed: u64) -> anyhow::Result<ElectionDefinition> {
    assert!(preset.town.registered <= preset.district.registered);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let units: Vec<Unit> = preset
        .towns
        .iter()
        .map(|&(id, name)| (id, name, UnitKind::Town))
        .chain(
            preset
                .streets
                .iter()
                .map(|&(id, name)| (id, name, UnitKind::Street)),
        )
        .map(|(id, name, kind)| Unit {
            id: id.into(),
            name: name.into(),
            kind,
        })
        .collect();
    let town_count = preset.towns.len();
    if town_count == 0 && preset.town.seats > 0 {
        bail!("preset {}: town-level seats but no towns", preset.name);
    }

    // Voters per unit: the towns share the town-level roll, the streets the rest.
    let town_weights = random_weights(&mut rng, town_count);
    let street_weights = random_weights(&mut rng, preset.streets.len());
    let mut unit_voters = apportion(preset.town.registered, &town_weights);
    unit_voters.extend(apportion(
        preset.district.registered - preset.town.registered,
        &street_weights,
    ));

    // Seats per unit, in proportion to its voters, then cut into electoral districts.
    let voter_weights: Vec<f64> = unit_voters.iter().map(|&v| v as f64).collect();
    let district_seats = apportion_at_least_one(preset.district.seats, &voter_weights);
    let town_seats = apportion_at_least_one(preset.town.seats, &voter_weights[..town_count]);

    let mut drafts = Vec::new();
    for (level, seats_per_unit, weights) in [
        (Level::District, &district_seats, &DISTRICT_SEAT_WEIGHTS),
        (Level::Town, &town_seats, &TOWN_SEAT_WEIGHTS),
    ] {
        let targets = match level {
            Level::District => preset.district,
            Level::Town => preset.town,
        };
        let first = drafts.len();
        for (unit, &seats) in seats_per_unit.iter().enumerate() {
            for part in partition_seats(&mut rng, seats, weights) {
                drafts.push(Draft {
                    level,
                    unit,
                    seats: part,
                    registered: 0,
                    candidates: 0,
                });
            }
        }
        merge_until_feasible(&mut drafts[first..], targets.candidates)?;
        drafts.retain(|d| d.seats > 0);
        let level_drafts: Vec<&mut Draft> =
            drafts.iter_mut().filter(|d| d.level == level).collect();
        assign_candidate_counts(&mut rng, level_drafts, targets.candidates)?;
    }

    // Voters per contest: the unit's roll in proportion to seats, with some spread.
    for (unit, &voters_of_unit) in unit_voters.iter().enumerate() {
        for level in Level::ALL {
            let idx: Vec<usize> = (0..drafts.len())
                .filter(|&i| drafts[i].unit == unit && drafts[i].level == level)
                .collect();
            let weights: Vec<f64> = idx
                .iter()
                .map(|&i| f64::from(drafts[i].seats) * rng.random_range(0.85..1.15))
                .collect();
            for (&i, voters) in idx.iter().zip(apportion(voters_of_unit, &weights)) {
                drafts[i].registered = voters;
            }
        }
    }

    let contests = make_contests(&mut rng, &drafts, &units);
    let stations = make_stations(&mut rng, preset, &units, &drafts, &contests);

    Ok(ElectionDefinition {
        election: ElectionHeader {
            id: preset.election_id.into(),
            name: preset.election_name.into(),
            date: preset.date.into(),
            rules: "prc-direct".into(),
            mode: preset.mode,
            min_ballots_per_batch: preset.min_ballots_per_batch,
        },
        units,
        contests,
        stations,
    })
}

/// `n` random weights around 1.
fn random_weights(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(0.6..1.4)).collect()
}

/// Split `total` into whole parts proportional to `weights` (largest remainder), summing
/// exactly to `total`.
fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut parts: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let short = total - parts.iter().sum::<u64>();
    for &i in order.iter().cycle().take(short as usize) {
        parts[i] += 1;
    }
    debug_assert_eq!(parts.iter().sum::<u64>(), total);
    parts
}

/// Like `apportion`, but every part gets at least one.
fn apportion_at_least_one(total: u32, weights: &[f64]) -> Vec<u32> {
    let n = weights.len() as u32;
    assert!(total >= n, "fewer seats than units");
    apportion(u64::from(total - n), weights)
        .into_iter()
        .map(|p| p as u32 + 1)
        .collect()
}

/// Cut a unit's seats into electoral districts of 1–3 seats.
fn partition_seats(rng: &mut ChaCha8Rng, mut seats: u32, weights: &[f64; 3]) -> Vec<u32> {
    let mut parts = Vec::new();
    while seats > 0 {
        let mut draw = rng.random_range(0.0..1.0);
        let mut size = 3;
        for (i, w) in weights.iter().enumerate() {
            if draw < *w {
                size = i as u32 + 1;
                break;
            }
            draw -= w;
        }
        let size = size.min(seats);
        parts.push(size);
        seats -= size;
    }
    parts
}

/// Small electoral districts need relatively more candidates (1 seat: 2; 3 seats: 4).
/// Merge small districts of the same unit until the level's candidate total fits.
fn merge_until_feasible(drafts: &mut [Draft], candidates: u32) -> anyhow::Result<()> {
    let sum = |d: &[Draft], f: fn(u32) -> u32| d.iter().map(|x| f(x.seats)).sum::<u32>();
    while sum(drafts, |s| candidate_bounds(s).0) > candidates {
        let pair = (0..drafts.len()).find_map(|a| {
            (a + 1..drafts.len())
                .find(|&b| {
                    drafts[a].seats > 0
                        && drafts[b].seats > 0
                        && drafts[a].unit == drafts[b].unit
                        && drafts[a].seats + drafts[b].seats <= 3
                })
                .map(|b| (a, b))
        });
        let Some((a, b)) = pair else {
            bail!("cannot fit {candidates} candidates: too many small electoral districts");
        };
        drafts[a].seats += drafts[b].seats;
        drafts[b].seats = 0;
    }
    if sum(drafts, |s| candidate_bounds(s).1) < candidates {
        bail!("cannot fit {candidates} candidates: at most twice the seats are allowed");
    }
    Ok(())
}

/// Give every contest its minimum number of candidates, then hand out the rest one by
/// one to contests with room, so the level's total is exact.
fn assign_candidate_counts(
    rng: &mut ChaCha8Rng,
    mut drafts: Vec<&mut Draft>,
    total: u32,
) -> anyhow::Result<()> {
    for d in drafts.iter_mut() {
        d.candidates = candidate_bounds(d.seats).0;
    }
    let mut extra = total - drafts.iter().map(|d| d.candidates).sum::<u32>();
    while extra > 0 {
        let open: Vec<usize> = (0..drafts.len())
            .filter(|&i| drafts[i].candidates < candidate_bounds(drafts[i].seats).1)
            .collect();
        let Some(&i) = open.choose(rng) else {
            bail!("no room left for {extra} more candidates");
        };
        drafts[i].candidates += 1;
        extra -= 1;
    }
    Ok(())
}

fn make_contests(rng: &mut ChaCha8Rng, drafts: &[Draft], units: &[Unit]) -> Vec<Contest> {
    let mut counter = [0u32; 2];
    drafts
        .iter()
        .map(|d| {
            let (prefix, n) = match d.level {
                Level::District => ("D", &mut counter[0]),
                Level::Town => ("T", &mut counter[1]),
            };
            *n += 1;
            let id = format!("{prefix}-{:03}", *n);
            let unit = &units[d.unit];
            let name = match d.level {
                Level::District => format!("区级第{n}选区"),
                Level::Town => format!("{}镇级第{n}选区", unit.name),
            };
            let candidates = (1..=d.candidates)
                .map(|k| make_candidate(rng, format!("{id}-{k}")))
                .collect();
            Contest {
                id,
                level: d.level,
                unit: unit.id.clone(),
                name,
                seats: d.seats,
                registered: d.registered,
                candidates,
            }
        })
        .collect()
}

fn make_candidate(rng: &mut ChaCha8Rng, id: String) -> Candidate {
    let mut name = String::from(*names::SURNAMES.choose(rng).unwrap_or(&"王"));
    for _ in 0..rng.random_range(1..=2) {
        name.push_str(names::GIVEN_NAME_CHARS.choose(rng).unwrap_or(&"明"));
    }
    let gender = if rng.random_bool(0.36) {
        Gender::F
    } else {
        Gender::M
    };
    let ethnicity = if rng.random_bool(0.05) {
        names::MINORITY_ETHNICITIES.choose(rng).unwrap_or(&"回族")
    } else {
        pollsync_election::MAJORITY_ETHNICITY
    };
    let party = if rng.random_bool(0.30) {
        names::NON_CPC_PARTIES.choose(rng).unwrap_or(&"群众")
    } else {
        pollsync_election::CPC
    };
    Candidate {
        id,
        name,
        gender,
        ethnicity: ethnicity.to_string(),
        party: party.to_string(),
        incumbent: rng.random_bool(0.4),
    }
}

/// Stations: each unit's voters lie along a line that both levels' electoral districts
/// cut into pieces; every piece where a district-level and a town-level district meet is
/// an area served by its own fixed stations (and maybe a mobile box), each collecting the
/// ballots of both contests.
fn make_stations(
    rng: &mut ChaCha8Rng,
    preset: &Preset,
    units: &[Unit],
    drafts: &[Draft],
    contests: &[Contest],
) -> Vec<Station> {
    let mut stations = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        let intervals = |level| -> Vec<(u64, u64, usize)> {
            let mut start = 0;
            (0..drafts.len())
                .filter(|&i| drafts[i].unit == u && drafts[i].level == level)
                .map(|i| {
                    let span = (start, start + drafts[i].registered, i);
                    start = span.1;
                    span
                })
                .collect()
        };
        let district = intervals(Level::District);
        let town = intervals(Level::Town);
        let mut areas = Vec::new();
        for &(d_start, d_end, d) in &district {
            if town.is_empty() {
                areas.push((d_end - d_start, vec![d]));
            }
            for &(t_start, t_end, t) in &town {
                let (start, end) = (d_start.max(t_start), d_end.min(t_end));
                if start < end {
                    areas.push((end - start, vec![d, t]));
                }
            }
        }
        let (mut fixed_no, mut mobile_no) = (0, 0);
        for (voters, served) in areas {
            let per_station = rng.random_range(
                preset.voters_per_fixed_station.0..=preset.voters_per_fixed_station.1,
            );
            let fixed = (voters + per_station / 2) / per_station;
            let contest_ids: Vec<String> = served.iter().map(|&i| contests[i].id.clone()).collect();
            for _ in 0..fixed.max(1) {
                fixed_no += 1;
                stations.push((unit, StationKind::Fixed, fixed_no, contest_ids.clone()));
            }
            if rng.random_bool(preset.mobile_box_chance) {
                mobile_no += 1;
                stations.push((unit, StationKind::Mobile, mobile_no, contest_ids));
            }
        }
    }
    stations
        .into_iter()
        .enumerate()
        .map(|(i, (unit, kind, n, contests))| Station {
            id: format!("S-{:04}", i + 1),
            name: match kind {
                StationKind::Fixed => format!("{}第{n}投票站", unit.name),
                StationKind::Mobile => format!("{}第{n}流动票箱", unit.name),
            },
            kind,
            contests,
        })
        .collect()
}

/// Generate and write the TOML text; returns the definition for a summary.
pub fn generate_to_file(
    preset: &Preset,
    seed: u64,
    out: &std::path::Path,
) -> anyhow::Result<ElectionDefinition> {
    let def = generate(preset, seed)?;
    let text = format!(
        "# Generated by `sim generate --preset {} --seed {seed}`.\n{}",
        preset.name,
        def.to_toml_string()
    );
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    Ok(def)
}
