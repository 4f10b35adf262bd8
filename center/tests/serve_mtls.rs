//! `center::serve::serve_grpc` end to end in process, over real mutual TLS on
//! loopback: a center store is created in a temporary folder with the library's
//! `init` and `enroll`, the ingest writer is started on it, and tonic clients
//! holding the enrollment bundles' certificates talk to the served
//! `StationSync`. Every test checks the exact acknowledgements (docs/PROTOCOL.md
//! §7, §7.1), then the alerts and the tallies as the store holds them once the
//! center has stopped:
//!
//! - a client certificate from another CA gets no answer;
//! - one stream: ACCEPTED, DUPLICATE, GAP (no alert), BAD_SIGNATURE, ACCEPTED,
//!   AFTER_CLOSE, and tallies equal to the honest batches only;
//! - a fork quarantines the station (QUARANTINED, Hello refused) while another
//!   station keeps syncing (G7);
//! - a batch naming another station over this station's certificate is
//!   WRONG_STATION;
//! - a message over 4 MiB ends that stream with an error status and applies
//!   nothing, while another station's stream goes on;
//! - 40 batches pipelined (more than the window of 32) are acknowledged in order.

mod support;

use pollsync_center::store::Records as _;
use support::StationChain as Chain;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use pollsync_center::ingest::{self, IngestHandle};
use pollsync_center::serve::{ServeError, TlsPems, serve_grpc};
use pollsync_center::store::{StationRow, Store};
use pollsync_election::{Ballot, BallotId, ElectionDefinition, Mark, StationEvent, TallySheet};
use pollsync_proto::limits::MAX_MESSAGE_BYTES;
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use pollsync_proto::pb::{self, AckKind, RejectReason};
use pollsync_proto::{ElectionCa, EnrollmentBundle, tls};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status, Streaming};

use Mark::{Against as X, For as F, None as O};

/// Two contests (D-01: 2 seats, 3 candidates; T-01: 1 seat, 2 candidates), both at
/// stations ST-A and ST-B.
const ELECTION: &str = r#"
[election]
id = "serve-mtls-2026"
name = "联网测试选举"
date = "2026-11-01"
rules = "prc-direct"

[[unit]]
id = "hepan"
name = "河畔镇"
kind = "town"

[[contest]]
id = "D-01"
level = "district"
unit = "hepan"
name = "区级第1选区"
seats = 2
registered = 2000
candidates = [
  { id = "D-01-1", name = "孙丽", gender = "F", ethnicity = "汉族", party = "中共" },
  { id = "D-01-2", name = "马超", gender = "M", ethnicity = "回族", party = "群众" },
  { id = "D-01-3", name = "黄敏", gender = "F", ethnicity = "汉族", party = "中共", incumbent = true },
]

[[contest]]
id = "T-01"
level = "town"
unit = "hepan"
name = "河畔镇镇级第1选区"
seats = 1
registered = 1000
candidates = [
  { id = "T-01-1", name = "吴刚", gender = "M", ethnicity = "汉族", party = "民盟" },
  { id = "T-01-2", name = "郑洁", gender = "F", ethnicity = "满族", party = "中共" },
]

[[station]]
id = "ST-A"
name = "河畔镇第1投票站"
kind = "fixed"
contests = ["D-01", "T-01"]

[[station]]
id = "ST-B"
name = "河畔镇第1流动票箱"
kind = "mobile"
contests = ["D-01", "T-01"]
"#;

const A: &str = "ST-A";
const B: &str = "ST-B";

/// Longest any single step (an answer, a connection, a shutdown) may take.
const DEADLINE: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {DEADLINE:?}"))
}

// ---------------------------------------------------------------------------
// The center: store, ingest writer and gRPC server.

struct Center {
    /// The initialised and enrolled store (its folder lives as long as this).
    prepared: support::Center,
    addr: SocketAddr,
    ingest: IngestHandle,
    writer: std::thread::JoinHandle<()>,
    shutdown: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// What the store holds once the center has stopped.
struct Outcome {
    tallies: BTreeMap<String, BTreeMap<String, TallySheet>>,
    alerts: Vec<(String, String, u64)>,
    stations: Vec<StationRow>,
    batches: BTreeMap<String, Vec<u64>>,
}

impl Outcome {
    fn station(&self, id: &str) -> &StationRow {
        self.stations
            .iter()
            .find(|s| s.station == id)
            .unwrap_or_else(|| panic!("no station row {id}"))
    }
}

impl Center {
    async fn start() -> Center {
        // Before any client builds its TLS configuration (serve_grpc does it too,
        // but in the server's task, maybe later).
        tls::install_crypto_provider();
        // The store, CA and bundles as every center test makes them.
        let prepared = support::Center::with_election(ELECTION);
        let data = prepared.data.clone();
        let meta = Store::open(&data).unwrap().meta().unwrap();
        let pems = TlsPems {
            server_cert_pem: meta.server_cert_pem,
            server_key_pem: meta.server_key_pem,
            ca_cert_pem: meta.ca_cert_pem,
        };
        let (ingest, writer) = ingest::start(&data).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let handle = ingest.clone();
        let server = tokio::spawn(async move {
            serve_grpc(handle, &pems, listener, async {
                let _ = stop.await;
            })
            .await
        });
        Center {
            prepared,
            addr,
            ingest,
            writer,
            shutdown,
            server,
        }
    }

    fn bundle(&self, station: &str) -> EnrollmentBundle {
        self.prepared.bundle(station)
    }

    fn chain(&self, station: &str) -> Chain {
        Chain::from_bundle(&self.bundle(station))
    }

    fn ca_cert_pem(&self) -> String {
        Store::open(&self.prepared.data)
            .unwrap()
            .meta()
            .unwrap()
            .ca_cert_pem
    }

    /// A new connection (its own TCP + TLS session) with `tls`.
    async fn connect(&self, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
        within(
            "connect",
            Endpoint::from_shared(format!("https://{}", self.addr))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect_timeout(DEADLINE)
                .connect(),
        )
        .await
    }

    /// A new connection as `station` (its enrollment bundle's certificate).
    async fn client(&self, station: &str) -> StationSyncClient<Channel> {
        let channel = self
            .connect(self.bundle(station).client_tls_config())
            .await
            .unwrap_or_else(|e| panic!("{station} cannot connect: {e:?}"));
        StationSyncClient::new(channel)
    }

    /// Stops the server (every client must be gone), then the writer, and reads
    /// the store.
    async fn stop(self) -> Outcome {
        let _ = self.shutdown.send(());
        within("server shutdown", self.server)
            .await
            .expect("server task")
            .expect("server ran without error");
        self.ingest.shutdown();
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.join().expect("writer thread"))
            .await
            .unwrap();
        let store = Store::open(&self.prepared.data).unwrap();
        let mut batches: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for b in store.batches(None).unwrap() {
            batches.entry(b.station).or_default().push(b.sequence);
        }
        let outcome = Outcome {
            tallies: store.tally_map().unwrap(),
            alerts: store
                .alerts()
                .unwrap()
                .into_iter()
                .map(|a| (a.station, a.kind, a.sequence))
                .collect(),
            stations: store.stations().unwrap(),
            batches,
        };
        drop(store);
        drop(self.prepared);
        outcome
    }
}

// ---------------------------------------------------------------------------
// A station's side: sealing signed, chained batches and pushing them.

/// Says Hello and checks the center's head for this station.
async fn hello(client: &mut StationSyncClient<Channel>, chain: &Chain, center_head: u64) {
    let reply = within("hello", client.hello(chain.hello()))
        .await
        .unwrap_or_else(|s| panic!("{} refused at hello: {s:?}", chain.writer.station_id()))
        .into_inner();
    assert_eq!(reply.center_head_sequence, center_head);
    assert_eq!(reply.max_in_flight, 32);
    assert_eq!(reply.max_message_bytes, MAX_MESSAGE_BYTES as u32);
}

/// One open `Push` call: messages go in through a channel (so that they can be
/// sent while acknowledgements are awaited), acknowledgements come out.
struct Push {
    tx: Option<mpsc::Sender<pb::PushMessage>>,
    acks: Streaming<pb::Ack>,
}

impl Push {
    async fn open(client: &mut StationSyncClient<Channel>) -> Result<Push, Status> {
        let (tx, rx) = mpsc::channel(128);
        let acks = within("push call", client.push(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        Ok(Push { tx: Some(tx), acks })
    }

    async fn send_message(&self, message: pb::PushMessage) {
        self.tx
            .as_ref()
            .expect("the push stream is open")
            .send(message)
            .await
            .expect("the client still sends");
    }

    async fn send(&self, batch: pb::SignedBatch) {
        self.send_message(pb::PushMessage::batch(batch)).await;
    }

    /// The next item of the acknowledgement stream (`Ok(None)`: ended cleanly).
    async fn next(&mut self) -> Result<Option<pb::Ack>, Status> {
        within("acknowledgement", self.acks.message()).await
    }

    async fn ack(&mut self) -> pb::Ack {
        match self.next().await {
            Ok(Some(ack)) => ack,
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    }

    async fn push(&mut self, batch: pb::SignedBatch) -> pb::Ack {
        self.send(batch).await;
        self.ack().await
    }

    /// Half-closes the request side: the center answers what is in flight and ends.
    fn close(&mut self) {
        self.tx = None;
    }
}

type Seen = (AckKind, RejectReason, u64, u64);

/// (kind, reason, sequence, expected_sequence) of an acknowledgement.
fn seen(ack: &pb::Ack) -> Seen {
    (
        ack.kind(),
        ack.reason(),
        ack.sequence,
        ack.expected_sequence,
    )
}

fn accepted(sequence: u64) -> Seen {
    (
        AckKind::Accepted,
        RejectReason::Unspecified,
        sequence,
        sequence + 1,
    )
}

fn rejected(reason: RejectReason, sequence: u64, expected: u64) -> Seen {
    (AckKind::Rejected, reason, sequence, expected)
}

// ---------------------------------------------------------------------------
// Events and the tallies they must give.

fn ballot(id: u32, contest: &str, marks: &[Mark], write_ins: &[&str]) -> StationEvent {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&id.to_be_bytes());
    bytes[15] = 0x5e;
    StationEvent::Ballot(Ballot {
        id: BallotId::from_bytes(bytes),
        contest: contest.into(),
        marks: marks.to_vec(),
        write_ins: write_ins.iter().map(|s| s.to_string()).collect(),
    })
}

fn issued(contest: &str, count: u64) -> StationEvent {
    StationEvent::Issued {
        contest: contest.into(),
        count,
    }
}

fn close(contest: &str, sheet: TallySheet) -> StationEvent {
    StationEvent::Close {
        contest: contest.into(),
        sheet,
    }
}

fn definition() -> ElectionDefinition {
    pollsync_election::load("election.toml", ELECTION).unwrap()
}

/// The tallies of `events` applied once each, in order, by the election crate
/// (`election::Ledger`, for the first station serving every contest they name),
/// for the contests they name, zero entries left out (a close only makes its
/// contest show).
fn expected(events: &[&[StationEvent]]) -> BTreeMap<String, TallySheet> {
    let events: Vec<StationEvent> = events.iter().flat_map(|e| e.iter().cloned()).collect();
    support::truth_in(ELECTION, &events)
}

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_gets_no_answer() {
    let center = Center::start().await;
    // Same election id, same station id as an enrolled station, another CA.
    let rogue_ca =
        ElectionCa::generate("serve-mtls-2026", pollsync_election::Mode::Official).unwrap();
    let rogue = rogue_ca.issue_station(A).unwrap();
    let config = tls::client_tls_config(
        &center.ca_cert_pem(),
        &rogue.cert_pem,
        &rogue.key_pem,
        "127.0.0.1",
    );
    let chain = center.chain(A);
    // connect() may succeed: with TLS 1.3 the client is done with its side before
    // the server judges its certificate. The first RPC must fail.
    match center.connect(config).await {
        Err(_) => {}
        Ok(channel) => {
            let mut client = StationSyncClient::new(channel);
            let result = within("rogue hello", client.hello(chain.hello())).await;
            assert!(
                result.is_err(),
                "a rogue certificate got an answer: {result:?}"
            );
            let pushed = Push::open(&mut client).await;
            assert!(pushed.is_err(), "a rogue certificate could push");
        }
    }
    // The enrolled station gets in, so the refusal above was the certificate's.
    let mut client = center.client(A).await;
    hello(&mut client, &chain, 0).await;
    drop(client);
    let out = center.stop().await;
    assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    assert!(out.tallies.is_empty());
    assert!(out.batches.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_sees_every_acknowledgement_and_only_honest_batches_count() {
    let center = Center::start().await;
    let mut a = center.chain(A);
    let b_key = center.bundle(B).signing_key().unwrap();
    let e1 = vec![
        ballot(1, "D-01", &[F, X, O], &[]),
        ballot(2, "D-01", &[F, F, F], &[]), // void: 3 FOR marks for 2 seats
        ballot(3, "D-01", &[O, O, O], &["钱七"]),
        ballot(4, "T-01", &[O, F], &[]),
        issued("D-01", 3),
        issued("T-01", 1),
    ];
    let mut t01 = TallySheet::default();
    let mut e2 = vec![
        ballot(5, "T-01", &[F, X], &[]),
        ballot(6, "D-01", &[X, F, O], &["钱七"]),
        issued("T-01", 1),
        issued("D-01", 1),
    ];
    {
        // The station's own count of T-01 goes into its close.
        let def = definition();
        for e in e1.iter().chain(&e2) {
            match e {
                StationEvent::Ballot(b) if b.contest == "T-01" => {
                    t01.add_ballot(def.contest("T-01").unwrap(), b)
                }
                StationEvent::Issued { contest, count } if contest == "T-01" => {
                    t01.add_issued(*count)
                }
                _ => {}
            }
        }
    }
    e2.push(close("T-01", t01));
    let b1 = a.batch(&e1);
    let honest_2 = a.raw(&e2);
    let mut forged = a.clone();
    forged.set_key(b_key);
    let forged_2 = forged.seal(&honest_2);
    let b2 = a.seal(&honest_2);
    // Two different batches 3 on top of it: one sent too early, one after close.
    let b3_gap = a
        .clone()
        .batch(&[ballot(7, "D-01", &[F, O, O], &[]), issued("D-01", 1)]);
    let b3_late = a
        .clone()
        .batch(&[ballot(8, "T-01", &[F, O], &[]), issued("T-01", 1)]);

    let mut client = center.client(A).await;
    hello(&mut client, &a, 0).await;
    let mut push = Push::open(&mut client).await.unwrap();
    assert_eq!(seen(&push.push(b1.clone()).await), accepted(1));
    assert_eq!(
        seen(&push.push(b1).await),
        (AckKind::Duplicate, RejectReason::Unspecified, 1, 2)
    );
    let gap = push.push(b3_gap).await;
    assert_eq!(seen(&gap), rejected(RejectReason::Gap, 3, 2));
    assert!(gap.detail.contains("gap"), "{}", gap.detail);
    assert_eq!(
        seen(&push.push(forged_2).await),
        rejected(RejectReason::BadSignature, 2, 2)
    );
    assert_eq!(seen(&push.push(b2).await), accepted(2));
    // A ballot for T-01, which batch 2 closed.
    let late = push.push(b3_late).await;
    assert_eq!(seen(&late), rejected(RejectReason::AfterClose, 3, 3));
    push.close();
    assert!(matches!(push.next().await, Ok(None)));
    drop(push);
    drop(client);

    let out = center.stop().await;
    assert_eq!(
        out.alerts,
        vec![
            (A.to_string(), "BAD_SIGNATURE".to_string(), 2),
            (A.to_string(), "AFTER_CLOSE".to_string(), 3),
        ]
    );
    assert_eq!(out.batches[A], vec![1, 2]);
    let mut want = BTreeMap::new();
    want.insert(A.to_string(), expected(&[&e1, &e2]));
    assert_eq!(out.tallies, want);
    // Spot checks of what the honest ballots say.
    let d = &out.tallies[A]["D-01"];
    assert_eq!((d.issued, d.returned, d.valid, d.void), (4, 4, 3, 1));
    assert_eq!(d.write_in["钱七"], 2);
    let t = &out.tallies[A]["T-01"];
    assert_eq!((t.issued, t.returned, t.valid, t.void), (2, 2, 2, 0));
    assert!(!out.station(A).quarantined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_quarantines_its_station_while_another_keeps_syncing() {
    let center = Center::start().await;
    let mut a = center.chain(A);
    let mut clone = a.clone();
    let mut b = center.chain(B);
    let a1 = vec![ballot(1, "D-01", &[F, O, O], &[]), issued("D-01", 1)];
    let a2 = vec![ballot(2, "D-01", &[O, F, O], &[]), issued("D-01", 1)];
    let fork1 = vec![ballot(9, "D-01", &[O, O, F], &[]), issued("D-01", 1)];
    let bs: Vec<Vec<StationEvent>> = (0..3)
        .map(|i| vec![ballot(100 + i, "T-01", &[F, O], &[]), issued("T-01", 1)])
        .collect();

    let mut client_a = center.client(A).await;
    hello(&mut client_a, &a, 0).await;
    let mut push_a = Push::open(&mut client_a).await.unwrap();
    let mut client_b = center.client(B).await;
    hello(&mut client_b, &b, 0).await;
    let mut push_b = Push::open(&mut client_b).await.unwrap();

    assert_eq!(seen(&push_a.push(a.batch(&a1)).await), accepted(1));
    assert_eq!(seen(&push_b.push(b.batch(&bs[0])).await), accepted(1));
    // A cloned device's batch 1, then A's own batch 2, sent without waiting.
    push_a.send(clone.batch(&fork1)).await;
    push_a.send(a.batch(&a2)).await;
    let fork = push_a.ack().await;
    assert_eq!(seen(&fork), rejected(RejectReason::Fork, 1, 2));
    assert!(fork.detail.contains("fork"), "{}", fork.detail);
    let after = push_a.ack().await;
    assert_eq!(seen(&after), rejected(RejectReason::Quarantined, 2, 2));
    // The center ends a quarantined station's call after that acknowledgement.
    assert!(matches!(push_a.next().await, Ok(None)));
    // B's stream, on its own connection, goes on.
    assert_eq!(seen(&push_b.push(b.batch(&bs[1])).await), accepted(2));
    // A new Hello from A is refused, and so is a new push call.
    let refusal = within("hello", client_a.hello(a.hello()))
        .await
        .unwrap_err();
    assert_eq!(refusal.code(), Code::FailedPrecondition, "{refusal:?}");
    assert!(
        refusal.message().contains("quarantined"),
        "{}",
        refusal.message()
    );
    let refused_push = Push::open(&mut client_a).await.err().expect("refused");
    // The same status as the refused Hello.
    assert_eq!(refused_push.code(), Code::FailedPrecondition);
    assert!(
        refused_push.message().contains("quarantined"),
        "{refused_push:?}"
    );
    assert_eq!(seen(&push_b.push(b.batch(&bs[2])).await), accepted(3));
    push_b.close();
    assert!(matches!(push_b.next().await, Ok(None)));
    drop((push_a, push_b, client_a, client_b));

    let out = center.stop().await;
    assert_eq!(
        out.alerts,
        vec![
            (A.to_string(), "FORK".to_string(), 1),
            (A.to_string(), "QUARANTINED".to_string(), 2),
        ]
    );
    assert!(out.station(A).quarantined);
    assert!(!out.station(B).quarantined);
    assert_eq!(out.batches[A], vec![1]);
    assert_eq!(out.batches[B], vec![1, 2, 3]);
    let mut want = BTreeMap::new();
    want.insert(A.to_string(), expected(&[&a1]));
    want.insert(B.to_string(), expected(&[&bs[0], &bs[1], &bs[2]]));
    assert_eq!(out.tallies, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_naming_another_station_is_wrong_station() {
    let center = Center::start().await;
    let a = center.chain(A);
    // Names ST-B, but is signed with ST-A's key and sent over ST-A's certificate:
    // the signature verifies, the station does not.
    let mut as_b = center.chain(B);
    as_b.set_key(a.key().clone());
    let events = vec![ballot(1, "D-01", &[F, O, O], &[]), issued("D-01", 1)];
    let mut client = center.client(A).await;
    hello(&mut client, &a, 0).await;
    let mut push = Push::open(&mut client).await.unwrap();
    let ack = push.push(as_b.batch(&events)).await;
    assert_eq!(seen(&ack), rejected(RejectReason::WrongStation, 1, 1));
    assert!(
        ack.detail.contains(B) && ack.detail.contains(A),
        "{}",
        ack.detail
    );
    // The same content under A's own name is fine.
    assert_eq!(
        seen(&push.push(a.clone().batch(&events)).await),
        accepted(1)
    );
    push.close();
    assert!(matches!(push.next().await, Ok(None)));
    drop((push, client));

    let out = center.stop().await;
    assert_eq!(
        out.alerts,
        vec![(A.to_string(), "WRONG_STATION".to_string(), 1)]
    );
    assert_eq!(out.batches.keys().collect::<Vec<_>>(), vec![A]);
    let mut want = BTreeMap::new();
    want.insert(A.to_string(), expected(&[&events]));
    assert_eq!(out.tallies, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_ends_only_its_own_stream_and_applies_nothing() {
    let center = Center::start().await;
    let mut a = center.chain(A);
    let mut b = center.chain(B);
    let a1 = vec![ballot(1, "D-01", &[F, O, O], &[]), issued("D-01", 1)];
    let bs: Vec<Vec<StationEvent>> = (0..3)
        .map(|i| vec![ballot(100 + i, "D-01", &[O, F, O], &[]), issued("D-01", 1)])
        .collect();

    let mut client_a = center.client(A).await;
    hello(&mut client_a, &a, 0).await;
    let mut push_a = Push::open(&mut client_a).await.unwrap();
    let mut client_b = center.client(B).await;
    hello(&mut client_b, &b, 0).await;
    let mut push_b = Push::open(&mut client_b).await.unwrap();

    assert_eq!(seen(&push_a.push(a.batch(&a1)).await), accepted(1));
    assert_eq!(seen(&push_b.push(b.batch(&bs[0])).await), accepted(1));
    // One PushMessage of more than MAX_MESSAGE_BYTES.
    let oversized = pb::SignedBatch {
        batch: vec![0x5a; MAX_MESSAGE_BYTES + 1],
        signature: vec![0; 64],
    };
    push_a.send(oversized).await;
    // A's call ends without an acknowledgement for it (the status is checked in
    // `an_oversized_message_ends_its_stream_with_an_error_status`).
    let end = push_a.next().await;
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");
    assert!(matches!(push_a.next().await, Ok(None)));
    // B, on its own connection, keeps syncing.
    assert_eq!(seen(&push_b.push(b.batch(&bs[1])).await), accepted(2));
    assert_eq!(seen(&push_b.push(b.batch(&bs[2])).await), accepted(3));
    // A reconnects: the center still holds only its batch 1.
    drop((push_a, client_a));
    let mut client_a = center.client(A).await;
    hello(&mut client_a, &a, 1).await;
    push_b.close();
    assert!(matches!(push_b.next().await, Ok(None)));
    drop((push_b, client_a, client_b));

    let out = center.stop().await;
    assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    assert_eq!(out.batches[A], vec![1]);
    assert_eq!(out.batches[B], vec![1, 2, 3]);
    let mut want = BTreeMap::new();
    want.insert(A.to_string(), expected(&[&a1]));
    want.insert(B.to_string(), expected(&[&bs[0], &bs[1], &bs[2]]));
    assert_eq!(out.tallies, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_pipelined_batches_are_acknowledged_in_order() {
    const N: u64 = 40;
    let center = Center::start().await;
    let mut a = center.chain(A);
    let events: Vec<Vec<StationEvent>> = (0..N as u32)
        .map(|i| {
            let marks = [[F, O, O], [O, F, X], [F, F, O], [X, X, X]][i as usize % 4];
            vec![ballot(i + 1, "D-01", &marks, &[]), issued("D-01", 1)]
        })
        .collect();
    let batches: Vec<pb::SignedBatch> = events.iter().map(|e| a.batch(e)).collect();

    let mut client = center.client(A).await;
    hello(&mut client, &center.chain(A), 0).await;
    let mut push = Push::open(&mut client).await.unwrap();
    // All 40 go out before any acknowledgement is read: more than the window of
    // 32, so the center must hold the rest back and still answer each in order.
    for batch in batches {
        push.send(batch).await;
    }
    let mut acks = Vec::new();
    for _ in 0..N {
        acks.push(seen(&push.ack().await));
    }
    assert_eq!(acks, (1..=N).map(accepted).collect::<Vec<_>>());
    push.close();
    assert!(matches!(push.next().await, Ok(None)));
    drop((push, client));

    let out = center.stop().await;
    assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    assert_eq!(out.batches[A], (1..=N).collect::<Vec<_>>());
    assert_eq!(out.station(A).head_sequence, N);
    let all: Vec<&[StationEvent]> = events.iter().map(|e| e.as_slice()).collect();
    let mut want = BTreeMap::new();
    want.insert(A.to_string(), expected(&all));
    assert_eq!(out.tallies, want);
}

/// A message over `MAX_MESSAGE_BYTES` ends the call with tonic's `OUT_OF_RANGE`
/// status, so the station learns why (not a silent end with status OK).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_ends_its_stream_with_an_error_status() {
    let center = Center::start().await;
    let mut a = center.chain(A);
    let a1 = vec![ballot(1, "D-01", &[F, O, O], &[]), issued("D-01", 1)];
    let mut client = center.client(A).await;
    hello(&mut client, &a, 0).await;
    let mut push = Push::open(&mut client).await.unwrap();
    assert_eq!(seen(&push.push(a.batch(&a1)).await), accepted(1));
    push.send(pb::SignedBatch {
        batch: vec![0x5a; MAX_MESSAGE_BYTES + 1],
        signature: vec![0; 64],
    })
    .await;
    let end = push.next().await;
    drop((push, client));
    let out = center.stop().await;
    match end {
        Err(status) => assert_ne!(status.code(), Code::Ok, "{status:?}"),
        Ok(other) => panic!("the call ended with grpc-status OK after {other:?}"),
    }
    assert_eq!(out.batches[A], vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_an_enrolled_client() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let center = Center::start().await;
    let channel = center
        .connect(center.bundle(A).client_tls_config())
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    let answer = within(
        "health check",
        health.check(HealthCheckRequest {
            service: "pollsync.v1.StationSync".into(),
        }),
    )
    .await
    .expect("health answers");
    assert_eq!(answer.into_inner().status(), ServingStatus::Serving);

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = within(
        "reflection",
        reflection.server_reflection_info(tokio_stream::iter([request])),
    )
    .await
    .expect("reflection answers")
    .into_inner();
    let first = within("reflection answer", answers.message())
        .await
        .expect("stream")
        .expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("not a service list: {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "pollsync.v1.StationSync"),
        "{names:?}"
    );
    drop(answers);
    drop(reflection);
    drop(health);
    center.stop().await;
}

/// TLS 1.3 only (SPEC §4): a client that offers nothing newer than TLS 1.2, with a
/// valid station certificate, gets no session at all; the same certificate over
/// TLS 1.3 does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_1_2_client_is_refused_even_with_a_station_certificate() {
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let center = Center::start().await;
    let bundle = center.bundle(A);
    let client_config = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(bundle.ca_cert_pem.as_bytes()).unwrap())
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(bundle.station_cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(bundle.station_key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tcp = tokio::net::TcpStream::connect(center.addr).await.unwrap();
    let old = within(
        "TLS 1.2 handshake",
        client_config(&[&rustls::version::TLS12]).connect(name.clone(), tcp),
    )
    .await;
    assert!(old.is_err(), "a TLS 1.2 session was negotiated");
    let tcp = tokio::net::TcpStream::connect(center.addr).await.unwrap();
    let new = within(
        "TLS 1.3 handshake",
        client_config(&[&rustls::version::TLS13]).connect(name, tcp),
    )
    .await
    .expect("TLS 1.3 with the station's certificate");
    assert_eq!(
        new.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    drop(new);
    center.stop().await;
}

/// G7: a station's newest push stream replaces its oldest, so streams left behind
/// by links that died silently never lock it out; the replaced stream is ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_push_stream_replaces_the_oldest_and_the_station_is_never_locked_out() {
    let center = Center::start().await;
    let mut a = center.chain(A);
    let mut clients = Vec::new();
    let mut pushes = Vec::new();
    for _ in 0..2 {
        let mut client = center.client(A).await;
        hello(&mut client, &a, 0).await;
        pushes.push(Push::open(&mut client).await.unwrap());
        clients.push(client);
    }
    // A third, then a fourth: each admitted, each ending the oldest still open.
    for round in 0..2 {
        let mut client = center.client(A).await;
        let mut push = Push::open(&mut client).await.expect("admitted");
        let ended = pushes.remove(0).next().await;
        let status = ended.expect_err("the oldest stream is ended");
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert!(status.message().contains("replaced"), "{status:?}");
        let b = a.batch(&[ballot(1 + round, "D-01", &[F, O, O], &[])]);
        assert_eq!(seen(&push.push(b).await), accepted(u64::from(round) + 1));
        pushes.push(push);
        clients.push(client);
    }
    drop((pushes, clients));
    let out = center.stop().await;
    assert_eq!(out.batches[A], vec![1, 2]);
    assert!(out.alerts.is_empty(), "{:?}", out.alerts);
}
