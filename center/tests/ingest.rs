//! The ingest path in process, through the API the gRPC server calls
//! (`IngestHandle::hello`, `submit`, `refused`), against a real store on disk.

mod support;

use pollsync_center::store::Records as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pollsync_center::ingest::{self, IngestHandle, RefusalCode};
use pollsync_center::store::Store;
use pollsync_election::Mark::{Against as A, For as F, None as N};
use pollsync_election::{StationEvent, TallySheet};
use pollsync_proto::pb::{self, AckKind, RejectReason as R};
use support::*;

async fn push(h: &IngestHandle, peer: &str, batch: pb::SignedBatch) -> pb::Ack {
    h.submit(peer, batch).await.expect("the writer answers")
}

fn tallies(center: &Center) -> BTreeMap<String, BTreeMap<String, TallySheet>> {
    Store::open_at(&center.store).unwrap().tally_map().unwrap()
}

fn alerts(center: &Center) -> Vec<(String, String, u64)> {
    Store::open_at(&center.store)
        .unwrap()
        .alerts()
        .unwrap()
        .into_iter()
        .map(|a| (a.station, a.kind, a.sequence))
        .collect()
}

fn hello_for(chain: &StationChain, head: u64) -> pb::HelloRequest {
    chain.hello_at(head, chain.prev())
}

fn s1_events() -> (Vec<StationEvent>, Vec<StationEvent>) {
    let b1 = vec![
        ballot(1, "D-001", &[F, A, N], &[]),
        ballot(2, "D-001", &[F, F, F], &[]),
        ballot(3, "T-001", &[N, F], &[]),
        ballot(4, "D-001", &[N, N, N], &["王五"]),
        issued("D-001", 5),
        issued("T-001", 1),
    ];
    let b2 = vec![
        ballot(5, "D-001", &[A, F, N], &["王五"]),
        ballot(6, "T-001", &[F, A], &[]),
        issued("T-001", 1),
    ];
    (b1, b2)
}

#[tokio::test]
async fn a_chain_without_its_zero_report_counts_and_raises_no_zero_report_for_that_station_only() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut honest = center.chain("S-0001");
    let mut bare = center.chain("S-0002").without_zero_report();
    let (a1, a2) = s1_events();
    let acks = [
        push(&h, "S-0001", honest.batch(&a1)).await,
        push(&h, "S-0002", bare.batch(&a1)).await,
        push(&h, "S-0002", bare.batch(&a2)).await,
    ];
    assert!(
        acks.iter().all(|a| a.kind() == AckKind::Accepted),
        "{acks:?}"
    );
    // A resend of batch 1 is a duplicate and raises nothing more.
    let mut again = center.chain("S-0002").without_zero_report();
    let ack = push(&h, "S-0002", again.batch(&a1)).await;
    assert_eq!(ack.kind(), AckKind::Duplicate);
    h.shutdown();
    writer.join().unwrap();
    assert_eq!(
        alerts(&center),
        vec![("S-0002".to_string(), "NO_ZERO_REPORT".to_string(), 1)]
    );
    let stored = Store::open_at(&center.store).unwrap().alerts().unwrap();
    assert!(
        stored[0]
            .detail
            .contains("station S-0002's chain does not start with a zero report"),
        "{}",
        stored[0].detail
    );
    // Its ballots count all the same.
    let t = tallies(&center);
    assert_eq!(t["S-0002"], truth(&[a1.clone(), a2].concat()));
    assert_eq!(t["S-0001"], truth(&a1));
    // The audit names it as a finding, not a difference.
    let report = pollsync_center::audit::audit(&Store::open_at(&center.store).unwrap()).unwrap();
    assert!(report.is_clean(), "{:?}", report.differences);
    assert_eq!(
        report.findings,
        vec![
            "station S-0002: its chain does not start with a zero report (batch 1 opens with a ballot event)"
                .to_string()
        ]
    );
}

#[tokio::test]
async fn honest_chains_of_two_stations_give_exact_tallies() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    let mut s2 = center.chain("S-0002");
    let (a1, a2) = s1_events();
    let c1 = vec![ballot(101, "D-001", &[N, F, F], &[]), issued("D-001", 1)];
    let c2 = vec![
        ballot(102, "T-001", &[A, A], &[]),
        ballot(103, "T-001", &[F, F], &[]),
        issued("T-001", 3),
    ];
    // Everything queued before any answer is awaited: one group commit.
    let rx = vec![
        h.submit("S-0001", s1.batch(&a1)),
        h.submit("S-0002", s2.batch(&c1)),
        h.submit("S-0001", s1.batch(&a2)),
        h.submit("S-0002", s2.batch(&c2)),
    ];
    let mut acks = Vec::new();
    for r in rx {
        acks.push(r.await.unwrap());
    }
    assert_eq!(
        acks.iter()
            .map(|a| (a.kind(), a.sequence, a.expected_sequence))
            .collect::<Vec<_>>(),
        vec![
            (AckKind::Accepted, 1, 2),
            (AckKind::Accepted, 1, 2),
            (AckKind::Accepted, 2, 3),
            (AckKind::Accepted, 2, 3)
        ]
    );
    assert_eq!(h.head("S-0001").unwrap().sequence, 2);
    h.shutdown();
    writer.join().unwrap();
    let t = tallies(&center);
    assert_eq!(t["S-0001"], truth(&[a1, a2].concat()));
    assert_eq!(t["S-0002"], truth(&[c1, c2].concat()));
    let d = &t["S-0001"]["D-001"];
    assert_eq!((d.issued, d.returned, d.valid, d.void), (5, 4, 3, 1));
    assert_eq!(d.for_votes["D-001-1"], 1);
    assert_eq!(d.against["D-001-1"], 1);
    assert_eq!(d.write_in["王五"], 2);
    assert!(alerts(&center).is_empty());
    // The raw signed bytes are kept for audit.
    let stored = Store::open_at(&center.store)
        .unwrap()
        .batches(Some("S-0001"))
        .unwrap();
    assert_eq!(stored.len(), 2);
    pollsync_proto::envelope::verify_batch(
        &s1.key().verifying_key(),
        &pb::SignedBatch {
            batch: stored[1].batch.clone(),
            signature: stored[1].signature.clone(),
        },
    )
    .unwrap();
}

#[tokio::test]
async fn a_replay_is_duplicate_and_counted_once_also_after_a_restart() {
    let center = Center::new();
    let mut s1 = center.chain("S-0001");
    let (a1, a2) = s1_events();
    let b1 = s1.batch(&a1);
    let b2 = s1.batch(&a2);
    let (h, writer) = ingest::start(&center.store).unwrap();
    assert_eq!(
        push(&h, "S-0001", b1.clone()).await.kind(),
        AckKind::Accepted
    );
    let dup = push(&h, "S-0001", b1.clone()).await;
    assert_eq!(
        (dup.kind(), dup.sequence, dup.expected_sequence),
        (AckKind::Duplicate, 1, 2)
    );
    assert_eq!(
        push(&h, "S-0001", b2.clone()).await.kind(),
        AckKind::Accepted
    );
    h.shutdown();
    writer.join().unwrap();
    // A new writer (a center restart) knows both.
    let (h, writer) = ingest::start(&center.store).unwrap();
    let reply = h.hello(&s1.peer(), hello_for(&s1, 2)).await.unwrap();
    assert_eq!(reply.center_head_sequence, 2);
    assert_eq!(reply.center_head_hash, s1.prev().to_vec());
    for b in [b2, b1] {
        assert_eq!(push(&h, "S-0001", b).await.kind(), AckKind::Duplicate);
    }
    h.shutdown();
    writer.join().unwrap();
    assert_eq!(tallies(&center)["S-0001"], truth(&[a1, a2].concat()));
    assert!(alerts(&center).is_empty());
}

#[tokio::test]
async fn a_ballot_id_of_an_earlier_batch_is_refused_and_counted_once_also_after_a_restart() {
    let center = Center::new();
    let mut s1 = center.chain("S-0001");
    let (a1, a2) = s1_events();
    let (h, writer) = ingest::start(&center.store).unwrap();
    assert_eq!(
        push(&h, "S-0001", s1.batch(&a1)).await.kind(),
        AckKind::Accepted
    );
    // Signed with the station's own key, but ballot 2 is batch 1's again.
    let reused = vec![ballot(2, "D-001", &[F, F, F], &[]), issued("D-001", 1)];
    let ack = push(&h, "S-0001", s1.batch(&reused)).await;
    assert_eq!(
        (ack.kind(), ack.reason()),
        (AckKind::Rejected, R::InvalidContent)
    );
    assert!(
        ack.detail.contains(&ballot_id(2).to_string()) && ack.detail.contains("batch 1"),
        "{}",
        ack.detail
    );
    h.shutdown();
    writer.join().unwrap();
    // After a restart the writer knows the ids from the stored batches alone.
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut again = center.chain("S-0001");
    again.batch(&a1); // advance the chain past batch 1, as stored
    let mut honest = again.clone();
    let ack = push(&h, "S-0001", again.batch(&reused)).await;
    assert_eq!(
        (ack.kind(), ack.reason()),
        (AckKind::Rejected, R::InvalidContent)
    );
    // The honest next batch still counts.
    assert_eq!(
        push(&h, "S-0001", honest.batch(&a2)).await.kind(),
        AckKind::Accepted
    );
    h.shutdown();
    writer.join().unwrap();
    assert_eq!(tallies(&center)["S-0001"], truth(&[a1, a2].concat()));
    assert_eq!(
        alerts(&center),
        vec![
            ("S-0001".to_string(), "INVALID_CONTENT".to_string(), 2),
            ("S-0001".to_string(), "INVALID_CONTENT".to_string(), 2)
        ]
    );
}

#[tokio::test]
async fn a_flooding_station_stores_at_most_its_alert_limit_and_others_are_unaffected() {
    use pollsync_center::ingest::alerts::{MAX_ALERTS_PER_STATION, SUPPRESSED_KIND};
    let center = Center::new();
    let mut s1 = center.chain("S-0001");
    let mut s2 = center.chain("S-0002");
    let (a1, _) = s1_events();
    let flood = MAX_ALERTS_PER_STATION + 5;
    let bad = |chain: &StationChain| {
        let mut b = chain.clone().batch(&a1);
        b.signature[0] ^= 1;
        b
    };
    let (h, writer) = ingest::start(&center.store).unwrap();
    let answers: Vec<_> = (0..flood).map(|_| h.submit("S-0001", bad(&s1))).collect();
    let honest = h.submit("S-0002", s2.batch(&a1));
    for a in answers {
        let ack = a.await.expect("answered");
        assert_eq!(ack.reason(), R::BadSignature);
    }
    assert_eq!(honest.await.expect("answered").kind(), AckKind::Accepted);
    assert_eq!(
        h.metrics()
            .alerts_suppressed
            .load(std::sync::atomic::Ordering::Relaxed),
        flood - MAX_ALERTS_PER_STATION
    );
    h.shutdown();
    writer.join().unwrap();
    // A restarted writer counts what is stored: still no more alerts.
    let (h, writer) = ingest::start(&center.store).unwrap();
    assert_eq!(push(&h, "S-0001", bad(&s1)).await.reason(), R::BadSignature);
    assert_eq!(
        push(&h, "S-0001", s1.batch(&a1)).await.kind(),
        AckKind::Accepted
    );
    h.shutdown();
    writer.join().unwrap();
    let alerts = alerts(&center);
    let of_s1: Vec<_> = alerts.iter().filter(|a| a.0 == "S-0001").collect();
    assert_eq!(of_s1.len() as u64, MAX_ALERTS_PER_STATION + 1);
    assert_eq!(of_s1.last().map(|a| a.1.as_str()), Some(SUPPRESSED_KIND));
    assert!(alerts.iter().all(|a| a.0 == "S-0001"), "{alerts:?}");
    assert_eq!(tallies(&center)["S-0001"], truth(&a1));
    assert_eq!(tallies(&center)["S-0002"], truth(&a1));
}

#[tokio::test]
async fn a_fork_is_rejected_alerted_and_quarantines_the_station() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    let mut clone = s1.clone();
    let honest = vec![ballot(1, "D-001", &[F, N, N], &[])];
    assert_eq!(
        push(&h, "S-0001", s1.batch(&honest)).await.kind(),
        AckKind::Accepted
    );
    let fork = push(
        &h,
        "S-0001",
        clone.batch(&[ballot(9, "D-001", &[N, F, N], &[])]),
    )
    .await;
    assert_eq!(
        (fork.kind(), fork.reason(), fork.sequence),
        (AckKind::Rejected, R::Fork, 1)
    );
    assert!(fork.detail.contains("fork"), "{}", fork.detail);
    assert_eq!(h.refused(&s1.peer()), Some(R::Quarantined));
    let later = push(
        &h,
        "S-0001",
        s1.batch(&[ballot(2, "D-001", &[F, N, N], &[])]),
    )
    .await;
    assert_eq!(later.reason(), R::Quarantined);
    let refusal = h.hello(&s1.peer(), hello_for(&s1, 2)).await.unwrap_err();
    assert_eq!(refusal.code, RefusalCode::FailedPrecondition);
    assert!(refusal.detail.contains("quarantined"), "{}", refusal.detail);
    // Other stations are not affected.
    let mut s2 = center.chain("S-0002");
    assert_eq!(
        push(&h, "S-0002", s2.batch(&honest)).await.kind(),
        AckKind::Accepted
    );
    h.shutdown();
    writer.join().unwrap();
    assert_eq!(
        alerts(&center),
        vec![
            ("S-0001".into(), "FORK".into(), 1),
            ("S-0001".into(), "QUARANTINED".into(), 2)
        ]
    );
    assert_eq!(tallies(&center)["S-0001"], truth(&honest));
    // Quarantine survives a restart.
    let (h, writer) = ingest::start(&center.store).unwrap();
    assert_eq!(h.refused(&s1.peer()), Some(R::Quarantined));
    h.shutdown();
    writer.join().unwrap();
}

#[tokio::test]
async fn a_gap_answers_the_expected_sequence_without_an_alert() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    let b1 = s1.batch(&[ballot(1, "D-001", &[F, N, N], &[])]);
    let b2 = s1.batch(&[ballot(2, "D-001", &[F, N, N], &[])]);
    let b3 = s1.batch(&[ballot(3, "D-001", &[F, N, N], &[])]);
    assert_eq!(push(&h, "S-0001", b1).await.kind(), AckKind::Accepted);
    let gap = push(&h, "S-0001", b3.clone()).await;
    assert_eq!(
        (
            gap.kind(),
            gap.reason(),
            gap.sequence,
            gap.expected_sequence
        ),
        (AckKind::Rejected, R::Gap, 3, 2)
    );
    assert_eq!(push(&h, "S-0001", b2).await.kind(), AckKind::Accepted);
    assert_eq!(push(&h, "S-0001", b3).await.kind(), AckKind::Accepted);
    h.shutdown();
    writer.join().unwrap();
    assert!(alerts(&center).is_empty());
    assert_eq!(tallies(&center)["S-0001"]["D-001"].returned, 3);
}

#[tokio::test]
async fn a_batch_signed_by_another_stations_key_is_bad_signature() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    // S-0001's batch signed with S-0002's key, pushed on S-0001's connection.
    let mut forged = center.chain("S-0001");
    forged.set_key(center.bundle("S-0002").signing_key().unwrap());
    let ack = push(
        &h,
        "S-0001",
        forged.batch(&[ballot(1, "D-001", &[F, N, N], &[])]),
    )
    .await;
    assert_eq!(
        (ack.reason(), ack.sequence, ack.expected_sequence),
        (R::BadSignature, 1, 1)
    );
    // S-0002 pushing a batch that names S-0001 (signed by S-0002): WRONG_STATION.
    let mut s2_as_s1 = center.chain("S-0001");
    s2_as_s1.set_key(center.bundle("S-0002").signing_key().unwrap());
    let ack = push(&h, "S-0002", s2_as_s1.batch(&[])).await;
    assert_eq!(ack.reason(), R::WrongStation);
    // A station outside the election.
    let ack = push(&h, "S-9999", center.chain("S-0001").batch(&[])).await;
    assert_eq!(ack.reason(), R::BadSignature);
    h.shutdown();
    writer.join().unwrap();
    let kinds: Vec<_> = alerts(&center)
        .into_iter()
        .map(|(s, k, _)| (s, k))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("S-0001".to_string(), "BAD_SIGNATURE".to_string()),
            ("S-0002".to_string(), "WRONG_STATION".to_string()),
            ("S-9999".to_string(), "BAD_SIGNATURE".to_string())
        ]
    );
    assert!(tallies(&center).is_empty());
}

#[tokio::test]
async fn a_ballot_after_close_is_after_close() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    let sheet = TallySheet {
        issued: 1,
        returned: 1,
        valid: 1,
        ..TallySheet::default()
    };
    let b1 = vec![
        ballot(1, "T-001", &[F, N], &[]),
        issued("T-001", 1),
        close("T-001", sheet.clone()),
    ];
    assert_eq!(
        push(&h, "S-0001", s1.batch(&b1)).await.kind(),
        AckKind::Accepted
    );
    let mut late = s1.clone();
    let ack = push(
        &h,
        "S-0001",
        late.batch(&[ballot(2, "T-001", &[F, N], &[])]),
    )
    .await;
    assert_eq!((ack.reason(), ack.expected_sequence), (R::AfterClose, 2));
    // The same batch 2 without the closed contest is fine.
    let ack = push(
        &h,
        "S-0001",
        s1.batch(&[ballot(3, "D-001", &[F, N, N], &[])]),
    )
    .await;
    assert_eq!(ack.kind(), AckKind::Accepted);
    h.shutdown();
    writer.join().unwrap();
    let store = Store::open_at(&center.store).unwrap();
    let t001 = store
        .tallies()
        .unwrap()
        .into_iter()
        .find(|t| t.station == "S-0001" && t.contest == "T-001")
        .unwrap();
    assert!(t001.closed);
    assert_eq!(t001.sheet, Some(sheet));
    assert_eq!(t001.computed.returned, 1);
    assert_eq!(
        alerts(&center),
        vec![("S-0001".into(), "AFTER_CLOSE".into(), 2)]
    );
}

#[tokio::test]
async fn cancels_work_and_a_bad_cancel_rejects_the_batch() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    let b1 = vec![
        ballot(1, "D-001", &[F, A, N], &["王五"]),
        ballot(2, "D-001", &[N, F, N], &[]),
        cancel(2),
    ];
    let b2 = vec![cancel(1), ballot(3, "T-001", &[F, N], &[])];
    assert_eq!(
        push(&h, "S-0001", s1.batch(&b1)).await.kind(),
        AckKind::Accepted
    );
    assert_eq!(
        push(&h, "S-0001", s1.batch(&b2)).await.kind(),
        AckKind::Accepted
    );
    for bad in [cancel(1), cancel(77)] {
        let ack = push(&h, "S-0001", s1.clone().batch(&[bad])).await;
        assert_eq!((ack.reason(), ack.sequence), (R::InvalidContent, 3));
    }
    // A cancel naming another station's ballot is unknown here.
    let mut s2 = center.chain("S-0002");
    let ack = push(&h, "S-0002", s2.batch(&[cancel(3)])).await;
    assert_eq!(ack.reason(), R::InvalidContent);
    h.shutdown();
    writer.join().unwrap();
    let t = tallies(&center);
    assert_eq!(t["S-0001"], truth(&[b1, b2].concat()));
    let d = &t["S-0001"]["D-001"];
    assert_eq!((d.returned, d.valid), (0, 0));
    assert!(d.write_in.is_empty() && d.for_votes.is_empty());
    assert_eq!(alerts(&center).len(), 3);
}

#[tokio::test]
async fn after_any_rejection_the_tallies_are_those_of_the_honest_batches() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    let mut s2 = center.chain("S-0002");
    let (a1, a2) = s1_events();
    let c1 = vec![ballot(101, "D-001", &[N, F, F], &[]), issued("D-001", 1)];
    let mut bad_key = s1.clone();
    bad_key.set_key(center.bundle("S-0003").signing_key().unwrap());
    let mut wrong_def = s1.clone();
    let mut wrong_def_batch = wrong_def.raw(&a1);
    wrong_def_batch.definition_sha256 = vec![9; 32];
    let mut broken = s1.clone();
    broken.resume(broken.next(), [1; 32]);
    let honest_1 = s1.batch(&a1);
    let gap = s1.clone().batch(&a2);
    let mut far = s1.clone();
    far.resume(5, far.prev());
    let rx = vec![
        h.submit("S-0001", bad_key.batch(&a1)),
        h.submit("S-0001", wrong_def.seal(&wrong_def_batch)),
        h.submit("S-0001", broken.batch(&a1)),
        h.submit("S-0001", honest_1),
        h.submit("S-0001", far.batch(&a2)),
        h.submit("S-0002", s2.batch(&c1)),
        h.submit(
            "S-0001",
            s1.clone().batch(&[ballot(7, "T-002", &[N, N], &[])]),
        ),
        h.submit(
            "S-0001",
            pb::SignedBatch {
                batch: vec![1, 2, 3],
                signature: vec![0; 64],
            },
        ),
        h.submit("S-0001", gap),
    ];
    s1.batch(&a2);
    let mut reasons = Vec::new();
    for r in rx {
        let ack = r.await.unwrap();
        reasons.push((ack.kind(), ack.reason()));
    }
    use AckKind::{Accepted as Ok_, Rejected as Rej};
    assert_eq!(
        reasons,
        vec![
            (Rej, R::BadSignature),
            (Rej, R::WrongDefinition),
            (Rej, R::BrokenChain),
            (Ok_, R::Unspecified),
            (Rej, R::Gap),
            (Ok_, R::Unspecified),
            (Rej, R::InvalidContent),
            (Rej, R::Malformed),
            (Ok_, R::Unspecified),
        ]
    );
    h.shutdown();
    writer.join().unwrap();
    let t = tallies(&center);
    assert_eq!(t["S-0001"], truth(&[a1, a2].concat()));
    assert_eq!(t["S-0002"], truth(&c1));
    // Every rejection but the gap raised an alert.
    assert_eq!(alerts(&center).len(), 5);
}

#[tokio::test]
async fn hello_checks_identity_election_definition_and_state() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let s1 = center.chain("S-0001");
    let ok = h.hello(&s1.peer(), hello_for(&s1, 0)).await.unwrap();
    assert_eq!(ok.center_head_sequence, 0);
    assert_eq!(ok.center_head_hash, vec![0u8; 32]);
    assert_eq!(ok.max_in_flight, 32);
    assert_eq!(ok.max_batch_events, 4096);
    let code = |r: Result<pb::HelloReply, ingest::HelloRefusal>| r.unwrap_err().code;
    assert_eq!(
        code(h.hello(&s1.peer_as(""), hello_for(&s1, 0)).await),
        RefusalCode::Unauthenticated
    );
    assert_eq!(
        code(
            h.hello(&center.chain("S-0002").peer(), hello_for(&s1, 0))
                .await
        ),
        RefusalCode::PermissionDenied
    );
    let mut other = hello_for(&s1, 0);
    other.station_id = "S-9999".into();
    assert_eq!(
        code(h.hello(&s1.peer_as("S-9999"), other).await),
        RefusalCode::PermissionDenied
    );
    let mut other = hello_for(&s1, 0);
    other.election_id = "other".into();
    assert_eq!(
        code(h.hello(&s1.peer(), other).await),
        RefusalCode::FailedPrecondition
    );
    let mut other = hello_for(&s1, 0);
    other.definition_sha256 = vec![0; 32];
    let refusal = h.hello(&s1.peer(), other).await.unwrap_err();
    assert_eq!(refusal.code, RefusalCode::FailedPrecondition);
    assert!(refusal.detail.contains("definition"), "{}", refusal.detail);
    h.shutdown();
    writer.join().unwrap();
}

#[tokio::test]
async fn a_revocation_by_another_process_cuts_the_station_off_within_the_refresh_interval() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    assert_eq!(
        push(
            &h,
            "S-0001",
            s1.batch(&[ballot(1, "D-001", &[F, N, N], &[])])
        )
        .await
        .kind(),
        AckKind::Accepted
    );
    assert_eq!(h.refused(&s1.peer()), None);
    // `center revoke` in another process: its own connection to the store.
    pollsync_center::commands::revoke::revoke(&center.store, "S-0001", "test").unwrap();
    let start = Instant::now();
    while h.refused(&s1.peer()).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "revocation not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert_eq!(h.refused(&s1.peer()), Some(R::Revoked));
    let refusal = h.hello(&s1.peer(), hello_for(&s1, 1)).await.unwrap_err();
    assert_eq!(refusal.code, RefusalCode::PermissionDenied);
    let ack = push(
        &h,
        "S-0001",
        s1.batch(&[ballot(2, "D-001", &[F, N, N], &[])]),
    )
    .await;
    assert_eq!(ack.reason(), R::Revoked);
    h.shutdown();
    writer.join().unwrap();
    // The revocation, the revoked device's refused hello (one STALE_KEY alert), the
    // batch it pushed anyway.
    let kinds: Vec<_> = alerts(&center).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(kinds, vec!["REVOKED", "STALE_KEY", "REVOKED"]);
    assert_eq!(tallies(&center)["S-0001"]["D-001"].returned, 1);
}

#[tokio::test]
async fn a_reenrolled_station_signs_with_its_new_key_and_old_keys_stay() {
    let center = Center::new();
    let mut old = center.chain("S-0001");
    let (h, writer) = ingest::start(&center.store).unwrap();
    assert_eq!(
        push(
            &h,
            "S-0001",
            old.batch(&[ballot(1, "D-001", &[F, N, N], &[])])
        )
        .await
        .kind(),
        AckKind::Accepted
    );
    // Re-enroll while the writer runs (another process would do the same).
    let out = center.path("new-bundles");
    pollsync_center::commands::enroll::enroll(
        &center.store,
        &pollsync_center::commands::enroll::EnrollRequest {
            stations: vec!["S-0001".into()],
            out_dir: out.clone(),
            replace: true,
            ..Default::default()
        },
    )
    .unwrap();
    let bundle = pollsync_proto::EnrollmentBundle::read(&out.join("S-0001.bundle")).unwrap();
    let mut new = old.clone();
    new.set_key(bundle.signing_key().unwrap());
    // The next group re-reads the keys: the old key no longer verifies new batches.
    let ack = push(
        &h,
        "S-0001",
        old.clone().batch(&[ballot(2, "D-001", &[F, N, N], &[])]),
    )
    .await;
    assert_eq!(ack.reason(), R::BadSignature);
    let ack = push(
        &h,
        "S-0001",
        new.batch(&[ballot(2, "D-001", &[F, N, N], &[])]),
    )
    .await;
    assert_eq!(ack.kind(), AckKind::Accepted);
    h.shutdown();
    writer.join().unwrap();
    let store = Store::open_at(&center.store).unwrap();
    let keys = store.keys_of("S-0001").unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.key_no, k.current))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, true)]
    );
    let batches = store.batches(Some("S-0001")).unwrap();
    assert_eq!(
        batches.iter().map(|b| b.key_no).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[tokio::test]
async fn submits_after_shutdown_are_not_answered() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    let mut s1 = center.chain("S-0001");
    let before = h.submit("S-0001", s1.batch(&[]));
    h.shutdown();
    let after = h.submit("S-0001", s1.batch(&[]));
    assert_eq!(before.await.unwrap().kind(), AckKind::Accepted);
    assert!(after.await.is_err());
    writer.join().unwrap();
}

#[tokio::test]
async fn heartbeats_and_connections_reach_the_store() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.store).unwrap();
    h.connection("S-0001", true);
    h.heartbeat(
        "S-0001",
        &pb::Heartbeat {
            local_head_sequence: 7,
            sealed_unacknowledged: 3,
        },
    );
    h.heartbeat("S-9999", &pb::Heartbeat::default());
    let live = h.live_stations();
    let s1 = live.iter().find(|s| s.station == "S-0001").unwrap();
    assert_eq!(s1.presence.connections, 1);
    assert_eq!(s1.presence.local_head_sequence, 7);
    assert!(s1.enrolled);
    h.shutdown();
    writer.join().unwrap();
    let rows = Store::open_at(&center.store).unwrap().stations().unwrap();
    let s1 = rows.iter().find(|s| s.station == "S-0001").unwrap();
    assert!(s1.connected);
    assert_eq!((s1.local_head_sequence, s1.sealed_unacknowledged), (7, 3));
    assert!(s1.last_seen_unix_ms > 0);
    assert!(rows.iter().all(|s| s.station != "S-9999"));
}

mod exactly_once {
    //! The property of the judge's unit test, here through the real writer and
    //! SQLite: random resends and reorders, submitted without waiting so that they
    //! share group commits, then the station's catch-up in order.

    use super::*;
    use proptest::prelude::*;

    fn chain_events(spec: &[Vec<(bool, [u8; 3])>]) -> Vec<Vec<StationEvent>> {
        let mark = |m: u8| match m % 3 {
            0 => N,
            1 => F,
            _ => A,
        };
        let mut id = 0u32;
        let n = spec.len();
        spec.iter()
            .enumerate()
            .map(|(i, ballots)| {
                let mut events: Vec<StationEvent> = ballots
                    .iter()
                    .map(|(town, m)| {
                        id += 1;
                        if *town {
                            ballot(id, "T-001", &[mark(m[0]), mark(m[1])], &[])
                        } else {
                            ballot(id, "D-001", &[mark(m[0]), mark(m[1]), mark(m[2])], &[])
                        }
                    })
                    .collect();
                events.push(issued("D-001", 1));
                if i == n - 1 {
                    if id > 0 {
                        events.push(cancel(1));
                    }
                    events.push(close("D-001", TallySheet::default()));
                }
                events
            })
            .collect()
    }

    /// A cancel must follow the ballot it takes back, as the log's rules (and audit)
    /// read a station's log: a crafted batch with the cancel first is refused, and the
    /// same events in the log's order are taken.
    #[tokio::test]
    async fn a_cancel_before_its_ballot_in_the_same_batch_is_refused() {
        let center = Center::new();
        let (h, writer) = ingest::start(&center.store).unwrap();
        let mut s1 = center.chain("S-0001");
        let backwards = s1.batch(&[cancel(7), ballot(7, "D-001", &[F, N, N], &[])]);
        let ack = push(&h, "S-0001", backwards).await;
        assert_eq!(
            (ack.kind(), ack.reason()),
            (AckKind::Rejected, R::InvalidContent),
            "{ack:?}"
        );
        assert!(ack.detail.contains("only after it"), "{}", ack.detail);
        let mut s1 = center.chain("S-0001");
        let ordered = s1.batch(&[ballot(7, "D-001", &[F, N, N], &[]), cancel(7)]);
        let ack = push(&h, "S-0001", ordered).await;
        assert_eq!(ack.kind(), AckKind::Accepted, "{ack:?}");
        h.shutdown();
        writer.join().unwrap();
        let d = &tallies(&center)["S-0001"]["D-001"];
        assert_eq!(
            (d.returned, d.for_of("D-001-1")),
            (0, 0),
            "the ballot is taken back"
        );
    }

    /// A closing tally sheet with more write-in names than a ballot has candidate marks
    /// (the wire once allowed only 1,024 rows): as many as the election allows a sheet
    /// must travel, or the station's chain would be stuck at its close.
    #[tokio::test]
    async fn a_close_with_many_write_in_names_is_accepted() {
        let center = Center::new();
        let (h, writer) = ingest::start(&center.store).unwrap();
        let mut s1 = center.chain("S-0001");
        let names: Vec<String> = (0..1_100).map(|i| format!("选民{i}")).collect();
        let mut events: Vec<StationEvent> = names
            .iter()
            .enumerate()
            .map(|(i, name)| ballot(10_000 + i as u32, "D-001", &[N, N, N], &[name.as_str()]))
            .collect();
        events.push(issued("D-001", names.len() as u64));
        let sheet = truth(&events).remove("D-001").unwrap();
        assert_eq!(sheet.write_in.len(), 1_100);
        events.push(close("D-001", sheet.clone()));
        let ack = push(&h, "S-0001", s1.batch(&events)).await;
        assert_eq!(ack.kind(), AckKind::Accepted, "{ack:?}");
        h.shutdown();
        writer.join().unwrap();
        assert_eq!(tallies(&center)["S-0001"]["D-001"], sheet);
        assert!(alerts(&center).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn resends_and_reorders_through_the_writer_count_once(
            spec in prop::collection::vec(
                prop::collection::vec((any::<bool>(), any::<[u8; 3]>()), 0..5), 1..6),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        ) {
            let center = Center::new();
            let mut chain = center.chain("S-0001");
            let events = chain_events(&spec);
            let batches: Vec<_> = events.iter().map(|e| chain.batch(e)).collect();
            let (h, writer) = ingest::start(&center.store).unwrap();
            let shuffled: Vec<_> = order
                .iter()
                .map(|i| h.submit("S-0001", batches[i.index(batches.len())].clone()))
                .collect();
            for rx in shuffled {
                let ack = rx.blocking_recv().unwrap();
                prop_assert!(
                    ack.kind() != AckKind::Rejected || ack.reason() == R::Gap,
                    "{:?}", ack
                );
            }
            let in_order: Vec<_> = batches.iter().map(|b| h.submit("S-0001", b.clone())).collect();
            for rx in in_order {
                prop_assert_ne!(rx.blocking_recv().unwrap().kind(), AckKind::Rejected);
            }
            h.shutdown();
            writer.join().unwrap();
            prop_assert!(alerts(&center).is_empty());
            let all: Vec<StationEvent> = events.concat();
            prop_assert_eq!(&tallies(&center)["S-0001"], &truth(&all));
            prop_assert_eq!(
                Store::open_at(&center.store).unwrap().batches(Some("S-0001")).unwrap().len(),
                batches.len()
            );
        }
    }
}
