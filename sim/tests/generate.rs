//! `sim generate` makes elections that load cleanly and match the preset's figures
//! exactly, the same ones for the same seed.

use pollsync_election::{DefinitionSummary, Level, StationKind, UnitKind, load};
use pollsync_sim::generate::{BEICHEN, SMALL, generate};

#[test]
fn beichen_matches_the_published_figures_and_loads_cleanly() {
    let def = generate(&BEICHEN, 2021).expect("beichen generates");
    let text = def.to_toml_string();
    let loaded = load("beichen.toml", &text)
        .unwrap_or_else(|e| panic!("generated definition rejected:\n{e}"));
    assert_eq!(loaded, def, "the TOML text reads back as the same election");

    let s = DefinitionSummary::of(&loaded);
    assert_eq!(
        (
            s.district.seats,
            s.district.candidates,
            s.district.registered
        ),
        (237, 365, 541_000)
    );
    assert_eq!(
        (s.town.seats, s.town.candidates, s.town.registered),
        (643, 928, 284_000)
    );
    assert_eq!((s.towns, s.streets), (9, 6));

    // Town-level contests only in towns, and the towns' district-level roll is the
    // same electorate as the town-level roll.
    for c in loaded.contests.iter().filter(|c| c.level == Level::Town) {
        assert_eq!(
            loaded.unit(&c.unit).map(|u| u.kind),
            Some(UnitKind::Town),
            "{}",
            c.id
        );
    }
    let district_in_towns: u64 = loaded
        .contests
        .iter()
        .filter(|c| {
            c.level == Level::District
                && loaded.unit(&c.unit).map(|u| u.kind) == Some(UnitKind::Town)
        })
        .map(|c| c.registered)
        .sum();
    assert_eq!(district_in_towns, 284_000);

    // About one fixed station per 1,000–1,500 voters, plus mobile boxes.
    let fixed = s.fixed_stations;
    assert!(
        (541_000 / 1_500..=541_000 / 1_000 + 150).contains(&fixed),
        "{fixed} fixed stations"
    );
    assert!(
        s.mobile_stations > 0 && s.mobile_stations < fixed / 2,
        "{} mobile boxes",
        s.mobile_stations
    );
    let stations = loaded.stations.len();
    assert!((450..=800).contains(&stations), "{stations} stations");
    assert!(
        loaded
            .stations
            .iter()
            .any(|st| st.kind == StationKind::Mobile)
    );
}

#[test]
fn every_contest_has_1_to_3_seats_and_a_lawful_number_of_candidates() {
    for seed in 0..20 {
        let def = generate(&BEICHEN, seed).expect("beichen generates for every seed");
        for level in Level::ALL {
            let seats: u64 = def
                .contests
                .iter()
                .filter(|c| c.level == level)
                .map(|c| u64::from(c.seats))
                .sum();
            let expected = if level == Level::District { 237 } else { 643 };
            assert_eq!(seats, expected, "seed {seed} {level}");
        }
        for c in &def.contests {
            let n = c.candidates.len() as u32;
            assert!((1..=3).contains(&c.seats), "seed {seed} {}", c.id);
            assert!(
                n >= c.seats + c.seats.div_ceil(3) && n <= 2 * c.seats,
                "seed {seed} {}: {n} candidates",
                c.id
            );
            assert!(
                def.stations_of(&c.id).next().is_some(),
                "seed {seed} {} unserved",
                c.id
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_election_and_another_seed_another() {
    let a = generate(&BEICHEN, 7).expect("generates").to_toml_string();
    let b = generate(&BEICHEN, 7).expect("generates").to_toml_string();
    let c = generate(&BEICHEN, 8).expect("generates").to_toml_string();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn the_small_preset_loads_cleanly() {
    let def = generate(&SMALL, 1).expect("small generates");
    let loaded = load("small.toml", &def.to_toml_string()).unwrap_or_else(|e| panic!("{e}"));
    let s = DefinitionSummary::of(&loaded);
    assert_eq!((s.district.seats, s.town.seats), (8, 9));
    assert_eq!((s.district.candidates, s.town.candidates), (13, 14));
}
