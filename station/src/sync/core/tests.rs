//! Tests of the sync core: its timers and goals by example, then a property test
//! running thousands of random schedules of seals, connections, sends, answers,
//! lost messages, disconnects, shutdowns and virtual time through the core against
//! a small model center, checking its invariants after every event.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::*;

fn start(center: u64, local: u64) -> SessionStart {
    SessionStart {
        center_head_sequence: center,
        center_head_hash: Vec::new(),
        max_in_flight: 4,
        local_head_sequence: local,
        local_hash_at_center_head: None,
        evidence_sequence: 0,
    }
}

/// Connect, Hello and open the call, all at `now_ms`.
fn open(core: &mut Core, now_ms: u64, center: u64, heartbeat_ms: u32) -> Started {
    core.on_connecting(now_ms);
    core.on_connected(now_ms);
    let local = core.sender().local_head();
    let started = core
        .on_hello(now_ms, &start(center, local), heartbeat_ms)
        .expect("hello");
    core.on_opening(now_ms);
    core.on_push_open(now_ms);
    started
}

#[test]
fn each_phase_of_a_connection_has_its_own_time() {
    let mut core = Core::new(0, 0, Goal::Run, 0);
    assert_eq!(core.next_deadline_ms(), None);
    core.on_connecting(100);
    assert_eq!(core.next_deadline_ms(), Some(100 + CONNECT_TIMEOUT_MS));
    assert_eq!(core.on_timeout(100 + CONNECT_TIMEOUT_MS - 1), None);
    assert_eq!(
        core.on_timeout(100 + CONNECT_TIMEOUT_MS),
        Some(Timeout::Dead(DeadLink::Connect))
    );
    assert_eq!(core.next_deadline_ms(), None);
    core.on_connecting(10_000);
    core.on_connected(10_050);
    assert_eq!(core.next_deadline_ms(), Some(10_050 + HELLO_TIMEOUT_MS));
    core.on_hello(10_060, &start(0, 0), 0).expect("hello");
    assert_eq!(core.next_deadline_ms(), None, "only store work after Hello");
    core.on_opening(10_070);
    assert_eq!(
        core.on_timeout(10_070 + HELLO_TIMEOUT_MS),
        Some(Timeout::Dead(DeadLink::OpenPush))
    );
}

#[test]
fn an_idle_session_sends_heartbeats_at_the_announced_interval_with_a_floor() {
    let mut core = Core::new(0, 0, Goal::Run, 0);
    open(&mut core, 0, 0, 20);
    assert_eq!(core.next_deadline_ms(), Some(MIN_HEARTBEAT_INTERVAL_MS));
    assert_eq!(
        core.on_timeout(MIN_HEARTBEAT_INTERVAL_MS),
        Some(Timeout::Heartbeat {
            local_head: 0,
            sealed_unacknowledged: 0
        })
    );
    assert_eq!(core.next_deadline_ms(), Some(2 * MIN_HEARTBEAT_INTERVAL_MS));
    let mut core = Core::new(0, 0, Goal::Run, 0);
    open(&mut core, 0, 0, 0);
    assert_eq!(core.next_deadline_ms(), Some(HEARTBEAT_INTERVAL_MS));
}

#[test]
fn silence_with_batches_in_flight_kills_the_link_after_the_ack_timeout() {
    let mut core = Core::new(3, 0, Goal::Run, 0);
    open(&mut core, 0, 0, 1_000);
    assert_eq!(core.poll_send(500), Some(1));
    assert_eq!(core.poll_send(600), Some(2));
    // The silence counts from the first batch sent with nothing in flight.
    assert_eq!(core.next_deadline_ms(), Some(500 + ACK_TIMEOUT_MS));
    core.on_ack(2_000, &pb::Ack::accepted(1)).expect("ack");
    assert_eq!(core.next_deadline_ms(), Some(2_000 + ACK_TIMEOUT_MS));
    assert_eq!(core.on_timeout(2_000 + ACK_TIMEOUT_MS - 1), None);
    assert_eq!(
        core.on_timeout(2_000 + ACK_TIMEOUT_MS),
        Some(Timeout::Dead(DeadLink::AckSilence))
    );
    assert!(!core.sender().connected());
}

#[test]
fn sync_seals_once_is_done_at_the_target_and_gives_up_without_progress() {
    let mut core = Core::new(
        2,
        0,
        Goal::Sync {
            no_progress_ms: 60_000,
        },
        0,
    );
    let started = open(&mut core, 1_000, 0, 0);
    assert!(started.seal_first);
    core.on_sync_sealed(3);
    assert!(!core.is_done());
    for s in 1..=3 {
        assert_eq!(core.poll_send(1_000), Some(s));
    }
    core.on_ack(2_000, &pb::Ack::accepted(1)).expect("ack");
    core.on_ack(3_000, &pb::Ack::accepted(2)).expect("ack");
    assert_eq!(core.poll_end(), None);
    core.on_ack(4_000, &pb::Ack::accepted(3)).expect("ack");
    assert_eq!(core.poll_end(), Some(SessionEnd::Done));
    // A second session does not seal again.
    core.on_disconnected();
    assert!(!open(&mut core, 5_000, 3, 0).seal_first);

    let mut core = Core::new(
        0,
        0,
        Goal::Sync {
            no_progress_ms: 60_000,
        },
        0,
    );
    open(&mut core, 0, 0, 0);
    core.on_sync_sealed(1);
    assert_eq!(core.poll_send(10), Some(1));
    // Heartbeats do not count as progress; the ack silence ends the link first.
    assert_eq!(
        core.on_timeout(10 + ACK_TIMEOUT_MS),
        Some(Timeout::Dead(DeadLink::AckSilence))
    );
    assert_eq!(core.retry(59_000, 5_000), Retry::At { at_ms: 59_750 });
    assert_eq!(core.retry(59_750, 200), Retry::GiveUp);
}

/// Fail-over (SPEC §11): a failed attempt or a lost connection moves to the next
/// address, round robin; a good Hello keeps the address; the sender resumes where
/// the new Hello says the center's head is.
#[test]
fn a_failure_moves_to_the_next_address_and_hello_keeps_it() {
    let mut core = Core::new(4, 0, Goal::Run, 0).with_addresses(2, 0);
    assert_eq!(core.address(), 0);
    assert_eq!(core.reached_address(), None);
    // Address 0 answers, takes two batches, then the link dies.
    open(&mut core, 0, 0, 0);
    assert_eq!(core.reached_address(), Some(0));
    assert_eq!(core.poll_send(0), Some(1));
    assert_eq!(core.poll_send(0), Some(2));
    core.on_ack(10, &pb::Ack::accepted(1)).expect("ack");
    assert_eq!(
        core.on_timeout(10 + ACK_TIMEOUT_MS),
        Some(Timeout::Dead(DeadLink::AckSilence))
    );
    assert_eq!(core.address(), 0, "only the driver's verdict moves it");
    assert_eq!(core.on_link_failed(), 1);
    assert!(matches!(core.retry(40_000, 200), Retry::At { .. }));
    // Address 1 does not answer in time: back to address 0.
    core.on_connecting(41_000);
    assert_eq!(
        core.on_timeout(41_000 + CONNECT_TIMEOUT_MS),
        Some(Timeout::Dead(DeadLink::Connect))
    );
    assert_eq!(core.on_link_failed(), 0);
    assert_eq!(core.on_link_failed(), 1);
    // Address 1 answers: the center (behind both) holds batch 2 already, so
    // sending resumes at 3, and the address is kept.
    open(&mut core, 50_000, 2, 0);
    assert_eq!(core.address(), 1);
    assert_eq!(core.reached_address(), Some(1));
    assert_eq!(core.sender().acknowledged_through(), 2);
    assert_eq!(core.poll_send(50_000), Some(3));
    core.on_ack(50_010, &pb::Ack::accepted(3)).expect("ack");
    assert_eq!(core.address(), 1);
}

#[test]
fn news_pushes_the_give_up_back() {
    let mut core = Core::new(
        2,
        0,
        Goal::Sync {
            no_progress_ms: 1_000,
        },
        0,
    );
    open(&mut core, 0, 0, 60_000);
    core.on_sync_sealed(2);
    core.poll_send(0);
    core.poll_send(0);
    core.on_ack(900, &pb::Ack::accepted(1)).expect("ack");
    assert_eq!(core.next_deadline_ms(), Some(1_900));
    // A duplicate of what is known is no news.
    core.on_disconnected();
    open(&mut core, 1_000, 1, 60_000);
    core.poll_send(1_000);
    assert_eq!(core.on_timeout(1_900), Some(Timeout::NoProgress));
}

#[test]
fn a_shutdown_drains_what_is_in_flight_for_the_grace_period() {
    let mut core = Core::new(5, 0, Goal::Run, 0);
    open(&mut core, 0, 0, 0);
    assert_eq!(core.poll_send(0), Some(1));
    assert_eq!(core.on_shutdown(100), None);
    assert!(core.draining());
    assert_eq!(
        core.poll_send(100),
        None,
        "nothing new is sent while draining"
    );
    assert_eq!(core.next_deadline_ms(), Some(100 + SHUTDOWN_GRACE_MS));
    core.on_ack(200, &pb::Ack::accepted(1)).expect("ack");
    assert_eq!(core.poll_end(), Some(SessionEnd::Shutdown));

    let mut core = Core::new(5, 0, Goal::Run, 0);
    open(&mut core, 0, 0, 0);
    core.poll_send(0);
    core.on_shutdown(100);
    assert_eq!(
        core.on_timeout(100 + SHUTDOWN_GRACE_MS),
        Some(Timeout::DrainOver)
    );
    let mut idle = Core::new(0, 0, Goal::Run, 0);
    open(&mut idle, 0, 0, 0);
    assert_eq!(idle.on_shutdown(5), Some(SessionEnd::Shutdown));
}

#[test]
fn a_lost_device_or_a_fork_puts_a_hold_on_sealing() {
    let mut core = Core::new(3, 3, Goal::Run, 0);
    core.on_connecting(0);
    core.on_connected(0);
    let stop = core.on_hello(0, &start(7, 3), 0).expect_err("center ahead");
    assert!(matches!(stop, Terminal::CenterAhead { .. }));
    let hold = core.poll_hold().expect("a hold");
    assert!(hold.contains("station recover"), "{hold}");
    assert_eq!(core.poll_hold(), None, "stored once");

    let mut core = Core::new(5, 0, Goal::Sync { no_progress_ms: 1 }, 0);
    core.on_connecting(0);
    core.on_connected(0);
    let mut forked = start(4, 5);
    forked.evidence_sequence = 4;
    let started = core.on_hello(0, &forked, 0).expect("evidence session");
    assert_eq!(started.resume.evidence, Some(4));
    assert!(!started.seal_first, "no sealing on a forked chain");
    let hold = core.poll_hold().expect("a hold");
    assert!(hold.contains("forked"), "{hold}");

    let mut fine = Core::new(3, 0, Goal::Run, 0);
    open(&mut fine, 0, 2, 0);
    assert_eq!(fine.poll_hold(), None);
}

// ---------------------------------------------------------------------------
// Property test: random schedules with virtual time
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Event {
    Seal(u64),
    Connect { heartbeat_ms: u32 },
    Send(usize),
    CenterReads(usize),
    StationReads(usize),
    DropUp(usize),
    DropDown(usize),
    Wait(u64),
    Disconnect,
    Shutdown,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (0u64..4).prop_map(Event::Seal),
        2 => (0u32..8_000).prop_map(|heartbeat_ms| Event::Connect { heartbeat_ms }),
        4 => (1usize..6).prop_map(Event::Send),
        4 => (1usize..6).prop_map(Event::CenterReads),
        4 => (1usize..6).prop_map(Event::StationReads),
        1 => (0usize..8).prop_map(Event::DropUp),
        1 => (0usize..8).prop_map(Event::DropDown),
        4 => prop_oneof![0u64..500, 0u64..40_000].prop_map(Event::Wait),
        1 => Just(Event::Disconnect),
        1 => Just(Event::Shutdown),
    ]
}

const NO_PROGRESS_MS: u64 = 120_000;

/// The core, a model center and the link between them, on a virtual clock.
struct Model {
    core: Core,
    now_ms: u64,
    /// Everything this device sealed (the core learns it by `on_sealed`).
    sealed: u64,
    /// The center's head.
    center: u64,
    up: VecDeque<u64>,
    down: VecDeque<pb::Ack>,
    /// Sent in this session since its start or its last resend.
    sent: BTreeSet<u64>,
    /// When the core last heard from the center or started waiting for it.
    last_answer_ms: u64,
    /// When the center last acknowledged news (sync's progress).
    last_progress_ms: u64,
    /// `station sync`'s target once sealed.
    target: Option<u64>,
    /// The command is over (sync gave up or finished; run was stopped).
    over: bool,
    heartbeats: u64,
    dead_links: u64,
}

impl Model {
    fn new(sync: bool, sealed: u64) -> Model {
        let goal = if sync {
            Goal::Sync {
                no_progress_ms: NO_PROGRESS_MS,
            }
        } else {
            Goal::Run
        };
        Model {
            core: Core::new(sealed, 0, goal, 0),
            now_ms: 0,
            sealed,
            center: 0,
            up: VecDeque::new(),
            down: VecDeque::new(),
            sent: BTreeSet::new(),
            last_answer_ms: 0,
            last_progress_ms: 0,
            target: None,
            over: false,
            heartbeats: 0,
            dead_links: 0,
        }
    }

    fn disconnect(&mut self) {
        self.core.on_disconnected();
        self.up.clear();
        self.down.clear();
        self.sent.clear();
    }

    fn connect(&mut self, heartbeat_ms: u32) {
        self.disconnect();
        let now = self.now_ms;
        self.core.on_connecting(now);
        self.core.on_connected(now);
        let started = self
            .core
            .on_hello(now, &start(self.center, self.sealed), heartbeat_ms)
            .expect("an honest device is never stopped");
        assert_eq!(self.core.poll_hold(), None);
        if started.seal_first {
            self.sealed += 1;
            self.core.on_sync_sealed(self.sealed);
            self.target = Some(self.sealed);
        }
        self.core.on_opening(now);
        self.core.on_push_open(now);
        self.last_answer_ms = now;
    }

    fn send(&mut self, max: usize) {
        for _ in 0..max {
            let waiting = self.core.sender().in_flight() > 0;
            let Some(sequence) = self.core.poll_send(self.now_ms) else {
                break;
            };
            assert!(
                sequence <= self.sealed,
                "sent {sequence}, sealed {}",
                self.sealed
            );
            assert!(
                self.sent.insert(sequence),
                "{sequence} sent twice in one session without a GAP"
            );
            if !waiting {
                self.last_answer_ms = self.now_ms;
            }
            self.up.push_back(sequence);
        }
    }

    fn center_reads(&mut self, max: usize) {
        for _ in 0..max {
            let Some(sequence) = self.up.pop_front() else {
                break;
            };
            let ack = if sequence == self.center + 1 {
                self.center = sequence;
                pb::Ack::accepted(sequence)
            } else if sequence <= self.center {
                pb::Ack::duplicate(sequence, self.center + 1)
            } else {
                pb::Ack::rejected(sequence, pb::RejectReason::Gap, "gap", self.center + 1)
            };
            self.down.push_back(ack);
        }
    }

    fn station_reads(&mut self, max: usize) {
        for _ in 0..max {
            let Some(ack) = self.down.pop_front() else {
                break;
            };
            let before = self.core.sender().acknowledged_through();
            self.last_answer_ms = self.now_ms;
            match self.core.on_ack(self.now_ms, &ack) {
                Ok(AckOutcome::Acknowledged { through, .. }) => {
                    assert!(through <= self.center, "acknowledged beyond the center");
                    if through > before {
                        self.last_progress_ms = self.now_ms;
                    }
                }
                Ok(AckOutcome::Resend { .. }) => self.sent.clear(),
                Ok(AckOutcome::Stale) => {}
                Err(Stop::Violation(_)) => {
                    assert!(!self.core.sender().connected());
                    self.disconnect();
                    break;
                }
                Err(Stop::Terminal(t)) => panic!("an honest device stopped: {t}"),
            }
        }
    }

    /// Virtual time passes by `ms`; the core is woken at each deadline on the way,
    /// as the driver's sleep would.
    fn wait(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        while let Some(deadline) = self.core.next_deadline_ms() {
            if deadline > until || self.over {
                break;
            }
            self.now_ms = self.now_ms.max(deadline);
            while let Some(due) = self.core.on_timeout(self.now_ms) {
                self.handle(due);
                if self.over {
                    return;
                }
            }
        }
        self.now_ms = until;
    }

    fn handle(&mut self, due: Timeout) {
        let now = self.now_ms;
        match due {
            Timeout::Heartbeat { .. } => {
                assert!(self.core.sender().is_idle(), "a heartbeat while busy");
                self.heartbeats += 1;
            }
            Timeout::Dead(why) => {
                assert_eq!(why, DeadLink::AckSilence, "only pushing is modelled");
                assert!(
                    now >= self.last_answer_ms + ACK_TIMEOUT_MS,
                    "declared dead at {now}, last answer at {}",
                    self.last_answer_ms
                );
                self.dead_links += 1;
                self.disconnect();
            }
            Timeout::NoProgress => {
                assert!(
                    now >= self.last_progress_ms + NO_PROGRESS_MS,
                    "gave up at {now}, last progress at {}",
                    self.last_progress_ms
                );
                self.over = true;
            }
            Timeout::DrainOver => {
                self.over = true;
                self.disconnect();
            }
        }
    }

    fn run(&mut self, e: &Event) {
        match *e {
            Event::Seal(n) => {
                self.sealed += n;
                self.core.on_sealed(self.sealed);
            }
            Event::Connect { heartbeat_ms } => {
                if !self.core.sender().connected() {
                    self.connect(heartbeat_ms);
                }
            }
            Event::Send(max) => self.send(max),
            Event::CenterReads(max) => self.center_reads(max),
            Event::StationReads(max) => self.station_reads(max),
            Event::DropUp(at) => {
                if !self.up.is_empty() {
                    self.up.remove(at % self.up.len());
                }
            }
            Event::DropDown(at) => {
                if !self.down.is_empty() {
                    self.down.remove(at % self.down.len());
                }
            }
            Event::Wait(ms) => self.wait(ms),
            Event::Disconnect => self.disconnect(),
            Event::Shutdown => match self.core.on_shutdown(self.now_ms) {
                Some(_) => {
                    self.over = true;
                    self.disconnect();
                }
                None => assert!(self.core.draining()),
            },
        }
        if self.core.poll_end().is_some() {
            self.over = true;
        }
        self.wake_due();
        self.check();
    }

    /// What an event made due at once (a heartbeat owed since before the session
    /// went idle), handled as the driver's sleep until a past deadline would.
    fn wake_due(&mut self) {
        while !self.over
            && let Some(due) = self.core.on_timeout(self.now_ms)
        {
            self.handle(due);
        }
    }

    fn check(&self) {
        let s = self.core.sender();
        assert!(s.acknowledged_through() <= self.center);
        assert!(s.in_flight() <= s.window());
        assert!(s.local_head() <= self.sealed);
        if let Some(deadline) = self.core.next_deadline_ms()
            && !self.over
        {
            // Once told the time, the core never asks to be woken in the past.
            assert!(
                deadline > self.now_ms,
                "deadline {deadline} not after now {}",
                self.now_ms
            );
        }
        if s.in_flight() > 0 && !self.core.draining() {
            let deadline = self
                .core
                .next_deadline_ms()
                .expect("a deadline while waiting");
            assert!(
                deadline <= self.last_answer_ms + ACK_TIMEOUT_MS,
                "waiting since {}, next wake-up {deadline}",
                self.last_answer_ms
            );
        }
        if self.core.is_done() {
            let target = self.target.expect("done only after sealing");
            assert!(
                self.center >= target,
                "done before the center held {target}"
            );
        }
    }

    /// A perfect link until everything sealed is acknowledged (or the command ends).
    fn heal(&mut self) {
        for _ in 0..1_000 {
            if self.over {
                return;
            }
            let s = self.core.sender();
            if s.connected() && s.is_idle() && s.acknowledged_through() == self.sealed {
                return;
            }
            if !s.connected() {
                self.connect(0);
            } else if s.in_flight() > 0 && self.up.is_empty() && self.down.is_empty() {
                // What was lost is only noticed by the ack timeout.
                let deadline = self.core.next_deadline_ms().expect("waiting");
                self.wait(deadline - self.now_ms);
            }
            self.send(usize::MAX);
            self.center_reads(usize::MAX);
            self.station_reads(usize::MAX);
            if self.core.poll_end().is_some() {
                self.over = true;
            }
            self.wake_due();
            self.check();
        }
        panic!("the healing did not settle");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn the_core_keeps_its_invariants_under_any_schedule_and_time(
        sync in any::<bool>(),
        sealed in 0u64..6,
        events in proptest::collection::vec(event(), 0..120),
    ) {
        let mut m = Model::new(sync, sealed);
        for e in &events {
            if m.over {
                break;
            }
            m.run(e);
        }
        m.heal();
        if !m.over {
            // Everything sealed reached the center and was acknowledged.
            prop_assert_eq!(m.core.sender().acknowledged_through(), m.sealed);
            prop_assert_eq!(m.center, m.sealed);
        }
        if sync && m.target.is_some() && m.core.is_done() {
            prop_assert!(m.center >= m.target.unwrap_or(u64::MAX));
        }
    }
}

#[test]
fn the_schedules_reach_heartbeats_and_dead_links() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut heartbeats = 0;
    let mut dead = 0;
    for _ in 0..200 {
        let events = proptest::collection::vec(event(), 0..120)
            .new_tree(&mut runner)
            .expect("a schedule")
            .current();
        let mut m = Model::new(false, 3);
        for e in &events {
            if m.over {
                break;
            }
            m.run(e);
        }
        heartbeats += m.heartbeats;
        dead += m.dead_links;
    }
    assert!(
        heartbeats > 0 && dead > 0,
        "{heartbeats} heartbeats, {dead} dead links"
    );
}
