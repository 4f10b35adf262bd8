//! Test vectors of docs/PROTOCOL.md ("Worked example"): the exact bytes a
//! third-party verifier can check its own implementation against. If this test
//! fails, the wire format changed: fix the code, not the vector.

use ed25519_dalek::SigningKey;
use pollsync_proto::{envelope, export, pb};

fn example_key() -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    SigningKey::from_bytes(&seed)
}

fn example_batch() -> pb::Batch {
    pb::Batch {
        election_id: "e-1".into(),
        station_id: "S-0001".into(),
        sequence: 1,
        prev_hash: envelope::GENESIS_HASH.to_vec(),
        definition_sha256: envelope::definition_sha256(b"[election]\nid = \"e-1\"\n").to_vec(),
        events: vec![
            pb::Event {
                kind: Some(pb::event::Kind::Issued(pb::Issued {
                    contest: "D-001".into(),
                    count: 2,
                })),
            },
            pb::Event {
                kind: Some(pb::event::Kind::Ballot(pb::Ballot {
                    id: (0u8..16).collect(),
                    contest: "D-001".into(),
                    marks: vec![1, 2, 0],
                    write_in: vec!["Li".into()],
                })),
            },
        ],
        mode: "official".into(),
    }
}

#[test]
fn worked_example_bytes() {
    let key = example_key();
    let batch = example_batch();
    let signed = envelope::seal_batch(&key, &batch);
    let export_bytes =
        export::encode_export(&export::new_export("e-1", "S-0001", vec![signed.clone()]));
    if std::env::var_os("PRINT_VECTORS").is_some() {
        println!(
            "public key  {}",
            hex::encode(key.verifying_key().as_bytes())
        );
        println!("definition  {}", hex::encode(&batch.definition_sha256));
        println!("batch       {}", hex::encode(&signed.batch));
        println!(
            "chain hash  {}",
            hex::encode(envelope::chain_hash(&signed.batch))
        );
        println!("signature   {}", hex::encode(&signed.signature));
        println!("export      {}", hex::encode(&export_bytes));
    }
    assert_eq!(hex::encode(key.verifying_key().as_bytes()), PUBLIC_KEY);
    assert_eq!(hex::encode(&batch.definition_sha256), DEFINITION);
    assert_eq!(hex::encode(&signed.batch), BATCH);
    assert_eq!(hex::encode(envelope::chain_hash(&signed.batch)), CHAIN_HASH);
    assert_eq!(hex::encode(&signed.signature), SIGNATURE);
    assert_eq!(hex::encode(&export_bytes), EXPORT);
    envelope::verify_batch(&key.verifying_key(), &signed).unwrap();
    assert_eq!(
        envelope::check_chain("e-1", "S-0001", &[signed])
            .unwrap()
            .sequence,
        1
    );
}

/// The zero report of a station serving contests D-001 and T-001, as an event of
/// batch 1 (PROTOCOL §12): `Event` field 5, `ZeroReport.contests` field 1.
#[test]
fn zero_report_event_bytes() {
    use prost::Message as _;
    let event = pb::Event {
        kind: Some(pb::event::Kind::ZeroReport(pb::ZeroReport {
            contests: vec!["D-001".into(), "T-001".into()],
        })),
    };
    assert_eq!(
        hex::encode(event.encode_to_vec()),
        "2a0e0a05442d3030310a05542d303031"
    );
    let batch = pb::Batch {
        events: vec![event],
        ..pb::Batch::default()
    };
    assert_eq!(
        hex::encode(batch.encode_to_vec()),
        "32102a0e0a05442d3030310a05542d303031"
    );
}

const PUBLIC_KEY: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const DEFINITION: &str = "a0ed86ac65e888a045823031405c0a36621cef545ab7788b22b53b467a247953";
const BATCH: &str = "0a03652d311206532d303030311801222000000000000000000000000000000000000000000000000000000000000000002a20a0ed86ac65e888a045823031405c0a36621cef545ab7788b22b53b467a247953320b12090a05442d303031100232240a220a10000102030405060708090a0b0c0d0e0f1205442d3030311a0301020022024c693a086f6666696369616c";
const CHAIN_HASH: &str = "b101d972a1e1abaddfec43157c388b31445f25fac43d43dd9f981b0ce1765e14";
const SIGNATURE: &str = "33c0fff2dbcbdc4bb5887867f99f7027318cc620e94b4e03625fea040d7eb70a19bda920fe5be0d80254089041f8fad4203c8ca72750a3d75285e4064107b10c";
const EXPORT: &str = "5053594e4345583108011203652d311a06532d3030303122d5010a90010a03652d311206532d303030311801222000000000000000000000000000000000000000000000000000000000000000002a20a0ed86ac65e888a045823031405c0a36621cef545ab7788b22b53b467a247953320b12090a05442d303031100232240a220a10000102030405060708090a0b0c0d0e0f1205442d3030311a0301020022024c693a086f6666696369616c124033c0fff2dbcbdc4bb5887867f99f7027318cc620e94b4e03625fea040d7eb70a19bda920fe5be0d80254089041f8fad4203c8ca72750a3d75285e4064107b10c";
