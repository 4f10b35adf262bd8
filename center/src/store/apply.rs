//! The ingest writer's SQL: load the stations' state, look up stored batches,
//! apply an accepted batch (raw bytes, head, tally upserts), raise alerts,
//! quarantine, and write the operators' presence view. Every function runs inside
//! the caller's transaction, on any engine ([`Sql`]).
//!
//! Only a handful of rows per batch: the batch row, the station row, one row per
//! contest and one per candidate or write-in name whose figures change.

use std::collections::{BTreeSet, HashMap};

use ed25519_dalek::VerifyingKey;
use pollsync_election::TallySheet;
use pollsync_proto::ChainHead;
use pollsync_proto::limits::{MAX_DETAIL_CHARS, truncate_chars};
use rusqlite::Connection;

use super::engine::IngestOps;
use super::records::meta_value;
use super::sql::{Sql, SqlExt as _, SqlRow, sql_params};
use super::state::{Effects, StationKey, StationState};
use super::{EvidenceBatch, ForkEvidence, KeyRow, hash32, to_i64, to_u64};
use crate::context::Context;
use crate::error::{CenterError, Result};

/// Longest station id kept in an alert (an imported file may name anything).
pub const MAX_ALERT_STATION_CHARS: usize = 80;

/// `PRAGMA data_version`: changes when another connection commits.
pub fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

/// `meta` key of the store's version counter on an engine where several writers
/// share the store (PostgreSQL): every writer moves it in each transaction that
/// changes what writers keep in memory (stations, keys, batches, alerts).
pub const STORE_VERSION_KEY: &str = "store_version";

/// The store's version counter as stored (0 until a writer moves it).
pub fn stored_version(conn: &dyn Sql) -> Result<i64> {
    Ok(meta_value(conn, STORE_VERSION_KEY)?
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0))
}

/// Moves the store's version counter on, inside the caller's transaction, and
/// returns the new value: every other writer then reads the stations again.
pub fn bump_version(conn: &dyn Sql) -> Result<i64> {
    let next = stored_version(conn)?
        .checked_add(1)
        .ok_or_else(|| CenterError::Corrupt {
            detail: "the store's version counter is at its maximum".into(),
        })?;
    put_meta(conn, STORE_VERSION_KEY, next.to_string().as_bytes())?;
    Ok(next)
}

/// `meta` key of the transparency log's lease (`ingest::lease`).
pub const LOG_LEASE_KEY: &str = "log_lease";

/// The log lease row as stored (`None`: none, or not text).
pub fn log_lease(conn: &dyn Sql) -> Result<Option<String>> {
    Ok(meta_value(conn, LOG_LEASE_KEY)?.and_then(|b| String::from_utf8(b).ok()))
}

/// Stores the log lease row.
pub fn set_log_lease(conn: &dyn Sql, row: &str) -> Result<()> {
    put_meta(conn, LOG_LEASE_KEY, row.as_bytes())
}

/// Sets the `meta` entry `key` to `value`, whether or not it was there.
fn put_meta(conn: &dyn Sql, key: &str, value: &[u8]) -> Result<()> {
    conn.exec(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        sql_params![key, value],
    )?;
    Ok(())
}

/// Every station's state and current key, as stored.
pub fn load_states(
    conn: &dyn Sql,
) -> Result<(HashMap<String, StationState>, HashMap<String, StationKey>)> {
    let mut states: HashMap<String, StationState> = HashMap::new();
    conn.each(
        "SELECT station, revoked, quarantined, head_sequence, head_hash FROM stations",
        &[],
        &mut |r| {
            states.insert(r.text(0)?, state_from_row(r)?);
            Ok(())
        },
    )?;
    conn.each(
        "SELECT station, contest FROM tally_contest WHERE closed = 1",
        &[],
        &mut |r| {
            if let Some(s) = states.get_mut(&r.text(0)?) {
                s.closed.insert(r.text(1)?);
            }
            Ok(())
        },
    )?;
    let mut keys = HashMap::new();
    for k in keys_where(conn, None, true)? {
        let mut unknown = StationState::default();
        let state = states.get_mut(&k.station).unwrap_or(&mut unknown);
        if let Some(key) = take_current_key(&k, state)? {
            keys.insert(k.station.clone(), key);
        }
    }
    Ok((states, keys))
}

/// A station's state from its row `(…, revoked, quarantined, head_sequence,
/// head_hash)` at columns 1 to 4 (no key, no closed contests yet).
fn state_from_row(r: &dyn SqlRow) -> Result<StationState> {
    Ok(StationState {
        current_key: None,
        revoked: r.flag(1)?,
        quarantined: r.flag(2)?,
        retired: None,
        head: ChainHead {
            sequence: to_u64(r.int(3)?),
            hash: hash32(&r.blob(4)?, "head_hash")?,
        },
        closed: BTreeSet::new(),
    })
}

/// Applies a station's current key row to its state: a retired key records why
/// (the station has no usable key then); otherwise it is the usable key, returned.
fn take_current_key(k: &KeyRow, state: &mut StationState) -> Result<Option<StationKey>> {
    if let Some(why) = &k.retired {
        state.retired = Some(why.clone());
        return Ok(None);
    }
    let key = VerifyingKey::from_bytes(&k.public_key).map_err(|_| CenterError::Corrupt {
        detail: format!(
            "enrolled key {} of station {} is not an Ed25519 key",
            k.key_no, k.station
        ),
    })?;
    state.current_key = Some(k.key_no);
    Ok(Some(StationKey {
        key_no: k.key_no,
        key,
    }))
}

/// One station's state and usable key as stored now (`None`: no such station).
pub fn station_now(
    conn: &dyn Sql,
    station: &str,
) -> Result<Option<(StationState, Option<StationKey>)>> {
    let Some(mut state) = conn.first(
        "SELECT station, revoked, quarantined, head_sequence, head_hash FROM stations WHERE station = ?1",
        sql_params![station],
        state_from_row,
    )?
    else {
        return Ok(None);
    };
    let mut usable = None;
    for k in keys_where(conn, Some(station), true)? {
        if let Some(key) = take_current_key(&k, &mut state)? {
            usable = Some(key);
        }
    }
    Ok(Some((state, usable)))
}

/// Enrolled keys of one station (all stations if `None`), oldest first.
pub fn keys(conn: &dyn Sql, station: Option<&str>) -> Result<Vec<KeyRow>> {
    keys_where(conn, station, false)
}

fn keys_where(conn: &dyn Sql, station: Option<&str>, current_only: bool) -> Result<Vec<KeyRow>> {
    conn.all(
        "SELECT station, key_no, cert_der, public_key, current, enrolled_unix_ms, retired FROM station_keys
         WHERE (CAST(?1 AS TEXT) IS NULL OR station = ?1) AND (?2 = 0 OR current = 1) ORDER BY station, key_no",
        sql_params![station, current_only],
        |r| {
            Ok(KeyRow {
                station: r.text(0)?,
                key_no: key_no(r.int(1)?),
                cert_der: r.blob(2)?,
                public_key: hash32(&r.blob(3)?, "enrolled public key")?,
                current: r.flag(4)?,
                enrolled_unix_ms: to_u64(r.int(5)?),
                retired: r.opt_text(6)?,
            })
        },
    )
}

/// A key number as stored.
fn key_no(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Alerts stored per station.
pub fn alert_counts(conn: &dyn Sql) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    conn.each(
        "SELECT station, COUNT(*) FROM alerts GROUP BY station",
        &[],
        &mut |r| {
            out.insert(r.text(0)?, to_u64(r.int(1)?));
            Ok(())
        },
    )?;
    Ok(out)
}

/// Stores an alert (detail cut to `MAX_DETAIL_CHARS`).
pub fn insert_alert(
    conn: &dyn Sql,
    station: &str,
    kind: &str,
    sequence: u64,
    detail: &str,
    unix_ms: u64,
) -> Result<()> {
    conn.exec(
        "INSERT INTO alerts (station, kind, sequence, detail, unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        sql_params![
            &truncate_chars(station, MAX_ALERT_STATION_CHARS),
            kind,
            to_i64(sequence),
            &truncate_chars(detail, MAX_DETAIL_CHARS),
            to_i64(unix_ms)
        ],
    )?;
    Ok(())
}

/// The stored batch of `station` at `sequence`, with its chain hash and the key
/// that verified it.
pub fn stored_batch_row(
    conn: &dyn Sql,
    station: &str,
    sequence: u64,
) -> Result<Option<EvidenceBatch>> {
    conn.first(
        "SELECT hash, batch, signature, key_no FROM batches WHERE station = ?1 AND sequence = ?2",
        sql_params![station, to_i64(sequence)],
        |r| evidence_batch(r, 0, "batch hash"),
    )
}

/// An [`EvidenceBatch`] from columns `at..at + 4`: hash, batch, signature, key_no.
fn evidence_batch(r: &dyn SqlRow, at: usize, what: &str) -> Result<EvidenceBatch> {
    Ok(EvidenceBatch {
        hash: hash32(&r.blob(at)?, what)?,
        batch: r.blob(at + 1)?,
        signature: r.blob(at + 2)?,
        key_no: key_no(r.int(at + 3)?),
    })
}

/// The chain hash of `station`'s stored batch `sequence`.
pub fn stored_hash(conn: &dyn Sql, station: &str, sequence: u64) -> Result<Option<[u8; 32]>> {
    conn.first(
        "SELECT hash FROM batches WHERE station = ?1 AND sequence = ?2",
        sql_params![station, to_i64(sequence)],
        |r| hash32(&r.blob(0)?, "batch hash"),
    )
}

/// `station`'s stored batches `from..=to`, in sequence, each with the certificate
/// of the key that verified it (what a Fetch returns).
pub fn fetch_batches(
    conn: &dyn Sql,
    station: &str,
    from: u64,
    to: u64,
) -> Result<Vec<pollsync_proto::pb::FetchedBatch>> {
    conn.all(
        "SELECT b.batch, b.signature, k.cert_der FROM batches b
         JOIN station_keys k ON k.station = b.station AND k.key_no = b.key_no
         WHERE b.station = ?1 AND b.sequence BETWEEN ?2 AND ?3 ORDER BY b.sequence",
        sql_params![station, to_i64(from), to_i64(to)],
        |r| {
            Ok(pollsync_proto::pb::FetchedBatch {
                batch: Some(pollsync_proto::pb::SignedBatch {
                    batch: r.blob(0)?,
                    signature: r.blob(1)?,
                }),
                signer_cert_der: r.blob(2)?,
            })
        },
    )
}

/// Keeps a fork's signed evidence (once per distinct other batch).
pub fn insert_fork_evidence(conn: &dyn Sql, evidence: &ForkEvidence) -> Result<()> {
    let (a, b) = (&evidence.stored, &evidence.other);
    conn.exec(
        "INSERT INTO fork_evidence (station, sequence, stored_hash, stored_batch, stored_signature,
             stored_key_no, other_hash, other_batch, other_signature, other_key_no, unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (station, sequence, other_hash) DO NOTHING",
        sql_params![
            &evidence.station,
            to_i64(evidence.sequence),
            &a.hash,
            &a.batch,
            &a.signature,
            a.key_no,
            &b.hash,
            &b.batch,
            &b.signature,
            b.key_no,
            to_i64(evidence.unix_ms)
        ],
    )?;
    Ok(())
}

/// Every fork's evidence, by station, sequence, time.
pub fn fork_evidence(conn: &dyn Sql) -> Result<Vec<ForkEvidence>> {
    conn.all(
        "SELECT station, sequence, stored_hash, stored_batch, stored_signature, stored_key_no,
                other_hash, other_batch, other_signature, other_key_no, unix_ms
         FROM fork_evidence ORDER BY station, sequence, unix_ms",
        &[],
        |r| {
            Ok(ForkEvidence {
                station: r.text(0)?,
                sequence: to_u64(r.int(1)?),
                stored: evidence_batch(r, 2, "fork evidence hash")?,
                other: evidence_batch(r, 6, "fork evidence hash")?,
                unix_ms: to_u64(r.int(10)?),
            })
        },
    )
}

/// The stored batch bytes of `station` at `sequence`.
pub fn stored_batch(conn: &dyn Sql, station: &str, sequence: u64) -> Result<Option<Vec<u8>>> {
    conn.first(
        "SELECT batch FROM batches WHERE station = ?1 AND sequence = ?2",
        sql_params![station, to_i64(sequence)],
        |r| r.blob(0),
    )
}

/// Every stored batch (raw `Batch` bytes) of `station`, in sequence order.
pub fn station_batches(conn: &dyn Sql, station: &str) -> Result<Vec<Vec<u8>>> {
    conn.all(
        "SELECT batch FROM batches WHERE station = ?1 ORDER BY sequence",
        sql_params![station],
        |r| r.blob(0),
    )
}

/// Marks `station` quarantined.
pub fn quarantine(conn: &dyn Sql, station: &str) -> Result<()> {
    conn.exec(
        "UPDATE stations SET quarantined = 1 WHERE station = ?1",
        sql_params![station],
    )?;
    Ok(())
}

/// Applies an accepted batch: its raw bytes, the station's new head, the tallies.
pub fn apply_effects(
    conn: &dyn Sql,
    ctx: &Context,
    station: &str,
    batch_bytes: &[u8],
    signature: &[u8],
    effects: &Effects,
    leaf: u64,
) -> Result<()> {
    conn.exec(
        "INSERT INTO batches (station, sequence, hash, batch, signature, key_no, events, ballots, leaf)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        sql_params![
            station,
            to_i64(effects.sequence),
            &effects.hash,
            batch_bytes,
            signature,
            effects.key_no,
            to_i64(effects.events),
            to_i64(effects.ballots),
            to_i64(leaf)
        ],
    )?;
    // Compare-and-set: the head moves only from the one this batch follows, so a
    // writer that judged against a head another writer has since moved fails
    // rather than counts (the store's write lock and its version make this
    // never happen; this is the database's own check that it does not).
    let previous = effects
        .sequence
        .checked_sub(1)
        .ok_or_else(|| CenterError::Corrupt {
            detail: format!("station {station}: an accepted batch has sequence 0"),
        })?;
    let updated = conn.exec(
        "UPDATE stations SET head_sequence = ?2, head_hash = ?3
         WHERE station = ?1 AND head_sequence = ?4",
        sql_params![
            station,
            to_i64(effects.sequence),
            &effects.hash,
            to_i64(previous)
        ],
    )?;
    if updated != 1 {
        return Err(CenterError::HeadMoved {
            station: station.to_owned(),
            sequence: effects.sequence,
        });
    }
    for (contest_id, delta) in &effects.deltas {
        let (returned, valid, void) = conn.one(
            "INSERT INTO tally_contest (station, contest, issued, returned, valid, void)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (station, contest) DO UPDATE SET
                 issued = tally_contest.issued + excluded.issued,
                 returned = tally_contest.returned + excluded.returned,
                 valid = tally_contest.valid + excluded.valid,
                 void = tally_contest.void + excluded.void
             RETURNING returned, valid, void",
            sql_params![
                station,
                contest_id,
                to_i64(delta.issued),
                delta.returned,
                delta.valid,
                delta.void
            ],
            |r| Ok((r.int(0)?, r.int(1)?, r.int(2)?)),
        )?;
        never_negative(station, contest_id, "ballots returned", returned)?;
        never_negative(station, contest_id, "valid ballots", valid)?;
        never_negative(station, contest_id, "void ballots", void)?;
        if let Some(contest) = ctx.contest(contest_id) {
            for (i, candidate) in contest.candidates.iter().enumerate() {
                let f = delta.for_votes.get(i).copied().unwrap_or(0);
                let a = delta.against.get(i).copied().unwrap_or(0);
                if f != 0 || a != 0 {
                    let (for_votes, against) = conn.one(
                        "INSERT INTO tally_candidate (station, contest, candidate, for_votes, against)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (station, contest, candidate) DO UPDATE SET
                             for_votes = tally_candidate.for_votes + excluded.for_votes,
                             against = tally_candidate.against + excluded.against
                         RETURNING for_votes, against",
                        sql_params![station, contest_id, &candidate.id, f, a],
                        |r| Ok((r.int(0)?, r.int(1)?)),
                    )?;
                    never_negative(station, contest_id, &candidate.id, for_votes)?;
                    never_negative(station, contest_id, &candidate.id, against)?;
                }
            }
        }
        for (name, votes) in &delta.write_in {
            let stored = conn.one(
                "INSERT INTO tally_write_in (station, contest, name, for_votes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (station, contest, name) DO UPDATE SET
                     for_votes = tally_write_in.for_votes + excluded.for_votes
                 RETURNING for_votes",
                sql_params![station, contest_id, name, *votes],
                |r| r.int(0),
            )?;
            never_negative(station, contest_id, name, stored)?;
            // A name whose votes are all taken back leaves no row behind.
            if stored == 0 {
                conn.exec(
                    "DELETE FROM tally_write_in
                     WHERE station = ?1 AND contest = ?2 AND name = ?3 AND for_votes <= 0",
                    sql_params![station, contest_id, name],
                )?;
            }
        }
    }
    for (contest, sheet) in &effects.closes {
        close_contest(conn, station, contest, sheet)?;
    }
    Ok(())
}

/// A tally never goes below zero: a cancel takes back only what a ballot of the
/// same station added. A figure that would is refused with the whole group (no
/// batch of it is acknowledged) and logged: it is a bug, not a station's mistake.
fn never_negative(station: &str, contest: &str, figure: &str, value: i64) -> Result<()> {
    if value < 0 {
        return Err(CenterError::Corrupt {
            detail: format!(
                "station {station}, contest {contest}: {figure} would be {value}; a tally never goes below zero"
            ),
        });
    }
    Ok(())
}

fn close_contest(conn: &dyn Sql, station: &str, contest: &str, sheet: &TallySheet) -> Result<()> {
    let json = serde_json::to_string(sheet).map_err(|e| CenterError::Corrupt {
        detail: format!("tally sheet of {station}/{contest}: {e}"),
    })?;
    conn.exec(
        "INSERT INTO tally_contest (station, contest, closed, sheet) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (station, contest) DO UPDATE SET closed = 1, sheet = excluded.sheet",
        sql_params![station, contest, &json],
    )?;
    Ok(())
}

/// A station's presence for the operators' view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    /// Last hello, heartbeat, batch or connection change (Unix ms).
    pub last_seen_unix_ms: u64,
    /// The station's own head from its last hello or heartbeat.
    pub local_head_sequence: u64,
    /// Sealed batches the station reported as not acknowledged.
    pub sealed_unacknowledged: u64,
    /// Open sync connections.
    pub connections: u32,
}

/// Writes presence rows (stations not in the table are ignored). A row seen more
/// recently (by another replica) is left as it is.
pub fn write_presence<'a>(
    conn: &dyn Sql,
    entries: impl IntoIterator<Item = (&'a String, &'a Presence)>,
) -> Result<()> {
    for (station, p) in entries {
        conn.exec(
            "UPDATE stations SET last_seen_unix_ms = ?2, local_head_sequence = ?3,
                    sealed_unacknowledged = ?4, connected = ?5
             WHERE station = ?1 AND last_seen_unix_ms <= ?2",
            sql_params![
                station,
                to_i64(p.last_seen_unix_ms),
                to_i64(p.local_head_sequence),
                to_i64(p.sealed_unacknowledged),
                p.connections > 0
            ],
        )?;
    }
    Ok(())
}

/// Every station's presence as the replicas last wrote it.
pub fn read_presence(conn: &dyn Sql) -> Result<HashMap<String, Presence>> {
    conn.all(
        "SELECT station, last_seen_unix_ms, local_head_sequence, sealed_unacknowledged, connected
         FROM stations",
        &[],
        |r| {
            Ok((
                r.text(0)?,
                Presence {
                    last_seen_unix_ms: to_u64(r.int(1)?),
                    local_head_sequence: to_u64(r.int(2)?),
                    sealed_unacknowledged: to_u64(r.int(3)?),
                    connections: u32::from(r.flag(4)?),
                },
            ))
        },
    )
    .map(|rows| rows.into_iter().collect())
}

/// The log leaf of `station`'s accepted batch `sequence`.
pub fn batch_leaf(conn: &dyn Sql, station: &str, sequence: u64) -> Result<Option<u64>> {
    conn.first(
        "SELECT leaf FROM batches WHERE station = ?1 AND sequence = ?2",
        sql_params![station, to_i64(sequence)],
        |r| Ok(to_u64(r.int(0)?)),
    )
}

/// Leaves in the transparency log (the next leaf's index).
pub fn log_size(conn: &dyn Sql) -> Result<u64> {
    let next = conn.one(
        "SELECT CAST(coalesce(max(leaf) + 1, 0) AS BIGINT) FROM log_leaves",
        &[],
        |r| r.int(0),
    )?;
    Ok(to_u64(next))
}

/// The log's stored hashes at `indexes`, in order; stops at the first one not
/// stored (the caller sees fewer hashes than it asked for).
pub fn log_hashes(conn: &dyn Sql, indexes: &[u64]) -> Result<Vec<[u8; 32]>> {
    let mut out = Vec::with_capacity(indexes.len());
    for index in indexes {
        let hash = conn.first(
            "SELECT hash FROM log_hashes WHERE idx = ?1",
            sql_params![to_i64(*index)],
            |r| r.blob(0),
        )?;
        match hash {
            Some(hash) => out.push(hash32(&hash, "log hash")?),
            None => break,
        }
    }
    Ok(out)
}

/// The records of leaves `from..to`, in order.
pub fn log_entries(conn: &dyn Sql, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
    conn.all(
        "SELECT entry FROM log_leaves WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf",
        sql_params![to_i64(from), to_i64(to)],
        |r| r.blob(0),
    )
}

/// Stores leaf `leaf`'s record and the stored hashes it adds (from index `first`).
pub fn log_put(
    conn: &dyn Sql,
    leaf: u64,
    entry: &[u8],
    first: u64,
    hashes: &[[u8; 32]],
) -> Result<()> {
    conn.exec(
        "INSERT INTO log_leaves (leaf, entry) VALUES (?1, ?2)",
        sql_params![to_i64(leaf), entry],
    )?;
    for (i, hash) in (first..).zip(hashes) {
        conn.exec(
            "INSERT INTO log_hashes (idx, hash) VALUES (?1, ?2)",
            sql_params![to_i64(i), hash],
        )?;
    }
    Ok(())
}

/// Stores a standing change's text for its leaf.
pub fn put_standing_record(conn: &dyn Sql, leaf: u64, station: &str, text: &str) -> Result<()> {
    conn.exec(
        "INSERT INTO standing_records (leaf, station, record) VALUES (?1, ?2, ?3)",
        sql_params![to_i64(leaf), station, text],
    )?;
    Ok(())
}

/// Every standing change: leaf, station, text, by leaf.
pub fn standing_records(conn: &dyn Sql) -> Result<Vec<(u64, String, String)>> {
    conn.all(
        "SELECT leaf, station, record FROM standing_records ORDER BY leaf",
        &[],
        |r| Ok((to_u64(r.int(0)?), r.text(1)?, r.text(2)?)),
    )
}

/// The newest checkpoint: its size and signed note.
pub fn latest_checkpoint(conn: &dyn Sql) -> Result<Option<(u64, Vec<u8>)>> {
    conn.first(
        "SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1",
        &[],
        |r| Ok((to_u64(r.int(0)?), r.blob(1)?)),
    )
}

/// The size of the newest checkpoint, without reading its note.
pub fn latest_checkpoint_size(conn: &dyn Sql) -> Result<Option<u64>> {
    let size = conn.one("SELECT max(size) FROM log_checkpoints", &[], |r| {
        r.opt_int(0)
    })?;
    Ok(size.map(to_u64))
}

/// The checkpoint of `size` leaves, if one was published.
pub fn checkpoint_of_size(conn: &dyn Sql, size: u64) -> Result<Option<Vec<u8>>> {
    conn.first(
        "SELECT note FROM log_checkpoints WHERE size = ?1",
        sql_params![to_i64(size)],
        |r| r.blob(0),
    )
}

/// Stores a signed checkpoint (a second one of the same size is refused: one
/// history).
pub fn log_put_checkpoint(conn: &dyn Sql, size: u64, note: &[u8]) -> Result<()> {
    conn.exec(
        "INSERT INTO log_checkpoints (size, note) VALUES (?1, ?2)",
        sql_params![to_i64(size), note],
    )?;
    Ok(())
}

/// A connection the writer's SQL runs on: [`Sql`], and how it learns that another
/// writer committed ([`IngestOps::version`]). Every engine gets the writer's
/// operations from this file through the one impl below.
pub trait Engine: Sql {
    /// A number that changes whenever another writer commits to the store.
    fn version(&self) -> Result<i64>;
    /// Sends `payload` on `channel` to the other replicas once this transaction
    /// commits (nothing if it rolls back).
    fn announce(&self, channel: &'static str, payload: &str) -> Result<()>;
    /// Tells the other writers, inside this writer's transaction, that it changed
    /// what they keep in memory; returns the version this writer knows once it
    /// commits.
    fn mark_written(&self) -> Result<i64>;
}

impl<E: Engine> IngestOps for E {
    fn version(&self) -> Result<i64> {
        Engine::version(self)
    }

    fn mark_written(&self) -> Result<i64> {
        Engine::mark_written(self)
    }

    fn announce(&self, channel: &'static str, payload: &str) -> Result<()> {
        Engine::announce(self, channel, payload)
    }

    fn read_presence(&self) -> Result<HashMap<String, Presence>> {
        read_presence(self)
    }

    fn load_states(&self) -> Result<(HashMap<String, StationState>, HashMap<String, StationKey>)> {
        load_states(self)
    }

    fn station_batches(&self, station: &str) -> Result<Vec<Vec<u8>>> {
        station_batches(self, station)
    }

    fn stored_batch_row(&self, station: &str, sequence: u64) -> Result<Option<EvidenceBatch>> {
        stored_batch_row(self, station, sequence)
    }

    fn apply_effects(
        &self,
        ctx: &Context,
        station: &str,
        batch_bytes: &[u8],
        signature: &[u8],
        effects: &Effects,
        leaf: u64,
    ) -> Result<()> {
        apply_effects(self, ctx, station, batch_bytes, signature, effects, leaf)
    }

    fn quarantine(&self, station: &str) -> Result<()> {
        quarantine(self, station)
    }

    fn insert_fork_evidence(&self, evidence: &ForkEvidence) -> Result<()> {
        insert_fork_evidence(self, evidence)
    }

    fn alert_counts(&self) -> Result<HashMap<String, u64>> {
        alert_counts(self)
    }

    fn insert_alert(
        &self,
        station: &str,
        kind: &str,
        sequence: u64,
        detail: &str,
        unix_ms: u64,
    ) -> Result<()> {
        insert_alert(self, station, kind, sequence, detail, unix_ms)
    }

    fn write_presence(&self, entries: &HashMap<String, Presence>) -> Result<()> {
        write_presence(self, entries)
    }

    fn log_size(&self) -> Result<u64> {
        log_size(self)
    }

    fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>> {
        log_hashes(self, indexes)
    }

    fn log_put(&self, leaf: u64, entry: &[u8], first: u64, hashes: &[[u8; 32]]) -> Result<()> {
        log_put(self, leaf, entry, first, hashes)
    }

    fn put_standing_record(&self, leaf: u64, station: &str, text: &str) -> Result<()> {
        put_standing_record(self, leaf, station, text)
    }

    fn latest_checkpoint_size(&self) -> Result<Option<u64>> {
        latest_checkpoint_size(self)
    }

    fn log_put_checkpoint(&self, size: u64, note: &[u8]) -> Result<()> {
        log_put_checkpoint(self, size, note)
    }

    fn log_lease(&self) -> Result<Option<String>> {
        log_lease(self)
    }

    fn set_log_lease(&self, row: &str) -> Result<()> {
        set_log_lease(self, row)
    }
}
