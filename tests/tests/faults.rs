//! Network and crash faults across processes (G1, G2, G5): the real `center` and
//! `station` binaries, a station or the center SIGKILLed mid-sync and restarted,
//! and a TCP fault proxy between stations and center that drops connections,
//! black-holes them, delays them, or cuts them in the middle of a message. Every
//! test shows the fault really hit traffic (a kill at a moment of partial progress,
//! the proxy's counters) and ends with the center holding exactly the ground truth
//! drawn by `pollsync-sim`, each batch once, and every station caught up.

use pollsync_center::store::Records as _;
use std::path::Path;
use std::time::Duration;

use pollsync_tests::proxy::{Direction, Fault, Proxy};
use pollsync_tests::{
    Center, SmallDay, Spawned, Station, Tallies, assert_no_alerts, assert_results_are_truth,
    ballot_parts, ballots_of, center_ballots, center_heads, center_stations, center_tallies,
    close_all, drawn_for, import_part, issue_all, ok, truth, wait_for,
};

/// Generous bound for anything the system does by itself (reconnecting, catching up).
const SETTLE: Duration = Duration::from_secs(120);

/// One election day: a small generated election, its drawn ballots, a serving center.
/// (The harness's `SmallDay`, with this file's helpers on it.)
struct Day(SmallDay);

impl std::ops::Deref for Day {
    type Target = SmallDay;
    fn deref(&self) -> &SmallDay {
        &self.0
    }
}

impl std::ops::DerefMut for Day {
    fn deref_mut(&mut self) -> &mut SmallDay {
        &mut self.0
    }
}

impl Day {
    fn new(seed: u64) -> Day {
        Day(SmallDay::start(seed))
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn logs(&self) -> std::path::PathBuf {
        self.path().join("logs")
    }

    /// A station of this election set up to dial `address` (the center or a proxy).
    fn station(&self, id: &str, address: &str) -> Station {
        Station::init(self.path(), &self.center, id, address)
    }

    /// Waits until every station has all its ballots acknowledged and the center
    /// holds `want`.
    fn wait_caught_up(&self, stations: &[Station], want: &Tallies) {
        wait_for("every station caught up", SETTLE, || {
            let done = stations
                .iter()
                .all(|s| s.caught_up(ballots_of(&self.drawn, &s.id)));
            (done && center_tallies(&self.center) == *want).then_some(())
        });
    }

    /// Station ids, most ballots first.
    fn busiest(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.def.stations.iter().map(|s| s.id.clone()).collect();
        ids.sort_by_key(|id| std::cmp::Reverse(ballots_of(&self.drawn, id)));
        ids
    }

    /// Records a station's whole day as a backlog of many sealed batches (its
    /// ballots in `parts` imports, each sealed at once, then the closes); returns
    /// the station's head.
    fn backlog(&self, station: &Station, parts: usize) -> u64 {
        issue_all(station, &self.drawn);
        for (i, part) in ballot_parts(&self.drawn, &station.id, parts)
            .iter()
            .enumerate()
        {
            import_part(station, part, self.path(), &format!("part{i}"));
            station.ok(&["seal"]);
        }
        close_all(station, &self.drawn);
        station.ok(&["seal"]);
        head_of(station)
    }

    /// The end of every test: the center holds exactly the truth of `stations`,
    /// each of their batches once; each station has everything sealed and
    /// acknowledged; no alert; results decided where every station is in. Returns
    /// how many contests are decided.
    fn assert_exact(&self, stations: &[&Station]) -> usize {
        let ids: Vec<&str> = stations.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            center_tallies(&self.center),
            truth(&drawn_for(&self.drawn, &ids)),
            "the center holds exactly what {ids:?} recorded"
        );
        let heads = center_heads(&self.center);
        let stored = self
            .center
            .open_store()
            .batch_counts()
            .expect("batch counts");
        for s in stations {
            let status = s.status();
            assert_eq!(status["events"]["pending"], 0, "{}: {status}", s.id);
            assert_eq!(
                status["batches"]["sealed"], status["batches"]["acknowledged"],
                "{}: {status}",
                s.id
            );
            let ballots = ballots_of(&self.drawn, &s.id);
            assert_eq!(status["ballots_sealed"], ballots, "{}: {status}", s.id);
            let head = head_of(s);
            assert_eq!(
                heads.get(&s.id).copied(),
                Some(head),
                "{} center head",
                s.id
            );
            assert_eq!(
                stored.get(&s.id).copied(),
                Some((head, ballots)),
                "{}: each batch and ballot stored once",
                s.id
            );
        }
        assert_no_alerts(&self.center);
        assert_results_are_truth(&self.center, &self.drawn, &ids)
    }
}

fn head_of(station: &Station) -> u64 {
    station.status()["head"]["sequence"]
        .as_u64()
        .expect("head sequence")
}

/// The center's head for one station.
fn center_head(center: &Center, id: &str) -> u64 {
    center_heads(center).get(id).copied().unwrap_or(0)
}

/// Unix time in ms, to compare with the center's presence records.
fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Stops a `station run --json` by SIGTERM and checks its summary: it exits 0 (no
/// rejection), everything it sealed is acknowledged, and it connected at least
/// `connections` times.
fn stop_run(run: &mut Spawned, connections: u64) {
    let summary = pollsync_tests::stop_agent(run, Duration::from_secs(30));
    assert!(
        summary["connections"].as_u64().expect("connections") >= connections,
        "{} connected at least {connections} times: {summary}",
        run.what
    );
}

/// A `station sync` in the background must end successfully.
fn expect_synced(sync: &mut Spawned) {
    let status = sync.wait(SETTLE);
    assert!(
        status.success(),
        "{} ended with {status}:\n{}",
        sync.what,
        sync.stderr()
    );
}

#[test]
fn a_station_killed_mid_sync_twice_resumes_and_every_ballot_counts_once() {
    let day = Day::new(31);
    let id = day.busiest()[0].clone();
    // A slow link (through the proxy) widens the window in which the center holds
    // some but not all of the backlog, so the kills land mid-sync.
    let proxy = Proxy::start(day.center.address());
    let station = day.station(&id, &proxy.address());
    let head = day.backlog(&station, 16);
    assert!(head >= 16, "a backlog of many batches: {head}");
    proxy.set(Fault::Delay { per_chunk_ms: 150 });

    // `station sync` killed once the center has part of the backlog.
    let mut sync = station.spawn(&["sync", "--timeout-s", "120"], &day.logs());
    let first = wait_for("the center to hold part of the backlog", SETTLE, || {
        let held = center_head(&day.center, &id);
        assert!(held < head, "the backlog went through before the kill");
        (held > 0).then_some(held)
    });
    sync.kill();

    // `station run` killed once it has sent more, still not all.
    let mut run = station.spawn(&["run"], &day.logs());
    let second = wait_for("the center to hold more of the backlog", SETTLE, || {
        let held = center_head(&day.center, &id);
        assert!(held < head, "the backlog went through before the kill");
        (held > first).then_some(held)
    });
    run.kill();
    assert!(0 < first && first < second && second < head);

    // Restarted on a good network, it sends the rest.
    proxy.set(Fault::Pass);
    ok(station.command().args(["sync", "--timeout-s", "60"]));
    assert!(
        proxy.counters().delayed_chunks > 0,
        "{:?}",
        proxy.counters()
    );
    day.assert_exact(&[&station]);
}

#[test]
fn the_center_killed_while_stations_stream_live_gets_everything_once_after_restart() {
    let mut day = Day::new(32);
    let contest = day.def.contests[0].id.clone();
    let ids: Vec<String> = day
        .def
        .stations_of(&contest)
        .map(|s| s.id.clone())
        .collect();
    assert!(ids.len() >= 2, "{contest} has several stations: {ids:?}");
    let address = day.center.address().to_string();
    let stations: Vec<Station> = ids.iter().map(|id| day.station(id, &address)).collect();
    let mut runs: Vec<Spawned> = stations
        .iter()
        .map(|s| s.spawn(&["run", "--json"], &day.logs()))
        .collect();
    let parts: Vec<Vec<String>> = ids
        .iter()
        .map(|id| ballot_parts(&day.drawn, id, 3))
        .collect();
    let part_ballots = |k: usize| -> u64 {
        parts
            .iter()
            .map(|p| p[k].lines().count() as u64)
            .sum::<u64>()
    };

    // Morning: a first part of the ballots, streamed live.
    for (s, p) in stations.iter().zip(&parts) {
        issue_all(s, &day.drawn);
        import_part(s, &p[0], day.path(), "morning");
    }
    let morning = part_ballots(0);
    wait_for("the morning's ballots at the center", SETTLE, || {
        (center_ballots(&day.center) == morning).then_some(())
    });

    // Midday: more ballots, recorded one station after the other; the center dies
    // as soon as the first of them arrive, while the others are still streaming.
    std::thread::scope(|scope| {
        let dir = day.0.root.path();
        let recording = scope.spawn(|| {
            for (s, p) in stations.iter().zip(&parts) {
                import_part(s, &p[1], dir, "midday");
            }
        });
        wait_for("midday ballots at the center", SETTLE, || {
            (center_ballots(&day.center) > morning).then_some(())
        });
        day.0.center.kill();
        recording.join().expect("midday recording");
    });
    let held = center_ballots(&day.center);
    assert!(held < morning + part_ballots(1) + part_ballots(2));

    // The outage: recording goes on, and every station seals it (G5).
    for (s, p) in stations.iter().zip(&parts) {
        import_part(s, &p[2], day.path(), "evening");
        close_all(s, &day.drawn);
    }
    for s in &stations {
        wait_for("the station to seal during the outage", SETTLE, || {
            let st = s.status();
            let sealed = st["batches"]["sealed"].as_u64().expect("sealed");
            let acknowledged = st["batches"]["acknowledged"].as_u64().expect("acked");
            (st["events"]["pending"] == 0 && sealed > acknowledged).then_some(())
        });
    }

    // The center comes back on its address; the running stations deliver the rest
    // with nobody touching them.
    day.0.center.serve();
    let want = truth(&drawn_for(
        &day.drawn,
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    day.wait_caught_up(&stations, &want);
    for run in &mut runs {
        stop_run(run, 2); // reconnected after the restart
    }
    let refs: Vec<&Station> = stations.iter().collect();
    assert!(day.assert_exact(&refs) >= 1, "{contest} is decided");
}

#[test]
fn connections_dropped_mid_transfer_lose_nothing_and_count_nothing_twice() {
    let day = Day::new(33);
    let proxy = Proxy::start(day.center.address());
    let stations: Vec<Station> = day.busiest()[..2]
        .iter()
        .map(|id| day.station(id, &proxy.address()))
        .collect();
    let heads: u64 = stations.iter().map(|s| day.backlog(s, 10)).sum();
    let mut syncs: Vec<Spawned> = stations
        .iter()
        .map(|s| s.spawn(&["sync", "--timeout-s", "120"], &day.logs()))
        .collect();
    for (round, after_bytes) in [(1u64, 8_000u64), (2, 24_000), (3, 48_000)] {
        // Every connection dropped some kilobytes into the transfer; the stations
        // come back during the drop and are refused, then the network returns.
        // Counted from before this round's drop: two stations make two drops and
        // refusals a round, so totals could be reached before this drop struck.
        let before = proxy.counters();
        proxy.arm(after_bytes, Fault::Drop);
        wait_for("a drop and a refused comeback", SETTLE, || {
            let c = proxy.counters();
            (c.dropped > before.dropped && c.refused > before.refused).then_some(())
        });
        let held: u64 = stations
            .iter()
            .map(|s| center_head(&day.center, &s.id))
            .sum();
        assert!(held < heads, "round {round}: the drop struck mid-transfer");
        proxy.set(Fault::Pass);
    }
    for sync in &mut syncs {
        expect_synced(sync);
    }
    let c = proxy.counters();
    assert!(c.dropped >= 3 && c.refused >= 3, "{c:?}");
    let refs: Vec<&Station> = stations.iter().collect();
    day.assert_exact(&refs);
}

#[test]
fn a_black_holed_connection_is_given_up_and_the_backlog_arrives_once_the_network_returns() {
    let day = Day::new(34);
    let proxy = Proxy::start(day.center.address());
    let id = day.busiest()[0].clone();
    let station = day.station(&id, &proxy.address());
    let head = day.backlog(&station, 10);
    let mut sync = station.spawn(&["sync", "--timeout-s", "180"], &day.logs());
    // The network swallows everything from mid-transfer on. The station must
    // notice the live connection is dead and try again (into the black hole too).
    proxy.arm(20_000, Fault::BlackHole);
    wait_for(
        "a dead connection given up and a new attempt",
        SETTLE,
        || {
            let c = proxy.counters();
            (c.black_holed >= 2 && c.swallowed_bytes > 0).then_some(())
        },
    );
    let stuck_at = center_head(&day.center, &id);
    assert!(stuck_at < head, "the black hole struck mid-transfer");
    proxy.set(Fault::Pass);
    expect_synced(&mut sync);
    day.assert_exact(&[&station]);
}

#[test]
fn a_live_session_that_goes_silent_is_given_up_and_what_was_recorded_meanwhile_arrives() {
    let day = Day::new(38);
    let proxy = Proxy::start(day.center.address());
    let id = day.busiest()[1].clone();
    let station = day.station(&id, &proxy.address());
    let mut run = station.spawn(&["run", "--json"], &day.logs());
    let parts = ballot_parts(&day.drawn, &id, 2);
    let morning = parts[0].lines().count() as u64;
    issue_all(&station, &day.drawn);
    import_part(&station, &parts[0], day.path(), "morning");
    wait_for("the morning acknowledged", SETTLE, || {
        station.caught_up(morning).then_some(())
    });
    // The session is up and idle when the network starts swallowing everything
    // without a word; then more is recorded. The agent must notice the session is
    // dead, give it up and try again (into the black hole too).
    proxy.set(Fault::BlackHole);
    import_part(&station, &parts[1], day.path(), "afternoon");
    close_all(&station, &day.drawn);
    wait_for(
        "the dead session given up and a new attempt",
        SETTLE,
        || {
            let c = proxy.counters();
            (c.black_holed >= 2 && c.swallowed_bytes > 0).then_some(())
        },
    );
    assert_eq!(
        center_ballots(&day.center),
        morning,
        "nothing passed the black hole"
    );
    proxy.set(Fault::Pass);
    wait_for("the afternoon acknowledged", SETTLE, || {
        station.caught_up(ballots_of(&day.drawn, &id)).then_some(())
    });
    stop_run(&mut run, 2);
    day.assert_exact(&[&station]);
}

#[test]
fn a_slow_network_delays_every_chunk_and_changes_nothing() {
    let day = Day::new(35);
    let proxy = Proxy::start(day.center.address());
    proxy.set(Fault::Delay { per_chunk_ms: 60 });
    let stations: Vec<Station> = day.busiest()[..2]
        .iter()
        .map(|id| day.station(id, &proxy.address()))
        .collect();
    for s in &stations {
        day.backlog(s, 6);
    }
    let mut syncs: Vec<Spawned> = stations
        .iter()
        .map(|s| s.spawn(&["sync", "--timeout-s", "120"], &day.logs()))
        .collect();
    for sync in &mut syncs {
        expect_synced(sync);
    }
    let c = proxy.counters();
    assert!(
        c.delayed_chunks > 0 && c.bytes_up > 0 && c.bytes_down > 0,
        "{c:?}"
    );
    let refs: Vec<&Station> = stations.iter().collect();
    day.assert_exact(&refs);
}

#[test]
fn connections_cut_in_the_middle_of_a_batch_are_resent_whole_and_counted_once() {
    let day = Day::new(36);
    let proxy = Proxy::start(day.center.address());
    let id = day.busiest()[0].clone();
    let station = day.station(&id, &proxy.address());
    // Every ballot in one import, sealed into one large first batch; its size from
    // the file `station export` writes (the batch and little else).
    issue_all(&station, &day.drawn);
    import_part(
        &station,
        &ballot_parts(&day.drawn, &id, 1)[0],
        day.path(),
        "all",
    );
    let export = day.path().join("size.export");
    station.ok(&["export", "--out", &export.display().to_string()]);
    let size = std::fs::metadata(&export).expect("export file").len();
    assert_eq!(head_of(&station), 1, "one batch");
    close_all(&station, &day.drawn);
    // Cut well past the TLS handshake and Hello, inside the batch.
    assert!(size / 4 > 8 * 1024, "a large batch: {size} bytes");
    let cuts = [size / 4, size / 2, 3 * size / 4];
    for k in cuts {
        proxy.cut_next(Direction::Up, k);
    }
    ok(station.command().args(["sync", "--timeout-s", "60"]));
    let c = proxy.counters();
    assert_eq!(c.cut, cuts.len() as u64, "{c:?}");
    assert_eq!(proxy.cuts_waiting(), 0);
    assert!(c.forwarded > cuts.len() as u64, "{c:?}");
    day.assert_exact(&[&station]);
}

#[test]
fn every_station_running_while_the_center_is_killed_twice_ends_exact() {
    let mut day = Day::new(37);
    let address = day.center.address().to_string();
    let ids: Vec<String> = day.def.stations.iter().map(|s| s.id.clone()).collect();
    let stations: Vec<Station> = ids.iter().map(|id| day.station(id, &address)).collect();
    let mut runs: Vec<Spawned> = stations
        .iter()
        .map(|s| s.spawn(&["run", "--json"], &day.logs()))
        .collect();
    let parts: Vec<Vec<String>> = ids
        .iter()
        .map(|id| ballot_parts(&day.drawn, id, 2))
        .collect();
    let total: u64 = ids.iter().map(|id| ballots_of(&day.drawn, id)).sum();

    // First half of the day, station after station; the center is killed as soon
    // as ballots reach it, and recording goes on through the outage.
    let first_kill = std::thread::scope(|scope| {
        let (dir, drawn) = (day.0.root.path(), &day.0.drawn);
        let recording = scope.spawn(|| {
            for (s, p) in stations.iter().zip(&parts) {
                issue_all(s, drawn);
                import_part(s, &p[0], dir, "first");
            }
        });
        wait_for("ballots at the center", SETTLE, || {
            (center_ballots(&day.center) > 0).then_some(())
        });
        day.0.center.kill();
        recording.join().expect("first half recorded");
        center_ballots(&day.center)
    });
    assert!(first_kill < total);

    // Back up; every station reconnects; the second half and the closes are
    // recorded, and the center is killed again as soon as more arrive.
    let restarted_ms = now_unix_ms();
    day.0.center.serve();
    let second_kill = std::thread::scope(|scope| {
        wait_for("every station back in touch", SETTLE, || {
            center_stations(&day.center)
                .iter()
                .all(|s| s.last_seen_unix_ms >= restarted_ms)
                .then_some(())
        });
        let (dir, drawn) = (day.0.root.path(), &day.0.drawn);
        let recording = scope.spawn(|| {
            for (s, p) in stations.iter().zip(&parts) {
                import_part(s, &p[1], dir, "second");
                close_all(s, drawn);
            }
        });
        wait_for("more ballots at the center", SETTLE, || {
            (center_ballots(&day.center) > first_kill).then_some(())
        });
        day.0.center.kill();
        recording.join().expect("second half recorded");
        center_ballots(&day.center)
    });
    assert!(first_kill < second_kill && second_kill <= total);

    // Back up for good: everything arrives with no operator action.
    day.0.center.serve();
    let want = truth(&day.drawn);
    day.wait_caught_up(&stations, &want);
    for run in &mut runs {
        stop_run(run, 3); // reconnected after each restart
    }
    let refs: Vec<&Station> = stations.iter().collect();
    let decided = day.assert_exact(&refs);
    assert_eq!(decided, day.def.contests.len(), "every contest is decided");
}

/// G7: a station's link dies silently twice (its side vanishes, the center's stays
/// open and hears nothing, not even a FIN). Each time the station dials again and
/// its newest stream replaces the dead one, so it is never locked out; the center's
/// keepalive finds and closes the dead connections by itself; every ballot counts
/// once.
#[test]
fn a_link_that_dies_silently_twice_never_locks_the_station_out() {
    let day = Day::new(38);
    let id = day.busiest()[0].clone();
    let proxy = Proxy::start(day.center.address());
    let station = day.station(&id, &proxy.address());
    let mut run = station.spawn(&["run", "--json"], &day.logs());
    issue_all(&station, &day.drawn);
    let parts = ballot_parts(&day.drawn, &id, 3);
    for (i, part) in parts.iter().enumerate() {
        import_part(&station, part, day.path(), &format!("part{i}"));
        if i == parts.len() - 1 {
            close_all(&station, &day.drawn);
        }
        let want_head = |s: &Station| head_of(s);
        wait_for("the part to be acknowledged", SETTLE, || {
            let status = station.status();
            let head = want_head(&station);
            (status["events"]["pending"] == 0 && head > 0 && center_head(&day.center, &id) == head)
                .then_some(())
        });
        if i < 2 {
            proxy.silent_drop();
        }
    }
    let c = proxy.counters();
    assert!(c.silenced >= 2, "{c:?}");
    stop_run(&mut run, 3);
    day.assert_exact(&[&station]);
    // The center found the dead links by itself (HTTP/2 keepalive).
    wait_for(
        "the center to close the silent connections",
        Duration::from_secs(60),
        || (proxy.counters().silent_closed_by_center >= 2).then_some(()),
    );
}

/// G7, SPEC §4: a center limited to 320 descriptors, and idle and half-open TCP
/// connections beyond that (no certificate; no TLS, or half a ClientHello) while
/// honest stations sync. The caps, sized from the descriptor limit, close the
/// extra ones at once, the rest time out in their handshake, the descriptors are
/// never used up, and every honest station gets in within its normal retry time
/// and counts exactly.
#[test]
fn idle_and_half_open_connections_beyond_the_caps_do_not_keep_honest_stations_out() {
    use std::io::Write as _;
    // The 400 sockets are this test process's descriptors too, beside the fault
    // proxies of the tests running next to it: leave them room.
    let _ = rlimit::increase_nofile_limit(1 << 16);
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = pollsync_tests::small_election(root.path(), 39);
    let drawn = pollsync_sim::ballots::draw(&def, 39, &pollsync_sim::ballots::USUAL);
    let mut center = Center::init(root.path(), &file);
    center.serve_with(Some(320), &[]);
    let addr = center.address().to_string();
    // The attack: idle sockets, and sockets that sent the start of a TLS record and
    // stopped, more than the center has descriptors, held open for the whole test.
    let mut held = Vec::new();
    for i in 0..400 {
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
            continue;
        };
        if i % 3 == 0 {
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02]);
        }
        held.push(s);
    }
    let ids: Vec<String> = def.stations.iter().take(4).map(|s| s.id.clone()).collect();
    let stations: Vec<Station> = ids
        .iter()
        .map(|id| Station::init(root.path(), &center, id, &addr))
        .collect();
    for s in &stations {
        pollsync_tests::record_day(s, &drawn, root.path());
    }
    let logs = root.path().join("logs");
    let mut syncs: Vec<Spawned> = stations
        .iter()
        .map(|s| s.spawn(&["sync", "--timeout-s", "60"], &logs))
        .collect();
    for sync in &mut syncs {
        let status = sync.wait(Duration::from_secs(90));
        assert!(status.success(), "{}: {}", sync.what, sync.stderr());
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let tallies = center_tallies(&center);
    let want = truth(&drawn_for(&drawn, &refs));
    assert_eq!(tallies, want, "every honest station counted exactly");
    assert_no_alerts(&center);
    drop(held);
}
