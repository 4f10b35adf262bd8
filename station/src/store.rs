//! The station's durable store: one SQLite file (WAL, `synchronous=FULL`) holding the
//! enrollment, the append-only log of events not yet sealed, the sealed batches as the
//! exact signed bytes that are sent, and what the center has acknowledged.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction, so several `station` processes
//! can work beside a running agent: appends and seals are serialised by SQLite, and an
//! event is either wholly in the log or not at all. A command reports success only
//! after its transaction is durable (G1).
//!
//! Secret ballot (G6): nothing here holds a time or a voter. Ballots wait for their
//! group (`election::batching`: at least K of a contest in a batch) in a table keyed by
//! the chain head when they were recorded (their generation: the most recent are held
//! back, and nothing finer than the batches is known) and then their random id, so no
//! rowid or table order follows the order they were recorded in within a generation.
//! Sealing releases whole groups, oldest generations first, shuffles each batch's ballots,
//! deletes their rows (with `secure_delete` on, so the freed space is zeroed) and then
//! checkpoints and truncates the WAL, whose frames were appended in recording order.
//! The other events (issued, a cancel of a sealed ballot, a close) wait in log order.
//!
//! A station set up from genesis opens its log with its zero report (SPEC §3), put in
//! the pending log by [`Store::create`] in the transaction that provisions it; the seal
//! puts it before every ballot of batch 1.

use std::collections::{BTreeSet, HashMap};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pollsync_election::batching::{cancel_removes_held, next_group, releasable};
use pollsync_election::log::{self, LogError};
use pollsync_election::{BallotId, ElectionDefinition, Station, StationEvent, load};
use pollsync_proto::convert::{event_from_pb, event_to_pb};
use pollsync_proto::{ChainHead, EnrollmentBundle, GENESIS_HASH, pb};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Result, StationError};

/// The database file inside the data folder.
pub const DB_FILE: &str = "station.db";
/// How long a command waits for another process's write to finish.
pub const BUSY_TIMEOUT_MS: u64 = 30_000;
/// Room left in a batch for its header (ids, sequence, hashes) and per-event framing.
const BATCH_HEADER_BYTES: usize = 1_024;
const EVENT_FRAMING_BYTES: usize = 8;
/// The largest single event: it must fit in a batch on its own.
pub const MAX_EVENT_BYTES: usize = pollsync_proto::limits::MAX_BATCH_BYTES - BATCH_HEADER_BYTES;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
-- Events other than ballots recorded but not yet sealed, in log order (prost-encoded pb.Event).
CREATE TABLE pending (id INTEGER PRIMARY KEY, event BLOB NOT NULL);
-- Ballots waiting for their group: per contest, by the chain head when they were
-- recorded (no finer than the batches) and then by their random id (no order of
-- recording within it); the encoded pb.Event, and the cancel that travels with it
-- when a cancel could not remove it (K or fewer of its contest waiting).
CREATE TABLE waiting (
    contest TEXT NOT NULL,
    generation INTEGER NOT NULL,
    ballot_id BLOB NOT NULL,
    ballot BLOB NOT NULL,
    cancel BLOB,
    PRIMARY KEY (contest, generation, ballot_id)
) WITHOUT ROWID;
-- Sealed batches: the exact signed bytes (prost-encoded pb.SignedBatch) and their chain hash.
CREATE TABLE batches (
    sequence INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    signed BLOB NOT NULL,
    events INTEGER NOT NULL,
    ballots INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0
);
-- Contests whose tally sheet is recorded: nothing more is taken for them.
CREATE TABLE closed (contest TEXT PRIMARY KEY) WITHOUT ROWID;
";

const META_BUNDLE: &str = "bundle";
/// Where to reach the center: a JSON list of `HOST:PORT`, tried in order.
const META_CENTERS: &str = "center_addresses";
/// Where to reach the center, as a store set up before address lists kept it: one
/// `HOST:PORT`. Read when [`META_CENTERS`] is absent.
const META_CENTER_SINGLE: &str = "center_address";
/// The center address this device last reached (a Hello answered), as text.
pub const META_CENTER_REACHED: &str = "center_reached";
/// K of the election (`min_ballots_per_batch`), as decimal text.
const META_MIN_BALLOTS: &str = "min_ballots_per_batch";
/// Why sealing is held (this device's chain is not the center's); absent when not.
const META_SEAL_HOLD: &str = "seal_hold";
/// Where this device's chain starts when it replaced another device (the head the
/// bundle carried): 8 bytes big-endian sequence then the 32-byte hash. Absent: genesis.
const META_CHAIN_START: &str = "chain_start";
/// Unix time in ms of the last exchange with the center (not tied to any ballot).
pub const META_LAST_CONTACT_MS: &str = "last_contact_unix_ms";

/// What the enrollment bundle provisioned, loaded once per command.
pub struct Provisioned {
    /// The signed enrollment bundle as `station init` stored it: the station's and
    /// election's ids, its identity and the center's address.
    pub bundle: EnrollmentBundle,
    /// The election definition the bundle carries.
    pub definition: ElectionDefinition,
    /// Where to reach the center, tried in this order (the bundle's list, unless
    /// `init --center` overrode it): at least one `HOST:PORT`.
    pub center_addresses: Vec<String>,
    /// The address this device last reached the center at, if any (when
    /// provisioned, that is: the command's own connections may move on).
    pub center_reached: Option<String>,
}

impl Provisioned {
    /// The id of the station this device records for.
    pub fn station_id(&self) -> &str {
        &self.bundle.station_id
    }

    /// The index in [`Provisioned::center_addresses`] to try first: the address
    /// last reached if it is still listed, else the first.
    pub fn first_center_index(&self) -> usize {
        first_center_index(&self.center_addresses, self.center_reached.as_deref())
    }

    /// This station's entry in the definition (checked at `init`).
    pub fn station(&self) -> Result<&Station> {
        self.definition
            .station(&self.bundle.station_id)
            .ok_or_else(|| StationError::Corrupt {
                detail: format!(
                    "station {} is missing from the stored definition",
                    self.bundle.station_id
                ),
            })
    }
}

/// The index in `addresses` to try first: `reached` (the address last reached) if
/// it is listed, else 0.
pub fn first_center_index(addresses: &[String], reached: Option<&str>) -> usize {
    reached
        .and_then(|reached| addresses.iter().position(|a| a == reached))
        .unwrap_or(0)
}

/// Every address of `addresses`, starting with `reached` (the address last
/// reached) if it is listed, then the others in list order after it, round robin:
/// the order in which one-off calls (receipts, recovery) try them.
pub fn trying_order(addresses: &[String], reached: Option<&str>) -> Vec<String> {
    let first = first_center_index(addresses, reached);
    addresses[first..]
        .iter()
        .chain(&addresses[..first])
        .cloned()
        .collect()
}

/// Figures of `station status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Events not yet sealed (waiting ballots and their cancels included).
    pub pending_events: u64,
    /// Ballots waiting for their group of K.
    pub ballots_waiting: u64,
    /// Events in sealed batches.
    pub sealed_events: u64,
    /// Ballots in sealed batches.
    pub sealed_ballots: u64,
    /// Batches held on this device, sealed here or recovered from the center.
    pub batches_sealed: u64,
    /// Of those, the batches the center has acknowledged.
    pub batches_acknowledged: u64,
}

/// One of this station's batches fetched back from the center and verified
/// (signature under a certificate of the election CA for this station, chain).
#[derive(Debug, Clone)]
pub struct RecoveredBatch {
    /// Its sequence.
    pub sequence: u64,
    /// Its chain hash.
    pub hash: [u8; 32],
    /// The envelope exactly as the center holds it.
    pub signed: pb::SignedBatch,
    /// Its decoded events.
    pub events: Vec<pb::Event>,
}

/// What [`Store::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recovered {
    /// Batches stored from before this device's chain start (a replacement device's
    /// history).
    pub history_batches: u64,
    /// Batches stored after this device's head (a restored backup's lost batches).
    pub forward_batches: u64,
    /// Ballots among them.
    pub ballots: u64,
    /// Events waiting on this device that the recovered batches already hold
    /// (recorded before the backup and sealed by the device before it was lost):
    /// dropped, so that nothing counts twice.
    pub pending_dropped: u64,
    /// Events waiting on this device that the center does not hold: kept, sealed
    /// after the recovered head.
    pub pending_kept: u64,
}

/// One batch made by [`Store::seal`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SealedBatch {
    /// Its sequence in the station's chain (the first batch is 1).
    pub sequence: u64,
    /// Events it carries.
    pub events: u64,
    /// Ballots among them.
    pub ballots: u64,
}

/// The station's durable store, open on its SQLite file.
pub struct Store {
    conn: Connection,
    /// K: a batch carries a contest's ballots only in groups of at least this many.
    min_ballots_per_batch: u64,
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StationError + '_ {
    move |source| StationError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    Ok(())
}

impl Store {
    /// Set up a new station in `dir` from its enrollment bundle. Refuses if a station is
    /// already there. The folder is made 0700 and the database 0600: it holds the key.
    /// `center_override`, unless empty, replaces the bundle's center addresses
    /// (in its order).
    pub fn create(dir: &Path, bundle_file: &Path, center_override: &[String]) -> Result<Store> {
        let bundle = EnrollmentBundle::read(bundle_file)?;
        let definition = load_definition(
            &format!("{} (election definition)", bundle_file.display()),
            &bundle.election_toml,
        )
        .map_err(|errors| StationError::BundleDefinition {
            file: bundle_file.to_path_buf(),
            errors,
        })?;
        if definition.election.mode != bundle.mode {
            return Err(StationError::BundleMode {
                file: bundle_file.to_path_buf(),
                bundle: bundle.mode.as_str(),
                definition: definition.election.mode.as_str(),
            });
        }
        if definition.station(&bundle.station_id).is_none() {
            return Err(StationError::StationNotInElection {
                file: bundle_file.to_path_buf(),
                station: bundle.station_id.clone(),
                election: definition.election.id.clone(),
            });
        }
        let centers: Vec<String> = if center_override.is_empty() {
            bundle.center_addresses.clone()
        } else {
            center_override.to_vec()
        };
        pollsync_proto::bundle::check_center_addresses(&centers)
            .map_err(|source| StationError::BadCenterAddress { source })?;

        let path = db_path(dir);
        if path.exists() {
            let existing = Store::open(dir)?.provisioned()?;
            return Err(StationError::AlreadyInitialised {
                dir: dir.to_path_buf(),
                station: existing.bundle.station_id,
                election: existing.bundle.election_id,
            });
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
        // Create the file 0600 before SQLite opens it; its -wal and -shm files take
        // the same mode.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        let bundle_json = serde_json::to_vec(&bundle).map_err(|e| StationError::Corrupt {
            detail: e.to_string(),
        })?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![META_BUNDLE, bundle_json],
        )?;
        let centers_json = serde_json::to_vec(&centers).map_err(|e| StationError::Corrupt {
            detail: e.to_string(),
        })?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![META_CENTERS, centers_json],
        )?;
        let k = definition.election.min_ballots_per_batch;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![META_MIN_BALLOTS, k.to_string().as_bytes()],
        )?;
        let start = bundle.chain_start();
        if start.sequence > 0 {
            let mut value = start.sequence.to_be_bytes().to_vec();
            value.extend_from_slice(&start.hash);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![META_CHAIN_START, value],
            )?;
        } else if let Some(station) = definition.station(&bundle.station_id) {
            // A chain from genesis opens with the zero report (SPEC §3): every
            // contest the station serves at zero, before anything is recorded. A
            // replacement device continues a chain that has one already.
            let zero_report = StationEvent::zero_report_of(station);
            zero_report.check(&definition, station)?;
            append_in(&tx, u64::from(k), &[zero_report], &mut |_| {})?;
        }
        tx.commit()?;
        Ok(Store {
            conn,
            min_ballots_per_batch: u64::from(k),
        })
    }

    /// Open the station set up in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        let path = db_path(dir);
        if !path.is_file() {
            return Err(StationError::NotInitialised {
                dir: dir.to_path_buf(),
            });
        }
        let conn = Connection::open(&path)?;
        configure(&conn)?;
        let min_ballots_per_batch = meta_of(&conn, META_MIN_BALLOTS)?
            .and_then(|k| String::from_utf8(k).ok()?.parse::<u64>().ok())
            .filter(|k| *k >= 1)
            .ok_or_else(|| StationError::Corrupt {
                detail: format!(
                    "{}: the election's min_ballots_per_batch is not recorded (a store set up by an older pollsync); set the station up again",
                    path.display()
                ),
            })?;
        Ok(Store {
            conn,
            min_ballots_per_batch,
        })
    }

    /// K of the election this station serves.
    pub fn min_ballots_per_batch(&self) -> u64 {
        self.min_ballots_per_batch
    }

    /// What `station init` provisioned: the bundle, its election definition and the
    /// center's address.
    pub fn provisioned(&self) -> Result<Provisioned> {
        let bundle_json: Vec<u8> =
            self.meta(META_BUNDLE)?
                .ok_or_else(|| StationError::Corrupt {
                    detail: "the enrollment is missing".into(),
                })?;
        let bundle: EnrollmentBundle =
            serde_json::from_slice(&bundle_json).map_err(|e| StationError::Corrupt {
                detail: format!("stored enrollment: {e}"),
            })?;
        let definition = load_definition("stored election definition", &bundle.election_toml)
            .map_err(|e| StationError::Corrupt {
                detail: e.to_string(),
            })?;
        let center_addresses: Vec<String> = match self.meta(META_CENTERS)? {
            Some(json) => serde_json::from_slice(&json).map_err(|e| StationError::Corrupt {
                detail: format!("stored center addresses: {e}"),
            })?,
            None => match self.meta(META_CENTER_SINGLE)? {
                Some(one) => vec![String::from_utf8(one).map_err(|_| StationError::Corrupt {
                    detail: "center address is not text".into(),
                })?],
                None => bundle.center_addresses.clone(),
            },
        };
        if center_addresses.is_empty() {
            return Err(StationError::Corrupt {
                detail: "no center address is stored".into(),
            });
        }
        let center_reached = self.center_reached()?;
        Ok(Provisioned {
            bundle,
            definition,
            center_addresses,
            center_reached,
        })
    }

    /// The center address this device last reached (a Hello answered there), if
    /// any, as stored now.
    pub fn center_reached(&self) -> Result<Option<String>> {
        Ok(self
            .meta(META_CENTER_REACHED)?
            .and_then(|raw| String::from_utf8(raw).ok()))
    }

    /// The stored value of the meta entry `key`, if set.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        meta_of(&self.conn, key)
    }

    /// Set the meta entry `key` to `value`, replacing any earlier value.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// The contests this station has closed.
    pub fn closed_contests(&self) -> Result<BTreeSet<String>> {
        closed_contests(&self.conn)
    }

    /// Append `events` to the log in one durable transaction, after the checks that
    /// depend on what the log already holds: nothing for a closed contest, a contest
    /// closed once, a cancel names a ballot recorded here and not yet cancelled. The
    /// caller has already run each event through `StationEvent::check`. `progress` is
    /// told how many events are written so far.
    pub fn append(&mut self, events: &[StationEvent], progress: &mut dyn FnMut(u64)) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        append_in(&tx, self.min_ballots_per_batch, events, progress)?;
        tx.commit()?;
        Ok(())
    }

    /// Close `contest` with the tally sheet its records give, computed and appended in
    /// one transaction so that no ballot recorded meanwhile is left out of the sheet.
    /// `make` turns the whole log into the close event (and may refuse).
    pub fn close_from_records(
        &mut self,
        make: &dyn Fn(&[StationEvent]) -> Result<StationEvent>,
    ) -> Result<StationEvent> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let event = make(&read_log(&tx)?)?;
        append_in(
            &tx,
            self.min_ballots_per_batch,
            std::slice::from_ref(&event),
            &mut |_| {},
        )?;
        tx.commit()?;
        Ok(event)
    }

    /// Every event of the log: the sealed batches' in sequence, then the pending ones.
    pub fn log(&self) -> Result<Vec<StationEvent>> {
        read_log(&self.conn)
    }

    /// Seal what may leave into signed batches, each in its own durable transaction:
    /// the groups of waiting ballots `election::batching` releases, then the pending
    /// events in log order (a close only once its contest's ballots are all sealed);
    /// the zero report, first in the log, leads batch 1. Returns the batches made.
    pub fn seal(&mut self, provisioned: &Provisioned) -> Result<Vec<SealedBatch>> {
        if let Some(reason) = self.sealing_hold()? {
            return Err(StationError::SealingHeld { reason });
        }
        let mut chain = pollsync_proto::chain::ChainWriter::from_bundle(&provisioned.bundle)?;
        let mut made = Vec::new();
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let head = chain_head(&tx)?;
            let mut room = Room::empty();
            // The zero report first, whatever room the ballot groups would take.
            let opening = take_opening(&tx, &mut room)?;
            let opening_id = opening.as_ref().map(|(id, _)| *id);
            let (leaving, still_waiting) = take_groups(&tx, self.min_ballots_per_batch, &mut room)?;
            let (others, last_pending) =
                take_pending(&tx, &still_waiting, &mut room, opening_id.unwrap_or(0))?;
            if opening.is_none() && leaving.is_empty() && others.is_empty() {
                break;
            }
            let mut ballots = Vec::with_capacity(leaving.len());
            let mut cancels = Vec::new();
            let mut sealed_rows = Vec::with_capacity(leaving.len());
            for w in leaving {
                ballots.push(w.ballot);
                cancels.extend(w.cancel);
                sealed_rows.push(w.key);
            }
            shuffle(&mut ballots)?;
            let ballot_count = ballots.len() as u64;
            // The zero report opens the log: it leads batch 1, before its ballots.
            let mut events: Vec<pb::Event> = opening.map(|(_, e)| e).into_iter().collect();
            events.extend(ballots);
            events.extend(cancels);
            events.extend(others);
            chain = chain.after(head);
            let batch = chain.unsigned(events);
            let event_count = batch.events.len() as u64;
            let signed = chain.seal(&batch);
            // The room taken for the events keeps every sealed batch within what the
            // center accepts; a batch beyond it would be refused forever.
            assert!(
                signed.batch.len() <= pollsync_proto::limits::MAX_BATCH_BYTES
                    && batch.events.len() <= pollsync_proto::limits::MAX_BATCH_EVENTS,
                "sealed batch {} is {} bytes and {} events, beyond the protocol's limits",
                batch.sequence,
                signed.batch.len(),
                batch.events.len()
            );
            assert_eq!(
                batch.sequence,
                head.sequence + 1,
                "a batch follows its head"
            );
            let hash = chain.head().hash;
            tx.execute(
                "INSERT INTO batches (sequence, hash, signed, events, ballots) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![batch.sequence as i64, hash.to_vec(), signed.encode_to_vec(), event_count as i64, ballot_count as i64],
            )?;
            {
                // By the whole key: one B-tree seek a row.
                let mut delete = tx.prepare_cached(
                    "DELETE FROM waiting WHERE contest = ?1 AND generation = ?2 AND ballot_id = ?3",
                )?;
                for (contest, generation, id) in &sealed_rows {
                    delete.execute(params![contest, generation, id])?;
                }
            }
            if let Some(last_id) = last_pending.or(opening_id) {
                tx.execute("DELETE FROM pending WHERE id <= ?1", [last_id])?;
            }
            tx.commit()?;
            made.push(SealedBatch {
                sequence: batch.sequence,
                events: event_count,
                ballots: ballot_count,
            });
        }
        if !made.is_empty() {
            self.forget_recording_order()?;
        }
        Ok(made)
    }

    /// After a seal (G6): the WAL, whose frames were appended as events were
    /// recorded, is copied into the database and truncated to nothing, so no file
    /// of the store keeps the sealed ballots in recording order. The deleted
    /// `waiting` and `pending` rows were already overwritten with zeros
    /// (`secure_delete`). If a
    /// reader keeps the WAL from being truncated now, the next seal does it.
    pub fn forget_recording_order(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Stop all sealing on this device (a sync found its chain is not the center's:
    /// new batches would fork). Recording goes on; an operator must look at it.
    pub fn hold_sealing(&self, reason: &str) -> Result<()> {
        self.set_meta(META_SEAL_HOLD, reason.as_bytes())
    }

    /// Stores batches fetched back from the center, in one transaction, if this
    /// device's head is still `expected_head`: `history` (a replacement device's
    /// batches before its chain start) and `forward` (a restored backup's batches
    /// after its head), all marked acknowledged, their closes recorded. Events
    /// waiting here that `forward` already holds are dropped (ballots by id; other
    /// events as the same events in the same order); the rest stay, to be sealed
    /// after the recovered head. A kept event for a contest the recovered batches
    /// closed refuses the whole recovery. Lifts the sealing hold.
    pub fn recover(
        &mut self,
        expected_head: ChainHead,
        history: &[RecoveredBatch],
        forward: &[RecoveredBatch],
    ) -> Result<Recovered> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = chain_head(&tx)?;
        if head != expected_head {
            return Err(StationError::Changed {
                detail: format!(
                    "this device's head moved from batch {} to {} while recovering; run `station recover` again",
                    expected_head.sequence, head.sequence
                ),
            });
        }
        let mut done = Recovered::default();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO batches (sequence, hash, signed, events, ballots, acknowledged) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            )?;
            let mut close =
                tx.prepare_cached("INSERT OR IGNORE INTO closed (contest) VALUES (?1)")?;
            for b in history.iter().chain(forward) {
                let ballots = b
                    .events
                    .iter()
                    .filter(|e| matches!(e.kind, Some(pb::event::Kind::Ballot(_))))
                    .count() as u64;
                insert.execute(params![
                    b.sequence as i64,
                    b.hash.to_vec(),
                    b.signed.encode_to_vec(),
                    b.events.len() as i64,
                    ballots as i64
                ])?;
                done.ballots += ballots;
                for e in &b.events {
                    if let Some(pb::event::Kind::Close(c)) = &e.kind {
                        close.execute([&c.contest])?;
                    }
                }
            }
        }
        done.history_batches = history.len() as u64;
        done.forward_batches = forward.len() as u64;
        // Events the forward batches hold: ballots by id, the others in order, but for
        // the cancels that rode with their ballot in the same batch (they never were
        // in a pending log: they are dropped with the ballot).
        let mut ids: BTreeSet<(String, Vec<u8>)> = BTreeSet::new();
        let mut others: Vec<Vec<u8>> = Vec::new();
        for b in forward {
            let in_batch: BTreeSet<&[u8]> = b
                .events
                .iter()
                .filter_map(|e| match &e.kind {
                    Some(pb::event::Kind::Ballot(ballot)) => Some(ballot.id.as_slice()),
                    _ => None,
                })
                .collect();
            for e in &b.events {
                match &e.kind {
                    Some(pb::event::Kind::Ballot(ballot)) => {
                        ids.insert((ballot.contest.clone(), ballot.id.clone()));
                    }
                    Some(pb::event::Kind::Cancel(c))
                        if in_batch.contains(c.ballot_id.as_slice()) => {}
                    _ => others.push(e.encode_to_vec()),
                }
            }
        }
        // Contests the recovered batches close: nothing waiting here may belong to them.
        let closed: BTreeSet<String> = history
            .iter()
            .chain(forward)
            .flat_map(|b| &b.events)
            .filter_map(|e| match &e.kind {
                Some(pb::event::Kind::Close(c)) => Some(c.contest.clone()),
                _ => None,
            })
            .collect();
        let mut matched = 0usize;
        let mut conflicts = Vec::new();
        {
            let mut select = tx.prepare("SELECT id, event FROM pending ORDER BY id")?;
            let mut delete = tx.prepare_cached("DELETE FROM pending WHERE id = ?1")?;
            let mut rows = select.query([])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let blob: Vec<u8> = row.get(1)?;
                let event =
                    pb::Event::decode(blob.as_slice()).map_err(|e| StationError::Corrupt {
                        detail: format!("pending event {id}: {e}"),
                    })?;
                let duplicate = match &event.kind {
                    Some(pb::event::Kind::Ballot(b)) => {
                        ids.contains(&(b.contest.clone(), b.id.clone()))
                    }
                    _ => {
                        let same = others.get(matched) == Some(&blob);
                        if same {
                            matched += 1;
                        } else {
                            matched = others.len();
                        }
                        same
                    }
                };
                if duplicate {
                    delete.execute([id])?;
                    done.pending_dropped += 1;
                    continue;
                }
                done.pending_kept += 1;
                let contest = match &event.kind {
                    Some(pb::event::Kind::Ballot(b)) => Some(&b.contest),
                    Some(pb::event::Kind::Issued(i)) => Some(&i.contest),
                    Some(pb::event::Kind::Close(c)) => Some(&c.contest),
                    _ => None,
                };
                if let Some(contest) = contest
                    && closed.contains(contest)
                    && conflicts.len() < 10
                {
                    conflicts.push(format!("pending event {id} (contest '{contest}')"));
                }
            }
        }
        {
            // Waiting ballots the recovered batches hold were sealed before the loss.
            let mut delete =
                tx.prepare_cached("DELETE FROM waiting WHERE contest = ?1 AND ballot_id = ?2")?;
            for (contest, id) in &ids {
                done.pending_dropped += delete.execute(params![contest, id])? as u64;
            }
            let mut left = tx.prepare("SELECT contest, count(*) FROM waiting GROUP BY contest")?;
            let mut rows = left.query([])?;
            while let Some(row) = rows.next()? {
                let contest: String = row.get(0)?;
                let waiting = row.get::<_, i64>(1)? as u64;
                done.pending_kept += waiting;
                if closed.contains(&contest) && conflicts.len() < 10 {
                    conflicts.push(format!("{waiting} waiting ballots (contest '{contest}')"));
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(StationError::Changed {
                detail: format!(
                    "the center's batches close contests for which this device holds events it does not: {}; nothing was recovered, call an operator",
                    conflicts.join(", ")
                ),
            });
        }
        // Linked to the center's batches: the center holds everything up to them.
        if let Some(last) = forward.last() {
            tx.execute(
                "UPDATE batches SET acknowledged = 1 WHERE sequence <= ?1 AND acknowledged = 0",
                [last.sequence as i64],
            )?;
        }
        tx.execute("DELETE FROM meta WHERE key = ?1", [META_SEAL_HOLD])?;
        tx.commit()?;
        if done.pending_dropped > 0 {
            self.forget_recording_order()?;
        }
        Ok(done)
    }

    /// Where this device's chain starts: genesis, or the center's head a
    /// replacement device's bundle carried.
    pub fn chain_start(&self) -> Result<ChainHead> {
        chain_start(&self.conn)
    }

    /// For a replacement device that has not yet fetched the station's batches from
    /// before it (`station recover`): the last of those it lacks. Its records then
    /// do not hold the whole day.
    pub fn history_missing(&self) -> Result<Option<u64>> {
        let start = chain_start(&self.conn)?;
        let complete = start.sequence == 0 || self.first_held()? == Some(1);
        Ok((!complete).then_some(start.sequence))
    }

    /// The lowest sequence of the batches this device holds (`None`: none).
    pub fn first_held(&self) -> Result<Option<u64>> {
        let first: Option<i64> =
            self.conn
                .query_row("SELECT min(sequence) FROM batches", [], |r| r.get(0))?;
        Ok(first.map(|f| f as u64))
    }

    /// Why sealing is held, if it is.
    pub fn sealing_hold(&self) -> Result<Option<String>> {
        Ok(self
            .meta(META_SEAL_HOLD)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The head of the sealed chain: last sequence and its hash (genesis if none).
    pub fn head(&self) -> Result<ChainHead> {
        chain_head(&self.conn)
    }

    /// Sealed batches the center has not acknowledged, in sequence.
    pub fn unacknowledged(&self) -> Result<Vec<pb::SignedBatch>> {
        let mut stmt = self.conn.prepare(
            "SELECT sequence, signed FROM batches WHERE acknowledged = 0 ORDER BY sequence",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        rows.map(|row| {
            let (sequence, bytes) = row?;
            pb::SignedBatch::decode(bytes.as_slice()).map_err(|e| StationError::Corrupt {
                detail: format!("sealed batch {sequence}: {e}"),
            })
        })
        .collect()
    }

    /// Record that the center holds every batch up to `sequence`.
    pub fn mark_acknowledged(&self, sequence: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE batches SET acknowledged = 1 WHERE sequence <= ?1 AND acknowledged = 0",
            [sequence as i64],
        )?;
        Ok(())
    }

    /// Up to `limit` sealed batches from sequence `first` on, in sequence, whether
    /// acknowledged or not (a center restored from a backup may need them again).
    pub fn batches_from(&self, first: u64, limit: usize) -> Result<Vec<pb::SignedBatch>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sequence, signed FROM batches WHERE sequence >= ?1 ORDER BY sequence LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![first as i64, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for (i, row) in rows.enumerate() {
            let (sequence, bytes) = row?;
            if sequence as u64 != first + i as u64 {
                return Err(StationError::Corrupt {
                    detail: format!("sealed batch {} is missing", first + i as u64),
                });
            }
            out.push(pb::SignedBatch::decode(bytes.as_slice()).map_err(|e| {
                StationError::Corrupt {
                    detail: format!("sealed batch {sequence}: {e}"),
                }
            })?);
        }
        Ok(out)
    }

    /// The chain hash of sealed batch `sequence`, if there is one (the chain start
    /// of a replacement device counts).
    pub fn hash_at(&self, sequence: u64) -> Result<Option<[u8; 32]>> {
        let start = chain_start(&self.conn)?;
        if start.sequence > 0 && sequence == start.sequence {
            return Ok(Some(start.hash));
        }
        let hash: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT hash FROM batches WHERE sequence = ?1",
                [sequence as i64],
                |r| r.get(0),
            )
            .optional()?;
        hash.map(|h| {
            h.try_into().map_err(|_| StationError::Corrupt {
                detail: format!("batch {sequence}: chain hash is not 32 bytes"),
            })
        })
        .transpose()
    }

    /// The highest sequence the center is known to hold (0 if none): acknowledgements
    /// cover every batch up to the one acknowledged.
    pub fn acknowledged_through(&self) -> Result<u64> {
        let through: i64 = self.conn.query_row(
            "SELECT coalesce(max(sequence), 0) FROM batches WHERE acknowledged = 1",
            [],
            |r| r.get(0),
        )?;
        // A replacement device's chain start is held by the center by definition.
        Ok((through as u64).max(chain_start(&self.conn)?.sequence))
    }

    /// One durable write after an exchange with the center: every batch up to
    /// `acknowledged_through` is acknowledged (if given), the last contact time, and
    /// the address the center was reached at (if given).
    pub fn record_contact(
        &mut self,
        acknowledged_through: Option<u64>,
        unix_ms: u64,
        reached: Option<&str>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(sequence) = acknowledged_through {
            tx.execute(
                "UPDATE batches SET acknowledged = 1 WHERE sequence <= ?1 AND acknowledged = 0",
                [sequence as i64],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![META_LAST_CONTACT_MS, unix_ms.to_string().as_bytes()],
        )?;
        if let Some(address) = reached {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![META_CENTER_REACHED, address.as_bytes()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Events, ballots and batches by state, for `station status`.
    pub fn counts(&self) -> Result<Counts> {
        let pending: i64 = self
            .conn
            .query_row("SELECT count(*) FROM pending", [], |r| r.get(0))?;
        let (waiting, riding): (i64, i64) =
            self.conn
                .query_row("SELECT count(*), count(cancel) FROM waiting", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        let (batches, acked, events, ballots): (i64, i64, i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(acknowledged), 0), coalesce(sum(events), 0), coalesce(sum(ballots), 0) FROM batches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        Ok(Counts {
            pending_events: (pending + waiting + riding) as u64,
            ballots_waiting: waiting as u64,
            sealed_events: events as u64,
            sealed_ballots: ballots as u64,
            batches_sealed: batches as u64,
            batches_acknowledged: acked as u64,
        })
    }
}

/// The log-dependent checks and the inserts of [`Store::append`], inside the caller's
/// transaction. The rules are the election's (`election::log`: nothing after a
/// close, a contest closed once, a ballot once, a cancel of a ballot recorded here
/// and not cancelled yet), over what this store holds: the closed contests, the
/// waiting ballots' unique keys, and an index of the log's ballots built only if a
/// cancel needs it. A ballot goes to the waiting ballots; a cancel of a waiting
/// ballot removes it, or rides with it when K or fewer of its contest wait
/// (`election::batching`); every other event goes to the pending log.
fn append_in(
    tx: &Connection,
    k: u64,
    events: &[StationEvent],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut closed = closed_contests(tx)?;
    // Ballot id -> (contest, cancelled), built only if a cancel needs it.
    let mut ballots: Option<HashMap<BallotId, (String, bool)>> = None;
    let mut insert_event = tx.prepare_cached("INSERT INTO pending (event) VALUES (?1)")?;
    let mut insert_ballot = tx.prepare_cached(
        "INSERT INTO waiting (contest, generation, ballot_id, ballot) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?;
    let mut insert_closed = tx.prepare_cached("INSERT INTO closed (contest) VALUES (?1)")?;
    // Ballots recorded since the last batch share one generation: the oldest leave
    // first, and nothing finer than the batches themselves is kept.
    let generation = chain_head(tx)?.sequence as i64;
    for (written, event) in events.iter().enumerate() {
        let bytes = event_to_pb(event).encode_to_vec();
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(StationError::EventTooLarge {
                bytes: bytes.len(),
                max: MAX_EVENT_BYTES,
            });
        }
        match event {
            StationEvent::ZeroReport { .. } => {
                let first = written == 0 && log_is_empty(tx)?;
                log::check_zero_report_first(first).map_err(refused)?;
                insert_event.execute([bytes])?;
            }
            StationEvent::Ballot(b) => {
                log::check_open(&b.contest, closed.contains(&b.contest)).map_err(refused)?;
                if let Some(index) = ballots.as_mut() {
                    index.insert(b.id, (b.contest.clone(), false));
                }
                let id = b.id.as_bytes().to_vec();
                // A ballot id once: the waiting ballots' key says whether it is taken.
                let known = insert_ballot.execute(params![b.contest, generation, id, bytes])? == 0;
                log::check_new_ballot(b.id, known).map_err(refused)?;
            }
            StationEvent::Issued { contest, .. } => {
                log::check_open(contest, closed.contains(contest)).map_err(refused)?;
                insert_event.execute([bytes])?;
            }
            StationEvent::Close { contest, .. } => {
                log::check_first_close(contest, closed.contains(contest)).map_err(refused)?;
                closed.insert(contest.clone());
                insert_closed.execute([contest])?;
                insert_event.execute([bytes])?;
            }
            StationEvent::Cancel { ballot_id, .. } => {
                if ballots.is_none() {
                    ballots = Some(ballot_index(&read_log(tx)?));
                }
                let index = ballots.get_or_insert_with(HashMap::new);
                let recorded = index
                    .get(ballot_id)
                    .map(|(contest, cancelled)| log::Recorded {
                        contest,
                        cancelled: *cancelled,
                    });
                let contest = log::check_cancel(*ballot_id, recorded, |c| closed.contains(c))
                    .map_err(refused)?
                    .to_owned();
                if let Some(entry) = index.get_mut(ballot_id) {
                    entry.1 = true;
                }
                if !cancel_waiting(tx, k, ballot_id, &contest, &bytes)? {
                    insert_event.execute([bytes])?;
                }
            }
        }
        if written % 1024 == 1023 {
            progress(written as u64 + 1);
        }
    }
    progress(events.len() as u64);
    Ok(())
}

/// A refusal by the log's rules in the station's words.
fn refused(error: LogError) -> StationError {
    match error {
        LogError::AfterClose { contest } | LogError::ClosedTwice { contest } => {
            StationError::ContestClosed { contest }
        }
        LogError::BallotTwice { ballot } => StationError::DuplicateBallot { ballot },
        LogError::UnknownBallot { ballot } => StationError::UnknownBallot { ballot },
        LogError::CancelledTwice { ballot } => StationError::AlreadyCancelled { ballot },
        LogError::ZeroReportNotFirst => StationError::ZeroReportNotFirst,
        LogError::Event(e) => StationError::Event(e),
    }
}

/// Whether the log holds nothing yet, on this device or before it (a replacement
/// device's chain starts after the batches of the device it replaced).
fn log_is_empty(tx: &Connection) -> Result<bool> {
    let held: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM batches) OR EXISTS (SELECT 1 FROM pending) OR EXISTS (SELECT 1 FROM waiting)",
        [],
        |r| r.get(0),
    )?;
    Ok(!held && chain_start(tx)?.sequence == 0)
}

/// A cancel of `ballot` if it still waits for its group: removed when more than K
/// of its contest wait, else the cancel (`cancel_bytes`) is kept to travel with it.
/// `false`: the ballot is sealed already, and the cancel goes to the log.
fn cancel_waiting(
    tx: &Connection,
    k: u64,
    ballot: &BallotId,
    contest: &str,
    cancel_bytes: &[u8],
) -> Result<bool> {
    let id = ballot.as_bytes().to_vec();
    let waits: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM waiting WHERE contest = ?1 AND ballot_id = ?2)",
        params![contest, id],
        |r| r.get(0),
    )?;
    if !waits {
        return Ok(false);
    }
    let of_contest: i64 = tx.query_row(
        "SELECT count(*) FROM waiting WHERE contest = ?1",
        [contest],
        |r| r.get(0),
    )?;
    if cancel_removes_held(of_contest as u64, k) {
        tx.execute(
            "DELETE FROM waiting WHERE contest = ?1 AND ballot_id = ?2",
            params![contest, id],
        )?;
    } else {
        tx.execute(
            "UPDATE waiting SET cancel = ?3 WHERE contest = ?1 AND ballot_id = ?2",
            params![contest, id, cancel_bytes],
        )?;
    }
    Ok(true)
}

/// What is left in the batch being made.
#[derive(Clone, Copy)]
struct Room {
    events: usize,
    bytes: usize,
}

impl Room {
    fn empty() -> Room {
        Room {
            events: pollsync_proto::limits::MAX_BATCH_EVENTS,
            bytes: pollsync_proto::limits::MAX_BATCH_BYTES - BATCH_HEADER_BYTES,
        }
    }

    /// Takes room for `events` events of `bytes` encoded bytes if it is there.
    fn take(&mut self, events: usize, bytes: usize) -> bool {
        let bytes = bytes + events * EVENT_FRAMING_BYTES;
        if events > self.events || bytes > self.bytes {
            return false;
        }
        self.events -= events;
        self.bytes -= bytes;
        true
    }

    fn is_untouched(&self) -> bool {
        self.events == pollsync_proto::limits::MAX_BATCH_EVENTS
    }
}

/// The key of a `waiting` row: contest, generation, ballot id.
type WaitingKey = (String, i64, Vec<u8>);

/// A row of `waiting` as stored.
struct WaitingRow {
    key: WaitingKey,
    ballot: Vec<u8>,
    cancel: Option<Vec<u8>>,
}

impl WaitingRow {
    /// Events it puts in a batch: the ballot, and its cancel if that rides with it.
    fn events(&self) -> usize {
        1 + usize::from(self.cancel.is_some())
    }

    fn bytes(&self) -> usize {
        self.ballot.len() + self.cancel.as_ref().map_or(0, Vec::len)
    }

    fn decode(self) -> Result<Leaving> {
        let decode = |blob: &[u8]| {
            pb::Event::decode(blob).map_err(|e| StationError::Corrupt {
                detail: format!("waiting ballot {}: {e}", hex::encode(&self.key.2)),
            })
        };
        let ballot = decode(&self.ballot)?;
        let cancel = self.cancel.as_deref().map(decode).transpose()?;
        Ok(Leaving {
            key: self.key,
            ballot,
            cancel,
        })
    }
}

/// A waiting ballot leaving in the batch being made.
struct Leaving {
    key: WaitingKey,
    ballot: pb::Event,
    cancel: Option<pb::Event>,
}

/// The groups of waiting ballots this batch carries: for each contest, what
/// `election::batching` releases, as one group that fits in `room`. Also returns how
/// many of each contest still wait after this batch.
fn take_groups(
    tx: &Connection,
    k: u64,
    room: &mut Room,
) -> Result<(Vec<Leaving>, HashMap<String, u64>)> {
    let closed = closed_contests(tx)?;
    let mut per_contest: Vec<(String, u64)> = Vec::new();
    {
        let mut stmt =
            tx.prepare_cached("SELECT contest, count(*) FROM waiting GROUP BY contest")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            per_contest.push((row.get(0)?, row.get::<_, i64>(1)? as u64));
        }
    }
    let mut leaving = Vec::new();
    let mut still_waiting = HashMap::new();
    let mut select = tx.prepare_cached(
        "SELECT generation, ballot_id, ballot, cancel FROM waiting WHERE contest = ?1 ORDER BY generation, ballot_id LIMIT ?2",
    )?;
    for (contest, waiting) in per_contest {
        let release = releasable(waiting, closed.contains(&contest), k);
        let mut taken = 0;
        if let Some(want) = next_group(release, room.events as u64, k) {
            // The oldest generations first; within one, by random id.
            let mut rows = select.query(params![contest, want as i64])?;
            let mut fitting: Vec<WaitingRow> = Vec::new();
            let mut trial = *room;
            while let Some(row) = rows.next()? {
                let w = WaitingRow {
                    key: (contest.clone(), row.get(0)?, row.get(1)?),
                    ballot: row.get(2)?,
                    cancel: row.get(3)?,
                };
                if !trial.take(w.events(), w.bytes()) {
                    break;
                }
                fitting.push(w);
            }
            if let Some(group) = next_group(release, fitting.len() as u64, k) {
                for w in fitting.into_iter().take(group as usize) {
                    let fits = room.take(w.events(), w.bytes());
                    assert!(fits, "a ballot that fit on trial fits");
                    leaving.push(w.decode()?);
                }
                taken = group;
            }
        }
        still_waiting.insert(contest, waiting - taken);
    }
    Ok((leaving, still_waiting))
}

/// The zero report, if the pending log still opens with it (a station set up from
/// genesis that has not sealed yet): batch 1 carries it first, before any ballot
/// group takes the batch's room (SPEC §3). Returns its id in the log and the event.
fn take_opening(tx: &Connection, room: &mut Room) -> Result<Option<(i64, pb::Event)>> {
    let first: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT id, event FROM pending ORDER BY id LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, blob)) = first else {
        return Ok(None);
    };
    let event = pb::Event::decode(blob.as_slice()).map_err(|e| StationError::Corrupt {
        detail: format!("pending event {id}: {e}"),
    })?;
    if !matches!(event.kind, Some(pb::event::Kind::ZeroReport(_))) {
        return Ok(None);
    }
    // An event always fits in a batch of its own (MAX_EVENT_BYTES).
    let fits = room.take(1, blob.len());
    assert!(fits, "the zero report fits in an empty batch");
    Ok(Some((id, event)))
}

/// The pending events this batch carries after the pending event `after` (0: from
/// the start): a prefix of the rest of the log that fits in `room`, ending after a
/// close, and before a close whose contest still has ballots waiting. Returns them
/// and the id of the last one taken.
fn take_pending(
    tx: &Connection,
    still_waiting: &HashMap<String, u64>,
    room: &mut Room,
    after: i64,
) -> Result<(Vec<pb::Event>, Option<i64>)> {
    let mut taken = Vec::new();
    let mut last = None;
    let mut select =
        tx.prepare_cached("SELECT id, event FROM pending WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut rows = select.query(params![after, room.events as i64])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let blob: Vec<u8> = row.get(1)?;
        let event = pb::Event::decode(blob.as_slice()).map_err(|e| StationError::Corrupt {
            detail: format!("pending event {id}: {e}"),
        })?;
        let close = match &event.kind {
            Some(pb::event::Kind::Close(c)) => Some(c.contest.clone()),
            _ => None,
        };
        if close
            .as_ref()
            .is_some_and(|c| still_waiting.get(c).copied().unwrap_or(0) > 0)
        {
            break;
        }
        // An event always fits in a batch of its own (MAX_EVENT_BYTES).
        let untouched = room.is_untouched();
        if !room.take(1, blob.len()) {
            assert!(!untouched, "pending event {id} fits in an empty batch");
            break;
        }
        taken.push(event);
        last = Some(id);
        // A close ends its batch, so the contest's last batch is sealed at once.
        if close.is_some() {
            break;
        }
    }
    Ok((taken, last))
}

/// The definition this process loaded last, by its exact text.
static LAST_DEFINITION: std::sync::Mutex<Option<(String, ElectionDefinition)>> =
    std::sync::Mutex::new(None);

/// [`load`], remembering the last definition loaded: a process that runs many
/// stations of one election (`sim demo`, `sim bench`) parses its text only once.
fn load_definition(
    file: &str,
    text: &str,
) -> std::result::Result<ElectionDefinition, pollsync_election::DefinitionErrors> {
    if let Ok(last) = LAST_DEFINITION.lock()
        && let Some((loaded, definition)) = last.as_ref()
        && loaded == text
    {
        return Ok(definition.clone());
    }
    let definition = load(file, text)?;
    if let Ok(mut last) = LAST_DEFINITION.lock() {
        *last = Some((text.to_string(), definition.clone()));
    }
    Ok(definition)
}

fn closed_contests(conn: &Connection) -> Result<BTreeSet<String>> {
    let mut stmt = conn.prepare_cached("SELECT contest FROM closed")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One `meta` value by its key.
fn meta_of(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn chain_start(conn: &Connection) -> Result<ChainHead> {
    let Some(value) = meta_of(conn, META_CHAIN_START)? else {
        return Ok(ChainHead {
            sequence: 0,
            hash: GENESIS_HASH,
        });
    };
    let corrupt = || StationError::Corrupt {
        detail: "the stored chain start is not 40 bytes".into(),
    };
    let (seq, hash) = value.split_at_checked(8).ok_or_else(corrupt)?;
    Ok(ChainHead {
        sequence: u64::from_be_bytes(seq.try_into().map_err(|_| corrupt())?),
        hash: hash.try_into().map_err(|_| corrupt())?,
    })
}

fn chain_head(conn: &Connection) -> Result<ChainHead> {
    let row: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT sequence, hash FROM batches ORDER BY sequence DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        None => chain_start(conn),
        Some((sequence, hash)) => {
            let hash: [u8; 32] = hash.try_into().map_err(|_| StationError::Corrupt {
                detail: format!("batch {sequence}: chain hash is not 32 bytes"),
            })?;
            Ok(ChainHead {
                sequence: sequence as u64,
                hash,
            })
        }
    }
}

fn read_log(conn: &Connection) -> Result<Vec<StationEvent>> {
    let corrupt = |what: String| StationError::Corrupt { detail: what };
    let mut events = Vec::new();
    let mut batches = conn.prepare("SELECT sequence, signed FROM batches ORDER BY sequence")?;
    let mut rows = batches.query([])?;
    while let Some(row) = rows.next()? {
        let sequence: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        let signed = pb::SignedBatch::decode(bytes.as_slice())
            .map_err(|e| corrupt(format!("batch {sequence}: {e}")))?;
        let batch = pollsync_proto::decode_batch(&signed)
            .map_err(|e| corrupt(format!("batch {sequence}: {e}")))?;
        for e in &batch.events {
            events.push(event_from_pb(e).map_err(|e| corrupt(format!("batch {sequence}: {e}")))?);
        }
    }
    let mut pending = conn.prepare("SELECT id, event FROM pending ORDER BY id")?;
    let mut rows = pending.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        let event = pb::Event::decode(bytes.as_slice())
            .map_err(|e| corrupt(format!("pending event {id}: {e}")))?;
        events
            .push(event_from_pb(&event).map_err(|e| corrupt(format!("pending event {id}: {e}")))?);
    }
    // The waiting ballots, then the cancels that ride with them.
    let mut cancels = Vec::new();
    let mut waiting = conn.prepare("SELECT ballot_id, ballot, cancel FROM waiting")?;
    let mut rows = waiting.query([])?;
    while let Some(row) = rows.next()? {
        let id: Vec<u8> = row.get(0)?;
        let what = || format!("waiting ballot {}", hex::encode(&id));
        for (blob, into) in [
            (Some(row.get::<_, Vec<u8>>(1)?), &mut events),
            (row.get::<_, Option<Vec<u8>>>(2)?, &mut cancels),
        ] {
            let Some(blob) = blob else { continue };
            let event = pb::Event::decode(blob.as_slice())
                .map_err(|e| corrupt(format!("{}: {e}", what())))?;
            into.push(event_from_pb(&event).map_err(|e| corrupt(format!("{}: {e}", what())))?);
        }
    }
    events.extend(cancels);
    Ok(events)
}

/// Ballot id -> (contest, cancelled) over a whole log.
fn ballot_index(log: &[StationEvent]) -> HashMap<BallotId, (String, bool)> {
    let mut index = HashMap::new();
    for event in log {
        match event {
            StationEvent::Ballot(b) => {
                index.insert(b.id, (b.contest.clone(), false));
            }
            StationEvent::Cancel { ballot_id, .. } => {
                if let Some(entry) = index.get_mut(ballot_id) {
                    entry.1 = true;
                }
            }
            _ => {}
        }
    }
    index
}

/// Fisher–Yates with the operating system's random source, so that the order of
/// ballots in a batch says nothing about the order they were recorded in (G6).
fn shuffle<T>(items: &mut [T]) -> Result<()> {
    for i in (1..items.len()).rev() {
        let r = getrandom::u64().map_err(|e| StationError::Random(e.to_string()))?;
        items.swap(i, (r % (i as u64 + 1)) as usize);
    }
    Ok(())
}

/// A fresh random ballot id from the operating system.
pub fn new_ballot_id() -> Result<BallotId> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| StationError::Random(e.to_string()))?;
    Ok(BallotId::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One-off calls (receipts, recovery) start with the address last reached and
    /// go on round robin; an address no longer listed is ignored.
    #[test]
    fn trying_order_starts_with_the_address_last_reached() {
        let list: Vec<String> = ["a:1", "b:2", "c:3"].map(str::to_owned).to_vec();
        assert_eq!(trying_order(&list, None), ["a:1", "b:2", "c:3"]);
        assert_eq!(trying_order(&list, Some("b:2")), ["b:2", "c:3", "a:1"]);
        assert_eq!(trying_order(&list, Some("c:3")), ["c:3", "a:1", "b:2"]);
        assert_eq!(trying_order(&list, Some("gone:9")), ["a:1", "b:2", "c:3"]);
        assert_eq!(first_center_index(&list, Some("c:3")), 2);
        assert_eq!(first_center_index(&list, Some("gone:9")), 0);
    }
}
