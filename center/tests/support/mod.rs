//! Shared pieces of the center's tests: a two-contest election, a center store
//! initialised and enrolled in a temporary folder, and station chains that seal
//! signed batches with a bundle's key, as a station would.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pollsync_center::store::StoreLocation;

use ed25519_dalek::SigningKey;
use pollsync_center::commands::{enroll, init};
use pollsync_election::{Ballot, BallotId, Mark, Station, StationEvent, TallySheet};
use pollsync_proto::chain::ChainWriter;
use pollsync_proto::convert::event_to_pb;
use pollsync_proto::{ChainHead, EnrollmentBundle, pb};

/// D-001 (2 seats, 3 candidates) at every station, T-001 (1 seat) at S-0001 and
/// S-0002, T-002 (1 seat) at S-0003: the shared test election.
pub const ELECTION: &str = include_str!("../../../tests/fixtures/three-stations.toml");

/// The tests' own PostgreSQL servers (`sim`'s, which its benchmarks start too;
/// included as source: `sim` depends on this crate).
#[path = "../../../sim/src/pg.rs"]
pub mod pg;

/// Environment variable: `postgres` puts each [`Center`] on a PostgreSQL server
/// of its own (`.ci/run` runs the ingest suite so once more).
pub const ENGINE_ENV: &str = "POLLSYNC_TEST_ENGINE";

/// A center initialised and fully enrolled in a temporary folder (or, if
/// [`ENGINE_ENV`] says so, on a PostgreSQL server of its own).
pub struct Center {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    /// Where the store is: `data`, or the PostgreSQL database.
    pub store: StoreLocation,
    pub bundles: PathBuf,
    pub election_file: PathBuf,
    /// Stopped when the center is dropped.
    _pg: Option<pg::PgServer>,
}

impl Center {
    pub fn new() -> Center {
        Self::with_election(ELECTION)
    }

    pub fn with_election(toml: &str) -> Center {
        let tmp = tempfile::tempdir().unwrap();
        let election_file = tmp.path().join("election.toml");
        std::fs::write(&election_file, toml).unwrap();
        let data = tmp.path().join("center-data");
        let bundles = tmp.path().join("bundles");
        let (store, pg) = if std::env::var(ENGINE_ENV).is_ok_and(|v| v == "postgres") {
            let server = pg::PgServer::start();
            let url = server.create_database("center");
            (StoreLocation::Postgres(url), Some(server))
        } else {
            (StoreLocation::Folder(data.clone()), None)
        };
        init::init(&store, &election_file, &[], None).unwrap();
        enroll::enroll(
            &store,
            &enroll::EnrollRequest {
                all: true,
                out_dir: bundles.clone(),
                ..Default::default()
            },
        )
        .unwrap();
        Center {
            tmp,
            data,
            store,
            bundles,
            election_file,
            _pg: pg,
        }
    }

    pub fn bundle(&self, station: &str) -> EnrollmentBundle {
        EnrollmentBundle::read(&enroll::bundle_path(&self.bundles, station)).unwrap()
    }

    pub fn chain(&self, station: &str) -> StationChain {
        StationChain::from_bundle(&self.bundle(station))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// Seals a station's batches with its bundle's key, in sequence: the station's own
/// batch builder (`proto::chain::ChainWriter`), plus what tests change by hand. Like
/// a station, it opens batch 1 with the station's zero report.
#[derive(Clone, Debug)]
pub struct StationChain {
    pub writer: ChainWriter,
    /// The station whose zero report opens batch 1 (`None`: the chain opens without
    /// one, as a faulty device's would).
    pub station: Option<Station>,
}

impl StationChain {
    pub fn from_bundle(bundle: &EnrollmentBundle) -> StationChain {
        let def = pollsync_election::load("bundle", &bundle.election_toml).unwrap();
        StationChain {
            writer: ChainWriter::from_bundle(bundle).unwrap(),
            station: def.station(&bundle.station_id).cloned(),
        }
    }

    /// The same chain, opening batch 1 without the zero report.
    pub fn without_zero_report(mut self) -> StationChain {
        self.station = None;
        self
    }

    /// The next batch holding `events` (after the zero report in batch 1), unsigned.
    pub fn raw(&self, events: &[StationEvent]) -> pb::Batch {
        let opening = self.station.as_ref().and_then(|s| self.writer.opening(s));
        self.writer.unsigned(
            opening
                .into_iter()
                .chain(events.iter().map(event_to_pb))
                .collect(),
        )
    }

    /// Seals `batch` with this chain's key and advances the chain to it.
    pub fn seal(&mut self, batch: &pb::Batch) -> pb::SignedBatch {
        self.writer.seal(batch)
    }

    pub fn batch(&mut self, events: &[StationEvent]) -> pb::SignedBatch {
        let b = self.raw(events);
        self.seal(&b)
    }

    /// The chain hash the next batch links to.
    pub fn prev(&self) -> [u8; 32] {
        self.writer.head().hash
    }

    /// The sequence the next batch carries.
    pub fn next(&self) -> u64 {
        self.writer.head().next_sequence()
    }

    pub fn key(&self) -> &SigningKey {
        self.writer.key()
    }

    /// The next batch carries `next` and links to `prev`.
    pub fn resume(&mut self, next: u64, prev: [u8; 32]) {
        self.writer = self.writer.clone().after(ChainHead {
            sequence: next - 1,
            hash: prev,
        });
    }

    /// Signs with `key` from now on.
    pub fn set_key(&mut self, key: SigningKey) {
        self.writer = self.writer.clone().signing_with(key);
    }

    /// The Hello of a station whose local head is this chain's last batch.
    pub fn hello(&self) -> pb::HelloRequest {
        self.writer.hello()
    }

    /// The Hello of this station's device claiming the head (`head`, `hash`).
    pub fn hello_at(&self, head: u64, hash: [u8; 32]) -> pb::HelloRequest {
        self.writer
            .clone()
            .after(ChainHead {
                sequence: head,
                hash,
            })
            .hello()
    }

    /// The peer a TLS connection with this station's certificate proves.
    pub fn peer(&self) -> pollsync_center::ingest::Peer {
        self.peer_as(self.writer.station_id())
    }

    /// This key, on a certificate naming `station`.
    pub fn peer_as(&self, station: &str) -> pollsync_center::ingest::Peer {
        pollsync_center::ingest::Peer {
            station: station.to_owned(),
            key: self.key().verifying_key().to_bytes(),
        }
    }
}

pub fn ballot(id: u32, contest: &str, marks: &[Mark], write_ins: &[&str]) -> StationEvent {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&id.to_be_bytes());
    bytes[15] = 0xb1;
    StationEvent::Ballot(Ballot {
        id: BallotId::from_bytes(bytes),
        contest: contest.into(),
        marks: marks.to_vec(),
        write_ins: write_ins.iter().map(|s| s.to_string()).collect(),
    })
}

pub fn ballot_id(id: u32) -> BallotId {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&id.to_be_bytes());
    bytes[15] = 0xb1;
    BallotId::from_bytes(bytes)
}

pub fn issued(contest: &str, count: u64) -> StationEvent {
    StationEvent::Issued {
        contest: contest.into(),
        count,
    }
}

pub fn cancel(id: u32) -> StationEvent {
    StationEvent::Cancel {
        ballot_id: ballot_id(id),
        reason: "entered twice".into(),
    }
}

pub fn close(contest: &str, sheet: TallySheet) -> StationEvent {
    StationEvent::Close {
        contest: contest.into(),
        sheet,
    }
}

/// What the election crate computes from a station's events applied once, in order
/// (`election::Ledger`, for the first station serving every contest they name), for
/// the contests they name, zero entries left out, as the store reports them.
pub fn truth(events: &[StationEvent]) -> std::collections::BTreeMap<String, TallySheet> {
    truth_in(ELECTION, events)
}

/// [`truth`] under another election definition (TOML text).
pub fn truth_in(
    election: &str,
    events: &[StationEvent],
) -> std::collections::BTreeMap<String, TallySheet> {
    let def = pollsync_election::load("t", election).unwrap();
    let named: std::collections::BTreeSet<&str> =
        events.iter().filter_map(StationEvent::contest).collect();
    let station = def
        .stations
        .iter()
        .find(|s| named.iter().all(|c| s.contests.iter().any(|x| x == c)))
        .unwrap();
    let mut ledger = pollsync_election::Ledger::new(&def, station);
    for e in events {
        ledger.apply(&def, e).unwrap();
    }
    named
        .into_iter()
        .map(|c| {
            (
                c.to_owned(),
                ledger.contest(c).unwrap().computed().without_zeros(),
            )
        })
        .collect()
}

/// The `center` binary of this package.
pub fn center_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_center"))
}
