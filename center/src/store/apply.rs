//! The ingest writer's SQL: load the stations' state, look up stored batches,
//! apply an accepted batch (raw bytes, head, tally upserts), raise alerts,
//! quarantine, and write the operators' presence view. Every function runs inside
//! the caller's transaction (`&Connection` is a `Transaction` deref'd).
//!
//! Only a handful of rows per batch: the batch row, the station row, one row per
//! contest and one per candidate or write-in name whose figures change.

use std::collections::{BTreeSet, HashMap};

use ed25519_dalek::VerifyingKey;
use pollsync_election::TallySheet;
use pollsync_proto::ChainHead;
use pollsync_proto::limits::{MAX_DETAIL_CHARS, truncate_chars};
use rusqlite::{Connection, OptionalExtension as _, params};

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

/// Every station's state and current key, as stored.
pub fn load_states(
    conn: &Connection,
) -> Result<(HashMap<String, StationState>, HashMap<String, StationKey>)> {
    let mut states: HashMap<String, StationState> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT station, revoked, quarantined, head_sequence, head_hash FROM stations",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let station: String = r.get(0)?;
            let state = state_of(r.get(1)?, r.get(2)?, r.get(3)?, &r.get::<_, Vec<u8>>(4)?)?;
            states.insert(station, state);
        }
    }
    {
        let mut stmt =
            conn.prepare_cached("SELECT station, contest FROM tally_contest WHERE closed = 1")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let station: String = r.get(0)?;
            if let Some(s) = states.get_mut(&station) {
                s.closed.insert(r.get(1)?);
            }
        }
    }
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

/// A station's state from its row (no key, no closed contests yet).
fn state_of(revoked: bool, quarantined: bool, head: i64, hash: &[u8]) -> Result<StationState> {
    Ok(StationState {
        current_key: None,
        revoked,
        quarantined,
        retired: None,
        head: ChainHead {
            sequence: to_u64(head),
            hash: hash32(hash, "head_hash")?,
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
    conn: &Connection,
    station: &str,
) -> Result<Option<(StationState, Option<StationKey>)>> {
    let row: Option<(bool, bool, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT revoked, quarantined, head_sequence, head_hash FROM stations WHERE station = ?1",
        )?
        .query_row([station], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((revoked, quarantined, sequence, hash)) = row else {
        return Ok(None);
    };
    let mut state = state_of(revoked, quarantined, sequence, &hash)?;
    let mut usable = None;
    for k in keys_where(conn, Some(station), true)? {
        if let Some(key) = take_current_key(&k, &mut state)? {
            usable = Some(key);
        }
    }
    Ok(Some((state, usable)))
}

/// Enrolled keys of one station (all stations if `None`), oldest first.
pub fn keys(conn: &Connection, station: Option<&str>) -> Result<Vec<KeyRow>> {
    keys_where(conn, station, false)
}

fn keys_where(conn: &Connection, station: Option<&str>, current_only: bool) -> Result<Vec<KeyRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT station, key_no, cert_der, public_key, current, enrolled_unix_ms, retired FROM station_keys
         WHERE (?1 IS NULL OR station = ?1) AND (?2 = 0 OR current = 1) ORDER BY station, key_no",
    )?;
    let mut rows = stmt.query(params![station, current_only])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let public_key: Vec<u8> = r.get(3)?;
        out.push(KeyRow {
            station: r.get(0)?,
            key_no: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            cert_der: r.get(2)?,
            public_key: hash32(&public_key, "enrolled public key")?,
            current: r.get(4)?,
            enrolled_unix_ms: to_u64(r.get(5)?),
            retired: r.get(6)?,
        });
    }
    Ok(out)
}

/// Alerts stored per station.
pub fn alert_counts(conn: &Connection) -> Result<std::collections::HashMap<String, u64>> {
    let mut stmt = conn.prepare_cached("SELECT station, COUNT(*) FROM alerts GROUP BY station")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (station, n) = row?;
        out.insert(station, to_u64(n));
    }
    Ok(out)
}

/// Stores an alert (detail cut to `MAX_DETAIL_CHARS`).
pub fn insert_alert(
    conn: &Connection,
    station: &str,
    kind: &str,
    sequence: u64,
    detail: &str,
    unix_ms: u64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO alerts (station, kind, sequence, detail, unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        truncate_chars(station, MAX_ALERT_STATION_CHARS),
        kind,
        to_i64(sequence),
        truncate_chars(detail, MAX_DETAIL_CHARS),
        to_i64(unix_ms)
    ])?;
    Ok(())
}

/// The stored batch of `station` at `sequence`, with its chain hash and the key
/// that verified it.
pub fn stored_batch_row(
    conn: &Connection,
    station: &str,
    sequence: u64,
) -> Result<Option<EvidenceBatch>> {
    let row = conn
        .prepare_cached(
            "SELECT hash, batch, signature, key_no FROM batches WHERE station = ?1 AND sequence = ?2",
        )?
        .query_row(params![station, to_i64(sequence)], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                EvidenceBatch {
                    hash: [0; 32],
                    batch: r.get(1)?,
                    signature: r.get(2)?,
                    key_no: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                },
            ))
        })
        .optional()?;
    row.map(|(hash, batch)| {
        Ok(EvidenceBatch {
            hash: hash32(&hash, "batch hash")?,
            ..batch
        })
    })
    .transpose()
}

/// The chain hash of `station`'s stored batch `sequence`.
pub fn stored_hash(conn: &Connection, station: &str, sequence: u64) -> Result<Option<[u8; 32]>> {
    let hash: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM batches WHERE station = ?1 AND sequence = ?2")?
        .query_row(params![station, to_i64(sequence)], |r| r.get(0))
        .optional()?;
    hash.map(|h| hash32(&h, "batch hash")).transpose()
}

/// `station`'s stored batches `from..=to`, in sequence, each with the certificate
/// of the key that verified it (what a Fetch returns).
pub fn fetch_batches(
    conn: &Connection,
    station: &str,
    from: u64,
    to: u64,
) -> Result<Vec<pollsync_proto::pb::FetchedBatch>> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.batch, b.signature, k.cert_der FROM batches b
         JOIN station_keys k ON k.station = b.station AND k.key_no = b.key_no
         WHERE b.station = ?1 AND b.sequence BETWEEN ?2 AND ?3 ORDER BY b.sequence",
    )?;
    let rows = stmt.query_map(params![station, to_i64(from), to_i64(to)], |r| {
        Ok(pollsync_proto::pb::FetchedBatch {
            batch: Some(pollsync_proto::pb::SignedBatch {
                batch: r.get(0)?,
                signature: r.get(1)?,
            }),
            signer_cert_der: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Keeps a fork's signed evidence (once per distinct other batch).
pub fn insert_fork_evidence(conn: &Connection, evidence: &ForkEvidence) -> Result<()> {
    let (a, b) = (&evidence.stored, &evidence.other);
    conn.prepare_cached(
        "INSERT OR IGNORE INTO fork_evidence (station, sequence, stored_hash, stored_batch, stored_signature,
             stored_key_no, other_hash, other_batch, other_signature, other_key_no, unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        evidence.station,
        to_i64(evidence.sequence),
        a.hash.as_slice(),
        a.batch,
        a.signature,
        a.key_no,
        b.hash.as_slice(),
        b.batch,
        b.signature,
        b.key_no,
        to_i64(evidence.unix_ms)
    ])?;
    Ok(())
}

/// Every fork's evidence, by station, sequence, time.
pub fn fork_evidence(conn: &Connection) -> Result<Vec<ForkEvidence>> {
    let mut stmt = conn.prepare_cached(
        "SELECT station, sequence, stored_hash, stored_batch, stored_signature, stored_key_no,
                other_hash, other_batch, other_signature, other_key_no, unix_ms
         FROM fork_evidence ORDER BY station, sequence, unix_ms",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let batch = |at: usize| -> Result<EvidenceBatch> {
            Ok(EvidenceBatch {
                hash: hash32(&r.get::<_, Vec<u8>>(at)?, "fork evidence hash")?,
                batch: r.get(at + 1)?,
                signature: r.get(at + 2)?,
                key_no: u32::try_from(r.get::<_, i64>(at + 3)?).unwrap_or(0),
            })
        };
        out.push(ForkEvidence {
            station: r.get(0)?,
            sequence: to_u64(r.get(1)?),
            stored: batch(2)?,
            other: batch(6)?,
            unix_ms: to_u64(r.get(10)?),
        });
    }
    Ok(out)
}

/// The stored batch bytes of `station` at `sequence`.
pub fn stored_batch(conn: &Connection, station: &str, sequence: u64) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT batch FROM batches WHERE station = ?1 AND sequence = ?2")?
        .query_row(params![station, to_i64(sequence)], |r| r.get(0))
        .optional()?)
}

/// Every stored batch (raw `Batch` bytes) of `station`, in sequence order.
pub fn station_batches(conn: &Connection, station: &str) -> Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT batch FROM batches WHERE station = ?1 ORDER BY sequence")?;
    let rows = stmt.query_map([station], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Marks `station` quarantined.
pub fn quarantine(conn: &Connection, station: &str) -> Result<()> {
    conn.prepare_cached("UPDATE stations SET quarantined = 1 WHERE station = ?1")?
        .execute([station])?;
    Ok(())
}

/// Applies an accepted batch: its raw bytes, the station's new head, the tallies.
pub fn apply_effects(
    conn: &Connection,
    ctx: &Context,
    station: &str,
    batch_bytes: &[u8],
    signature: &[u8],
    effects: &Effects,
    leaf: u64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO batches (station, sequence, hash, batch, signature, key_no, events, ballots, leaf)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        station,
        to_i64(effects.sequence),
        effects.hash.as_slice(),
        batch_bytes,
        signature,
        effects.key_no,
        to_i64(effects.events),
        to_i64(effects.ballots),
        to_i64(leaf)
    ])?;
    let updated = conn
        .prepare_cached(
            "UPDATE stations SET head_sequence = ?2, head_hash = ?3 WHERE station = ?1",
        )?
        .execute(params![
            station,
            to_i64(effects.sequence),
            effects.hash.as_slice()
        ])?;
    if updated != 1 {
        return Err(CenterError::Corrupt {
            detail: format!("station {station} has no row in the stations table"),
        });
    }
    let mut contest_upsert = conn.prepare_cached(
        "INSERT INTO tally_contest (station, contest, issued, returned, valid, void)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (station, contest) DO UPDATE SET
             issued = issued + excluded.issued,
             returned = returned + excluded.returned,
             valid = valid + excluded.valid,
             void = void + excluded.void
         RETURNING returned, valid, void",
    )?;
    let mut candidate_upsert = conn.prepare_cached(
        "INSERT INTO tally_candidate (station, contest, candidate, for_votes, against)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (station, contest, candidate) DO UPDATE SET
             for_votes = for_votes + excluded.for_votes,
             against = against + excluded.against
         RETURNING for_votes, against",
    )?;
    let mut write_in_upsert = conn.prepare_cached(
        "INSERT INTO tally_write_in (station, contest, name, for_votes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (station, contest, name) DO UPDATE SET for_votes = for_votes + excluded.for_votes
         RETURNING for_votes",
    )?;
    let mut write_in_prune = conn.prepare_cached(
        "DELETE FROM tally_write_in WHERE station = ?1 AND contest = ?2 AND name = ?3 AND for_votes <= 0",
    )?;
    for (contest_id, delta) in &effects.deltas {
        let (returned, valid, void): (i64, i64, i64) = contest_upsert.query_row(
            params![
                station,
                contest_id,
                to_i64(delta.issued),
                delta.returned,
                delta.valid,
                delta.void
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        never_negative(station, contest_id, "ballots returned", returned)?;
        never_negative(station, contest_id, "valid ballots", valid)?;
        never_negative(station, contest_id, "void ballots", void)?;
        if let Some(contest) = ctx.contest(contest_id) {
            for (i, candidate) in contest.candidates.iter().enumerate() {
                let f = delta.for_votes.get(i).copied().unwrap_or(0);
                let a = delta.against.get(i).copied().unwrap_or(0);
                if f != 0 || a != 0 {
                    let (for_votes, against): (i64, i64) = candidate_upsert
                        .query_row(params![station, contest_id, candidate.id, f, a], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?;
                    never_negative(station, contest_id, &candidate.id, for_votes)?;
                    never_negative(station, contest_id, &candidate.id, against)?;
                }
            }
        }
        for (name, votes) in &delta.write_in {
            let stored: i64 = write_in_upsert
                .query_row(params![station, contest_id, name, votes], |r| r.get(0))?;
            never_negative(station, contest_id, name, stored)?;
            // A name whose votes are all taken back leaves no row behind.
            if stored == 0 {
                write_in_prune.execute(params![station, contest_id, name])?;
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

fn close_contest(
    conn: &Connection,
    station: &str,
    contest: &str,
    sheet: &TallySheet,
) -> Result<()> {
    let json = serde_json::to_string(sheet).map_err(|e| CenterError::Corrupt {
        detail: format!("tally sheet of {station}/{contest}: {e}"),
    })?;
    conn.prepare_cached(
        "INSERT INTO tally_contest (station, contest, closed, sheet) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (station, contest) DO UPDATE SET closed = 1, sheet = excluded.sheet",
    )?
    .execute(params![station, contest, json])?;
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

/// Writes presence rows (stations not in the table are ignored).
pub fn write_presence<'a>(
    conn: &Connection,
    entries: impl IntoIterator<Item = (&'a String, &'a Presence)>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE stations SET last_seen_unix_ms = ?2, local_head_sequence = ?3,
                sealed_unacknowledged = ?4, connected = ?5 WHERE station = ?1",
    )?;
    for (station, p) in entries {
        stmt.execute(params![
            station,
            to_i64(p.last_seen_unix_ms),
            to_i64(p.local_head_sequence),
            to_i64(p.sealed_unacknowledged),
            p.connections > 0
        ])?;
    }
    Ok(())
}

/// The log leaf of `station`'s accepted batch `sequence`.
pub fn batch_leaf(conn: &Connection, station: &str, sequence: u64) -> Result<Option<u64>> {
    let leaf: Option<i64> = conn
        .prepare_cached("SELECT leaf FROM batches WHERE station = ?1 AND sequence = ?2")?
        .query_row(params![station, to_i64(sequence)], |r| r.get(0))
        .optional()?;
    Ok(leaf.map(to_u64))
}

/// Leaves in the transparency log (the next leaf's index).
pub fn log_size(conn: &Connection) -> Result<u64> {
    let next: i64 = conn
        .prepare_cached("SELECT coalesce(max(leaf) + 1, 0) FROM log_leaves")?
        .query_row([], |r| r.get(0))?;
    Ok(to_u64(next))
}

/// The log's stored hashes at `indexes`, in order; stops at the first one not
/// stored (the caller sees fewer hashes than it asked for).
pub fn log_hashes(conn: &Connection, indexes: &[u64]) -> Result<Vec<[u8; 32]>> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM log_hashes WHERE idx = ?1")?;
    let mut out = Vec::with_capacity(indexes.len());
    for index in indexes {
        let hash: Option<Vec<u8>> = stmt.query_row([to_i64(*index)], |r| r.get(0)).optional()?;
        match hash {
            Some(hash) => out.push(hash32(&hash, "log hash")?),
            None => break,
        }
    }
    Ok(out)
}

/// The records of leaves `from..to`, in order.
pub fn log_entries(conn: &Connection, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry FROM log_leaves WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf",
    )?;
    let rows = stmt.query_map([to_i64(from), to_i64(to)], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stores leaf `leaf`'s record and the stored hashes it adds (from index `first`).
pub fn log_put(
    conn: &Connection,
    leaf: u64,
    entry: &[u8],
    first: u64,
    hashes: &[[u8; 32]],
) -> Result<()> {
    conn.prepare_cached("INSERT INTO log_leaves (leaf, entry) VALUES (?1, ?2)")?
        .execute(params![to_i64(leaf), entry])?;
    let mut put = conn.prepare_cached("INSERT INTO log_hashes (idx, hash) VALUES (?1, ?2)")?;
    for (i, hash) in (first..).zip(hashes) {
        put.execute(params![to_i64(i), hash.as_slice()])?;
    }
    Ok(())
}

/// Stores a standing change's text for its leaf.
pub fn put_standing_record(conn: &Connection, leaf: u64, station: &str, text: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO standing_records (leaf, station, record) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![to_i64(leaf), station, text])?;
    Ok(())
}

/// Every standing change: leaf, station, text, by leaf.
pub fn standing_records(conn: &Connection) -> Result<Vec<(u64, String, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT leaf, station, record FROM standing_records ORDER BY leaf")?;
    let rows = stmt.query_map([], |r| Ok((to_u64(r.get(0)?), r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The newest checkpoint: its size and signed note.
pub fn latest_checkpoint(conn: &Connection) -> Result<Option<(u64, Vec<u8>)>> {
    Ok(conn
        .prepare_cached("SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1")?
        .query_row([], |r| Ok((to_u64(r.get(0)?), r.get(1)?)))
        .optional()?)
}

/// The size of the newest checkpoint, without reading its note.
pub fn latest_checkpoint_size(conn: &Connection) -> Result<Option<u64>> {
    let size: Option<i64> = conn
        .prepare_cached("SELECT max(size) FROM log_checkpoints")?
        .query_row([], |r| r.get(0))?;
    Ok(size.map(to_u64))
}

/// The checkpoint of `size` leaves, if one was published.
pub fn checkpoint_of_size(conn: &Connection, size: u64) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT note FROM log_checkpoints WHERE size = ?1")?
        .query_row([to_i64(size)], |r| r.get(0))
        .optional()?)
}

/// Stores a signed checkpoint (a second one of the same size is refused: one
/// history).
pub fn log_put_checkpoint(conn: &Connection, size: u64, note: &[u8]) -> Result<()> {
    conn.prepare_cached("INSERT INTO log_checkpoints (size, note) VALUES (?1, ?2)")?
        .execute(params![to_i64(size), note])?;
    Ok(())
}
