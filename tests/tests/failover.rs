//! Fail-over for stations (SPEC §11): a station set up with several center
//! addresses (`station init --center A --center B`) moves to the next address when
//! one fails and resumes where the center's head is. One center, two TCP fault
//! proxies in front of it standing for two addresses; every test shows which proxy
//! carried the traffic (its counters, the station's log and status) and ends with
//! the center holding exactly the ground truth drawn by `pollsync-sim`, each batch
//! once, no alert and a clean `center audit`.

use pollsync_center::store::Records as _;
use std::path::Path;
use std::time::Duration;

use pollsync_tests::proxy::{Fault, Proxy};
use pollsync_tests::{
    SmallDay, Station, ballot_parts, ballots_of, center_heads, center_tallies, close_all,
    drawn_for, import_part, issue_all, ok, truth, wait_for,
};

/// Bound for anything the station does by itself (failing over, catching up): well
/// above the few seconds it takes, well under a minute.
const SETTLE: Duration = Duration::from_secs(40);

/// One election day with a station set up to dial two proxies, in this order.
struct Day {
    day: SmallDay,
    first: Proxy,
    second: Proxy,
    station: Station,
}

impl Day {
    /// The busiest station of a small election drawn by `seed`, dialling the first
    /// proxy, then the second.
    fn new(seed: u64) -> Day {
        let day = SmallDay::start(seed);
        let first = Proxy::start(day.center.address());
        let second = Proxy::start(day.center.address());
        let id = day
            .def
            .stations
            .iter()
            .map(|s| s.id.clone())
            .max_by_key(|id| ballots_of(&day.drawn, id))
            .expect("a station");
        let station = Station::init_with_centers(
            day.root.path(),
            &day.center,
            &id,
            &[&first.address(), &second.address()],
        );
        Day {
            day,
            first,
            second,
            station,
        }
    }

    fn path(&self) -> &Path {
        self.day.root.path()
    }

    fn logs(&self) -> std::path::PathBuf {
        self.path().join("logs")
    }

    fn ballots(&self) -> u64 {
        ballots_of(&self.day.drawn, &self.station.id)
    }

    /// The station's head (sequence of its last sealed batch).
    fn head(&self) -> u64 {
        self.station.status()["head"]["sequence"]
            .as_u64()
            .expect("head sequence")
    }

    /// The center's head for the station.
    fn center_head(&self) -> u64 {
        center_heads(&self.day.center)
            .get(&self.station.id)
            .copied()
            .unwrap_or(0)
    }

    /// `station status` names `address` as the one in use and lists both proxies.
    fn assert_status_center(&self, address: &str) {
        let status = self.station.status();
        assert_eq!(status["center"], address, "{status}");
        assert_eq!(status["center_reached"], true, "{status}");
        assert_eq!(
            status["center_addresses"],
            serde_json::json!([self.first.address(), self.second.address()]),
            "{status}"
        );
        let text = self.station.ok(&["status"]);
        assert!(
            text.contains(&format!("center: {address} (last reached there;")),
            "{text}"
        );
    }

    /// The end of every test: the center holds exactly the station's truth, each
    /// batch once; everything is sealed and acknowledged; no alert; a clean audit.
    fn assert_exact(&self) {
        let id = self.station.id.as_str();
        assert_eq!(
            center_tallies(&self.day.center),
            truth(&drawn_for(&self.day.drawn, &[id])),
            "the center holds exactly what {id} recorded"
        );
        let status = self.station.status();
        assert_eq!(status["events"]["pending"], 0, "{status}");
        assert_eq!(
            status["batches"]["sealed"], status["batches"]["acknowledged"],
            "{status}"
        );
        assert_eq!(status["ballots_sealed"], self.ballots(), "{status}");
        let head = self.head();
        assert_eq!(
            self.center_head(),
            head,
            "the center's head is the station's"
        );
        let stored = self
            .day
            .center
            .open_store()
            .batch_counts()
            .expect("batch counts");
        assert_eq!(
            stored.get(id).copied(),
            Some((head, self.ballots())),
            "each batch and ballot stored once"
        );
        pollsync_tests::assert_no_alerts(&self.day.center);
        let audit = self.day.center.json(&["audit", "--json"]);
        assert_eq!(audit["ok"], true, "{audit}");
    }
}

/// (a) `station sync` reaches the center through the first address; that address
/// then refuses every connection; the next `station sync` moves to the second and
/// delivers the rest, each batch once.
#[test]
fn sync_moves_to_the_next_address_when_the_first_refuses() {
    let d = Day::new(61);
    let parts = ballot_parts(&d.day.drawn, &d.station.id, 2);
    issue_all(&d.station, &d.day.drawn);
    import_part(&d.station, &parts[0], d.path(), "morning");
    let out = ok(d
        .station
        .command()
        .args(["sync", "--json", "--timeout-s", "30"]));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("sync summary JSON");
    assert_eq!(summary["center"], d.first.address(), "{summary}");
    let morning_head = d.head();
    assert!(morning_head > 0);
    assert_eq!(d.center_head(), morning_head);
    assert!(d.first.counters().forwarded > 0, "{:?}", d.first.counters());
    assert_eq!(
        d.second.counters().accepted,
        0,
        "the second address is not used while the first works"
    );
    d.assert_status_center(&d.first.address());

    // The first address now refuses; more ballots are recorded and closed.
    d.first.set(Fault::Drop);
    import_part(&d.station, &parts[1], d.path(), "afternoon");
    close_all(&d.station, &d.day.drawn);
    let run = d
        .station
        .command()
        .args(["sync", "--json", "--timeout-s", "30"])
        .output()
        .expect("station sync runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "station sync failed:\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("sync summary JSON");
    assert_eq!(summary["center"], d.second.address(), "{summary}");
    // The person at the station is told where it tried and where it went.
    assert!(
        stderr.contains(&format!("center unreachable at {}", d.first.address())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "connected to the center at {}",
            d.second.address()
        )),
        "{stderr}"
    );
    assert!(d.first.counters().refused > 0, "{:?}", d.first.counters());
    assert!(
        d.second.counters().forwarded > 0,
        "{:?}",
        d.second.counters()
    );
    // Resumed at the center's head: only the new batches went (none resent).
    assert!(d.head() > morning_head);
    assert_eq!(
        summary["batches_sent"].as_u64(),
        Some(d.head() - morning_head),
        "{summary}"
    );
    assert_eq!(summary["duplicates"], 0, "{summary}");
    d.assert_status_center(&d.second.address());
    d.assert_exact();
}

/// (b) `station run` streams through the first address; mid-stream that address
/// black-holes everything and its open connections die silently; the agent moves
/// to the second address by itself and catches up, each batch once.
#[test]
fn run_fails_over_mid_stream_and_catches_up() {
    let d = Day::new(62);
    let parts = ballot_parts(&d.day.drawn, &d.station.id, 6);
    let mut run = d.station.spawn(&["run", "--json"], &d.logs());
    issue_all(&d.station, &d.day.drawn);
    import_part(&d.station, &parts[0], d.path(), "part0");
    wait_for("the first batches at the center", SETTLE, || {
        (d.center_head() > 0).then_some(())
    });
    assert_eq!(d.second.counters().accepted, 0, "{:?}", d.second.counters());

    // A slow first link, and a backlog: the stream is under way when it dies.
    d.first.set(Fault::Delay { per_chunk_ms: 300 });
    for (i, part) in parts.iter().enumerate().skip(1) {
        import_part(&d.station, part, d.path(), &format!("part{i}"));
        d.station.ok(&["seal"]);
    }
    close_all(&d.station, &d.day.drawn);
    d.station.ok(&["seal"]);
    let head = d.head();
    let before = d.center_head();
    let held = wait_for(
        "the backlog to stream through the first address",
        SETTLE,
        || {
            let held = d.center_head();
            assert!(held < head, "the backlog went through before the fault");
            (held > before).then_some(held)
        },
    );
    d.first.set(Fault::BlackHole);
    d.first.silent_drop();
    assert!(held < head);

    wait_for(
        "the station caught up through the second address",
        SETTLE,
        || d.station.caught_up(d.ballots()).then_some(()),
    );
    assert_eq!(d.center_head(), head);
    let first = d.first.counters();
    assert!(first.silenced > 0 || first.black_holed > 0, "{first:?}");
    assert!(
        d.second.counters().forwarded > 0,
        "{:?}",
        d.second.counters()
    );
    d.assert_status_center(&d.second.address());

    let summary = pollsync_tests::stop_agent(&mut run, Duration::from_secs(20));
    assert_eq!(summary["center"], d.second.address(), "{summary}");
    assert!(
        summary["connections"].as_u64().expect("connections") >= 2,
        "{summary}"
    );
    let log = run.stderr();
    assert!(
        log.contains(&format!(
            "connected to the center at {}",
            d.second.address()
        )),
        "{log}"
    );
    d.assert_exact();
}
