//! G3, G4, G7, G8 against hostile input, across processes: a real `center serve`,
//! honest `station` binaries syncing over mTLS, and a test-only rogue client
//! (`pollsync_tests::rogue`) that replays, tampers, forges, floods and sends
//! oversized messages. Every test ends with the honest stations' tallies equal to
//! the ground truth drawn by `pollsync-sim`, the exact alerts `center alerts --json`
//! must show, every batch accepted before the attack still stored unchanged, and a
//! clean `center audit`.

use pollsync_center::store::Records as _;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pollsync_election::{Ballot, BallotId, ElectionDefinition, StationEvent, TallySheet};
use pollsync_proto::limits::{MAX_BATCH_BYTES, MAX_MESSAGE_BYTES};
use pollsync_proto::pb::{self, AckKind, RejectReason};
use pollsync_proto::{ChainHead, ElectionCa, EnrollmentBundle, chain_hash, read_export};
use pollsync_tests::rogue::{self, Forger, Rogue, RogueError};
use pollsync_tests::{
    SmallDay, Station, Tallies, center_tallies, ok, record_ballots, record_day, run, truth,
};
use prost::Message as _;
use tonic::Code;

/// Longest an asynchronous step may take (a revocation reaching the server).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// `station sync --timeout-s`.
const SYNC_TIMEOUT_S: &str = "60";

/// (station, sequence) → SHA-256 of the stored batch bytes and the stored
/// signature, for every batch the center holds.
type Accepted = BTreeMap<(String, u64), ([u8; 32], Vec<u8>)>;
/// An acknowledgement as (kind, reason, sequence, expected sequence).
type Seen = (AckKind, RejectReason, u64, u64);

// ---------------------------------------------------------------------------
// The day: a center serving a small election, its stations, the ground truth.

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
    fn start(seed: u64) -> Day {
        Day(SmallDay::start(seed))
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn address(&self) -> &str {
        self.center.address()
    }

    fn id(&self, index: usize) -> String {
        self.def.stations[index].id.clone()
    }

    /// The device of the election's station number `index`, provisioned.
    fn station(&self, index: usize) -> Station {
        Station::init(self.root(), &self.center, &self.id(index), self.address())
    }

    /// That device with its whole drawn day recorded and every contest closed.
    fn recorded(&self, index: usize) -> Station {
        let station = self.station(index);
        record_day(&station, &self.drawn, self.root());
        station
    }

    fn bundle(&self, station: &str) -> EnrollmentBundle {
        EnrollmentBundle::read(&self.center.bundle(station)).expect("enrollment bundle")
    }

    /// The ground truth of `stations`.
    fn truth_of(&self, stations: &[&Station]) -> Tallies {
        let mut all = truth(&self.drawn);
        all.retain(|id, _| stations.iter().any(|s| &s.id == id));
        assert_eq!(all.len(), stations.len(), "every station has a truth");
        all
    }

    /// What the center counts for `stations`.
    fn held(&self, stations: &[&Station]) -> Tallies {
        let mut all = center_tallies(&self.center);
        all.retain(|id, _| stations.iter().any(|s| &s.id == id));
        all
    }

    fn accepted(&self) -> Accepted {
        let store = self.center.open_store();
        store
            .batches(None)
            .expect("batches read")
            .into_iter()
            .map(|b| ((b.station, b.sequence), (chain_hash(&b.batch), b.signature)))
            .collect()
    }

    /// Batches the center holds from `station`.
    fn batches_of(&self, station: &str) -> Vec<u64> {
        self.accepted()
            .keys()
            .filter(|(s, _)| s == station)
            .map(|(_, seq)| *seq)
            .collect()
    }

    /// `center alerts --json` as (station, kind, sequence).
    fn alerts(&self) -> Vec<(String, String, u64)> {
        let alerts = self.center.json(&["alerts", "--json"]);
        alerts
            .as_array()
            .expect("an array of alerts")
            .iter()
            .map(|a| {
                (
                    a["station"].as_str().expect("station").to_string(),
                    a["kind"].as_str().expect("kind").to_string(),
                    a["sequence"].as_u64().expect("sequence"),
                )
            })
            .collect()
    }

    /// The end of every test: `stations` hold exactly the truth, every batch in
    /// `before` is still stored with the same bytes, and the audit is clean.
    fn check_honest(&self, stations: &[&Station], before: &Accepted) {
        assert_eq!(self.held(stations), self.truth_of(stations));
        let after = self.accepted();
        for (key, stored) in before {
            assert_eq!(
                after.get(key),
                Some(stored),
                "batch {key:?}, accepted before the attack, changed or vanished"
            );
        }
        let audit = self.center.json(&["audit", "--json"]);
        assert_eq!(audit["ok"], true, "{audit}");
    }
}

fn sync(station: &Station) {
    station.ok(&["sync", "--timeout-s", SYNC_TIMEOUT_S]);
}

/// `station sync` in its own thread, so that a test can act meanwhile.
fn sync_in_background(station: &Station) -> std::thread::JoinHandle<Output> {
    let mut cmd = station.command();
    cmd.args(["sync", "--timeout-s", SYNC_TIMEOUT_S]);
    std::thread::spawn(move || run(&mut cmd))
}

fn assert_synced(id: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{id} could not sync:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every batch `station` sealed and the center has not acknowledged, byte for byte
/// as it pushes them (through `station export`, which seals first).
fn sealed_batches(station: &Station, root: &Path) -> Vec<pb::SignedBatch> {
    let file = root.join(format!("{}.export", station.id));
    station.ok(&["export", "--out", &file.display().to_string()]);
    let batches = read_export(&file).expect("export reads").batches;
    assert!(!batches.is_empty(), "{} sealed nothing", station.id);
    batches
}

fn seen(ack: &pb::Ack) -> Seen {
    (
        ack.kind(),
        ack.reason(),
        ack.sequence,
        ack.expected_sequence,
    )
}

fn rejected(reason: RejectReason, sequence: u64, expected: u64) -> Seen {
    (AckKind::Rejected, reason, sequence, expected)
}

fn sequence_of(signed: &pb::SignedBatch) -> u64 {
    pb::Batch::decode(signed.batch.as_slice())
        .expect("batch decodes")
        .sequence
}

/// The center's head for `bundle`'s station, from a Hello as that station.
async fn center_head(rogue: &Rogue, bundle: &EnrollmentBundle) -> ChainHead {
    let reply = rogue
        .hello(Forger::new(bundle).hello())
        .await
        .expect("hello answered");
    ChainHead {
        sequence: reply.center_head_sequence,
        hash: reply
            .center_head_hash
            .as_slice()
            .try_into()
            .expect("32-byte head hash"),
    }
}

/// Polls `check` until it is `Some`, failing after [`STEP_TIMEOUT`].
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A forged ballot of `contest` marking its first candidate FOR; `n` makes its id.
fn forged_ballot(def: &ElectionDefinition, contest: &str, n: u8) -> StationEvent {
    let contest = def.contest(contest).expect("contest");
    let mut id = [0xb0; 16];
    id[15] = n;
    let ballot = Ballot::from_choices(
        BallotId::from_bytes(id),
        contest,
        &[contest.candidates[0].id.clone()],
        &[],
        &[],
    )
    .expect("a valid ballot");
    StationEvent::Ballot(ballot)
}

fn issued(contest: &str) -> StationEvent {
    StationEvent::Issued {
        contest: contest.to_string(),
        count: 1,
    }
}

fn alert(station: &str, kind: &str, sequence: u64) -> (String, String, u64) {
    (station.to_string(), kind.to_string(), sequence)
}

// ---------------------------------------------------------------------------
// The tests.

/// G2, G8: batches the center holds, sent again with the same bytes (in order and
/// backwards, more than the window at once), are DUPLICATE and count once; the
/// same bytes over another station's certificate are BAD_SIGNATURE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_batches_are_duplicates_and_count_once() {
    let day = Day::start(21);
    let a = day.recorded(0);
    let b = day.recorded(1);
    let batches = sealed_batches(&a, day.root());
    sync(&a);
    sync(&b);
    let before = day.accepted();
    let head = rogue::head_of(batches.last().expect("a batch")).expect("head");
    assert_eq!(
        day.batches_of(&a.id),
        (1..=head.sequence).collect::<Vec<_>>()
    );

    let bundle_a = day.bundle(&a.id);
    let as_a = Rogue::as_station(day.address(), &bundle_a)
        .await
        .expect("connects as a");
    assert_eq!(center_head(&as_a, &bundle_a).await, head);
    let mut again = batches.clone();
    again.extend(batches.iter().rev().cloned());
    while again.len() <= pollsync_proto::limits::MAX_IN_FLIGHT {
        again.extend(batches.iter().cloned());
    }
    let mut push = as_a.push().await.expect("push call");
    let acks = push.push_all(&again).await.expect("every replay answered");
    let want: Vec<Seen> = again
        .iter()
        .map(|b| {
            (
                AckKind::Duplicate,
                RejectReason::Unspecified,
                sequence_of(b),
                head.sequence + 1,
            )
        })
        .collect();
    assert_eq!(acks.iter().map(seen).collect::<Vec<_>>(), want);
    push.finish().await.expect("the call ends cleanly");

    // A's first batch over B's certificate: B's key does not verify it.
    let bundle_b = day.bundle(&b.id);
    let as_b = Rogue::as_station(day.address(), &bundle_b)
        .await
        .expect("connects as b");
    let b_head = center_head(&as_b, &bundle_b).await;
    let mut push = as_b.push().await.expect("push call");
    let ack = push.push(batches[0].clone()).await.expect("answered");
    assert_eq!(
        seen(&ack),
        rejected(RejectReason::BadSignature, 1, b_head.sequence + 1)
    );
    assert!(ack.detail.contains("signature"), "{}", ack.detail);
    push.finish().await.expect("the call ends cleanly");

    // The real station syncs again: nothing is missing, nothing counts twice.
    sync(&a);
    assert_eq!(day.accepted(), before, "a replay stored nothing new");
    assert_eq!(day.alerts(), vec![alert(&b.id, "BAD_SIGNATURE", 1)]);
    day.check_honest(&[&a, &b], &before);
}

/// G3, G4, G8: a batch signed with the station's real key and then changed (a
/// ballot mark, the sequence), a flipped signature byte, and the batch signed
/// with another station's key are each BAD_SIGNATURE with an alert and count
/// nowhere; the station's real batches still count, and a tampered copy sent after
/// them is still BAD_SIGNATURE, not a fork that would quarantine the station.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_batches_are_rejected_raised_and_never_counted() {
    let day = Day::start(22);
    let other = day.recorded(3);
    sync(&other);
    let before = day.accepted();
    let target = day.recorded(2);
    let batches = sealed_batches(&target, day.root());
    let first = &batches[0];
    let bundle = day.bundle(&target.id);

    let mut marked = false;
    let mark_changed =
        rogue::tampered(first, |b| marked = rogue::against_first_mark(b)).expect("tampered");
    assert!(marked, "batch 1 holds a marked ballot");
    let sequence_changed = rogue::tampered(first, |b| b.sequence = 2).expect("tampered");
    let mut signature_flipped = first.clone();
    signature_flipped.signature[10] ^= 0x01;
    let batch = pb::Batch::decode(first.batch.as_slice()).expect("batch 1 decodes");
    let other_key = Forger::new(&bundle)
        .signing_as(&day.bundle(&other.id))
        .sign(&batch)
        .expect("signed");
    assert_eq!(other_key.batch, first.batch, "same content, other key");
    let forgeries = [
        ("a ballot mark changed", mark_changed, 1),
        ("the sequence changed", sequence_changed, 2),
        ("a signature byte flipped", signature_flipped, 1),
        ("signed with another station's key", other_key, 1),
    ];

    let as_target = Rogue::as_station(day.address(), &bundle)
        .await
        .expect("connects");
    assert_eq!(center_head(&as_target, &bundle).await, ChainHead::GENESIS);
    let mut push = as_target.push().await.expect("push call");
    for (what, forged, sequence) in &forgeries {
        assert_ne!(
            (&forged.batch, &forged.signature),
            (&first.batch, &first.signature),
            "{what}"
        );
        let ack = push.push(forged.clone()).await.expect("answered");
        assert_eq!(
            seen(&ack),
            rejected(RejectReason::BadSignature, *sequence, 1),
            "{what}"
        );
        assert!(ack.detail.contains("signature"), "{what}: {}", ack.detail);
    }
    push.finish().await.expect("the call ends cleanly");
    assert!(
        day.batches_of(&target.id).is_empty(),
        "no forgery was stored"
    );

    // The real batches, including the real batch 1, all count.
    sync(&target);
    let head = rogue::head_of(batches.last().expect("a batch")).expect("head");
    assert_eq!(
        day.batches_of(&target.id),
        (1..=head.sequence).collect::<Vec<_>>()
    );
    // A forged batch 1 now, below the head: still a bad signature, not a fork.
    let mut push = as_target.push().await.expect("push call");
    let ack = push.push(forgeries[0].1.clone()).await.expect("answered");
    assert_eq!(
        seen(&ack),
        rejected(RejectReason::BadSignature, 1, head.sequence + 1)
    );
    push.finish().await.expect("the call ends cleanly");
    let row = day
        .center
        .open_store()
        .stations()
        .expect("stations")
        .into_iter()
        .find(|s| s.station == target.id)
        .expect("station row");
    assert!(!row.quarantined && !row.revoked, "{row:?}");
    sync(&target);

    let mut want: Vec<_> = forgeries
        .iter()
        .map(|(_, _, seq)| alert(&target.id, "BAD_SIGNATURE", *seq))
        .collect();
    want.push(alert(&target.id, "BAD_SIGNATURE", 1));
    assert_eq!(day.alerts(), want);
    day.check_honest(&[&other, &target], &before);
}

/// G3: a certificate from another CA (same election and station id) gets no
/// answer and pushes nothing, not even the station's real signed batches; a
/// certificate from the election's CA for a station not in the election is
/// refused at Hello with the reason, and its batch is BAD_SIGNATURE with an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_for_no_station_of_the_election_get_nothing_in() {
    let day = Day::start(23);
    let station = day.recorded(4);
    let real = sealed_batches(&station, day.root());
    let bundle = day.bundle(&station.id);

    let other_ca = ElectionCa::generate(&bundle.election_id, bundle.mode).expect("another CA");
    let fake = other_ca
        .issue_station(&station.id)
        .expect("a fake certificate");
    // TLS 1.3: the connection may open; then the first call must fail.
    match Rogue::with_certificate(
        day.address(),
        &bundle.ca_cert_pem,
        &fake.cert_pem,
        &fake.key_pem,
    )
    .await
    {
        Err(e) => assert_refused_by_tls(&e),
        Ok(impostor) => {
            match impostor.hello(Forger::new(&bundle).hello()).await {
                Err(e) => assert_refused_by_tls(&e),
                Ok(reply) => panic!("another CA's certificate got a Hello reply: {reply:?}"),
            }
            // Not even the station's real signed batches get in over it.
            match impostor.push().await {
                Err(e) => assert_refused_by_tls(&e),
                Ok(mut push) => match push.push(real[0].clone()).await {
                    Err(e) => assert_refused_by_tls(&e),
                    Ok(ack) => panic!("another CA's certificate pushed a batch: {ack:?}"),
                },
            }
        }
    }
    assert!(day.accepted().is_empty(), "nothing got in");

    // The election's own CA, for a station the election does not have.
    let meta = day.center.open_store().meta().expect("meta");
    let ca = meta.ca(None).expect("the CA");
    const STRANGER: &str = "S-STRANGER";
    assert!(day.def.station(STRANGER).is_none());
    let stranger = EnrollmentBundle::issue(&ca, STRANGER, &[day.address()], &meta.election_toml)
        .expect("a bundle for a station not in the election");
    let rogue = Rogue::as_station(day.address(), &stranger)
        .await
        .expect("connects");
    let refusal = rogue
        .hello(Forger::new(&stranger).hello())
        .await
        .expect_err("refused");
    let status = refusal.status().expect("a gRPC status");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains(STRANGER)
            && status
                .message()
                .contains(&format!("not in election {}", bundle.election_id)),
        "{}",
        status.message()
    );
    // Push admits the same peers as Hello: the call is refused before any batch.
    let refusal = rogue.push().await.err().expect("push refused");
    let status = refusal.status().expect("a gRPC status");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("not in election"), "{status:?}");
    assert!(day.accepted().is_empty(), "nothing got in");

    sync(&station);
    // Nothing is charged to a station the election does not have.
    assert_eq!(day.alerts(), vec![]);
    day.check_honest(&[&station], &Accepted::new());
}

/// The call failed below gRPC (the TLS layer refused the certificate), not with
/// one of the center's own refusals, which would mean the handshake passed.
fn assert_refused_by_tls(e: &RogueError) {
    match e {
        RogueError::Connect(_) => {}
        RogueError::Status(s) => assert!(
            matches!(
                s.code(),
                Code::Unknown | Code::Unavailable | Code::Cancelled
            ),
            "refused after the handshake, not by it: {s:?}"
        ),
        other => panic!("not a refusal: {other}"),
    }
}

fn station_contest(day: &Day, index: usize) -> String {
    day.def.stations[index].contests[0].clone()
}

/// Issue 15 (SPEC §10): a batch its station signed but that names the other mode
/// (a rehearsal's batch re-signed, or a device built for the other mode) is
/// refused as WRONG_MODE, naming the mode: nothing is counted, and the one alert is
/// charged to the station whose signature verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_the_other_mode_is_refused_by_name() {
    let day = Day::start(37);
    let id = day.id(1);
    let contest = station_contest(&day, 1);
    let bundle = day.bundle(&id);
    let other = match day.def.election.mode {
        pollsync_election::Mode::Official => "test",
        pollsync_election::Mode::Test => "official",
    };
    let before = day.accepted();
    let rogue = Rogue::as_station(day.address(), &bundle)
        .await
        .expect("connects");
    let forger = Forger::new(&bundle);
    rogue.hello(forger.hello()).await.expect("hello accepted");
    let mut batch = forger.batch(&[issued(&contest)]);
    batch.mode = other.into();
    let mut push = rogue.push().await.expect("push call");
    let ack = push
        .push(forger.sign(&batch).expect("signed"))
        .await
        .expect("answered");
    assert_eq!(
        seen(&ack),
        (AckKind::Rejected, RejectReason::WrongMode, 1, 1)
    );
    assert!(
        ack.detail.contains(&format!("mode \"{other}\""))
            && ack.detail.contains(day.def.election.mode.as_str()),
        "{}",
        ack.detail
    );
    push.finish().await.expect("the call ends cleanly");
    assert_eq!(day.accepted(), before, "nothing counted");
    assert_eq!(day.alerts(), vec![alert(&id, "WRONG_MODE", 1)]);
}

/// Issue 15 (SPEC §3, G10): a station's batch 1 that does not open with its zero
/// report, signed with the station's own key, is accepted and counted, but `center
/// alerts --json` and `center status` show a NO_ZERO_REPORT alert charged to that
/// station alone; honest stations (the `station` binary opens batch 1 with the
/// report at `station init`) raise none, and the audit stays clean, naming the
/// chain as a finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_zero_report_is_flagged() {
    let day = Day::start(31);
    let honest = day.recorded(0);
    sync(&honest);
    let before = day.accepted();
    assert!(day.alerts().is_empty(), "{:?}", day.alerts());

    let bare = day.id(1);
    let contest = station_contest(&day, 1);
    let bundle = day.bundle(&bare);
    let rogue = Rogue::as_station(day.address(), &bundle)
        .await
        .expect("connects");
    let mut forger = Forger::new(&bundle);
    rogue.hello(forger.hello()).await.expect("hello accepted");
    let batch = forger
        .seal(&[issued(&contest), forged_ballot(&day.def, &contest, 1)])
        .expect("signed");
    let mut push = rogue.push().await.expect("push call");
    let ack = push.push(batch).await.expect("answered");
    assert_eq!(
        seen(&ack),
        (AckKind::Accepted, RejectReason::Unspecified, 1, 2)
    );
    push.finish().await.expect("the call ends cleanly");

    assert_eq!(day.alerts(), vec![alert(&bare, "NO_ZERO_REPORT", 1)]);
    let listed = day.center.json(&["alerts", "--json"]);
    let detail = listed[0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains(&format!(
            "station {bare}'s chain does not start with a zero report"
        )),
        "{detail}"
    );
    let status = day.center.json(&["status", "--json"]);
    assert_eq!(status["alerts"], 1, "{status}");
    let text = ok(day.center.command().arg("alerts"));
    assert!(
        text.contains("NO_ZERO_REPORT") && text.contains(&bare),
        "{text}"
    );
    // The forged station's ballot counts all the same.
    let held = center_tallies(&day.center);
    assert_eq!(held[&bare][&contest].returned, 1);
    // The honest station's batch 1, as the center holds it, opens with its report.
    let store = day.center.open_store();
    let first = store
        .batches(Some(&honest.id))
        .expect("batches read")
        .into_iter()
        .find(|b| b.sequence == 1)
        .expect("batch 1");
    let first = pb::Batch::decode(first.batch.as_slice()).expect("decodes");
    assert_eq!(
        first.events[0].kind,
        Some(pb::event::Kind::ZeroReport(pb::ZeroReport {
            contests: day.def.stations[0].contests.clone()
        }))
    );
    let audit = day.center.json(&["audit", "--json"]);
    let findings = audit["findings"].to_string();
    assert!(
        findings.contains(&bare)
            && findings.contains("zero report")
            && !findings.contains(&honest.id),
        "{findings}"
    );
    day.check_honest(&[&honest], &before);
}

/// G3, G8: after `center revoke`, the station's open push call is cut, new calls
/// and Hellos are refused, and its `station sync` fails naming the revocation;
/// nothing it recorded afterwards counts (not one more ballot, not its closes),
/// what it sent before stays, and the other stations sync as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_station_is_refused_and_nothing_more_from_it_counts() {
    let day = Day::start(24);
    let revoked = day.station(3);
    record_ballots(&revoked, &day.drawn, day.root());
    sync(&revoked);
    let before = day.accepted();
    let bundle = day.bundle(&revoked.id);
    let as_revoked = Rogue::as_station(day.address(), &bundle)
        .await
        .expect("connects");
    let head = center_head(&as_revoked, &bundle).await;
    assert!(head.sequence > 0);
    let mut open = as_revoked.push().await.expect("push call");

    ok(day
        .center
        .command()
        .args(["revoke", &revoked.id, "--reason", "device reported stolen"]));
    let refusal = eventually(
        "the serving center to refuse the revoked station",
        || async {
            as_revoked
                .hello(Forger::new(&bundle).after(head).hello())
                .await
                .err()
        },
    )
    .await;
    let status = refusal.status().expect("a gRPC status");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("revoked"), "{}", status.message());
    // The call opened before the revocation is cut.
    match open.next().await {
        Err(RogueError::Status(s)) => {
            assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
            assert!(s.message().contains("REVOKED"), "{}", s.message());
        }
        other => panic!("the open call of a revoked station goes on: {other:?}"),
    }
    let refused = as_revoked
        .push()
        .await
        .err()
        .expect("a new call is refused");
    assert_eq!(
        refused.status().map(tonic::Status::code),
        Some(Code::PermissionDenied),
        "{refused}"
    );

    // The device records one more ballot and closes; none of it reaches the count.
    let contest = station_contest(&day, 3);
    let candidate = day.def.contest(&contest).expect("contest").candidates[0]
        .id
        .clone();
    revoked.ok(&["record", "--contest", &contest, "--for", &candidate]);
    for c in &day.def.stations[3].contests {
        revoked.ok(&["close", "--contest", c, "--from-records"]);
    }
    let out = run(revoked
        .command()
        .args(["sync", "--timeout-s", SYNC_TIMEOUT_S]));
    assert!(!out.status.success(), "a revoked station's sync must fail");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("revoked"), "the station is told why: {said}");

    let others = day.recorded(5);
    sync(&others);
    assert_eq!(
        day.batches_of(&revoked.id),
        (1..=head.sequence).collect::<Vec<_>>()
    );
    let store = day.center.open_store();
    for t in store.tallies().expect("tallies") {
        if t.station == revoked.id {
            assert!(!t.closed, "{}: a close after revocation counted", t.contest);
        }
    }
    // The revocation, and one STALE_KEY alert for the revoked device's attempts.
    assert_eq!(
        day.alerts(),
        vec![
            alert(&revoked.id, "REVOKED", 0),
            alert(&revoked.id, "STALE_KEY", 0)
        ]
    );
    day.check_honest(&[&revoked, &others], &before);
}

/// Starts `attack` (given a stop flag and a counter of rounds done), waits until
/// it is under way, syncs every `honest` station to the end meanwhile, then stops
/// the attack and returns what it returned, with the rounds it completed.
async fn while_honest_sync<T: Send + 'static>(
    honest: &[Station],
    attack_name: &str,
    attack: impl FnOnce(Arc<AtomicBool>, Arc<AtomicU64>) -> tokio::task::JoinHandle<T>,
) -> (T, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let running = attack(stop.clone(), rounds.clone());
    eventually(&format!("{attack_name} to be under way"), || async {
        (rounds.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    let syncs: Vec<_> = honest.iter().map(sync_in_background).collect();
    for (station, handle) in honest.iter().zip(syncs) {
        assert_synced(&station.id, &handle.join().expect("sync thread"));
    }
    stop.store(true, Ordering::SeqCst);
    let returned = running.await.expect("the attack's task");
    (returned, rounds.load(Ordering::SeqCst))
}

/// Sends messages over `MAX_MESSAGE_BYTES`, each on its own call (a push message
/// holding an oversized batch, and bytes that are no push message), until `stop`.
/// Returns how each call ended: the center's status, or what else happened.
async fn oversize(
    rogue: Rogue,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
) -> Result<Vec<Result<tonic::Status, String>>, RogueError> {
    let oversized_batch = pb::PushMessage::batch(pb::SignedBatch {
        batch: vec![0x5a; MAX_MESSAGE_BYTES + 1],
        signature: vec![0; 64],
    })
    .encode_to_vec();
    let oversized_raw = vec![0xff; MAX_MESSAGE_BYTES + 1];
    let mut ends = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        for message in [&oversized_batch, &oversized_raw] {
            let mut push = rogue.push().await?;
            // The center may end the call before it has all the bytes.
            let _ = push.send_raw(message.clone()).await;
            ends.push(match push.next().await {
                Err(RogueError::Status(s)) => Ok(s),
                other => Err(format!("{other:?}")),
            });
        }
        rounds.fetch_add(1, Ordering::SeqCst);
    }
    Ok(ends)
}

/// G7, G8: a message over `MAX_MESSAGE_BYTES` (a push message or bytes that are
/// none) ends its own call with OUT_OF_RANGE naming the limit, while other stations
/// sync to the truth meanwhile; a message within the limit holding a batch over
/// `MAX_BATCH_BYTES` is TOO_LARGE with an alert. Nothing of it counts, and the
/// station can still say Hello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_end_only_their_own_call_while_others_sync() {
    let day = Day::start(25);
    let honest: Vec<Station> = (0..3).map(|i| day.recorded(i)).collect();
    let big_id = day.id(6);
    let bundle = day.bundle(&big_id);
    let rogue = Rogue::as_station(day.address(), &bundle)
        .await
        .expect("connects");
    assert_eq!(center_head(&rogue, &bundle).await, ChainHead::GENESIS);

    let (ends, _) = while_honest_sync(&honest, "oversized messages", |stop, rounds| {
        tokio::spawn(oversize(rogue.clone(), stop, rounds))
    })
    .await;
    let ends = ends.expect("every oversized call ended");
    assert!(!ends.is_empty());
    for end in &ends {
        match end {
            Ok(s) => {
                assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
                assert!(
                    s.message().contains(&MAX_MESSAGE_BYTES.to_string()),
                    "the status names the limit: {}",
                    s.message()
                );
            }
            Err(other) => panic!("an oversized message did not end its call: {other}"),
        }
    }

    // Within the message limit, a batch over the batch limit: rejected, raised.
    let mut push = rogue.push().await.expect("push call");
    let ack = push
        .push(pb::SignedBatch {
            batch: vec![0x0a; MAX_BATCH_BYTES + 1],
            signature: vec![0; 64],
        })
        .await
        .expect("answered");
    assert_eq!(seen(&ack), rejected(RejectReason::TooLarge, 0, 1));
    assert!(
        ack.detail.contains(&MAX_BATCH_BYTES.to_string()),
        "{}",
        ack.detail
    );
    push.finish().await.expect("the call ends cleanly");

    // The station's identity still works, and nothing of it was stored.
    assert_eq!(center_head(&rogue, &bundle).await, ChainHead::GENESIS);
    assert!(day.batches_of(&big_id).is_empty());
    assert_eq!(day.alerts(), vec![alert(&big_id, "TOO_LARGE", 0)]);
    let honest: Vec<&Station> = honest.iter().collect();
    day.check_honest(&honest, &Accepted::new());
}

/// G3 at the station and at the center: `station record` and `issue` after
/// `close` are refused naming the contest; a batch signed with the real key with a
/// ballot for a contest closed in an earlier batch, or after the close in the same
/// batch, is AFTER_CLOSE with an alert, and counts nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_after_close_are_refused_at_the_station_and_rejected_at_the_center() {
    let day = Day::start(26);
    let closed = day.recorded(6);
    let contest = station_contest(&day, 6);
    let candidate = day.def.contest(&contest).expect("contest").candidates[0]
        .id
        .clone();
    for args in [
        vec!["record", "--contest", &contest, "--for", &candidate],
        vec!["issue", "--contest", &contest, "--count", "1"],
    ] {
        let out = run(closed.command().args(&args));
        assert!(!out.status.success(), "{args:?} after close must fail");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&contest) && said.contains("closed"),
            "{args:?}: {said}"
        );
    }
    sync(&closed);
    let before = day.accepted();

    // With the station's own key, after its close: one more ballot, one more issued.
    let bundle = day.bundle(&closed.id);
    let rogue = Rogue::as_station(day.address(), &bundle)
        .await
        .expect("connects");
    let head = center_head(&rogue, &bundle).await;
    let mut forger = Forger::new(&bundle).after(head);
    let late = forger
        .seal(&[forged_ballot(&day.def, &contest, 1), issued(&contest)])
        .expect("signed");
    let mut push = rogue.push().await.expect("push call");
    let ack = push.push(late).await.expect("answered");
    let next = head.sequence + 1;
    assert_eq!(seen(&ack), rejected(RejectReason::AfterClose, next, next));
    assert!(ack.detail.contains(&contest), "{}", ack.detail);
    push.finish().await.expect("the call ends cleanly");

    // A station that sent nothing yet: its batch 1 closes a contest, then has a
    // ballot for it.
    let fresh = day.station(7);
    let fresh_contest = station_contest(&day, 7);
    let fresh_bundle = day.bundle(&fresh.id);
    let as_fresh = Rogue::as_station(day.address(), &fresh_bundle)
        .await
        .expect("connects");
    let mut forger = Forger::new(&fresh_bundle);
    let batch = forger
        .seal(&[
            issued(&fresh_contest),
            forged_ballot(&day.def, &fresh_contest, 1),
            StationEvent::Close {
                contest: fresh_contest.clone(),
                sheet: TallySheet::default(),
            },
            forged_ballot(&day.def, &fresh_contest, 2),
        ])
        .expect("signed");
    let mut push = as_fresh.push().await.expect("push call");
    let ack = push.push(batch).await.expect("answered");
    assert_eq!(seen(&ack), rejected(RejectReason::AfterClose, 1, 1));
    assert!(
        ack.detail.contains(&fresh_contest) && ack.detail.contains("after its close"),
        "{}",
        ack.detail
    );
    push.finish().await.expect("the call ends cleanly");
    // Its real day is another batch 1, and counts (the rejected one was no fork).
    record_day(&fresh, &day.drawn, day.root());
    sync(&fresh);

    assert_eq!(
        day.alerts(),
        vec![
            alert(&closed.id, "AFTER_CLOSE", next),
            alert(&fresh.id, "AFTER_CLOSE", 1),
        ]
    );
    day.check_honest(&[&closed, &fresh], &before);
}

/// Deterministic bytes that are not a batch.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// What a hostile station's flood got back.
#[derive(Debug, Default)]
struct Flood {
    /// Acknowledgements by (kind, reason).
    acks: BTreeMap<(i32, i32), u64>,
    /// Status codes that ended its calls.
    ended: BTreeMap<String, u64>,
}

/// Messages in one round of the flood.
const FLOOD_ROUND: usize = 48;

/// Pushes rounds of garbage and badly signed batches, and a call-ending message
/// that is no push message at all after each round, until `stop`.
async fn flood(
    rogue: Rogue,
    forger: Forger,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
) -> Result<Flood, RogueError> {
    let mut report = Flood::default();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let mut messages = Vec::with_capacity(FLOOD_ROUND);
        for i in 0..FLOOD_ROUND {
            n += 1;
            let signed = match i % 3 {
                // Bytes that do not decode as a batch.
                0 => pb::SignedBatch {
                    batch: garbage(n, 64 + (n as usize % 512)),
                    signature: garbage(n + 1, 64),
                },
                // A well-formed batch signed with another station's key.
                1 => {
                    let head = ChainHead {
                        sequence: n % 7,
                        hash: [n as u8; 32],
                    };
                    forger.clone().after(head).seal(&[])?
                }
                // A signature of the wrong length.
                _ => pb::SignedBatch {
                    batch: garbage(n, 100),
                    signature: garbage(n, 63),
                },
            };
            messages.push(pb::PushMessage::batch(signed).encode_to_vec());
        }
        let mut push = rogue.push().await?;
        for ack in push.pipeline(messages).await? {
            *report.acks.entry((ack.kind, ack.reason)).or_default() += 1;
        }
        // Bytes that are no push message: the center ends the call.
        let _ = push.send_raw(vec![0xff; 64]).await;
        let end = match push.next().await {
            Err(RogueError::Status(s)) => format!("{:?}", s.code()),
            other => format!("{other:?}"),
        };
        *report.ended.entry(end).or_default() += 1;
        rounds.fetch_add(1, Ordering::SeqCst);
    }
    Ok(report)
}

/// G7, G3: one station floods the center with garbage, badly signed batches and
/// undecodable messages while three honest stations sync; they reach the exact
/// truth, every flooded batch is rejected with one alert each, and nothing of the
/// flood is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_station_does_not_stop_the_honest_ones() {
    let day = Day::start(27);
    let honest: Vec<Station> = (0..3).map(|i| day.recorded(i)).collect();
    let hostile = day.id(8);
    let bundle = day.bundle(&hostile);
    let rogue = Rogue::as_station(day.address(), &bundle)
        .await
        .expect("connects");
    assert_eq!(center_head(&rogue, &bundle).await, ChainHead::GENESIS);
    let forger = Forger::new(&bundle).signing_as(&day.bundle(&honest[0].id));
    let (report, rounds_done) = while_honest_sync(&honest, "the flood", |stop, rounds| {
        tokio::spawn(flood(rogue, forger, stop, rounds))
    })
    .await;
    let report = report.expect("the flood ran to the end");

    let rejected_total: u64 = report.acks.values().sum();
    let reasons: Vec<(AckKind, RejectReason)> = report
        .acks
        .keys()
        .map(|&(kind, reason)| {
            (
                AckKind::try_from(kind).expect("ack kind"),
                RejectReason::try_from(reason).expect("reason"),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (AckKind::Rejected, RejectReason::BadSignature),
            (AckKind::Rejected, RejectReason::Malformed),
        ],
        "{report:?}"
    );
    assert_eq!(
        rejected_total,
        rounds_done * FLOOD_ROUND as u64,
        "{report:?}"
    );
    assert_eq!(
        report.ended.keys().collect::<Vec<_>>(),
        vec!["Internal"],
        "{report:?}"
    );

    assert!(
        day.batches_of(&hostile).is_empty(),
        "nothing of the flood is stored"
    );
    // One alert per rejection, up to the station's limit; then one that says so.
    use pollsync_center::ingest::alerts::{MAX_ALERTS_PER_STATION, SUPPRESSED_KIND};
    let alerts = day.alerts();
    let expected = if rejected_total > MAX_ALERTS_PER_STATION {
        MAX_ALERTS_PER_STATION + 1
    } else {
        rejected_total
    };
    assert_eq!(
        alerts.len() as u64,
        expected,
        "alerts for {rejected_total} rejections"
    );
    assert!(
        alerts.iter().all(|(s, k, _)| s == &hostile
            && (k == "BAD_SIGNATURE" || k == "MALFORMED" || k == SUPPRESSED_KIND)),
        "{alerts:?}"
    );
    let honest: Vec<&Station> = honest.iter().collect();
    day.check_honest(&honest, &Accepted::new());
}
