//! The center's durable store: one SQLite file, `center.db` in the data folder
//! (folder 0700, file 0600: it holds the CA key), in WAL mode with
//! `synchronous=FULL`, every write in a `BEGIN IMMEDIATE` transaction.
//!
//! [`Store`] is what the offline commands use: creating the store at `init`,
//! enrolling, revoking and releasing stations. Everything above the store reads it
//! through [`Records`], and the ingest writer writes through [`IngestStore`]
//! ([`engine`]: the seam for a second engine); SQLite's side of those is
//! [`sqlite`], the writer's SQL is in [`apply`], the schema in [`schema`], and the
//! types the store and the ingest share in [`state`].

pub mod apply;
pub mod engine;
pub mod log;
pub mod pg_link;
pub mod pool;
pub mod postgres;
pub mod records;
pub mod schema;
pub mod sql;
pub mod sqlite;
pub mod state;

pub use engine::{IngestOps, IngestStore, IngestTx, Records, Unit};

use std::collections::HashMap;
use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pollsync_election::{ElectionDefinition, TallySheet, load};
use pollsync_proto::tlog::{self, LogKey, StandingRecord};
use pollsync_proto::{ChainHead, ElectionCa, GENESIS_HASH};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sql::SqlExt as _;

use crate::error::{CenterError, Result};
use schema::*;

/// Where stations reach the center when `center init` is given no `--advertise`.
pub const DEFAULT_ADVERTISE: &str = "127.0.0.1:7443";
/// The database file inside the data folder.
pub const DB_FILE: &str = "center.db";
/// The data folder when `--data` is not given.
pub const DEFAULT_DATA_DIR: &str = "center-data";
/// How long a connection waits for another process's write transaction.
pub const BUSY_TIMEOUT_MS: u64 = 30_000;
/// Unix permissions of the database file (it holds the CA and server keys).
pub const DB_FILE_MODE: u32 = 0o600;
/// Unix permissions of the data folder.
pub const DATA_DIR_MODE: u32 = 0o700;

/// The database file of the data folder `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(())
}

/// Opens the existing store of `dir` (never creates one).
pub(crate) fn open_connection(dir: &Path) -> Result<Connection> {
    let path = db_path(dir);
    if !path.is_file() {
        return Err(CenterError::NoStore {
            dir: dir.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    let version: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [META_SCHEMA_VERSION],
            |r| r.get(0),
        )
        .optional()?;
    let version = version.and_then(|v| String::from_utf8(v).ok());
    if version.as_deref() != Some(SCHEMA_VERSION.to_string().as_str()) {
        return Err(CenterError::Corrupt {
            detail: format!(
                "{}: schema version {:?}, this center reads version {SCHEMA_VERSION}",
                path.display(),
                version
            ),
        });
    }
    Ok(conn)
}

/// What `center init` puts into a new store.
pub struct InitSetup<'a> {
    /// The definition file's exact text.
    pub election_toml: &'a str,
    /// The loaded definition.
    pub definition: &'a ElectionDefinition,
    /// The new election CA.
    pub ca: &'a ElectionCa,
    /// The server certificate (PEM).
    pub server_cert_pem: &'a str,
    /// The server key (PEM).
    pub server_key_pem: &'a str,
    /// Advertised `HOST:PORT` addresses, first one for bundles.
    pub advertise: &'a [String],
    /// Where the CA key was written instead of the store (`center init --ca-dir`);
    /// `None` keeps it in the store.
    pub ca_dir: Option<&'a Path>,
}

/// The center's configuration as stored at `init`. `Debug` hides the keys.
#[derive(Clone)]
pub struct CenterMeta {
    /// The election id.
    pub election_id: String,
    /// The definition file's exact text.
    pub election_toml: String,
    /// Its SHA-256.
    pub definition_sha256: [u8; 32],
    /// CA certificate (PEM).
    pub ca_cert_pem: String,
    /// CA key (PEM); `None` when it is kept off this machine (`init --ca-dir`).
    pub ca_key_pem: Option<String>,
    /// Where `init --ca-dir` wrote the CA key (a hint for `enroll`).
    pub ca_dir: Option<PathBuf>,
    /// Server certificate (PEM).
    pub server_cert_pem: String,
    /// Server key (PEM).
    pub server_key_pem: String,
    /// Advertised addresses.
    pub advertise: Vec<String>,
    /// The transparency log's signer key text (secret).
    pub log_signer_key: String,
    /// The transparency log's verifier key text (public).
    pub log_verifier_key: String,
}

impl fmt::Debug for CenterMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CenterMeta")
            .field("election_id", &self.election_id)
            .field("definition_sha256", &hex::encode(self.definition_sha256))
            .field("advertise", &self.advertise)
            .field("ca_key_pem", &"<redacted>")
            .field("server_key_pem", &"<redacted>")
            .field("log_verifier_key", &self.log_verifier_key)
            .field("log_signer_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CenterMeta {
    /// Every advertised address, in `--advertise` order: what enrollment bundles
    /// list, for stations to fail over along.
    pub fn center_addresses(&self) -> Vec<String> {
        if self.advertise.is_empty() {
            vec![DEFAULT_ADVERTISE.to_owned()]
        } else {
            self.advertise.clone()
        }
    }

    /// Loads the election definition.
    pub fn definition(&self) -> Result<ElectionDefinition> {
        load("stored election definition", &self.election_toml).map_err(|errors| {
            CenterError::Corrupt {
                detail: format!("the stored election definition does not load: {errors}"),
            }
        })
    }

    /// The election CA with its private key: from `ca_dir` if given, else from the
    /// store, else from the folder `init --ca-dir` named. Only `enroll` needs it;
    /// `serve` never calls this.
    pub fn ca(&self, ca_dir: Option<&Path>) -> Result<ElectionCa> {
        let dir = ca_dir.or(if self.ca_key_pem.is_some() {
            None
        } else {
            self.ca_dir.as_deref()
        });
        let key_pem = match (dir, &self.ca_key_pem) {
            (Some(dir), _) => {
                let path = dir.join(CA_KEY_FILE);
                std::fs::read_to_string(&path).map_err(|source| CenterError::CaKey {
                    path: path.clone(),
                    detail: source.to_string(),
                })?
            }
            (None, Some(pem)) => pem.clone(),
            (None, None) => {
                return Err(CenterError::CaKey {
                    path: PathBuf::from(CA_KEY_FILE),
                    detail: "the CA key is kept off this machine (center init --ca-dir); pass --ca-dir DIR".into(),
                });
            }
        };
        ElectionCa::from_pem(&self.ca_cert_pem, &key_pem).map_err(|e| CenterError::CaKey {
            path: dir.map_or_else(|| db_path(Path::new(".")), |d| d.join(CA_KEY_FILE)),
            detail: format!("not this election's CA key: {e}"),
        })
    }
}

/// The CA key's file name inside `--ca-dir` (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key.pem";
/// The CA certificate's file name inside `--ca-dir` (beside the key, for reference).
pub const CA_CERT_FILE: &str = "ca.cert.pem";

/// The standing alert kinds: an operator's decision about a station.
pub const STANDING_KINDS: [&str; 3] = ["REVOKED", "REPLACED", "RELEASED"];

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRow {
    /// Increasing id.
    pub id: i64,
    /// The station.
    pub station: String,
    /// `FORK`, `BAD_SIGNATURE`, … or `REVOKED` for an operator's revocation.
    pub kind: String,
    /// The batch's sequence, 0 if none.
    pub sequence: u64,
    /// In words.
    pub detail: String,
    /// When (Unix ms).
    pub unix_ms: u64,
}

/// One station as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationRow {
    /// Station id.
    pub station: String,
    /// Has an enrolled key.
    pub enrolled: bool,
    /// Revoked by an operator.
    pub revoked: bool,
    /// Quarantined after a fork.
    pub quarantined: bool,
    /// Its key was retired after a fork (`center release`) and no replacement is
    /// enrolled yet: every device of it is refused until one is.
    pub key_retired: bool,
    /// Last batch applied.
    pub head_sequence: u64,
    /// Its chain hash (hex).
    pub head_hash: String,
    /// Last contact (Unix ms, 0 = never).
    pub last_seen_unix_ms: u64,
    /// The station's own head from its last hello or heartbeat.
    pub local_head_sequence: u64,
    /// Sealed batches the station reported as not acknowledged.
    pub sealed_unacknowledged: u64,
    /// A sync connection is open (as last recorded).
    pub connected: bool,
}

/// An enrolled certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The station.
    pub station: String,
    /// Its number among the station's enrollments.
    pub key_no: u32,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// The Ed25519 public key (32 bytes).
    pub public_key: [u8; 32],
    /// The newest key (verifies new batches unless retired).
    pub current: bool,
    /// When enrolled (Unix ms).
    pub enrolled_unix_ms: u64,
    /// Why it was retired (`center release` after a fork it signed), if it was.
    pub retired: Option<String>,
}

impl KeyRow {
    /// Accepted on connections and for new batches: current and not retired.
    pub fn usable(&self) -> bool {
        self.current && self.retired.is_none()
    }
}

/// Signed evidence of a fork, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkEvidence {
    /// The station.
    pub station: String,
    /// The sequence both batches claim.
    pub sequence: u64,
    /// The batch the center holds (accepted before).
    pub stored: EvidenceBatch,
    /// The other, validly signed batch.
    pub other: EvidenceBatch,
    /// When the fork was found (Unix ms).
    pub unix_ms: u64,
}

/// One signed batch of a fork's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceBatch {
    /// Its chain hash.
    pub hash: [u8; 32],
    /// `SignedBatch.batch`.
    pub batch: Vec<u8>,
    /// `SignedBatch.signature`.
    pub signature: Vec<u8>,
    /// The station key that signed it.
    pub key_no: u32,
}

/// What [`Store::release`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    /// The key that signed the fork and is now retired (`None`: the station was
    /// replaced since, its current key did not fork and stays usable).
    pub retired_key_no: Option<u32>,
}

/// One certificate to record as a station's current key.
#[derive(Debug, Clone)]
pub struct EnrollRecord {
    /// The station.
    pub station: String,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
}

/// A station's running tally of one contest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationContestTally {
    /// The station.
    pub station: String,
    /// The contest.
    pub contest: String,
    /// Computed from its accepted ballots (names and candidates at 0 left out).
    pub computed: TallySheet,
    /// The station closed the contest.
    pub closed: bool,
    /// The station's own tally sheet from its close.
    pub sheet: Option<TallySheet>,
}

/// One stored batch, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// The station.
    pub station: String,
    /// Its sequence.
    pub sequence: u64,
    /// Chain hash as computed at ingest.
    pub hash: [u8; 32],
    /// `SignedBatch.batch`.
    pub batch: Vec<u8>,
    /// `SignedBatch.signature`.
    pub signature: Vec<u8>,
    /// The station key that verified it.
    pub key_no: u32,
}

/// `station`'s head sequence, inside a transaction.
fn head_sequence(sql: &dyn sql::Sql, station: &str) -> Result<u64> {
    let head = sql.one(
        "SELECT head_sequence FROM stations WHERE station = ?1",
        sql::sql_params![station],
        |r| r.int(0),
    )?;
    Ok(to_u64(head))
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn hash32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| CenterError::Corrupt {
        detail: format!("{what} is {} bytes, expected 32", bytes.len()),
    })
}

/// Where a center's store is: a data folder holding a SQLite file (the embedded
/// default, `--data DIR`) or a PostgreSQL database (`--store postgres://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `center.db` in this folder.
    Folder(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl StoreLocation {
    /// A `--store` value: a `postgres://` or `postgresql://` URL.
    pub fn parse_url(url: &str) -> Result<StoreLocation> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(url.to_owned()))
        } else {
            Err(CenterError::Usage(format!(
                "--store {}: not a postgres:// URL (a SQLite store is a folder: --data DIR)",
                pollsync_proto::limits::escape_text(url, 80)
            )))
        }
    }

    /// How to name it to a person: the folder, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Folder(dir) => db_path(dir).display().to_string(),
            StoreLocation::Postgres(url) => without_password(url),
        }
    }
}

impl From<&Path> for StoreLocation {
    fn from(dir: &Path) -> Self {
        StoreLocation::Folder(dir.to_path_buf())
    }
}

impl From<&PathBuf> for StoreLocation {
    fn from(dir: &PathBuf) -> Self {
        StoreLocation::Folder(dir.clone())
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(dir: PathBuf) -> Self {
        StoreLocation::Folder(dir)
    }
}

impl From<&StoreLocation> for StoreLocation {
    fn from(location: &StoreLocation) -> Self {
        location.clone()
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:…@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:…@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The connection of a store, on its engine.
enum Engine {
    Sqlite(Connection),
    Postgres(Box<postgres::PgConn>),
}

impl Engine {
    fn sql(&self) -> &dyn sql::Sql {
        match self {
            Engine::Sqlite(c) => c,
            Engine::Postgres(c) => &**c,
        }
    }

    fn ops(&self) -> &dyn IngestOps {
        match self {
            Engine::Sqlite(c) => c,
            Engine::Postgres(c) => &**c,
        }
    }

    fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Engine::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Engine::Postgres(c) => c.batch(sql),
        }
    }

    /// Opens a transaction: a write one takes the store's one write lock (SQLite's
    /// `BEGIN IMMEDIATE`, PostgreSQL's row lock every writer takes); a read one
    /// sees one snapshot.
    fn begin(&self, write: bool) -> Result<Txn<'_>> {
        match (self, write) {
            (Engine::Sqlite(c), true) => c.execute_batch("BEGIN IMMEDIATE")?,
            (Engine::Sqlite(c), false) => c.execute_batch("BEGIN")?,
            (Engine::Postgres(c), write) => c.begin(write)?,
        }
        Ok(Txn {
            engine: self,
            open: true,
        })
    }

    /// The transaction that creates the schema: a write one, but on PostgreSQL
    /// without the write lock, whose row does not exist yet (a second `init`
    /// racing this one fails on its first `CREATE TABLE` and leaves nothing).
    fn begin_schema(&self) -> Result<Txn<'_>> {
        match self {
            Engine::Sqlite(_) => return self.begin(true),
            Engine::Postgres(c) => c.batch("BEGIN ISOLATION LEVEL READ COMMITTED")?,
        }
        Ok(Txn {
            engine: self,
            open: true,
        })
    }
}

/// An open transaction of a [`Store`]; rolled back if dropped uncommitted.
struct Txn<'a> {
    engine: &'a Engine,
    open: bool,
}

impl Txn<'_> {
    fn commit(mut self) -> Result<()> {
        self.open = false;
        self.engine.batch("COMMIT")
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.engine.batch("ROLLBACK");
        }
    }
}

/// The center's store, on either engine.
pub struct Store {
    engine: Engine,
    location: StoreLocation,
}

impl Store {
    /// Creates a new store in `dir` (folder made 0700, file 0600). Refuses if a
    /// store is already there; leaves nothing behind if it fails.
    pub fn create(dir: &Path, setup: &InitSetup<'_>) -> Result<Store> {
        let path = db_path(dir);
        if path.exists() {
            return Err(Store::exists_error(dir));
        }
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| CenterError::Io { path: p, source }
        };
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(DATA_DIR_MODE)
                .create(dir)
                .map_err(io(dir))?;
            // Whatever the umask did.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DATA_DIR_MODE))
                .map_err(io(dir))?;
        }
        // Made 0600 before SQLite opens it; the -wal and -shm files take its mode.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(DB_FILE_MODE)
            .open(&path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => CenterError::StoreExists {
                    path: path.clone(),
                    election: "?".to_owned(),
                },
                _ => CenterError::Io {
                    path: path.clone(),
                    source,
                },
            })?;
        let result = Connection::open_with_flags(
            db_path(dir),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(CenterError::from)
        .and_then(|conn| {
            configure(&conn)?;
            Store::fill_new(
                Engine::Sqlite(conn),
                StoreLocation::Folder(dir.to_path_buf()),
                setup,
            )
        });
        if result.is_err() {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
        result
    }

    /// The refusal for a folder that holds a store already (naming its election).
    pub fn exists_error(dir: &Path) -> CenterError {
        let election = Store::open(dir)
            .and_then(|s| s.meta())
            .map(|m| m.election_id)
            .unwrap_or_else(|_| "?".to_owned());
        CenterError::StoreExists {
            path: db_path(dir),
            election,
        }
    }

    /// Creates a new store at `location` (see [`Store::create`] for a folder). A
    /// PostgreSQL database must exist and hold no pollsync store yet.
    pub fn create_at(location: &StoreLocation, setup: &InitSetup<'_>) -> Result<Store> {
        match location {
            StoreLocation::Folder(dir) => Store::create(dir, setup),
            StoreLocation::Postgres(url) => {
                let conn = postgres::PgConn::connect(url)?;
                let present = conn.one(
                    "SELECT CAST(count(*) AS BIGINT) FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_name = ?1",
                    sql::sql_params!["meta"],
                    |r| r.int(0),
                )?;
                if present > 0 {
                    let election = Store::open_at(location)
                        .and_then(|s| s.meta())
                        .map(|m| m.election_id)
                        .unwrap_or_else(|_| "?".to_owned());
                    return Err(CenterError::StoreExistsAt {
                        store: location.describe(),
                        election,
                    });
                }
                Store::fill_new(Engine::Postgres(Box::new(conn)), location.clone(), setup)
            }
        }
    }

    fn fill_new(engine: Engine, location: StoreLocation, setup: &InitSetup<'_>) -> Result<Store> {
        let digest = pollsync_proto::definition_sha256(setup.election_toml.as_bytes());
        let advertise = serde_json::to_vec(setup.advertise).map_err(|e| CenterError::Corrupt {
            detail: e.to_string(),
        })?;
        let election = &setup.definition.election;
        let log_key = LogKey::generate(&tlog::origin(&election.id, election.mode.as_str()))
            .map_err(|e| CenterError::Corrupt {
                detail: format!("cannot make the log key: {e}"),
            })?;
        let dialect = match engine {
            Engine::Sqlite(_) => sql::Dialect::Sqlite,
            Engine::Postgres(_) => sql::Dialect::Postgres,
        };
        {
            let tx = engine.begin_schema()?;
            engine.batch(&schema::schema(dialect))?;
            let sql = engine.sql();
            let version = SCHEMA_VERSION.to_string();
            let created = now_unix_ms().to_string();
            let ca_dir = setup.ca_dir.map(|d| d.to_string_lossy().into_owned());
            let ca_row: (&str, &[u8]) = match &ca_dir {
                Some(dir) => (META_CA_DIR, dir.as_bytes()),
                None => (META_CA_KEY_PEM, setup.ca.key_pem().as_bytes()),
            };
            let rows: [(&str, &[u8]); 12] = [
                (META_SCHEMA_VERSION, version.as_bytes()),
                (META_ELECTION_ID, setup.definition.election.id.as_bytes()),
                (META_ELECTION_TOML, setup.election_toml.as_bytes()),
                (META_DEFINITION_SHA256, &digest),
                (META_CA_CERT_PEM, setup.ca.cert_pem().as_bytes()),
                (META_SERVER_CERT_PEM, setup.server_cert_pem.as_bytes()),
                (META_SERVER_KEY_PEM, setup.server_key_pem.as_bytes()),
                (META_ADVERTISE, &advertise),
                (META_CREATED_UNIX_MS, created.as_bytes()),
                (META_LOG_SIGNER_KEY, log_key.signer_text().as_bytes()),
                (META_LOG_VERIFIER_KEY, log_key.verifier_text().as_bytes()),
                ca_row,
            ];
            for (key, value) in rows {
                sql.exec(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    sql::sql_params![key, value],
                )?;
            }
            for s in &setup.definition.stations {
                sql.exec(
                    "INSERT INTO stations (station, head_hash) VALUES (?1, ?2)",
                    sql::sql_params![&s.id, &GENESIS_HASH],
                )?;
            }
            tx.commit()?;
        }
        Ok(Store { engine, location })
    }

    /// Opens the store of `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        Ok(Store {
            engine: Engine::Sqlite(open_connection(dir)?),
            location: StoreLocation::Folder(dir.to_path_buf()),
        })
    }

    /// Opens the store at `location` (never creates one).
    pub fn open_at(location: &StoreLocation) -> Result<Store> {
        match location {
            StoreLocation::Folder(dir) => Store::open(dir),
            StoreLocation::Postgres(url) => {
                let conn = postgres::PgConn::connect(url)?;
                let version = records::meta_value(&conn, META_SCHEMA_VERSION)
                    .ok()
                    .flatten()
                    .and_then(|v| String::from_utf8(v).ok());
                if version.as_deref() != Some(SCHEMA_VERSION.to_string().as_str()) {
                    return Err(CenterError::Corrupt {
                        detail: format!(
                            "{}: no pollsync store of schema version {SCHEMA_VERSION} there (found {:?}; run center init --store first)",
                            location.describe(),
                            version
                        ),
                    });
                }
                Ok(Store {
                    engine: Engine::Postgres(Box::new(conn)),
                    location: location.clone(),
                })
            }
        }
    }

    /// The SQLite connection, for the ingest writer that takes a folder's store
    /// over (`None` on PostgreSQL: the writer connects on its own).
    pub(crate) fn into_connection(self) -> Option<Connection> {
        match self.engine {
            Engine::Sqlite(c) => Some(c),
            Engine::Postgres(_) => None,
        }
    }

    /// Where the store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// Records certificates as the stations' current keys (older keys stay, no
    /// longer current, refused on connections), in one transaction. Each station's
    /// head is read inside that transaction, so no batch of an old key can be
    /// applied between the head a replacement bundle carries and the switch of keys;
    /// `finish` gets those heads (to write the bundles) before the commit, and an
    /// error from it leaves nothing enrolled. A station that had a key before gets a
    /// REPLACED alert with `replace_reason`.
    pub fn enroll(
        &mut self,
        records: &[EnrollRecord],
        replace_reason: &str,
        finish: &mut dyn FnMut(&HashMap<String, ChainHead>) -> Result<()>,
    ) -> Result<()> {
        let now = now_unix_ms();
        let tx = self.engine.begin(true)?;
        let sql = self.engine.sql();
        let mut heads = HashMap::new();
        for r in records {
            let head = sql.one(
                "SELECT head_sequence, head_hash FROM stations WHERE station = ?1",
                sql::sql_params![&r.station],
                |row| {
                    Ok(ChainHead {
                        sequence: to_u64(row.int(0)?),
                        hash: hash32(&row.blob(1)?, "head_hash")?,
                    })
                },
            )?;
            let next = sql.one(
                "SELECT CAST(coalesce(max(key_no), 0) + 1 AS BIGINT) FROM station_keys WHERE station = ?1",
                sql::sql_params![&r.station],
                |row| row.int(0),
            )?;
            sql.exec(
                "UPDATE station_keys SET current = 0 WHERE station = ?1",
                sql::sql_params![&r.station],
            )?;
            sql.exec(
                "INSERT INTO station_keys (station, key_no, cert_der, public_key, current, enrolled_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                sql::sql_params![&r.station, next, &r.cert_der, &r.public_key, to_i64(now)],
            )?;
            if next > 1 {
                log::append_standing(
                    self.engine.ops(),
                    &StandingRecord {
                        station: r.station.clone(),
                        change: "REPLACED".to_owned(),
                        head_sequence: head.sequence,
                        new_cert_sha256: hex::encode(Sha256::digest(&r.cert_der)),
                        unix_ms: now,
                        reason: replace_reason.to_owned(),
                    },
                )?;
                apply::insert_alert(
                    sql,
                    &r.station,
                    "REPLACED",
                    head.sequence,
                    &format!(
                        "device replaced (center enroll --replace): key {next} is now the station's only accepted key, key {} and older are refused; the new device continues the chain after batch {}. Reason: {replace_reason}",
                        next - 1,
                        head.sequence
                    ),
                    now,
                )?;
            }
            heads.insert(r.station.clone(), head);
        }
        apply::bump_version(sql)?;
        finish(&heads)?;
        tx.commit()
    }

    /// Runs `read` on one consistent snapshot of the store (a read transaction):
    /// what a live center commits meanwhile is not seen, so reads of several
    /// tables agree with each other (`center audit` on a serving center).
    pub fn snapshot<T>(&self, read: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let tx = self.engine.begin(false)?;
        let value = read(self)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `read` on one consistent snapshot of the store, after signing, in the
    /// same write transaction, a checkpoint that covers the log as it stands; other
    /// writers wait until it ends. (`center export-evidence`.)
    pub fn snapshot_signed<T>(
        &mut self,
        key: &LogKey,
        read: impl FnOnce(&dyn Records) -> Result<T>,
    ) -> Result<T> {
        let tx = self.engine.begin(true)?;
        log::checkpoint(self.engine.ops(), key)?;
        let value = read(self)?;
        tx.commit()?;
        Ok(value)
    }

    /// Revokes `station` (every key it has or will have) and stores a REVOKED alert
    /// with `reason`. Returns false if it was revoked already (nothing changes then).
    pub fn revoke(&mut self, station: &str, reason: &str) -> Result<bool> {
        let tx = self.engine.begin(true)?;
        let sql = self.engine.sql();
        let changed = sql.exec(
            "UPDATE stations SET revoked = 1 WHERE station = ?1 AND revoked = 0",
            sql::sql_params![station],
        )?;
        if changed > 0 {
            let now = now_unix_ms();
            log::append_standing(
                self.engine.ops(),
                &StandingRecord {
                    station: station.to_owned(),
                    change: "REVOKED".to_owned(),
                    head_sequence: head_sequence(sql, station)?,
                    new_cert_sha256: String::new(),
                    unix_ms: now,
                    reason: reason.to_owned(),
                },
            )?;
            apply::insert_alert(
                sql,
                station,
                "REVOKED",
                0,
                &format!(
                    "revoked by the center's operator (center revoke): its hellos are refused and its batches rejected from now on. Reason: {reason}"
                ),
                now,
            )?;
            apply::bump_version(sql)?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Lifts `station`'s quarantine after the operators' investigation and stores a
    /// RELEASED alert with `reason`. The center's chain stays as it is. The key that
    /// signed the fork's other batch, if it is still the current one, is retired: the
    /// device that forked (and any copy of it) stays refused until it is replaced
    /// (`center enroll --replace`). Refuses a station that is not quarantined.
    pub fn release(&mut self, station: &str, reason: &str) -> Result<Released> {
        let tx = self.engine.begin(true)?;
        let sql = self.engine.sql();
        let quarantined = sql.one(
            "SELECT quarantined FROM stations WHERE station = ?1",
            sql::sql_params![station],
            |r| r.flag(0),
        )?;
        if !quarantined {
            return Err(CenterError::NotQuarantined {
                station: station.to_owned(),
            });
        }
        let forked_keys: Vec<i64> = sql.all(
            "SELECT DISTINCT other_key_no FROM fork_evidence WHERE station = ?1",
            sql::sql_params![station],
            |r| r.int(0),
        )?;
        let current: Option<i64> = sql.first(
            "SELECT key_no FROM station_keys WHERE station = ?1 AND current = 1 AND retired IS NULL",
            sql::sql_params![station],
            |r| r.int(0),
        )?;
        // No evidence row (a store from before evidence was kept): the current key
        // is the one that forked.
        let retire = current.filter(|k| forked_keys.is_empty() || forked_keys.contains(k));
        if let Some(key_no) = retire {
            sql.exec(
                "UPDATE station_keys SET retired = ?3 WHERE station = ?1 AND key_no = ?2",
                sql::sql_params![station, key_no, reason],
            )?;
        }
        sql.exec(
            "UPDATE stations SET quarantined = 0 WHERE station = ?1",
            sql::sql_params![station],
        )?;
        let after = match retire {
            Some(k) => format!(
                "key {k}, which signed the forked batch, is retired: the device that forked stays refused; replace it (center enroll {station} --replace) to sync again"
            ),
            None => "its current key did not sign the fork and stays accepted".to_owned(),
        };
        let now = now_unix_ms();
        log::append_standing(
            self.engine.ops(),
            &StandingRecord {
                station: station.to_owned(),
                change: "RELEASED".to_owned(),
                head_sequence: head_sequence(sql, station)?,
                new_cert_sha256: String::new(),
                unix_ms: now,
                reason: reason.to_owned(),
            },
        )?;
        apply::insert_alert(
            sql,
            station,
            "RELEASED",
            0,
            &format!(
                "quarantine lifted by the center's operator (center release); the center's chain stays as it is; {after}. Reason: {reason}"
            ),
            now,
        )?;
        apply::bump_version(sql)?;
        tx.commit()?;
        Ok(Released {
            retired_key_no: retire.and_then(|k| u32::try_from(k).ok()),
        })
    }
}

impl records::AsSql for Store {
    fn sql(&self) -> &dyn sql::Sql {
        self.engine.sql()
    }
}
