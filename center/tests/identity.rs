//! A station's identity through the election, in process through the API the gRPC
//! server calls (`IngestHandle::hello`, `submit_from`, `check_peer`, `fetch`),
//! against a real store (SPEC §12): one current key per station, forks only on
//! signed evidence, replace, release, and the fetch behind `station recover`.

mod support;

use pollsync_center::store::Records as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pollsync_center::commands::{enroll, revoke};
use pollsync_center::ingest::{self, IngestHandle, Peer, RefusalCode};
use pollsync_center::store::Store;
use pollsync_election::Mark::{For as F, None as N};
use pollsync_election::{StationEvent, TallySheet};
use pollsync_proto::pb::{self, AckKind, RejectReason as R};
use pollsync_proto::{ChainHead, EnrollmentBundle};
use support::*;

async fn push_as(h: &IngestHandle, peer: &Peer, batch: pb::SignedBatch) -> pb::Ack {
    h.submit_from(peer, batch)
        .await
        .expect("the writer answers")
}

fn hello_at(chain: &StationChain, head: u64, hash: [u8; 32]) -> pb::HelloRequest {
    chain.hello_at(head, hash)
}

fn kinds(center: &Center) -> Vec<String> {
    Store::open(&center.data)
        .unwrap()
        .alerts()
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect()
}

fn tallies(center: &Center) -> BTreeMap<String, BTreeMap<String, TallySheet>> {
    Store::open(&center.data).unwrap().tally_map().unwrap()
}

/// Waits until the running ingest sees another process's commit (it re-reads the
/// store at least every `REFRESH_INTERVAL_MS`).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `center enroll S --replace` into a folder of its own; returns the new bundle.
fn replace(center: &Center, station: &str, reason: &str) -> EnrollmentBundle {
    let out = center.path(&format!("replaced-{}", rand_suffix()));
    enroll::enroll(
        &center.data,
        &enroll::EnrollRequest {
            stations: vec![station.into()],
            out_dir: out.clone(),
            replace: true,
            reason: Some(reason.into()),
            ..Default::default()
        },
    )
    .unwrap();
    EnrollmentBundle::read(&enroll::bundle_path(&out, station)).unwrap()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A chain continuing from a replacement bundle's head with its key.
fn continuing(bundle: &EnrollmentBundle) -> StationChain {
    let mut chain = StationChain::from_bundle(bundle);
    let start = bundle.chain_start();
    chain.resume(start.sequence + 1, start.hash);
    chain
}

fn d(id: u32) -> StationEvent {
    ballot(id, "D-001", &[F, N, N], &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_key_is_refused_everywhere_with_one_alert_and_the_new_device_continues_the_chain()
 {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.data).unwrap();
    let mut old = center.chain("S-0001");
    let old_peer = old.peer();
    for id in 1..=2 {
        assert_eq!(
            push_as(&h, &old_peer, old.batch(&[d(id)])).await.kind(),
            AckKind::Accepted
        );
    }
    let head = ChainHead {
        sequence: 2,
        hash: old.prev(),
    };

    let bundle = replace(&center, "S-0001", "screen broken");
    // The bundle carries the center's head for the station.
    assert_eq!(bundle.chain_start(), head);
    until("the replacement", || h.check_peer(&old_peer).is_err()).await;

    // The old key: refused at Hello (whatever it claims), at Push, at Fetch.
    for claim in [2, 3] {
        let refusal = h
            .hello(&old_peer, hello_at(&old, claim, [7; 32]))
            .await
            .unwrap_err();
        assert_eq!(refusal.code, RefusalCode::PermissionDenied);
        assert!(
            refusal.detail.starts_with("STALE_KEY"),
            "{}",
            refusal.detail
        );
    }
    assert!(
        h.check_peer(&old_peer)
            .unwrap_err()
            .detail
            .contains("STALE_KEY")
    );
    assert!(h.fetch(&old_peer, 1, 2).is_err());
    // An open stream of the old key is cut once the writer has published the change
    // (within its refresh interval).
    until("open streams to be cut", || {
        h.refused(&old_peer) == Some(R::StaleKey)
    })
    .await;
    // Its batches (even one that would be a fork at sequence 2) are STALE_KEY.
    let mut forked = old.clone();
    forked.resume(2, center_hash_of_first(&center));
    let ack = push_as(&h, &old_peer, forked.batch(&[d(9)])).await;
    assert_eq!((ack.kind(), ack.reason()), (AckKind::Rejected, R::StaleKey));
    let ack = push_as(&h, &old_peer, old.batch(&[d(3)])).await;
    assert_eq!(ack.reason(), R::StaleKey);

    // The new device: its first batch continues the chain.
    let mut new = continuing(&bundle);
    let new_peer = new.peer();
    let reply = h
        .hello(&new_peer, hello_at(&new, 2, head.hash))
        .await
        .unwrap();
    assert_eq!(
        (reply.center_head_sequence, reply.evidence_sequence),
        (2, 0)
    );
    let ack = push_as(&h, &new_peer, new.batch(&[d(4)])).await;
    assert_eq!((ack.kind(), ack.sequence), (AckKind::Accepted, 3));
    h.shutdown();
    writer.join().unwrap();

    // One STALE_KEY alert however often the old device tried; no fork, no
    // quarantine; the replacement recorded with its reason.
    let alerts = Store::open(&center.data).unwrap().alerts().unwrap();
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, vec!["REPLACED", "STALE_KEY"], "{alerts:?}");
    assert!(
        alerts[0].detail.contains("screen broken"),
        "{}",
        alerts[0].detail
    );
    let store = Store::open(&center.data).unwrap();
    assert!(!store.stations().unwrap()[0].quarantined);
    let t = &tallies(&center)["S-0001"]["D-001"];
    assert_eq!(
        t.returned, 3,
        "batches 1, 2 of the old key and 3 of the new"
    );
    // Batches the old key signed stay valid for audit.
    let keys: Vec<u32> = store
        .batches(Some("S-0001"))
        .unwrap()
        .iter()
        .map(|b| b.key_no)
        .collect();
    assert_eq!(keys, vec![1, 1, 2]);
    assert!(pollsync_center::audit::audit(&store).unwrap().is_clean());
}

fn center_hash_of_first(center: &Center) -> [u8; 32] {
    Store::open(&center.data)
        .unwrap()
        .batches(Some("S-0001"))
        .unwrap()[0]
        .hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_claim_changes_nothing_and_a_signed_other_batch_is_a_fork_with_its_evidence() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.data).unwrap();
    let mut s1 = center.chain("S-0001");
    let peer = s1.peer();
    let mut clone = s1.clone();
    for id in 1..=3 {
        assert_eq!(
            push_as(&h, &peer, s1.batch(&[d(id)])).await.kind(),
            AckKind::Accepted
        );
    }
    // Claims: level with another hash, behind with another hash, behind with the
    // same hash (a restored backup). The center only asks for evidence.
    let level = h.hello(&peer, hello_at(&s1, 3, [9; 32])).await.unwrap();
    assert_eq!(level.evidence_sequence, 3);
    let behind = h.hello(&peer, hello_at(&s1, 1, [9; 32])).await.unwrap();
    assert_eq!(behind.evidence_sequence, 1);
    let same = h
        .hello(&peer, hello_at(&s1, 1, center_hash_of_first(&center)))
        .await
        .unwrap();
    assert_eq!((same.evidence_sequence, same.center_head_sequence), (0, 3));
    assert!(
        h.check_peer(&peer).is_ok(),
        "a claim alone quarantines nothing"
    );
    assert!(kinds(&center).is_empty(), "and raises nothing");

    // The clone's signed batch 1 differs from the center's: a fork, on evidence.
    let clone_batch = clone.batch(&[d(99)]);
    let fork = push_as(&h, &peer, clone_batch.clone()).await;
    assert_eq!(
        (fork.kind(), fork.reason(), fork.sequence),
        (AckKind::Rejected, R::Fork, 1)
    );
    assert_eq!(h.refused(&peer), Some(R::Quarantined));
    h.shutdown();
    writer.join().unwrap();
    let store = Store::open(&center.data).unwrap();
    let evidence = store.fork_evidence().unwrap();
    assert_eq!(evidence.len(), 1);
    let e = &evidence[0];
    assert_eq!((e.station.as_str(), e.sequence), ("S-0001", 1));
    let stored = &store.batches(Some("S-0001")).unwrap()[0];
    assert_eq!(
        (&e.stored.batch, &e.stored.signature),
        (&stored.batch, &stored.signature)
    );
    assert_eq!(
        (&e.other.batch, &e.other.signature),
        (&clone_batch.batch, &clone_batch.signature)
    );
    assert_eq!((e.stored.key_no, e.other.key_no), (1, 1));
    assert_eq!(
        tallies(&center)["S-0001"]["D-001"].returned,
        3,
        "counts unchanged"
    );
    assert!(pollsync_center::audit::audit(&store).unwrap().is_clean());
    // Evidence that no longer proves the fork is named by the audit.
    let conn = rusqlite::Connection::open(center.data.join("center.db")).unwrap();
    conn.execute(
        "UPDATE fork_evidence SET other_signature = zeroblob(64)",
        [],
    )
    .unwrap();
    let audit = pollsync_center::audit::audit(&store).unwrap();
    assert!(
        audit
            .differences
            .iter()
            .any(|d| d.contains("fork evidence of station S-0001 batch 1")
                && d.contains("the other batch does not verify")),
        "{:?}",
        audit.differences
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_retires_the_forked_key_and_a_replacement_syncs_again() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.data).unwrap();
    let mut s1 = center.chain("S-0001");
    let peer = s1.peer();
    let mut clone = s1.clone();
    assert_eq!(
        push_as(&h, &peer, s1.batch(&[d(1)])).await.kind(),
        AckKind::Accepted
    );
    assert_eq!(
        push_as(&h, &peer, clone.batch(&[d(2)])).await.reason(),
        R::Fork
    );

    // Release needs a quarantine and a reason.
    let err = revoke::release(&center.data, "S-0002", "looked at it").unwrap_err();
    assert!(err.to_string().contains("not quarantined"), "{err}");
    let err = revoke::release(&center.data, "S-0001", "").unwrap_err();
    assert!(err.to_string().contains("--reason"), "{err}");
    let released = revoke::release(&center.data, "S-0001", "clone found in the storeroom").unwrap();
    assert_eq!(released.retired_key_no, Some(1));
    until("the release", || h.refused(&peer) == Some(R::StaleKey)).await;
    // The forked key (the original's too: they share it) stays refused.
    let refusal = h
        .hello(&peer, hello_at(&s1, 1, s1.prev()))
        .await
        .unwrap_err();
    assert!(
        refusal.detail.contains("retired after a fork"),
        "{}",
        refusal.detail
    );

    let bundle = replace(&center, "S-0001", "after the fork");
    let mut new = continuing(&bundle);
    assert_eq!(
        new.next(),
        2,
        "the replacement continues after the center's batch 1"
    );
    until("the replacement", || h.check_peer(&new.peer()).is_ok()).await;
    let ack = push_as(&h, &new.peer(), new.batch(&[d(3)])).await;
    assert_eq!((ack.kind(), ack.sequence), (AckKind::Accepted, 2));
    assert!(h.hello(&peer, hello_at(&s1, 1, s1.prev())).await.is_err());
    h.shutdown();
    writer.join().unwrap();
    // The STALE_KEY alert is written by the serving ingest, the others by the
    // commands: their order between processes is not fixed.
    let mut all = kinds(&center);
    all.sort();
    assert_eq!(all, vec!["FORK", "RELEASED", "REPLACED", "STALE_KEY"]);
    let store = Store::open(&center.data).unwrap();
    let keys = store.keys_of("S-0001").unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.key_no, k.usable()))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, true)]
    );
    assert_eq!(tallies(&center)["S-0001"]["D-001"].returned, 2);
    assert!(pollsync_center::audit::audit(&store).unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_the_stations_own_batches_with_the_certificate_that_signed_each() {
    let center = Center::new();
    let (h, writer) = ingest::start(&center.data).unwrap();
    let mut old = center.chain("S-0001");
    for id in 1..=2 {
        assert_eq!(
            push_as(&h, &old.peer(), old.batch(&[d(id)])).await.kind(),
            AckKind::Accepted
        );
    }
    let bundle = replace(&center, "S-0001", "battery");
    let mut new = continuing(&bundle);
    until("the replacement", || h.check_peer(&new.peer()).is_ok()).await;
    assert_eq!(
        push_as(&h, &new.peer(), new.batch(&[d(3)])).await.kind(),
        AckKind::Accepted
    );

    let fetched = h.fetch(&new.peer(), 1, 100).unwrap();
    assert_eq!(fetched.len(), 3);
    let store = Store::open(&center.data).unwrap();
    let keys = store.keys_of("S-0001").unwrap();
    for (f, (stored, key)) in fetched.iter().zip(
        store
            .batches(Some("S-0001"))
            .unwrap()
            .iter()
            .zip([&keys[0], &keys[0], &keys[1]]),
    ) {
        let b = f.batch.as_ref().unwrap();
        assert_eq!((&b.batch, &b.signature), (&stored.batch, &stored.signature));
        assert_eq!(f.signer_cert_der, key.cert_der);
    }
    // Another station's certificate fetches its own batches only.
    assert!(
        h.fetch(&center.chain("S-0002").peer(), 1, 100)
            .unwrap()
            .is_empty()
    );
    h.shutdown();
    writer.join().unwrap();
}
