//! Several `center serve` replicas on one PostgreSQL (SPEC §11, issue 16): the
//! database, not one process's memory, makes each batch count once. Every test
//! starts its own PostgreSQL (`pollsync_tests::pg`), serves the small election
//! from two replicas over the real binaries and ends with the center holding
//! exactly the ground truth drawn by `pollsync-sim`: each batch once, no alert for
//! honest stations, a clean `center audit`, a log whose newest checkpoint covers
//! every leaf, and evidence that `pollsync-verify` accepts.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use pollsync_center::store::{Records as _, Store};
use pollsync_sim::ballots::{self, StationContest, USUAL};
use pollsync_tests::pg::PgServer;
use pollsync_tests::proxy::{Fault, Proxy};
use pollsync_tests::{
    Center, Station, assert_no_alerts, ballot_parts, ballots_of, center_heads, center_tallies,
    close_all, drawn_for, import_part, issue_all, ok, small_election, truth, wait_for,
};

/// Bound for what the stations and replicas do by themselves (failing over, taking
/// the log lease, catching up after PostgreSQL restarts).
const SETTLE: Duration = Duration::from_secs(90);

/// A small election on a fresh PostgreSQL, served by replicas `a` and `b`.
struct Replicated {
    root: tempfile::TempDir,
    server: PgServer,
    drawn: Vec<StationContest>,
    ids: Vec<String>,
    a: Center,
    b: Center,
}

impl Replicated {
    /// `stations` stations of the election drawn by `seed`, busiest first.
    fn start(seed: u64, stations: usize) -> Replicated {
        let root = tempfile::tempdir().expect("tempdir");
        let server = PgServer::start();
        let url = server.create_database("replicas");
        let (file, def) = small_election(root.path(), seed);
        let drawn = ballots::draw(&def, seed, &USUAL);
        let mut ids: Vec<String> = def.stations.iter().map(|s| s.id.clone()).collect();
        ids.sort_by_key(|id| std::cmp::Reverse(ballots_of(&drawn, id)));
        ids.truncate(stations);
        let mut a = Center::init_on(root.path(), &file, &url);
        a.serve();
        let mut b = a.replica();
        b.serve();
        Replicated {
            root,
            server,
            drawn,
            ids,
            a,
            b,
        }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn ballots(&self, id: &str) -> u64 {
        ballots_of(&self.drawn, id)
    }

    /// What the store holds: the log's size and its newest checkpoint's size.
    fn log(&self) -> (u64, Option<u64>) {
        let store = Store::open_at(&self.a.location()).expect("store opens");
        let size = store.log_size().expect("log size");
        let checkpoint = store
            .latest_checkpoint()
            .expect("checkpoint")
            .map(|(s, _)| s);
        (size, checkpoint)
    }

    /// The end of every test: exact counts for `ids`, each batch once, no alert,
    /// a clean audit, a checkpoint over the whole log, evidence that verifies.
    fn assert_exact(&self, ids: &[&str]) {
        let center = &self.a;
        assert_eq!(
            center_tallies(center),
            truth(&drawn_for(&self.drawn, ids)),
            "the center holds exactly what the stations recorded"
        );
        let heads = center_heads(center);
        let stored = Store::open_at(&center.location())
            .expect("store opens")
            .batch_counts()
            .expect("batch counts");
        for id in ids {
            let head = heads.get(*id).copied().unwrap_or(0);
            assert!(head > 0, "{id} has batches");
            assert_eq!(
                stored.get(*id).copied(),
                Some((head, self.ballots(id))),
                "{id}: each batch and ballot stored once"
            );
        }
        assert_no_alerts(center);
        // Whichever replica holds the log lease signs the whole log in time.
        wait_for("a checkpoint over every leaf", SETTLE, || {
            let (size, checkpoint) = self.log();
            (checkpoint == Some(size)).then_some(())
        });
        let audit = center.json(&["audit", "--json"]);
        assert_eq!(audit["ok"], true, "{audit}");
        let evidence = self.path().join("evidence");
        ok(center
            .command()
            .args(["export-evidence", &evidence.display().to_string()]));
        ok(std::process::Command::new(pollsync_tests::bin("pollsync-verify")).arg(&evidence));
    }
}

/// An open `/api/events` stream of a replica, read as it arrives.
struct Events {
    tcp: TcpStream,
    seen: String,
}

impl Events {
    fn open(http: &str) -> Events {
        let mut tcp = TcpStream::connect(http).expect("connect to the HTTP port");
        tcp.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        tcp.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes())
            .expect("request");
        let mut events = Events {
            tcp,
            seen: String::new(),
        };
        events.wait_for("text/event-stream");
        events
    }

    /// Reads until `needle` has arrived (within [`SETTLE`]).
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + SETTLE;
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the event stream never showed {needle:?}: {}",
                self.seen
            );
            match self.tcp.read(&mut buf) {
                Ok(0) => panic!("the event stream ended: {}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the event stream: {e}"),
            }
        }
    }
}

/// Stations stream to both replicas at once; replica `a` (which signed the log's
/// first checkpoint, so holds the lease) is SIGKILLed while batches are in flight
/// through it, and its stations move to `b`; then PostgreSQL itself crashes and
/// restarts under `b` while the stations still stream. Every replica's event stream
/// shows the other's decisions while both live; `b` takes the log over; the counts
/// are exact.
#[test]
fn a_replica_killed_mid_sync_and_postgresql_restarted_end_with_exact_counts() {
    let mut r = Replicated::start(81, 4);
    // Half the stations prefer `a`, half `b`; each can move to the other. `a` is
    // reached through a slow proxy, so a backlog is in flight when it dies.
    let to_a = Proxy::start(r.a.address());
    let to_b = Proxy::start(r.b.address());
    let stations: Vec<Station> = r
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let order = if i % 2 == 0 {
                [to_a.address(), to_b.address()]
            } else {
                [to_b.address(), to_a.address()]
            };
            Station::init_with_centers(r.path(), &r.a, id, &[&order[0], &order[1]])
        })
        .collect();
    let logs = r.path().join("logs");
    let mut events_on_b = Events::open(r.b.http.as_deref().expect("b serves HTTP"));
    let parts: Vec<Vec<String>> = r
        .ids
        .iter()
        .map(|id| ballot_parts(&r.drawn, id, 4))
        .collect();
    let mut runs: Vec<_> = stations
        .iter()
        .map(|s| s.spawn(&["run", "--json"], &logs))
        .collect();
    for (station, parts) in stations.iter().zip(&parts) {
        issue_all(station, &r.drawn);
        import_part(station, &parts[0], r.path(), "part0");
    }
    wait_for(
        "every station's first batches at the center",
        SETTLE,
        || {
            let heads = center_heads(&r.a);
            r.ids
                .iter()
                .all(|id| heads.get(id).copied().unwrap_or(0) > 0)
                .then_some(())
        },
    );
    // `b`'s event stream shows what `a` decided for the station that prefers `a`.
    events_on_b.wait_for(&format!("\"station\":\"{}\"", r.ids[0]));
    assert!(to_a.counters().forwarded > 0 && to_b.counters().forwarded > 0);

    // A backlog through the slow link to `a`; `a` dies with it in flight.
    to_a.set(Fault::Delay { per_chunk_ms: 200 });
    for (i, (station, parts)) in stations.iter().zip(&parts).enumerate() {
        import_part(station, &parts[1], r.path(), &format!("part1-{i}"));
        station.ok(&["seal"]);
    }
    let heads = center_heads(&r.a);
    let behind: Vec<&String> = stations
        .iter()
        .step_by(2)
        .filter(|s| {
            let own = s.status()["head"]["sequence"].as_u64().unwrap_or(0);
            heads.get(&s.id).copied().unwrap_or(0) < own
        })
        .map(|s| &s.id)
        .collect();
    r.a.kill();
    to_a.set(Fault::Drop);
    assert!(
        !behind.is_empty(),
        "a station of `a` had batches not yet acknowledged when `a` died"
    );

    // PostgreSQL crashes while the stations move to `b` and stream the rest.
    for (i, (station, parts)) in stations.iter().zip(&parts).enumerate() {
        import_part(station, &parts[2], r.path(), &format!("part2-{i}"));
        station.ok(&["seal"]);
    }
    r.server.restart();
    for (i, (station, parts)) in stations.iter().zip(&parts).enumerate() {
        import_part(station, &parts[3], r.path(), &format!("part3-{i}"));
        close_all(station, &r.drawn);
        station.ok(&["seal"]);
    }
    for (station, id) in stations.iter().zip(&r.ids) {
        wait_for(&format!("{id} caught up through b"), SETTLE, || {
            station.caught_up(r.ballots(id)).then_some(())
        });
    }
    for run in &mut runs {
        pollsync_tests::stop_agent(run, Duration::from_secs(20));
    }
    for station in &stations {
        let status = station.status();
        assert_eq!(status["center"], to_b.address(), "{status}");
    }
    let ids: Vec<&str> = r.ids.iter().map(String::as_str).collect();
    r.assert_exact(&ids);
    r.b.kill();
}

/// Two writers race for the same batches: a station syncs to replica `a` while
/// the same batches, exported to a USB file, are imported into the store by
/// `center import` (a writer of its own), and another station syncs to `b`. Each
/// batch is accepted once and every other copy is answered as a duplicate.
#[test]
fn two_writers_racing_for_the_same_batches_count_each_once() {
    let r = Replicated::start(82, 2);
    let first = Station::init(r.path(), &r.a, &r.ids[0], r.a.address());
    let second = Station::init(r.path(), &r.a, &r.ids[1], r.b.address());
    for station in [&first, &second] {
        issue_all(station, &r.drawn);
        for (i, part) in ballot_parts(&r.drawn, &station.id, 8).iter().enumerate() {
            import_part(station, part, r.path(), &format!("{}-{i}", station.id));
            station.ok(&["seal"]);
        }
        close_all(station, &r.drawn);
        station.ok(&["seal"]);
    }
    let export = r.path().join("first.export");
    first.ok(&["export", "--out", &export.display().to_string()]);
    let head = first.status()["head"]["sequence"].as_u64().expect("head");
    assert!(head >= 8, "several batches to race for: {head}");

    let logs = r.path().join("logs");
    let mut import = pollsync_tests::Spawned::start(
        {
            let mut cmd = r.a.command();
            cmd.args(["import", "--json", &export.display().to_string()]);
            cmd
        },
        "center import",
        &logs,
    );
    let mut sync_first = first.spawn(&["sync", "--json", "--timeout-s", "60"], &logs);
    let mut sync_second = second.spawn(&["sync", "--json", "--timeout-s", "60"], &logs);
    for spawned in [&mut import, &mut sync_first, &mut sync_second] {
        let status = spawned.wait(SETTLE);
        assert!(
            status.success(),
            "{} failed: {}",
            spawned.what,
            spawned.stderr()
        );
    }
    let report: serde_json::Value =
        serde_json::from_str(&import.stdout()).expect("import report JSON");
    let synced: serde_json::Value =
        serde_json::from_str(&sync_first.stdout()).expect("sync summary JSON");
    let imported = report["files"][0]["accepted"].as_u64().expect("accepted");
    let duplicates = report["files"][0]["duplicate"].as_u64().expect("duplicate");
    assert_eq!(imported + duplicates, head, "{report}");
    let sent = synced["batches_sent"].as_u64().expect("batches sent");
    assert!(sent <= head, "{synced}");
    // Whatever the import took first, the station's sync learned from the center's
    // head (or was answered duplicate): together they account for every batch once.
    let sync_duplicates = synced["duplicates"].as_u64().expect("duplicates");
    assert!(
        imported + (sent - sync_duplicates) == head,
        "import {report} and sync {synced} account for {head} batches"
    );
    r.assert_exact(&[&r.ids[0], &r.ids[1]]);
}
