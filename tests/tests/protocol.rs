//! Protocol-level property test (issue 6): random schedules of sends, duplicated,
//! reordered and dropped messages, disconnects, station and center restarts, against
//! the real state machines at both ends, with no sockets.
//!
//! - Stations: real `pollsync_station::Store`s in temporary folders, provisioned from
//!   real enrollment bundles (`center init` + `center enroll` on a small generated
//!   election), recording ballots drawn by `pollsync_sim::ballots` through the real
//!   import door, sealing real signed batches. Every decision of what to send, what
//!   an acknowledgement means, when to send a heartbeat and when a silent link is
//!   dead is the sans-IO `sync::core::Core`'s; the harness only carries messages and
//!   runs a virtual clock (milliseconds it advances and hands to the core), waking
//!   each core at the deadline it asks for, as the tokio driver does.
//! - Center: the real ingest (`pollsync_center::ingest::start_with`) on a real store;
//!   a center restart shuts the ingest down, joins its writer and starts a fresh one
//!   on the same folder (what the center's network buffers held is lost).
//! - Link: per station, the batches on their way to the center, the acknowledgements
//!   on their way back, and what a dead connection still carries (orphans the center
//!   may read late, answering nobody). Steps duplicate, swap and drop messages in
//!   either direction. Batches also travel by hand (`station export`, `center
//!   import` beside the running ingest), and ballots entered by mistake are
//!   cancelled, often in a later batch.
//!
//! After the schedule, a healing phase records and closes everything left and lets
//! every station finish on a perfect link (a call waiting for answers to batches
//! the link lost ends when virtual time reaches the core's acknowledgement timeout). Then: the
//! center's per-station tallies are exactly the drawn ground truth, the center holds
//! each station's chain byte for byte, every sealed batch is acknowledged, there is
//! no alert, `center audit` is clean, and no acknowledgement a station received was
//! forgotten by a restarted center (an acknowledgement means durable).
//!
//! Devices change too (SPEC §12): a station's data folder is backed up and later
//! restored onto a new device, which stops at Hello (the center is ahead) and runs
//! `station recover` (in process: the center's `fetch`, the station's checks and
//! `Store::recover`); a station is replaced (`center enroll --replace` while the
//! ingest runs), the new device recovers the station's history and continues the
//! chain, and the old device's key keeps trying and is refused (`STALE_KEY`). The
//! only alerts allowed at the end are those replacements (`REPLACED`, `STALE_KEY`).
//!
//! `PROPTEST_CASES` raises the number of schedules (default [`DEFAULT_CASES`]).

use pollsync_center::store::Records as _;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Instant;

use pollsync_center::commands::{enroll, init};
use pollsync_center::ingest::{self, IngestHandle};
use pollsync_election::{BallotChoices, BallotId, StationEvent, TallySheet};
use pollsync_proto::ChainHead;
use pollsync_proto::pb;
use pollsync_sim::ballots::{self, StationContest, Turnout};
use pollsync_station::Store;
use pollsync_station::commands::{self, SheetSource};
use pollsync_station::store::{Provisioned, new_ballot_id};
use pollsync_station::sync::core::{Core, DeadLink, Goal, Timeout};
use pollsync_station::sync::recover;
use pollsync_station::sync::sender::{self, AckOutcome, SessionStart, Stop};
use pollsync_tests::copy_dir;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

/// Schedules run by default: keeps the test under about a minute in a debug build
/// on a loaded 2-core machine (every step that writes commits durably).
const DEFAULT_CASES: u32 = 40;
/// Schedules of the coverage check (deterministic seed).
const COVERAGE_CASES: u32 = 24;
/// Longest schedule before healing.
const MAX_STEPS: usize = 200;
/// Stations of the generated election taking part.
const STATIONS: usize = 3;
/// Seed of the generated election and of the drawn ballots.
const ELECTION_SEED: u64 = 11;
const BALLOT_SEED: u64 = 11;
/// A few dozen ballots per station and contest, with more void ballots and
/// write-ins than usual, so that every kind of count is exercised.
const TURNOUT: Turnout = Turnout {
    issued_share: (0.02, 0.04),
    not_returned_share: 0.05,
    void_share: 0.08,
    write_in_share: 0.08,
    mobile_share: 0.3,
};
/// Rounds of the healing phase before it is declared stuck.
const MAX_HEAL_ROUNDS: usize = 1_000;

// ---------------------------------------------------------------------------
// The fixture: built once, copied for every schedule
// ---------------------------------------------------------------------------

/// An initialised, enrolled center and provisioned stations (nothing recorded yet),
/// with each station's drawn ballots.
struct Template {
    root: tempfile::TempDir,
    /// Station ids, in the election's order.
    stations: Vec<String>,
    /// Per station, its drawn ballots per contest it serves.
    drawn: Vec<Vec<StationContest>>,
}

impl Template {
    fn build() -> Template {
        let root = tempfile::tempdir().expect("tempdir");
        let (file, def) = pollsync_tests::small_election(root.path(), ELECTION_SEED);
        let center = root.path().join("center");
        let bundles = root.path().join("bundles");
        init::init(&center, &file, &[], None).expect("center init");
        enroll::enroll(
            &center,
            &enroll::EnrollRequest {
                all: true,
                out_dir: bundles.clone(),
                ..Default::default()
            },
        )
        .expect("center enroll");
        let all = ballots::draw(&def, BALLOT_SEED, &TURNOUT);
        let stations: Vec<String> = def
            .stations
            .iter()
            .take(STATIONS)
            .map(|s| s.id.clone())
            .collect();
        let mut drawn = Vec::new();
        for id in &stations {
            Store::create(
                &station_dir(root.path(), id),
                &enroll::bundle_path(&bundles, id),
                &[],
            )
            .expect("station init");
            let mine: Vec<StationContest> =
                all.iter().filter(|sc| &sc.station == id).cloned().collect();
            assert!(!mine.is_empty(), "station {id} collects no contest");
            drawn.push(mine);
        }
        Template {
            root,
            stations,
            drawn,
        }
    }

    /// The drawn truth: station → contest → tally (zeros left out).
    fn truth(&self) -> BTreeMap<String, BTreeMap<String, TallySheet>> {
        self.stations
            .iter()
            .zip(&self.drawn)
            .map(|(id, contests)| {
                let sheets = contests
                    .iter()
                    .map(|sc| (sc.contest.clone(), sc.truth.without_zeros()))
                    .collect();
                (id.clone(), sheets)
            })
            .collect()
    }
}

fn station_dir(root: &Path, id: &str) -> PathBuf {
    root.join("stations").join(id)
}

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fault {
    Duplicate,
    Drop,
    Swap,
}

#[derive(Debug, Clone)]
enum Step {
    /// The station records up to `ballots` more of its drawn ballots of a contest
    /// (and as many issued), then seals; `seals` times (0: once, left unsealed).
    Record {
        station: usize,
        contest: usize,
        ballots: usize,
        seals: usize,
    },
    /// A ballot entered by mistake; it is cancelled at the station's next recording
    /// or close.
    Mistake { station: usize, contest: usize },
    /// The station seals what it recorded.
    Seal { station: usize },
    /// The station records the rest of a contest and closes it from its records.
    Close { station: usize, contest: usize },
    /// The station sends what its sender allows, at most `max`; out of a session,
    /// it first says Hello (the driver reconnects by itself).
    Send { station: usize, max: usize },
    /// The center reads `rounds` batches from each station in `stations` (a bit
    /// mask), submits them all, then answers each.
    CenterReads { stations: u8, rounds: usize },
    /// The center reads batches left on a dead connection; the answers go nowhere.
    CenterReadsOrphans { station: usize, max: usize },
    /// The station reads up to `max` acknowledgements.
    StationReads { station: usize, max: usize },
    /// The link duplicates, drops or swaps a message in transit: in the `queue`-th
    /// non-empty queue (batches or acknowledgements of some station, modulo), at
    /// position `at` (modulo).
    Fault {
        queue: usize,
        fault: Fault,
        at: usize,
    },
    /// The connection drops; the center may or may not still read what it carried.
    Disconnect {
        station: usize,
        center_keeps_unread: bool,
    },
    /// The station's process restarts: a new sender from what its store says.
    StationRestart { station: usize },
    /// The center restarts: ingest shut down, writer joined, a fresh one started.
    CenterRestart,
    /// The station's unacknowledged batches are carried by hand: `station export`,
    /// then `center import` while the center serves.
    Carried { station: usize },
    /// A copy of the station's data folder is put aside.
    Backup { station: usize },
    /// The station's device is lost once it has synced everything; its last backup
    /// is restored onto a new device, which recovers from the center.
    Restore { station: usize },
    /// The station's device is replaced once it has synced everything: new key, new
    /// device continuing the center's chain.
    Replace { station: usize },
    /// A replaced device of the station tries again: Hello and a batch with its key.
    OldDeviceTries { station: usize },
    /// Virtual time passes: every core is woken at the deadlines it asked for on the
    /// way (heartbeats; a link silent too long with batches in flight is dead).
    Wait { ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    let station = 0..STATIONS;
    let contest = 0usize..4;
    prop_oneof![
        8 => (station.clone(), contest.clone(), 1usize..8, 0usize..4).prop_map(
            |(station, contest, ballots, seals)| Step::Record { station, contest, ballots, seals }
        ),
        1 => (station.clone(), contest.clone())
            .prop_map(|(station, contest)| Step::Mistake { station, contest }),
        3 => station.clone().prop_map(|station| Step::Seal { station }),
        1 => (station.clone(), contest)
            .prop_map(|(station, contest)| Step::Close { station, contest }),
        10 => (station.clone(), 1usize..8).prop_map(|(station, max)| Step::Send { station, max }),
        10 => (1u8..(1 << STATIONS), 1usize..4)
            .prop_map(|(stations, rounds)| Step::CenterReads { stations, rounds }),
        8 => (station.clone(), 1usize..4)
            .prop_map(|(station, max)| Step::CenterReadsOrphans { station, max }),
        10 => (station.clone(), 1usize..4)
            .prop_map(|(station, max)| Step::StationReads { station, max }),
        4 => (
            0..2 * STATIONS,
            prop_oneof![Just(Fault::Duplicate), Just(Fault::Drop), Just(Fault::Swap)],
            0usize..64,
        )
            .prop_map(|(queue, fault, at)| Step::Fault { queue, fault, at }),
        2 => (station.clone(), any::<bool>()).prop_map(|(station, center_keeps_unread)| {
            Step::Disconnect { station, center_keeps_unread }
        }),
        1 => station.clone().prop_map(|station| Step::StationRestart { station }),
        1 => Just(Step::CenterRestart),
        1 => station.clone().prop_map(|station| Step::Carried { station }),
        3 => station.clone().prop_map(|station| Step::Backup { station }),
        1 => station.clone().prop_map(|station| Step::Restore { station }),
        1 => station.clone().prop_map(|station| Step::Replace { station }),
        1 => station.prop_map(|station| Step::OldDeviceTries { station }),
        3 => prop_oneof![0u64..2_000, 0u64..40_000].prop_map(|ms| Step::Wait { ms }),
    ]
}

fn schedule() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 0..MAX_STEPS)
}

// ---------------------------------------------------------------------------
// The world: stations, link, center
// ---------------------------------------------------------------------------

/// How often the interesting paths were taken (to check the schedules reach them).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    hellos: u64,
    batches_sent: u64,
    faults: u64,
    duplicates_acknowledged: u64,
    gaps_answered: u64,
    violations: u64,
    orphans_applied: u64,
    center_restarts_after_acks: u64,
    station_restarts: u64,
    cross_batch_cancels: u64,
    closes: u64,
    carried_accepted: u64,
    carried_duplicates: u64,
    ack_timeouts: u64,
    heartbeats: u64,
    restored: u64,
    pending_dropped_at_restore: u64,
    replaced: u64,
    stale_refused: u64,
}

impl Seen {
    fn add(&mut self, o: &Seen) {
        self.hellos += o.hellos;
        self.batches_sent += o.batches_sent;
        self.faults += o.faults;
        self.duplicates_acknowledged += o.duplicates_acknowledged;
        self.gaps_answered += o.gaps_answered;
        self.violations += o.violations;
        self.orphans_applied += o.orphans_applied;
        self.center_restarts_after_acks += o.center_restarts_after_acks;
        self.station_restarts += o.station_restarts;
        self.cross_batch_cancels += o.cross_batch_cancels;
        self.closes += o.closes;
        self.carried_accepted += o.carried_accepted;
        self.carried_duplicates += o.carried_duplicates;
        self.ack_timeouts += o.ack_timeouts;
        self.heartbeats += o.heartbeats;
        self.restored += o.restored;
        self.pending_dropped_at_restore += o.pending_dropped_at_restore;
        self.replaced += o.replaced;
        self.stale_refused += o.stale_refused;
    }
}

/// One station's connection as messages in transit.
#[derive(Default)]
struct Link {
    /// Batches sent on the live connection, not yet read by the center.
    up: VecDeque<pb::SignedBatch>,
    /// Acknowledgements on the live connection, not yet read by the station.
    down: VecDeque<pb::Ack>,
    /// Batches of dead connections the center has not read yet.
    orphans: VecDeque<pb::SignedBatch>,
}

impl Link {
    fn is_quiet(&self) -> bool {
        self.up.is_empty() && self.down.is_empty()
    }
}

/// How far a station has got through one contest's drawn ballots.
#[derive(Default)]
struct ContestProgress {
    recorded: usize,
    issued: u64,
    closed: bool,
}

/// A ballot entered by mistake and not yet cancelled.
struct Stray {
    id: BallotId,
    /// A seal happened since it was recorded: its cancel lands in a later batch.
    sealed: bool,
}

/// One polling station: its store, its sender, its side of the link.
struct StationSide {
    id: String,
    dir: PathBuf,
    store: Store,
    prov: Provisioned,
    /// The sync core (the sender inside, with time as an input).
    core: Core,
    link: Link,
    progress: Vec<ContestProgress>,
    stray: Option<Stray>,
    /// The last copy of its data folder put aside (of the current device).
    backup: Option<PathBuf>,
    /// Devices replaced: the key each had and a batch it signed.
    replaced: Vec<(ingest::Peer, pb::SignedBatch)>,
    /// Devices this station has had (names the next device's folder).
    devices: u32,
}

/// One schedule's world: copies of the template's stores in a folder of its own,
/// the running center ingest, the stations and their links.
struct World<'t> {
    template: &'t Template,
    rt: tokio::runtime::Runtime,
    center_dir: PathBuf,
    center: Option<(IngestHandle, JoinHandle<()>)>,
    stations: Vec<StationSide>,
    files: u64,
    seen: Seen,
    /// The virtual clock every core is given, in ms.
    now_ms: u64,
    tmp: tempfile::TempDir,
}

impl Drop for World<'_> {
    fn drop(&mut self) {
        if let Some((handle, writer)) = self.center.take() {
            handle.shutdown();
            let _ = writer.join();
        }
    }
}

fn start_center(dir: &Path) -> (IngestHandle, JoinHandle<()>) {
    ingest::start_with(dir, 1).expect("the center's ingest starts")
}

impl<'t> World<'t> {
    fn new(template: &'t Template) -> World<'t> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let center_dir = tmp.path().join("center");
        copy_dir(&template.root.path().join("center"), &center_dir);
        let mut stations = Vec::new();
        for (id, drawn) in template.stations.iter().zip(&template.drawn) {
            let dir = station_dir(tmp.path(), id);
            copy_dir(&station_dir(template.root.path(), id), &dir);
            let store = Store::open(&dir).expect("station store opens");
            let prov = store.provisioned().expect("provisioned");
            stations.push(StationSide {
                id: id.clone(),
                dir,
                store,
                prov,
                core: Core::new(0, 0, Goal::Run, 0),
                link: Link::default(),
                progress: drawn.iter().map(|_| ContestProgress::default()).collect(),
                stray: None,
                backup: None,
                replaced: Vec::new(),
                devices: 1,
            });
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let center = Some(start_center(&center_dir));
        World {
            template,
            rt,
            center_dir,
            center,
            stations,
            files: 0,
            seen: Seen::default(),
            now_ms: 0,
            tmp,
        }
    }

    fn center(&self) -> &IngestHandle {
        &self.center.as_ref().expect("the center runs").0
    }

    fn run(&mut self, step: &Step) {
        match *step {
            Step::Record {
                station,
                contest,
                ballots,
                seals,
            } => {
                for _ in 0..seals.max(1) {
                    self.record(station, contest, ballots);
                    if seals > 0 {
                        self.seal(station);
                    }
                }
            }
            Step::Mistake { station, contest } => self.mistake(station, contest),
            Step::Seal { station } => self.seal(station),
            Step::Close { station, contest } => self.close(station, contest),
            Step::Send { station, max } => {
                if !self.stations[station].core.sender().connected() {
                    self.hello(station);
                }
                self.send(station, max);
            }
            Step::CenterReads { stations, rounds } => self.center_reads(stations, rounds),
            Step::CenterReadsOrphans { station, max } => self.center_reads_orphans(station, max),
            Step::StationReads { station, max } => self.station_reads(station, max),
            Step::Fault { queue, fault, at } => self.fault(queue, fault, at),
            Step::Disconnect {
                station,
                center_keeps_unread,
            } => self.disconnect(station, center_keeps_unread),
            Step::StationRestart { station } => self.station_restart(station),
            Step::CenterRestart => self.center_restart(),
            Step::Carried { station } => self.carried(station),
            Step::Backup { station } => self.backup(station),
            Step::Restore { station } => self.restore(station),
            Step::Replace { station } => self.replace(station),
            Step::OldDeviceTries { station } => self.old_device_tries(station),
            Step::Wait { ms } => self.wait(ms),
        }
        // What the step made due at once (a heartbeat owed since before a session
        // went idle), as the driver's sleep until a past deadline would.
        for i in 0..self.stations.len() {
            self.wake(i);
        }
        for s in &self.stations {
            if let Some(deadline) = s.core.next_deadline_ms() {
                assert!(
                    deadline > self.now_ms,
                    "{}: a deadline at {deadline} ms, not after now ({} ms)",
                    s.id,
                    self.now_ms
                );
            }
        }
    }

    // --- station: recording -------------------------------------------------

    /// Appends events after the door's checks, as `station` commands do.
    fn append(&mut self, i: usize, events: &[StationEvent]) {
        let s = &mut self.stations[i];
        let station = s.prov.station().expect("station in definition");
        for e in events {
            e.check(&s.prov.definition, station)
                .expect("a drawn event passes the door");
        }
        s.store
            .append(events, &mut |_| {})
            .expect("the station records");
    }

    /// Records up to `n` more drawn ballots of contest `c` (through the import
    /// door) and as many issued ballots.
    fn record_ballots(&mut self, i: usize, c: usize, n: usize) {
        let template = self.template;
        let sc = &template.drawn[i][c];
        let p = &self.stations[i].progress[c];
        let chunk = &sc.ballots[p.recorded..(p.recorded + n).min(sc.ballots.len())];
        if chunk.is_empty() {
            return;
        }
        let issue = (chunk.len() as u64).min(sc.issued - p.issued);
        let lines: String = chunk
            .iter()
            .map(|b| serde_json::to_string(b).expect("ballot as JSON") + "\n")
            .collect();
        self.files += 1;
        let file = self
            .tmp
            .path()
            .join(format!("ballots-{}.jsonl", self.files));
        std::fs::write(&file, lines).expect("write ballots");
        if issue > 0 {
            let contest = sc.contest.clone();
            self.append(
                i,
                &[StationEvent::Issued {
                    contest,
                    count: issue,
                }],
            );
        }
        let s = &mut self.stations[i];
        pollsync_station::import::import(&mut s.store, &s.prov, &file)
            .expect("drawn ballots import");
        s.progress[c].recorded += chunk.len();
        s.progress[c].issued += issue;
    }

    fn cancel_stray(&mut self, i: usize) {
        let Some(stray) = self.stations[i].stray.take() else {
            return;
        };
        self.append(
            i,
            &[StationEvent::Cancel {
                ballot_id: stray.id,
                reason: "entered by mistake".into(),
            }],
        );
        self.seen.cross_batch_cancels += u64::from(stray.sealed);
    }

    fn record(&mut self, i: usize, contest: usize, n: usize) {
        self.cancel_stray(i);
        let c = contest % self.stations[i].progress.len();
        if !self.stations[i].progress[c].closed {
            self.record_ballots(i, c, n);
        }
    }

    fn mistake(&mut self, i: usize, contest: usize) {
        let c = contest % self.stations[i].progress.len();
        if self.stations[i].stray.is_some() || self.stations[i].progress[c].closed {
            return;
        }
        let template = self.template;
        let sc = &template.drawn[i][c];
        let choices = sc.ballots.first().cloned().unwrap_or(BallotChoices {
            contest: sc.contest.clone(),
            for_ids: Vec::new(),
            against: Vec::new(),
            write_in: Vec::new(),
        });
        let contest = self.stations[i]
            .prov
            .definition
            .contest(&sc.contest)
            .expect("drawn contest in definition");
        let id = new_ballot_id().expect("ballot id");
        let ballot = choices.to_ballot(id, contest).expect("drawn ballot");
        self.append(i, &[StationEvent::Ballot(ballot)]);
        self.stations[i].stray = Some(Stray { id, sealed: false });
    }

    fn close(&mut self, i: usize, contest: usize) {
        self.cancel_stray(i);
        let c = contest % self.stations[i].progress.len();
        if self.stations[i].progress[c].closed {
            return;
        }
        let template = self.template;
        let sc = &template.drawn[i][c];
        self.record_ballots(i, c, sc.ballots.len());
        let rest = sc.issued - self.stations[i].progress[c].issued;
        if rest > 0 {
            let contest = sc.contest.clone();
            self.append(
                i,
                &[StationEvent::Issued {
                    contest,
                    count: rest,
                }],
            );
            self.stations[i].progress[c].issued += rest;
        }
        commands::close(&self.stations[i].dir, &sc.contest, SheetSource::FromRecords)
            .expect("the station closes the contest");
        self.stations[i].progress[c].closed = true;
        self.seen.closes += 1;
    }

    fn seal(&mut self, i: usize) {
        let s = &mut self.stations[i];
        let made = s.store.seal(&s.prov).expect("the station seals");
        let head = s.store.head().expect("head").sequence;
        s.core.on_sealed(head);
        if let Some(stray) = &mut s.stray {
            stray.sealed |= !made.is_empty();
        }
    }

    // --- station: sync, as the tokio driver does it --------------------------

    /// Hello, compare heads, start a session (`sync::client`'s `hello`).
    fn hello(&mut self, i: usize) {
        let center = self.center.as_ref().expect("the center runs").0.clone();
        let s = &mut self.stations[i];
        if s.core.sender().stopped().is_some() {
            return;
        }
        let now_ms = self.now_ms;
        s.core.on_connecting(now_ms);
        s.core.on_connected(now_ms);
        let head = s.store.head().expect("head");
        let request = hello_request(s, head);
        let reply = self
            .rt
            .block_on(center.hello(&peer_of(&s.prov), request))
            .unwrap_or_else(|r| panic!("the center refused honest station {}: {r:?}", s.id));
        assert_eq!(
            reply.evidence_sequence, 0,
            "{}: an honest device's chain is the center's",
            s.id
        );
        let center_head = reply.center_head_sequence;
        let local_head = s.store.head().expect("head").sequence;
        let local_hash = if center_head > 0 && center_head <= local_head {
            s.store.hash_at(center_head).expect("hash")
        } else {
            None
        };
        let started = s
            .core
            .on_hello(
                now_ms,
                &SessionStart::of(&reply, local_head, local_hash),
                reply.heartbeat_interval_ms,
            )
            .unwrap_or_else(|t| panic!("honest station {} stopped at hello: {t}", s.id));
        assert_eq!(s.core.poll_hold(), None, "{}: sealing held", s.id);
        assert!(!started.seal_first, "`station run` seals on its own");
        let resume = started.resume;
        assert_eq!(
            resume.center_regressed_from, None,
            "station {}: the center holds {center_head} batch(es) but had acknowledged more: an acknowledgement was not durable",
            s.id
        );
        if let Some(through) = resume.newly_acknowledged_through {
            s.store.mark_acknowledged(through).expect("mark");
        }
        // A new call: nothing of an older one travels on it.
        s.link.up.clear();
        s.link.down.clear();
        s.core.on_opening(now_ms);
        s.core.on_push_open(now_ms);
        self.seen.hellos += 1;
    }

    fn send(&mut self, i: usize, max: usize) {
        let now_ms = self.now_ms;
        let s = &mut self.stations[i];
        for _ in 0..max {
            let Some(sequence) = s.core.poll_send(now_ms) else {
                break;
            };
            let batch = s
                .store
                .batches_from(sequence, 1)
                .expect("read sealed batch")
                .pop()
                .unwrap_or_else(|| panic!("{}: the sender picked unsealed {sequence}", s.id));
            s.link.up.push_back(batch);
            self.seen.batches_sent += 1;
        }
    }

    fn station_reads(&mut self, i: usize, max: usize) {
        let center_heads: Option<u64> =
            self.center().head(&self.stations[i].id).map(|h| h.sequence);
        let now_ms = self.now_ms;
        let s = &mut self.stations[i];
        for _ in 0..max {
            let Some(ack) = s.link.down.pop_front() else {
                break;
            };
            match s.core.on_ack(now_ms, &ack) {
                Ok(AckOutcome::Acknowledged {
                    through,
                    advanced,
                    duplicate,
                }) => {
                    assert!(
                        through <= center_heads.unwrap_or(0),
                        "{}: acknowledged through {through}, the center holds {center_heads:?}",
                        s.id
                    );
                    if advanced {
                        s.store.mark_acknowledged(through).expect("mark");
                    }
                    self.seen.duplicates_acknowledged += u64::from(duplicate);
                }
                // Only a center that lost acknowledged batches answers GAP to the
                // oldest batch in flight; this one must not, but the sender's own
                // rules handle it either way.
                Ok(AckOutcome::Resend { .. } | AckOutcome::Stale) => {}
                Err(Stop::Violation(_)) => {
                    // The link broke the one-answer-per-batch-in-order rule: the
                    // driver ends the call and reconnects later.
                    self.seen.violations += 1;
                    drop_connection(s, true);
                    break;
                }
                Err(Stop::Terminal(t)) => panic!("honest station {} stopped: {t}", s.id),
            }
        }
    }

    fn fault(&mut self, queue: usize, fault: Fault, at: usize) {
        let mut busy: Vec<(usize, bool)> = Vec::new();
        for (i, s) in self.stations.iter().enumerate() {
            if !s.link.up.is_empty() {
                busy.push((i, true));
            }
            if !s.link.down.is_empty() {
                busy.push((i, false));
            }
        }
        if busy.is_empty() {
            return;
        }
        let (i, to_center) = busy[queue % busy.len()];
        let link = &mut self.stations[i].link;
        if to_center {
            disturb(&mut link.up, fault, at);
        } else {
            disturb(&mut link.down, fault, at);
        }
        self.seen.faults += 1;
    }

    fn disconnect(&mut self, i: usize, center_keeps_unread: bool) {
        drop_connection(&mut self.stations[i], center_keeps_unread);
    }

    // --- time -------------------------------------------------------------------

    /// Virtual time passes by `ms`: each core is woken at every deadline it asks for
    /// on the way, earliest first, as the driver's sleep would.
    fn wait(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        while let Some((deadline, i)) = self
            .stations
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.core.next_deadline_ms().map(|d| (d, i)))
            .min()
            .filter(|&(d, _)| d <= until)
        {
            // A deadline already passed (a heartbeat owed since before a session
            // went idle) is due now, as the driver's sleep until it would be.
            self.now_ms = self.now_ms.max(deadline);
            self.wake(i);
        }
        self.now_ms = until;
    }

    /// Time passes until station `i`'s next deadline, if it has one.
    fn wait_for(&mut self, i: usize) {
        if let Some(deadline) = self.stations[i].core.next_deadline_ms() {
            self.wait(deadline - self.now_ms);
        }
    }

    /// Station `i`'s core is woken now: whatever is due, done.
    fn wake(&mut self, i: usize) {
        let now_ms = self.now_ms;
        while let Some(due) = self.stations[i].core.on_timeout(now_ms) {
            match due {
                // The in-process center takes batches only; a heartbeat changes
                // nothing it holds.
                Timeout::Heartbeat { .. } => self.seen.heartbeats += 1,
                Timeout::Dead(DeadLink::AckSilence) => {
                    // The core ended the call; what it carried may still be read.
                    self.seen.ack_timeouts += 1;
                    self.disconnect(i, true);
                }
                other => panic!("{}: unexpected {other:?}", self.stations[i].id),
            }
        }
        if let Some(deadline) = self.stations[i].core.next_deadline_ms() {
            assert!(deadline > now_ms, "woken at {now_ms}, next at {deadline}");
        }
    }

    fn station_restart(&mut self, i: usize) {
        let s = &mut self.stations[i];
        drop_connection(s, true);
        s.store = Store::open(&s.dir).expect("station store reopens");
        s.prov = s.store.provisioned().expect("provisioned");
        let head = s.store.head().expect("head").sequence;
        let acknowledged = s.store.acknowledged_through().expect("acknowledged");
        s.core = Core::new(head, acknowledged, Goal::Run, self.now_ms);
        self.seen.station_restarts += 1;
    }

    /// `station export` (which seals what is pending first), then `center import`
    /// of the file beside the running ingest: a second writer on the same store.
    fn carried(&mut self, i: usize) {
        self.files += 1;
        let file = self.tmp.path().join(format!("export-{}.psync", self.files));
        let s = &mut self.stations[i];
        let (count, _) = commands::export(&s.dir, &file).expect("station export");
        let head = s.store.head().expect("head").sequence;
        if head > s.core.sender().local_head()
            && let Some(stray) = &mut s.stray
        {
            stray.sealed = true;
        }
        s.core.on_sealed(head);
        if count == 0 {
            return;
        }
        let reports = pollsync_center::commands::import::import(&self.center_dir, &[file])
            .expect("center import");
        for r in reports {
            assert!(r.is_clean(), "{}: carried batches rejected: {r:?}", s.id);
            self.seen.carried_accepted += r.accepted;
            self.seen.carried_duplicates += r.duplicate;
        }
    }

    // --- devices: backup, restore, replace ----------------------------------------

    /// The station on a perfect link until the center holds everything it sealed
    /// (what it recorded is sealed first).
    fn settle(&mut self, i: usize) {
        self.seal(i);
        for _ in 0..MAX_HEAL_ROUNDS {
            if !self.stations[i].core.sender().connected() {
                self.hello(i);
            }
            let s = &self.stations[i];
            if s.core.sender().is_idle()
                && s.link.is_quiet()
                && s.core.sender().acknowledged_through() == s.core.sender().local_head()
            {
                return;
            }
            if s.core.sender().in_flight() > 0 && s.link.is_quiet() {
                // Nothing will ever answer: time passes until the core's deadline.
                self.wait_for(i);
                continue;
            }
            self.send(i, usize::MAX);
            self.center_reads(1 << i, usize::MAX);
            self.station_reads(i, usize::MAX);
        }
        panic!("station {i} did not settle");
    }

    fn backup(&mut self, i: usize) {
        self.files += 1;
        let to = self.tmp.path().join(format!("backup-{}", self.files));
        copy_dir(&self.stations[i].dir, &to);
        self.stations[i].backup = Some(to);
    }

    /// This station's batches `from..=to` from the center, checked as `station
    /// recover` checks them.
    fn fetch(
        &self,
        i: usize,
        links_to: ChainHead,
        to: u64,
    ) -> Vec<pollsync_station::store::RecoveredBatch> {
        let s = &self.stations[i];
        let peer = peer_of(&s.prov);
        let mut head = links_to;
        let mut all = Vec::new();
        while head.sequence < to {
            let got = self
                .center()
                .fetch(&peer, head.sequence + 1, to)
                .unwrap_or_else(|r| panic!("{}: fetch refused: {r:?}", s.id));
            assert!(!got.is_empty(), "{}: the center sent nothing", s.id);
            let (checked, next) = recover::verify_fetched(&s.prov.bundle, head, &got)
                .unwrap_or_else(|e| panic!("{}: fetched batches: {e}", s.id));
            head = next;
            all.extend(checked);
        }
        all
    }

    /// Opens the device in `dir` as the station's, with a sender from its store.
    fn open_device(&mut self, i: usize, dir: PathBuf) {
        let s = &mut self.stations[i];
        drop_connection(s, true);
        s.store = Store::open(&dir).expect("station store opens");
        s.prov = s.store.provisioned().expect("provisioned");
        s.dir = dir;
        let head = s.store.head().expect("head").sequence;
        let acknowledged = s.store.acknowledged_through().expect("acknowledged");
        s.core = Core::new(head, acknowledged, Goal::Run, self.now_ms);
    }

    fn restore(&mut self, i: usize) {
        let Some(backup) = self.stations[i].backup.clone() else {
            return;
        };
        // Whatever the lost device held reached the center first, so the truth stands.
        self.settle(i);
        self.stations[i].devices += 1;
        let dir = self.tmp.path().join(format!(
            "devices/{}-{}",
            self.stations[i].id, self.stations[i].devices
        ));
        copy_dir(&backup, &dir);
        self.open_device(i, dir);
        // Where the center stands, as its Hello answers the restored device.
        let s = &self.stations[i];
        let head = s.store.head().expect("head");
        let reply = self
            .rt
            .block_on(
                self.center()
                    .hello(&peer_of(&s.prov), hello_request(s, head)),
            )
            .unwrap_or_else(|r| panic!("the center refused restored station {}: {r:?}", s.id));
        assert_eq!(
            reply.evidence_sequence, 0,
            "{}: a backup is on the center's chain",
            s.id
        );
        let center_head = ChainHead {
            sequence: reply.center_head_sequence,
            hash: reply
                .center_head_hash
                .as_slice()
                .try_into()
                .expect("32 bytes"),
        };
        let s = &mut self.stations[i];
        if head.sequence < center_head.sequence {
            // Hello stops the restored device: the center holds batches it lacks.
            let now_ms = self.now_ms;
            s.core.on_connecting(now_ms);
            s.core.on_connected(now_ms);
            let stop = s.core.on_hello(
                now_ms,
                &SessionStart {
                    center_head_sequence: center_head.sequence,
                    center_head_hash: center_head.hash.to_vec(),
                    max_in_flight: 8,
                    local_head_sequence: head.sequence,
                    local_hash_at_center_head: None,
                    evidence_sequence: 0,
                },
                0,
            );
            assert!(
                matches!(stop, Err(sender::Terminal::CenterAhead { .. })),
                "{}: {stop:?}",
                s.id
            );
            // The core holds sealing on the restored device until it recovers.
            assert!(s.core.poll_hold().is_some(), "{}: no seal hold", s.id);
        }
        let forward = self.fetch(i, head, center_head.sequence);
        let s = &mut self.stations[i];
        let done = s
            .store
            .recover(head, &[], &forward)
            .unwrap_or_else(|e| panic!("{}: recover: {e}", s.id));
        assert_eq!(
            done.pending_kept, 0,
            "{}: everything reached the center",
            s.id
        );
        self.seen.pending_dropped_at_restore += done.pending_dropped;
        let head = s.store.head().expect("head").sequence;
        assert_eq!(head, center_head.sequence);
        // As the driver starts: from what the store says (batches carried by hand
        // before the backup are acknowledged by the next Hello).
        let acknowledged = s.store.acknowledged_through().expect("acknowledged");
        s.core = Core::new(head, acknowledged, Goal::Run, self.now_ms);
        self.seen.restored += 1;
    }

    fn replace(&mut self, i: usize) {
        self.settle(i);
        let old_peer = peer_of(&self.stations[i].prov);
        let signed = self.stations[i]
            .store
            .batches_from(1, 1)
            .expect("sealed batch")
            .pop();
        self.files += 1;
        let out = self.tmp.path().join(format!("replaced-{}", self.files));
        let id = self.stations[i].id.clone();
        enroll::enroll(
            &self.center_dir,
            &enroll::EnrollRequest {
                stations: vec![id.clone()],
                out_dir: out.clone(),
                replace: true,
                reason: Some("the device failed".into()),
                ..Default::default()
            },
        )
        .expect("center enroll --replace");
        self.stations[i].devices += 1;
        let dir = self
            .tmp
            .path()
            .join(format!("devices/{id}-{}", self.stations[i].devices));
        Store::create(&dir, &enroll::bundle_path(&out, &id), &[]).expect("new device init");
        self.open_device(i, dir);
        let start = self.stations[i].store.chain_start().expect("chain start");
        let history = self.fetch(i, ChainHead::default(), start.sequence);
        let s = &mut self.stations[i];
        s.store
            .recover(start, &history, &[])
            .unwrap_or_else(|e| panic!("{}: recover history: {e}", s.id));
        s.core = Core::new(start.sequence, start.sequence, Goal::Run, self.now_ms);
        s.backup = None;
        if let Some(signed) = signed {
            s.replaced.push((old_peer, signed));
        }
        self.seen.replaced += 1;
    }

    fn old_device_tries(&mut self, i: usize) {
        let Some((peer, signed)) = self.stations[i].replaced.last().cloned() else {
            return;
        };
        let s = &self.stations[i];
        let request = hello_request(
            s,
            ChainHead {
                sequence: 1,
                hash: pollsync_proto::chain_hash(&signed.batch),
            },
        );
        let refused = self
            .rt
            .block_on(self.center().hello(&peer, request))
            .expect_err("a replaced key is refused at Hello");
        assert!(refused.detail.contains("STALE_KEY"), "{}", refused.detail);
        let ack = self
            .rt
            .block_on(self.center().submit_from(&peer, signed))
            .expect("answered");
        assert_eq!(ack.reason(), pb::RejectReason::StaleKey, "{ack:?}");
        self.seen.stale_refused += 1;
    }

    // --- center ---------------------------------------------------------------

    /// Submits every batch, then awaits every answer: one or more group commits.
    fn submit_all(&mut self, batches: Vec<(usize, pb::SignedBatch)>) -> Vec<(usize, pb::Ack)> {
        let center = self.center();
        let pending: Vec<_> = batches
            .into_iter()
            .map(|(i, b)| (i, center.submit_from(&peer_of(&self.stations[i].prov), b)))
            .collect();
        let mut answers = Vec::with_capacity(pending.len());
        for (i, rx) in pending {
            let ack = self
                .rt
                .block_on(rx)
                .expect("the center answers every batch it read");
            let kind = ack.kind();
            if kind == pb::AckKind::Rejected {
                assert_eq!(
                    ack.reason(),
                    pb::RejectReason::Gap,
                    "the center rejected a batch of honest station {}: {ack:?}",
                    self.stations[i].id
                );
                self.seen.gaps_answered += 1;
            }
            answers.push((i, ack));
        }
        answers
    }

    fn center_reads(&mut self, mask: u8, rounds: usize) {
        let mut batches = Vec::new();
        for _ in 0..rounds {
            let before = batches.len();
            for (i, s) in self.stations.iter_mut().enumerate() {
                if mask & (1 << i) != 0
                    && let Some(b) = s.link.up.pop_front()
                {
                    batches.push((i, b));
                }
            }
            if batches.len() == before {
                break;
            }
        }
        for (i, ack) in self.submit_all(batches) {
            self.stations[i].link.down.push_back(ack);
        }
    }

    fn center_reads_orphans(&mut self, i: usize, max: usize) {
        let link = &mut self.stations[i].link;
        let n = max.min(link.orphans.len());
        let batches: Vec<_> = link.orphans.drain(..n).map(|b| (i, b)).collect();
        for (_, ack) in self.submit_all(batches) {
            self.seen.orphans_applied += u64::from(ack.kind() == pb::AckKind::Accepted);
        }
    }

    /// Shut the ingest down (it applies and answers what it took), join the writer,
    /// start a fresh one on the same store. Every connection is gone, and with them
    /// whatever they carried.
    fn center_restart(&mut self) {
        let (handle, writer) = self.center.take().expect("the center runs");
        handle.shutdown();
        writer.join().expect("the writer thread ends cleanly");
        for s in &mut self.stations {
            drop_connection(s, false);
            s.link.orphans.clear();
        }
        self.center = Some(start_center(&self.center_dir));
        self.check_acknowledgements_durable();
    }

    /// Whatever a station was told the center holds, the center holds.
    fn check_acknowledgements_durable(&mut self) {
        let mut any = false;
        for s in &self.stations {
            let held = self.center().head(&s.id).unwrap_or_default();
            let recorded = s.store.acknowledged_through().expect("acknowledged");
            assert!(
                held.sequence >= recorded
                    && held.sequence >= s.core.sender().acknowledged_through(),
                "{}: acknowledged through {recorded} (sender {}), but the restarted center holds {}",
                s.id,
                s.core.sender().acknowledged_through(),
                held.sequence
            );
            if held.sequence > 0 {
                assert_eq!(
                    s.store.hash_at(held.sequence).expect("hash"),
                    Some(held.hash),
                    "{}: the center's batch {} is not the station's",
                    s.id,
                    held.sequence
                );
            }
            any |= recorded > 0;
        }
        self.seen.center_restarts_after_acks += u64::from(any);
    }

    // --- healing and the verdict -------------------------------------------------

    /// Everything left is recorded, closed and sealed; then a perfect link until
    /// every station's batches are all acknowledged.
    fn heal(&mut self) {
        for i in 0..self.stations.len() {
            self.cancel_stray(i);
            for c in 0..self.stations[i].progress.len() {
                self.close(i, c);
            }
            self.seal(i);
            self.stations[i].link.orphans.clear();
        }
        for _ in 0..MAX_HEAL_ROUNDS {
            if self.stations.iter().all(|s| {
                s.core.sender().is_idle()
                    && s.link.is_quiet()
                    && s.core.sender().acknowledged_through() == s.core.sender().local_head()
            }) {
                return;
            }
            for i in 0..self.stations.len() {
                let s = &self.stations[i];
                if s.core.sender().in_flight() > 0 && s.link.is_quiet() {
                    // Batches in flight, and nothing on its way in either direction:
                    // time passes until the core's acknowledgement timeout ends the
                    // call.
                    self.wait_for(i);
                }
                if !self.stations[i].core.sender().connected() {
                    self.hello(i);
                }
                self.send(i, usize::MAX);
            }
            self.center_reads(u8::MAX, usize::MAX);
            for i in 0..self.stations.len() {
                self.station_reads(i, usize::MAX);
            }
        }
        panic!("the healing phase did not settle");
    }

    /// The verdict: exact tallies, all acknowledged, no alert, audit clean.
    fn check_final(mut self) -> Seen {
        for s in &self.stations {
            let head = s.store.head().expect("head").sequence;
            assert!(s.core.sender().stopped().is_none(), "{}: stopped", s.id);
            assert_eq!(s.core.sender().acknowledged_through(), head, "{}", s.id);
            assert_eq!(
                s.store.acknowledged_through().expect("acknowledged"),
                head,
                "{}: the store records every batch acknowledged",
                s.id
            );
            assert!(
                s.store.unacknowledged().expect("unacknowledged").is_empty(),
                "{}",
                s.id
            );
        }
        // A restart keeps it all, and a new Hello finds nothing to send.
        self.center_restart();
        for i in 0..self.stations.len() {
            self.disconnect(i, false);
            self.hello(i);
            let s = &self.stations[i];
            assert!(s.core.sender().is_idle(), "{}: nothing left to send", s.id);
        }
        let (handle, writer) = self.center.take().expect("the center runs");
        handle.shutdown();
        writer.join().expect("the writer thread ends cleanly");

        let store = pollsync_center::store::Store::open(&self.center_dir).expect("center store");
        let alerts = store.alerts().expect("alerts");
        assert!(
            alerts
                .iter()
                .all(|a| a.kind == "REPLACED" || a.kind == "STALE_KEY"),
            "honest stations raised alerts: {alerts:?}"
        );
        assert_eq!(
            alerts.iter().filter(|a| a.kind == "REPLACED").count() as u64,
            self.seen.replaced
        );
        let mut tallies = store.tally_map().expect("tallies");
        for contests in tallies.values_mut() {
            for sheet in contests.values_mut() {
                *sheet = sheet.without_zeros();
            }
        }
        assert_eq!(
            tallies,
            self.template.truth(),
            "the center's tallies are the drawn truth"
        );
        // The center's copy of each chain is the station's, byte for byte.
        for st in &self.stations {
            let head = st.store.head().expect("head").sequence;
            let sealed: Vec<(Vec<u8>, Vec<u8>)> = st
                .store
                .batches_from(1, usize::try_from(head).expect("head fits"))
                .expect("sealed batches")
                .into_iter()
                .map(|b| (b.batch, b.signature))
                .collect();
            let held: Vec<(Vec<u8>, Vec<u8>)> = store
                .batches(Some(&st.id))
                .expect("stored batches")
                .into_iter()
                .map(|b| (b.batch, b.signature))
                .collect();
            assert_eq!(held.len(), sealed.len(), "{}: batches held", st.id);
            assert!(
                held == sealed,
                "{}: the center's batches are not the station's",
                st.id
            );
        }
        let audit = pollsync_center::audit::audit(&store).expect("audit runs");
        assert!(audit.is_clean(), "audit: {:?}", audit.differences);
        self.seen
    }
}

/// The Hello of a station at `head`.
fn hello_request(s: &StationSide, head: ChainHead) -> pb::HelloRequest {
    pollsync_proto::chain::hello_of(&s.prov.bundle, head)
}

/// The peer a station's TLS certificate proves.
fn peer_of(prov: &Provisioned) -> ingest::Peer {
    ingest::Peer {
        station: prov.bundle.station_id.clone(),
        key: prov
            .bundle
            .signing_key()
            .expect("the bundle's key")
            .verifying_key()
            .to_bytes(),
    }
}

fn drop_connection(s: &mut StationSide, center_keeps_unread: bool) {
    if center_keeps_unread {
        s.link.orphans.extend(s.link.up.drain(..));
    }
    s.link.up.clear();
    s.link.down.clear();
    s.core.on_disconnected();
}

fn disturb<T: Clone>(queue: &mut VecDeque<T>, fault: Fault, at: usize) {
    if queue.is_empty() {
        return;
    }
    let i = at % queue.len();
    match fault {
        Fault::Duplicate => {
            let copy = queue[i].clone();
            queue.insert(i + 1, copy);
        }
        Fault::Drop => {
            queue.remove(i);
        }
        Fault::Swap => {
            if queue.len() >= 2 {
                let j = if i + 1 < queue.len() { i + 1 } else { i - 1 };
                queue.swap(i, j);
            }
        }
    }
}

fn run_schedule(template: &Template, steps: &[Step]) -> Seen {
    let mut world = World::new(template);
    for s in steps {
        world.run(s);
    }
    world.heal();
    world.check_final()
}

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 1_000,
        ..Config::default()
    }
}

fn run_property(runner: &mut TestRunner, template: &Template) -> Seen {
    let total = RefCell::new(Seen::default());
    let result = runner.run(&schedule(), |steps| {
        let seen = run_schedule(template, &steps);
        total.borrow_mut().add(&seen);
        Ok(())
    });
    match result {
        Ok(()) => total.into_inner(),
        Err(TestError::Fail(why, steps)) => {
            panic!(
                "{why}\nminimal failing schedule ({} steps):\n{steps:#?}",
                steps.len()
            )
        }
        Err(e) => panic!("{e}"),
    }
}

/// G2 and G8 at the protocol level: whatever the schedule of faults, honest stations
/// end counted exactly once, fully acknowledged, without an alert, and never told
/// something was durable that a restarted center did not keep.
#[test]
fn honest_stations_are_counted_exactly_once_whatever_the_schedule() {
    let template = Template::build();
    let config = config(DEFAULT_CASES);
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let seen = run_property(&mut runner, &template);
    let elapsed = started.elapsed();
    eprintln!(
        "{cases} schedules in {elapsed:.1?} ({:.2} schedules/s): {seen:?}",
        f64::from(cases) / elapsed.as_secs_f64()
    );
}

/// The schedules do reach what they are meant to test: duplicates acknowledged,
/// GAP answers, broken links detected, heartbeats and ack timeouts on the virtual
/// clock, late batches of dead connections applied,
/// center restarts with acknowledged batches, cancels in a later batch than their
/// ballot, closes (a fixed seed, so this does not depend on luck).
#[test]
fn the_schedules_reach_the_fault_paths() {
    let template = Template::build();
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: COVERAGE_CASES,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let seen = run_property(&mut runner, &template);
    eprintln!("{COVERAGE_CASES} schedules with a fixed seed: {seen:?}");
    assert!(seen.duplicates_acknowledged > 0, "{seen:?}");
    assert!(seen.gaps_answered > 0, "{seen:?}");
    assert!(seen.violations > 0, "{seen:?}");
    assert!(seen.orphans_applied > 0, "{seen:?}");
    assert!(seen.center_restarts_after_acks > 0, "{seen:?}");
    assert!(seen.station_restarts > 0, "{seen:?}");
    assert!(seen.cross_batch_cancels > 0, "{seen:?}");
    assert!(seen.closes > 0, "{seen:?}");
    assert!(seen.carried_accepted > 0, "{seen:?}");
    assert!(seen.carried_duplicates > 0, "{seen:?}");
    assert!(seen.restored > 0, "{seen:?}");
    assert!(seen.pending_dropped_at_restore > 0, "{seen:?}");
    assert!(seen.replaced > 0, "{seen:?}");
    assert!(seen.stale_refused > 0, "{seen:?}");
    // Virtual time reaches the core's timers: heartbeats when idle, and links
    // declared dead by the ack timeout.
    assert!(seen.heartbeats > 0, "{seen:?}");
    assert!(seen.ack_timeouts > 0, "{seen:?}");
}

/// A station's last batches lost on the way (nothing sent after them to reveal the
/// loss by a GAP): the center stays silent, the driver's acknowledgement timeout ends
/// the call, and the next Hello sends them again.
#[test]
fn batches_lost_at_the_end_of_a_call_are_sent_again_after_the_ack_timeout() {
    let template = Template::build();
    let mut steps: Vec<Step> = (0..4)
        .map(|contest| Step::Close {
            station: 0,
            contest,
        })
        .collect();
    steps.push(Step::Seal { station: 0 });
    steps.push(Step::Send { station: 0, max: 8 });
    steps.extend((0..8).map(|_| Step::Fault {
        queue: 0,
        fault: Fault::Drop,
        at: 0,
    }));
    let seen = run_schedule(&template, &steps);
    assert!(seen.faults > 0, "{seen:?}");
    assert!(seen.ack_timeouts > 0, "{seen:?}");
}
