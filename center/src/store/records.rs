//! Reading the center's records ([`Records`]), written once for every engine: each
//! read is SQL run through [`Sql`], so a SQLite store and a PostgreSQL one answer
//! with the same code. A store type only says which connection to read from
//! ([`AsSql`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use pollsync_election::TallySheet;
use pollsync_proto::{ChainHead, pb};

use super::engine::Records;
use super::schema::*;
use super::sql::{Sql, SqlExt as _, sql_params};
use super::state::{StationKey, StationState};
use super::{
    AlertRow, CenterMeta, ForkEvidence, KeyRow, StationContestTally, StationRow, StoredBatch,
    apply, hash32, to_u64,
};
use crate::error::{CenterError, Result};

/// A store whose records are read through one connection.
pub trait AsSql {
    /// The connection to read from.
    fn sql(&self) -> &dyn Sql;
}

/// The `meta` entry `key`, if there is one.
pub(crate) fn meta_value(sql: &dyn Sql, key: &str) -> Result<Option<Vec<u8>>> {
    sql.first(
        "SELECT value FROM meta WHERE key = ?1",
        sql_params![key],
        |r| r.blob(0),
    )
}

fn meta_bytes(sql: &dyn Sql, key: &str) -> Result<Vec<u8>> {
    meta_value(sql, key)?.ok_or_else(|| CenterError::Corrupt {
        detail: format!("meta entry {key:?} is missing"),
    })
}

fn utf8(key: &str, value: Vec<u8>) -> Result<String> {
    String::from_utf8(value).map_err(|_| CenterError::Corrupt {
        detail: format!("meta entry {key:?} is not UTF-8"),
    })
}

fn meta_text(sql: &dyn Sql, key: &str) -> Result<String> {
    utf8(key, meta_bytes(sql, key)?)
}

fn meta_text_opt(sql: &dyn Sql, key: &str) -> Result<Option<String>> {
    meta_value(sql, key)?.map(|v| utf8(key, v)).transpose()
}

/// A tally row's entry, made if the contest had no `tally_contest` row yet.
fn entry(
    out: &mut BTreeMap<(String, String), StationContestTally>,
    station: String,
    contest: String,
) -> &mut StationContestTally {
    out.entry((station.clone(), contest.clone()))
        .or_insert_with(|| StationContestTally {
            station,
            contest,
            computed: TallySheet::default(),
            closed: false,
            sheet: None,
        })
}

impl<T: AsSql + ?Sized> Records for T {
    /// The configuration stored at `init`.
    fn meta(&self) -> Result<CenterMeta> {
        let sql = self.sql();
        let advertise: Vec<String> = serde_json::from_slice(&meta_bytes(sql, META_ADVERTISE)?)
            .map_err(|e| CenterError::Corrupt {
                detail: format!("meta entry {META_ADVERTISE:?}: {e}"),
            })?;
        Ok(CenterMeta {
            election_id: meta_text(sql, META_ELECTION_ID)?,
            election_toml: meta_text(sql, META_ELECTION_TOML)?,
            definition_sha256: hash32(
                &meta_bytes(sql, META_DEFINITION_SHA256)?,
                "definition_sha256",
            )?,
            ca_cert_pem: meta_text(sql, META_CA_CERT_PEM)?,
            ca_key_pem: meta_text_opt(sql, META_CA_KEY_PEM)?,
            ca_dir: meta_text_opt(sql, META_CA_DIR)?.map(PathBuf::from),
            server_cert_pem: meta_text(sql, META_SERVER_CERT_PEM)?,
            server_key_pem: meta_text(sql, META_SERVER_KEY_PEM)?,
            advertise,
            log_signer_key: meta_text(sql, META_LOG_SIGNER_KEY)?,
            log_verifier_key: meta_text(sql, META_LOG_VERIFIER_KEY)?,
        })
    }

    /// Every alert, oldest first.
    fn alerts(&self) -> Result<Vec<AlertRow>> {
        self.sql().all(
            "SELECT id, station, kind, sequence, detail, unix_ms FROM alerts ORDER BY id",
            &[],
            |r| {
                Ok(AlertRow {
                    id: r.int(0)?,
                    station: r.text(1)?,
                    kind: r.text(2)?,
                    sequence: to_u64(r.int(3)?),
                    detail: r.text(4)?,
                    unix_ms: to_u64(r.int(5)?),
                })
            },
        )
    }

    /// Every station of the election, in id order.
    fn stations(&self) -> Result<Vec<StationRow>> {
        self.sql().all(
            "SELECT s.station, s.revoked, s.quarantined, s.head_sequence, s.head_hash,
                    s.last_seen_unix_ms, s.local_head_sequence, s.sealed_unacknowledged, s.connected,
                    EXISTS (SELECT 1 FROM station_keys k WHERE k.station = s.station),
                    EXISTS (SELECT 1 FROM station_keys k WHERE k.station = s.station
                            AND k.current = 1 AND k.retired IS NOT NULL)
             FROM stations s ORDER BY s.station",
            &[],
            |r| {
                Ok(StationRow {
                    station: r.text(0)?,
                    revoked: r.flag(1)?,
                    quarantined: r.flag(2)?,
                    head_sequence: to_u64(r.int(3)?),
                    head_hash: hex::encode(r.blob(4)?),
                    last_seen_unix_ms: to_u64(r.int(5)?),
                    local_head_sequence: to_u64(r.int(6)?),
                    sealed_unacknowledged: to_u64(r.int(7)?),
                    connected: r.flag(8)?,
                    enrolled: r.flag(9)?,
                    key_retired: r.flag(10)?,
                })
            },
        )
    }

    /// A station's head (`None` if the station is not in the store).
    fn head(&self, station: &str) -> Result<Option<ChainHead>> {
        self.sql().first(
            "SELECT head_sequence, head_hash FROM stations WHERE station = ?1",
            sql_params![station],
            |r| {
                Ok(ChainHead {
                    sequence: to_u64(r.int(0)?),
                    hash: hash32(&r.blob(1)?, "head_hash")?,
                })
            },
        )
    }

    /// Every key ever enrolled for `station`, oldest first.
    fn keys_of(&self, station: &str) -> Result<Vec<KeyRow>> {
        apply::keys(self.sql(), Some(station))
    }

    /// Every fork's signed evidence, by station then sequence.
    fn fork_evidence(&self) -> Result<Vec<ForkEvidence>> {
        apply::fork_evidence(self.sql())
    }

    /// Every station's running tallies, by station then contest.
    fn tallies(&self) -> Result<Vec<StationContestTally>> {
        let sql = self.sql();
        let mut out: BTreeMap<(String, String), StationContestTally> = BTreeMap::new();
        sql.each(
            "SELECT station, contest, issued, returned, valid, void, closed, sheet FROM tally_contest",
            &[],
            &mut |r| {
                let (station, contest) = (r.text(0)?, r.text(1)?);
                let sheet = r
                    .opt_text(7)?
                    .map(|s| {
                        serde_json::from_str::<TallySheet>(&s).map_err(|e| CenterError::Corrupt {
                            detail: format!("tally sheet of {station}/{contest}: {e}"),
                        })
                    })
                    .transpose()?;
                let computed = TallySheet {
                    issued: to_u64(r.int(2)?),
                    returned: to_u64(r.int(3)?),
                    valid: to_u64(r.int(4)?),
                    void: to_u64(r.int(5)?),
                    ..TallySheet::default()
                };
                out.insert(
                    (station.clone(), contest.clone()),
                    StationContestTally {
                        station,
                        contest,
                        computed,
                        closed: r.flag(6)?,
                        sheet,
                    },
                );
                Ok(())
            },
        )?;
        sql.each(
            "SELECT station, contest, candidate, for_votes, against FROM tally_candidate",
            &[],
            &mut |r| {
                let t = entry(&mut out, r.text(0)?, r.text(1)?);
                let candidate = r.text(2)?;
                let (f, a) = (to_u64(r.int(3)?), to_u64(r.int(4)?));
                if f > 0 {
                    t.computed.for_votes.insert(candidate.clone(), f);
                }
                if a > 0 {
                    t.computed.against.insert(candidate, a);
                }
                Ok(())
            },
        )?;
        sql.each(
            "SELECT station, contest, name, for_votes FROM tally_write_in",
            &[],
            &mut |r| {
                let t = entry(&mut out, r.text(0)?, r.text(1)?);
                let votes = to_u64(r.int(3)?);
                if votes > 0 {
                    t.computed.write_in.insert(r.text(2)?, votes);
                }
                Ok(())
            },
        )?;
        Ok(out.into_values().collect())
    }

    /// Every station's computed tally per contest, as `station → contest → sheet`.
    fn tally_map(&self) -> Result<BTreeMap<String, BTreeMap<String, TallySheet>>> {
        let mut map: BTreeMap<String, BTreeMap<String, TallySheet>> = BTreeMap::new();
        for t in self.tallies()? {
            map.entry(t.station)
                .or_default()
                .insert(t.contest, t.computed);
        }
        Ok(map)
    }

    /// The stored batches of `station` (all stations if `None`), by station then
    /// sequence: what `center audit` re-verifies and re-tallies.
    fn batches(&self, station: Option<&str>) -> Result<Vec<StoredBatch>> {
        self.sql().all(
            "SELECT station, sequence, hash, batch, signature, key_no FROM batches
             WHERE CAST(?1 AS TEXT) IS NULL OR station = ?1 ORDER BY station, sequence",
            sql_params![station],
            |r| {
                Ok(StoredBatch {
                    station: r.text(0)?,
                    sequence: to_u64(r.int(1)?),
                    hash: hash32(&r.blob(2)?, "batch hash")?,
                    batch: r.blob(3)?,
                    signature: r.blob(4)?,
                    key_no: u32::try_from(r.int(5)?).unwrap_or(0),
                })
            },
        )
    }

    /// Number of accepted batches and ballots per station.
    fn batch_counts(&self) -> Result<HashMap<String, (u64, u64)>> {
        let mut out = HashMap::new();
        self.sql().each(
            "SELECT station, CAST(count(*) AS BIGINT), CAST(coalesce(sum(ballots), 0) AS BIGINT)
             FROM batches GROUP BY station",
            &[],
            &mut |r| {
                out.insert(r.text(0)?, (to_u64(r.int(1)?), to_u64(r.int(2)?)));
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn station_now(&self, station: &str) -> Result<Option<(StationState, Option<StationKey>)>> {
        apply::station_now(self.sql(), station)
    }

    fn stored_hash(&self, station: &str, sequence: u64) -> Result<Option<[u8; 32]>> {
        apply::stored_hash(self.sql(), station, sequence)
    }

    fn stored_batch(&self, station: &str, sequence: u64) -> Result<Option<Vec<u8>>> {
        apply::stored_batch(self.sql(), station, sequence)
    }

    fn fetch_batches(&self, station: &str, from: u64, to: u64) -> Result<Vec<pb::FetchedBatch>> {
        apply::fetch_batches(self.sql(), station, from, to)
    }

    fn log_size(&self) -> Result<u64> {
        apply::log_size(self.sql())
    }

    fn batch_leaf(&self, station: &str, sequence: u64) -> Result<Option<u64>> {
        apply::batch_leaf(self.sql(), station, sequence)
    }

    fn log_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>> {
        apply::log_hashes(self.sql(), indexes)
    }

    fn log_entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        apply::log_entries(self.sql(), from, to)
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        apply::latest_checkpoint(self.sql())
    }

    fn checkpoint_of_size(&self, size: u64) -> Result<Option<Vec<u8>>> {
        apply::checkpoint_of_size(self.sql(), size)
    }

    fn standing_records(&self) -> Result<Vec<(u64, String, String)>> {
        apply::standing_records(self.sql())
    }
}
