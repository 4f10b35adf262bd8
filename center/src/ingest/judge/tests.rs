//! Unit tests of the judge: one per verdict and per step of the order in
//! docs/PROTOCOL.md §7.1, the cancel and close rules, and a property test that
//! resends, duplicates and reorders of an honest chain count exactly once.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use pollsync_election::{Ballot, BallotId, Ledger, Mark, StationEvent, TallySheet, load};
use pollsync_proto::chain::ChainWriter;
use pollsync_proto::convert::event_to_pb;
use pollsync_proto::limits::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use pollsync_proto::{ChainHead, seal_batch, sign_batch};
use proptest::prelude::*;

use super::*;

pub(crate) const ELECTION: &str = include_str!("../../../../tests/fixtures/three-stations.toml");

fn ctx() -> Context {
    let def = load("test.toml", ELECTION).unwrap();
    Context::new(def, pollsync_proto::definition_sha256(ELECTION.as_bytes()))
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn station_key(n: u8) -> StationKey {
    StationKey {
        key_no: 1,
        key: key(n).verifying_key(),
    }
}

fn ballot(id: u8, contest: &str, marks: &[Mark], write_ins: &[&str]) -> StationEvent {
    StationEvent::Ballot(Ballot {
        id: BallotId::from_bytes([id; 16]),
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

fn cancel(id: u8) -> StationEvent {
    StationEvent::Cancel {
        ballot_id: BallotId::from_bytes([id; 16]),
        reason: "entered twice".into(),
    }
}

/// The zero report naming `contests`.
fn zero_report(contests: &[&str]) -> StationEvent {
    StationEvent::ZeroReport {
        contests: contests.iter().map(|c| c.to_string()).collect(),
    }
}

fn close(contest: &str) -> StationEvent {
    StationEvent::Close {
        contest: contest.into(),
        sheet: TallySheet::default(),
    }
}

/// Builds a station's chain of signed batches (`proto::chain::ChainWriter`).
struct Chain {
    writer: ChainWriter,
}

impl Chain {
    fn new(station: &str, key_seed: u8) -> Self {
        Chain {
            writer: ChainWriter::new(
                "test-2021",
                pollsync_election::Mode::Test,
                station,
                pollsync_proto::definition_sha256(ELECTION.as_bytes()),
                key(key_seed),
                ChainHead::GENESIS,
            ),
        }
    }

    fn raw(&self, events: &[StationEvent]) -> pb::Batch {
        self.writer
            .unsigned(events.iter().map(event_to_pb).collect())
    }

    fn seal(&mut self, batch: &pb::Batch) -> pb::SignedBatch {
        self.writer.seal(batch)
    }

    fn batch(&mut self, events: &[StationEvent]) -> pb::SignedBatch {
        let b = self.raw(events);
        self.seal(&b)
    }

    fn key(&self) -> &SigningKey {
        self.writer.key()
    }

    fn next(&self) -> u64 {
        self.writer.head().next_sequence()
    }

    fn prev(&self) -> [u8; 32] {
        self.writer.head().hash
    }

    /// The next batch carries `next` and links to `prev`.
    fn resume(&mut self, next: u64, prev: [u8; 32]) {
        self.writer = self.writer.clone().after(ChainHead {
            sequence: next - 1,
            hash: prev,
        });
    }
}

/// The whole ingest logic of one station in memory (what the writer does with
/// SQLite): state, stored batches, tallies, alerts.
struct Mem {
    ctx: Context,
    peer: String,
    key: Option<StationKey>,
    state: StationState,
    stored: BTreeMap<u64, Vec<u8>>,
    tallies: BTreeMap<String, ContestDelta>,
    alerts: Vec<Rejection>,
    /// What accepted batches raised.
    flags: Vec<Flag>,
}

impl Mem {
    fn new(peer: &str, key_seed: u8) -> Self {
        Mem {
            ctx: ctx(),
            peer: peer.into(),
            key: Some(station_key(key_seed)),
            state: StationState {
                current_key: Some(1),
                ..StationState::default()
            },
            stored: BTreeMap::new(),
            tallies: BTreeMap::new(),
            alerts: Vec::new(),
            flags: Vec::new(),
        }
    }

    fn submit(&mut self, signed: pb::SignedBatch) -> Verdict {
        let prepared = prepare(&self.ctx, self.key.as_ref(), signed);
        let needs = needs(&self.state, &prepared);
        let mut lookups = Lookups::default();
        if let Some(seq) = needs.stored_sequence {
            lookups.stored_at = self.stored.get(&seq).map(|b| {
                if *b == prepared.signed.batch {
                    StoredAt::SameBytes
                } else {
                    StoredAt::OtherBytes {
                        stored_hash: pollsync_proto::chain_hash(b),
                    }
                }
            });
        }
        lookups.past_ballots =
            scan_past_ballots(self.stored.values().map(Vec::as_slice), &needs.past_ballots);
        let verdict = judge(&self.ctx, &self.peer, &self.state, &prepared, &lookups);
        match &verdict {
            Verdict::Accept(e) => {
                self.stored
                    .insert(e.sequence, prepared.signed.batch.clone());
                for (c, d) in &e.deltas {
                    self.tallies.entry(c.clone()).or_default().merge(d);
                }
                self.state.advance(e);
                self.flags.extend(e.flags.iter().cloned());
            }
            Verdict::Reject(r) => {
                if r.alerts() {
                    self.alerts.push(r.clone());
                }
                self.state.reject(r);
            }
            Verdict::Duplicate { .. } => {}
        }
        verdict
    }

    /// The tallies as tally sheets (zero entries left out).
    fn sheets(&self) -> BTreeMap<String, TallySheet> {
        self.tallies
            .iter()
            .map(|(c, d)| (c.clone(), sheet_of(&self.ctx, c, d)))
            .collect()
    }
}

fn sheet_of(ctx: &Context, contest: &str, d: &ContestDelta) -> TallySheet {
    let c = ctx.contest(contest).unwrap();
    let mut s = TallySheet {
        issued: d.issued,
        returned: u64::try_from(d.returned).unwrap(),
        valid: u64::try_from(d.valid).unwrap(),
        void: u64::try_from(d.void).unwrap(),
        ..TallySheet::default()
    };
    for (i, cand) in c.candidates.iter().enumerate() {
        let f = d.for_votes.get(i).copied().unwrap_or(0);
        let a = d.against.get(i).copied().unwrap_or(0);
        if f != 0 {
            s.for_votes
                .insert(cand.id.clone(), u64::try_from(f).unwrap());
        }
        if a != 0 {
            s.against.insert(cand.id.clone(), u64::try_from(a).unwrap());
        }
    }
    for (n, v) in &d.write_in {
        if *v != 0 {
            s.write_in.insert(n.clone(), u64::try_from(*v).unwrap());
        }
    }
    s
}

/// The tallies the election crate computes from `station`'s events applied once in
/// order (`election::Ledger`), for the contests with ballots or issued counts (the
/// ones the judge has deltas for), zero entries left out.
fn truth(ctx: &Context, station: &str, events: &[StationEvent]) -> BTreeMap<String, TallySheet> {
    let def = &ctx.definition;
    let mut ledger = Ledger::new(def, def.station(station).unwrap());
    for e in events {
        ledger.apply(def, e).unwrap();
    }
    events
        .iter()
        .filter(|e| !matches!(e, StationEvent::Close { .. }))
        .filter_map(StationEvent::contest)
        .map(|c| {
            (
                c.to_owned(),
                ledger.contest(c).unwrap().computed().without_zeros(),
            )
        })
        .collect()
}

fn rejected(v: &Verdict) -> &Rejection {
    match v {
        Verdict::Reject(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn reason(v: &Verdict) -> pb::RejectReason {
    rejected(v).reason
}

use pb::RejectReason as R;
use pollsync_election::Mark::{Against as A, For as F, None as N};

#[test]
fn honest_batches_are_accepted_and_tallied_like_the_election_crate() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let b1 = vec![
        zero_report(&["D-001", "T-001"]),
        ballot(1, "D-001", &[F, A, N], &[]),
        ballot(2, "D-001", &[F, F, F], &[]), // void: 3 FOR > 2 seats
        ballot(3, "T-001", &[N, F], &[]),
        ballot(4, "D-001", &[N, N, N], &["王五"]),
        issued("D-001", 4),
        issued("T-001", 1),
    ];
    let b2 = vec![
        ballot(5, "D-001", &[A, F, N], &["王五"]),
        issued("D-001", 1),
    ];
    let v1 = mem.submit(chain.batch(&b1));
    assert_eq!(v1.ack(), pb::Ack::accepted(1));
    let v2 = mem.submit(chain.batch(&b2));
    assert_eq!(v2.ack(), pb::Ack::accepted(2));
    let all: Vec<_> = b1.into_iter().chain(b2).collect();
    assert_eq!(mem.sheets(), truth(&mem.ctx, &mem.peer, &all));
    let d = &mem.sheets()["D-001"];
    assert_eq!((d.issued, d.returned, d.valid, d.void), (5, 4, 3, 1));
    assert_eq!(d.write_in["王五"], 2);
    assert_eq!(mem.state.head.sequence, 2);
    assert!(mem.alerts.is_empty());
    assert!(mem.flags.is_empty(), "{:?}", mem.flags);
}

#[test]
fn a_chain_opened_by_its_zero_report_raises_nothing() {
    let mut mem = Mem::new("S-0003", 3);
    let mut chain = Chain::new("S-0003", 3);
    // The zero report alone, then the day's events.
    let v = mem.submit(chain.batch(&[zero_report(&["D-001", "T-002"])]));
    match &v {
        Verdict::Accept(a) => assert!(a.flags.is_empty(), "{:?}", a.flags),
        other => panic!("expected acceptance, got {other:?}"),
    }
    assert!(matches!(
        mem.submit(chain.batch(&[issued("D-001", 1), ballot(1, "D-001", &[F, N, N], &[])])),
        Verdict::Accept(_)
    ));
    assert!(mem.alerts.is_empty() && mem.flags.is_empty());
    assert_eq!(mem.sheets()["D-001"].returned, 1);
}

#[test]
fn a_missing_zero_report_is_flagged_and_the_batch_still_counts() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let b1 = chain.batch(&[ballot(1, "D-001", &[F, N, N], &[]), issued("D-001", 1)]);
    let v = mem.submit(b1.clone());
    assert_eq!(v.ack(), pb::Ack::accepted(1));
    assert_eq!(
        mem.flags,
        vec![Flag::NoZeroReport {
            first: Some("ballot")
        }]
    );
    let flag = &mem.flags[0];
    assert_eq!(flag.kind(), "NO_ZERO_REPORT");
    let detail = flag.detail("S-0001");
    assert!(
        detail.contains("station S-0001") && detail.contains("batch 1 opens with a ballot event"),
        "{detail}"
    );
    assert_eq!(mem.sheets()["D-001"].returned, 1);
    // Flagged once: later batches raise nothing, nor does a resend of batch 1.
    assert!(matches!(
        mem.submit(chain.batch(&[ballot(2, "D-001", &[F, N, N], &[])])),
        Verdict::Accept(_)
    ));
    assert!(matches!(mem.submit(b1), Verdict::Duplicate { .. }));
    assert_eq!(mem.flags.len(), 1);
    assert!(mem.alerts.is_empty(), "a flag is no rejection");

    // An empty batch 1 is flagged too.
    let mut mem = Mem::new("S-0002", 2);
    mem.submit(Chain::new("S-0002", 2).batch(&[]));
    assert_eq!(mem.flags, vec![Flag::NoZeroReport { first: None }]);
}

#[test]
fn a_zero_report_not_first_or_not_whole_is_invalid_content() {
    let whole = || zero_report(&["D-001", "T-001"]);
    // Second in batch 1.
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let v = mem.submit(chain.batch(&[issued("D-001", 1), whole()]));
    let r = rejected(&v);
    assert_eq!(r.reason, R::InvalidContent);
    assert!(
        r.detail
            .starts_with("batch 1: event #1: a zero report comes only as the first event"),
        "{}",
        r.detail
    );
    assert!(mem.stored.is_empty() && mem.flags.is_empty());
    // Twice at the start of batch 1.
    let mut chain = Chain::new("S-0001", 1);
    let v = mem.submit(chain.batch(&[whole(), whole()]));
    assert_eq!(reason(&v), R::InvalidContent);
    assert!(rejected(&v).detail.contains("event #1"), "{v:?}");
    // First in batch 2: a log that started without one cannot add it later.
    let mut chain = Chain::new("S-0001", 1);
    assert!(matches!(
        mem.submit(chain.batch(&[issued("D-001", 1)])),
        Verdict::Accept(_)
    ));
    let v = mem.submit(chain.batch(&[whole()]));
    let r = rejected(&v);
    assert_eq!(r.reason, R::InvalidContent);
    assert!(
        r.detail.contains("batch 2: event #0") && r.detail.contains("not event #0 of batch 2"),
        "{}",
        r.detail
    );
    // Not the station's contests: one left out, one not served, one unknown, the
    // order changed.
    for (contests, words) in [
        (
            &["D-001"][..],
            "contest 'T-001', which the station serves, is missing",
        ),
        (
            &["D-001", "T-001", "T-002"][..],
            "does not collect ballots for contest 'T-002'",
        ),
        (
            &["D-001", "X-9"][..],
            "contest 'X-9' is not in this election",
        ),
        (&["T-001", "D-001"][..], "not in the definition's order"),
        (&["D-001", "D-001", "T-001"][..], "'D-001' is named twice"),
    ] {
        let mut mem = Mem::new("S-0001", 1);
        let v = mem.submit(Chain::new("S-0001", 1).batch(&[zero_report(contests)]));
        let r = rejected(&v);
        assert_eq!(r.reason, R::InvalidContent, "{contests:?}");
        assert!(
            r.detail.starts_with("batch 1: event #0: ") && r.detail.contains(words),
            "{contests:?}: {}",
            r.detail
        );
        assert!(
            r.alerts(),
            "a malformed zero report is alerted like any content"
        );
    }
}

#[test]
fn a_resend_is_a_duplicate_counted_once() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let b1 = chain.batch(&[ballot(1, "D-001", &[F, N, N], &[])]);
    let b2 = chain.batch(&[ballot(2, "D-001", &[F, N, N], &[])]);
    mem.submit(b1.clone());
    mem.submit(b2.clone());
    let before = mem.sheets();
    for again in [b1, b2] {
        let v = mem.submit(again);
        assert!(
            matches!(
                v,
                Verdict::Duplicate {
                    expected_sequence: 3,
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(v.ack().kind(), pb::AckKind::Duplicate);
    }
    assert_eq!(mem.sheets(), before);
    assert_eq!(mem.sheets()["D-001"].returned, 2);
    assert!(mem.alerts.is_empty());
}

#[test]
fn a_fork_is_rejected_alerted_and_quarantines() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    mem.submit(chain.batch(&[ballot(1, "D-001", &[F, N, N], &[])]));
    let mut other = Chain::new("S-0001", 1);
    let forked = other.batch(&[ballot(9, "D-001", &[N, F, N], &[])]);
    let v = mem.submit(forked);
    let r = rejected(&v);
    assert_eq!(r.reason, R::Fork);
    assert!(r.alerts() && r.quarantines());
    assert!(r.detail.contains("fork at sequence 1"), "{}", r.detail);
    assert!(mem.state.quarantined);
    // Later batches, even honest ones, are QUARANTINED.
    let v = mem.submit(chain.batch(&[ballot(2, "D-001", &[F, N, N], &[])]));
    assert_eq!(reason(&v), R::Quarantined);
    assert_eq!(mem.sheets()["D-001"].returned, 1);
    assert_eq!(mem.alerts.len(), 2);
}

#[test]
fn a_gap_names_the_expected_sequence_and_raises_no_alert() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let b1 = chain.batch(&[ballot(1, "D-001", &[F, N, N], &[])]);
    let b2 = chain.batch(&[ballot(2, "D-001", &[F, N, N], &[])]);
    let b3 = chain.batch(&[ballot(3, "D-001", &[F, N, N], &[])]);
    mem.submit(b1);
    let v = mem.submit(b3.clone());
    let r = rejected(&v);
    assert_eq!((r.reason, r.sequence, r.expected_sequence), (R::Gap, 3, 2));
    assert!(!r.alerts());
    assert!(mem.alerts.is_empty());
    assert!(matches!(mem.submit(b2), Verdict::Accept(_)));
    assert!(matches!(mem.submit(b3), Verdict::Accept(_)));
}

#[test]
fn a_broken_link_is_broken_chain() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    mem.submit(chain.batch(&[ballot(1, "D-001", &[F, N, N], &[])]));
    chain.resume(chain.next(), [7; 32]);
    let v = mem.submit(chain.batch(&[ballot(2, "D-001", &[F, N, N], &[])]));
    assert_eq!(reason(&v), R::BrokenChain);
    assert_eq!(rejected(&v).expected_sequence, 2);
    assert!(!mem.state.quarantined);
    assert_eq!(mem.alerts.len(), 1);
}

#[test]
fn another_stations_key_is_bad_signature_before_anything_else() {
    let mut mem = Mem::new("S-0001", 1);
    // Signed by S-0002's key, otherwise a perfect batch 1 of S-0001.
    let mut chain = Chain::new("S-0001", 2);
    let v = mem.submit(chain.batch(&[ballot(1, "D-001", &[F, N, N], &[])]));
    assert_eq!(reason(&v), R::BadSignature);
    // Bad signature comes before election, station and definition.
    let mut chain = Chain::new("S-0009", 2);
    let mut b = chain.raw(&[]);
    b.election_id = "other".into();
    let v = mem.submit(chain.seal(&b));
    assert_eq!(reason(&v), R::BadSignature);
    assert!(mem.stored.is_empty());
    assert_eq!(mem.alerts.len(), 2);
}

#[test]
fn an_unknown_or_unenrolled_peer_has_no_key() {
    let mut mem = Mem::new("S-0404", 1);
    mem.key = None;
    mem.state.current_key = None;
    let mut chain = Chain::new("S-0404", 1);
    let v = mem.submit(chain.batch(&[]));
    assert_eq!(reason(&v), R::BadSignature);
    assert!(rejected(&v).detail.contains("not in election"), "{v:?}");
    let mut mem = Mem::new("S-0002", 1);
    mem.key = None;
    mem.state.current_key = None;
    let v = mem.submit(Chain::new("S-0002", 1).batch(&[]));
    assert!(rejected(&v).detail.contains("not enrolled"), "{v:?}");
}

#[test]
fn election_mode_station_and_definition_are_checked_in_that_order() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let mut b = chain.raw(&[]);
    b.election_id = "other-2021".into();
    b.mode = "official".into();
    b.station_id = "S-0002".into();
    b.definition_sha256 = vec![1; 32];
    assert_eq!(
        reason(&mem.submit(seal_batch(chain.key(), &b))),
        R::WrongElection
    );
    b.election_id = "test-2021".into();
    let v = mem.submit(seal_batch(chain.key(), &b));
    assert_eq!(reason(&v), R::WrongMode);
    assert!(
        rejected(&v).detail.contains("\"official\"") && rejected(&v).detail.contains("test"),
        "{}",
        rejected(&v).detail
    );
    // A batch that names no mode at all is of neither.
    b.mode = String::new();
    assert_eq!(
        reason(&mem.submit(seal_batch(chain.key(), &b))),
        R::WrongMode
    );
    b.mode = "test".into();
    assert_eq!(
        reason(&mem.submit(seal_batch(chain.key(), &b))),
        R::WrongStation
    );
    b.station_id = "S-0001".into();
    assert_eq!(
        reason(&mem.submit(seal_batch(chain.key(), &b))),
        R::WrongDefinition
    );
    b.definition_sha256 = pollsync_proto::definition_sha256(ELECTION.as_bytes()).to_vec();
    assert!(matches!(mem.submit(chain.seal(&b)), Verdict::Accept(_)));
    assert_eq!(mem.alerts.len(), 5);
}

#[test]
fn size_and_encoding_come_first() {
    let mut mem = Mem::new("S-0001", 1);
    let chain = Chain::new("S-0001", 1);
    // Over 1 MiB: TOO_LARGE, sequence 0, even with a bad signature.
    let big = pb::SignedBatch {
        batch: vec![0; MAX_BATCH_BYTES + 1],
        signature: vec![0; 3],
    };
    let v = mem.submit(big);
    assert_eq!((reason(&v), rejected(&v).sequence), (R::TooLarge, 0));
    // More events than allowed: TOO_LARGE with the sequence.
    let many: Vec<StationEvent> = (0..=MAX_BATCH_EVENTS).map(|_| issued("D-001", 1)).collect();
    let v = mem.submit(seal_batch(chain.key(), &chain.raw(&many)));
    assert_eq!((reason(&v), rejected(&v).sequence), (R::TooLarge, 1));
    // Garbage bytes, a short signature, non-canonical bytes: MALFORMED.
    let v = mem.submit(sign_batch(chain.key(), vec![0xff; 10]));
    assert_eq!((reason(&v), rejected(&v).sequence), (R::Malformed, 0));
    let mut short = seal_batch(chain.key(), &chain.raw(&[]));
    short.signature.pop();
    assert_eq!(reason(&mem.submit(short)), R::Malformed);
    let mut bytes = seal_batch(chain.key(), &chain.raw(&[])).batch;
    bytes.extend_from_slice(&[0x78, 0x01]);
    assert_eq!(
        reason(&mem.submit(sign_batch(chain.key(), bytes))),
        R::Malformed
    );
    assert_eq!(mem.alerts.len(), 5);
    assert_eq!(mem.state.head.sequence, 0);
}

#[test]
fn revoked_and_quarantined_come_before_the_signature() {
    let mut mem = Mem::new("S-0001", 1);
    mem.state.revoked = true;
    let v = mem.submit(Chain::new("S-0001", 9).batch(&[]));
    assert_eq!(reason(&v), R::Revoked);
    mem.state.revoked = false;
    mem.state.quarantined = true;
    let v = mem.submit(Chain::new("S-0001", 9).batch(&[]));
    assert_eq!(reason(&v), R::Quarantined);
}

#[test]
fn a_duplicate_is_known_by_its_bytes_and_the_chain_before_content() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let b1 = chain.batch(&[ballot(1, "D-001", &[F, N, N], &[]), close("D-001")]);
    assert!(matches!(mem.submit(b1.clone()), Verdict::Accept(_)));
    // Its content would now be AFTER_CLOSE, but it is recognised as a duplicate.
    assert!(matches!(mem.submit(b1), Verdict::Duplicate { .. }));
    // A gap with invalid content is a GAP.
    chain.resume(chain.next() + 1, chain.prev());
    let v = mem.submit(chain.batch(&[ballot(2, "D-404", &[], &[])]));
    assert_eq!(reason(&v), R::Gap);
}

#[test]
fn content_against_the_definition_is_invalid_content() {
    let cases: Vec<(Vec<StationEvent>, &str)> = vec![
        (vec![ballot(1, "D-404", &[], &[])], "not in this election"),
        (vec![ballot(1, "T-002", &[N, N], &[])], "does not collect"),
        (vec![ballot(1, "D-001", &[F, N], &[])], "marks"),
        (vec![ballot(1, "D-001", &[N, N, N], &["张伟"])], "张伟"),
        (vec![issued("T-002", 1)], "does not collect"),
        (
            vec![
                ballot(1, "D-001", &[N, N, N], &[]),
                ballot(1, "T-001", &[N, N], &[]),
            ],
            "appears twice",
        ),
        (vec![cancel(42)], "never recorded"),
    ];
    for (events, needle) in cases {
        let mut mem = Mem::new("S-0001", 1);
        let v = mem.submit(Chain::new("S-0001", 1).batch(&events));
        let r = rejected(&v);
        assert_eq!(r.reason, R::InvalidContent, "{events:?}: {r:?}");
        assert!(
            r.detail.contains(needle),
            "{needle:?} not in {:?}",
            r.detail
        );
        assert!(mem.tallies.is_empty());
    }
}

#[test]
fn nothing_after_close() {
    // A ballot in a later batch.
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    mem.submit(chain.batch(&[ballot(1, "D-001", &[F, N, N], &[]), close("D-001")]));
    assert!(mem.state.closed.contains("D-001"));
    let v = mem.submit(chain.batch(&[ballot(2, "D-001", &[F, N, N], &[])]));
    assert_eq!(reason(&v), R::AfterClose);
    // The other contest still takes ballots (the rejected batch 2 is gone, so
    // the station's next batch 2 is a new one).
    chain.resume(2, mem.state.head.hash);
    assert!(matches!(
        mem.submit(chain.batch(&[ballot(3, "T-001", &[F, N], &[])])),
        Verdict::Accept(_)
    ));
    // Cancel of a closed contest's ballot.
    let v = mem.submit(chain.batch(&[cancel(1)]));
    assert_eq!(reason(&v), R::AfterClose);
    // Issued after the close in the same batch; a second close.
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let v = mem.submit(chain.batch(&[close("T-001"), issued("T-001", 1)]));
    assert_eq!(reason(&v), R::AfterClose);
    let mut chain = Chain::new("S-0001", 1);
    let v = mem.submit(chain.batch(&[close("T-001"), close("T-001")]));
    assert_eq!(reason(&v), R::AfterClose);
    // A ballot placed after the close in the same batch.
    let mut chain = Chain::new("S-0001", 1);
    let v = mem.submit(chain.batch(&[close("T-001"), ballot(5, "T-001", &[F, N], &[])]));
    assert_eq!(reason(&v), R::AfterClose);
    assert!(mem.tallies.is_empty());
}

#[test]
fn cancels_take_a_ballot_back_once() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let b1 = vec![
        ballot(1, "D-001", &[F, A, N], &["王五"]),
        ballot(2, "D-001", &[N, F, N], &[]),
        ballot(3, "D-001", &[F, F, F], &[]),
        cancel(2), // same batch
    ];
    assert!(matches!(mem.submit(chain.batch(&b1)), Verdict::Accept(_)));
    let b2 = vec![cancel(1), cancel(3)]; // earlier batch, a valid and a void one
    assert!(matches!(mem.submit(chain.batch(&b2)), Verdict::Accept(_)));
    let all: Vec<_> = b1.into_iter().chain(b2).collect();
    assert_eq!(mem.sheets(), truth(&mem.ctx, &mem.peer, &all));
    assert_eq!(mem.sheets()["D-001"].returned, 0);
    assert!(mem.sheets()["D-001"].write_in.is_empty());
    // Cancelling again (an earlier batch's cancel) and twice in a batch.
    let head = mem.state.head;
    let v = mem.submit(chain.batch(&[cancel(1)]));
    assert_eq!(reason(&v), R::InvalidContent);
    assert!(rejected(&v).detail.contains("already cancelled"));
    chain.resume(3, head.hash);
    let v = mem.submit(chain.batch(&[ballot(7, "T-001", &[F, N], &[]), cancel(7), cancel(7)]));
    assert!(rejected(&v).detail.contains("twice"), "{v:?}");
    assert_eq!(mem.state.head, head);
}

#[test]
fn a_rejection_changes_nothing_accepted() {
    let mut mem = Mem::new("S-0001", 1);
    let mut chain = Chain::new("S-0001", 1);
    let honest = vec![ballot(1, "D-001", &[F, N, N], &[]), issued("D-001", 1)];
    mem.submit(chain.batch(&honest));
    let snapshot = (mem.sheets(), mem.state.head);
    let bad = [
        Chain::new("S-0001", 3).batch(&[ballot(2, "D-001", &[F, N, N], &[])]),
        chain
            .clone_for_test()
            .batch(&[ballot(3, "D-404", &[], &[])]),
        chain.clone_for_test().batch(&[cancel(99)]),
    ];
    for b in bad {
        assert!(matches!(mem.submit(b), Verdict::Reject(_)));
        assert_eq!((mem.sheets(), mem.state.head), snapshot);
    }
    assert_eq!(mem.sheets(), truth(&mem.ctx, &mem.peer, &honest));
}

impl Chain {
    fn clone_for_test(&self) -> Chain {
        Chain {
            writer: self.writer.clone(),
        }
    }
}

/// An honest chain of `batches` batches with random ballots, issued counts, a
/// cancel of an earlier ballot, and closes at the end.
/// One random ballot: town contest?, three mark seeds, a write-in?
type BallotSpec = (bool, [u8; 3], bool);

fn honest_chain(seed_ballots: Vec<Vec<BallotSpec>>) -> (Vec<pb::SignedBatch>, Vec<StationEvent>) {
    honest_chain_replaced_at(seed_ballots, usize::MAX)
}

/// [`honest_chain`], with the device replaced before batch index `replaced_at`:
/// from there on the batches are signed with key 2, continuing the chain.
fn honest_chain_replaced_at(
    seed_ballots: Vec<Vec<BallotSpec>>,
    replaced_at: usize,
) -> (Vec<pb::SignedBatch>, Vec<StationEvent>) {
    let mut chain = Chain::new("S-0001", 1);
    let mut batches = Vec::new();
    let mut all = Vec::new();
    let mut next_id: u16 = 1;
    let mut recorded: Vec<u16> = Vec::new();
    let marks = |m: u8| match m % 3 {
        0 => N,
        1 => F,
        _ => A,
    };
    let n = seed_ballots.len();
    for (i, spec) in seed_ballots.into_iter().enumerate() {
        let mut events = Vec::new();
        for (town, m, write_in) in spec {
            let mut id = [0u8; 16];
            id[..2].copy_from_slice(&next_id.to_be_bytes());
            next_id += 1;
            let id = BallotId::from_bytes(id);
            let b = if town {
                Ballot {
                    id,
                    contest: "T-001".into(),
                    marks: vec![marks(m[0]), marks(m[1])],
                    write_ins: vec![],
                }
            } else {
                Ballot {
                    id,
                    contest: "D-001".into(),
                    marks: m.iter().map(|&x| marks(x)).collect(),
                    write_ins: if write_in {
                        vec!["王五".into()]
                    } else {
                        vec![]
                    },
                }
            };
            recorded.push(u16::from_be_bytes([id.0[0], id.0[1]]));
            events.push(StationEvent::Ballot(b));
        }
        events.push(issued("D-001", 1 + i as u64));
        if i == n - 1 {
            if let Some(&victim) = recorded.first() {
                let mut id = [0u8; 16];
                id[..2].copy_from_slice(&victim.to_be_bytes());
                events.push(StationEvent::Cancel {
                    ballot_id: BallotId::from_bytes(id),
                    reason: "entered by mistake".into(),
                });
            }
            events.push(close("D-001"));
        }
        all.extend(events.clone());
        if i == replaced_at {
            chain.writer = chain.writer.clone().signing_with(key(2));
        }
        batches.push(chain.batch(&events));
    }
    (batches, all)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random resends, duplicates and reorders of an honest chain, followed by the
    /// station's final catch-up in order, give the same tallies as applying the
    /// chain once in order, and never raise an alert.
    #[test]
    fn resends_and_reorders_count_exactly_once(
        spec in prop::collection::vec(
            prop::collection::vec((any::<bool>(), any::<[u8; 3]>(), any::<bool>()), 0..6),
            1..7,
        ),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let (batches, events) = honest_chain(spec);
        let mut once = Mem::new("S-0001", 1);
        for b in &batches {
            prop_assert!(matches!(once.submit(b.clone()), Verdict::Accept(_)));
        }
        let mut mem = Mem::new("S-0001", 1);
        for i in order {
            let v = mem.submit(batches[i.index(batches.len())].clone());
            if let Verdict::Reject(r) = &v {
                prop_assert_eq!(r.reason, R::Gap);
            }
        }
        for b in &batches {
            let v = mem.submit(b.clone());
            prop_assert!(!matches!(v, Verdict::Reject(_)), "{:?}", v);
        }
        prop_assert!(mem.alerts.is_empty());
        prop_assert!(!mem.state.quarantined);
        prop_assert_eq!(mem.state.head, once.state.head);
        prop_assert_eq!(mem.sheets(), once.sheets());
        prop_assert_eq!(mem.sheets(), truth(&mem.ctx, &mem.peer, &events));
    }

    /// The device is replaced once the center holds its first `r` batches: the new
    /// key continues the chain, and resends of the old device's batches (signed
    /// with a key no longer current) stay duplicates, never a fork, never counted
    /// twice, whatever the order; no alert.
    #[test]
    fn a_replacement_continues_the_chain_and_old_batches_stay_duplicates(
        spec in prop::collection::vec(
            prop::collection::vec((any::<bool>(), any::<[u8; 3]>(), any::<bool>()), 0..6),
            1..7,
        ),
        replaced in any::<prop::sample::Index>(),
        before in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        after in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let r = replaced.index(spec.len() + 1);
        let (batches, events) = honest_chain_replaced_at(spec, r);
        let mut mem = Mem::new("S-0001", 1);
        let old = &batches[..r];
        for i in before {
            if !old.is_empty() {
                mem.submit(old[i.index(old.len())].clone());
            }
        }
        for b in old {
            let v = mem.submit(b.clone());
            prop_assert!(!matches!(v, Verdict::Reject(_)), "{:?}", v);
        }
        // `center enroll --replace`: key 2 is current from the center's head on.
        mem.key = Some(StationKey { key_no: 2, key: key(2).verifying_key() });
        mem.state.current_key = Some(2);
        for i in after {
            let v = mem.submit(batches[i.index(batches.len())].clone());
            if let Verdict::Reject(rej) = &v {
                prop_assert_eq!(rej.reason, R::Gap, "{:?}", rej);
            }
        }
        for b in &batches {
            let v = mem.submit(b.clone());
            prop_assert!(!matches!(v, Verdict::Reject(_)), "{:?}", v);
        }
        prop_assert!(mem.alerts.is_empty());
        prop_assert!(!mem.state.quarantined);
        prop_assert_eq!(mem.state.head.sequence, batches.len() as u64);
        prop_assert_eq!(mem.sheets(), truth(&mem.ctx, &mem.peer, &events));
    }
}
