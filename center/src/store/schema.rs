//! The center store's SQLite schema (`center-data/center.db`).
//!
//! Built for group commit and for the P1 target (≈ 780k ballots from ≈ 600
//! stations applied in about a second): there is **no row per ballot** and no
//! B-tree index on a random key anywhere on the ingest path. A batch's ballots
//! live only inside its raw signed bytes (`batches.batch`, which `center audit`
//! re-verifies and re-tallies), while the running tallies per (station, contest),
//! per (station, contest, candidate) and per (station, contest, write-in name) are
//! updated by a handful of upserts in the same transaction that stores the batch.
//! Keys are (station, …) texts: a few hundred rows per commit, never random.

/// Version of this schema, kept in `meta` under [`META_SCHEMA_VERSION`].
pub const SCHEMA_VERSION: u32 = 3;

/// `meta` key: [`SCHEMA_VERSION`] as text.
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// `meta` key: the election definition TOML, byte for byte as given to `init`.
pub const META_ELECTION_TOML: &str = "election_toml";
/// `meta` key: SHA-256 of [`META_ELECTION_TOML`] (32 bytes).
pub const META_DEFINITION_SHA256: &str = "definition_sha256";
/// `meta` key: the election id (text).
pub const META_ELECTION_ID: &str = "election_id";
/// `meta` key: the election CA certificate (PEM).
pub const META_CA_CERT_PEM: &str = "ca_cert_pem";
/// `meta` key: the election CA private key (PKCS#8 PEM). Absent when `center init
/// --ca-dir` kept it off the serving machine.
pub const META_CA_KEY_PEM: &str = "ca_key_pem";
/// `meta` key: the folder `center init --ca-dir` wrote the CA key to (a hint for
/// `center enroll`; absent when the key is in the store).
pub const META_CA_DIR: &str = "ca_dir";
/// `meta` key: the center's server certificate (PEM).
pub const META_SERVER_CERT_PEM: &str = "server_cert_pem";
/// `meta` key: the center's server private key (PKCS#8 PEM).
pub const META_SERVER_KEY_PEM: &str = "server_key_pem";
/// `meta` key: the advertised `HOST:PORT` addresses, a JSON array; the first goes
/// into enrollment bundles.
pub const META_ADVERTISE: &str = "advertise";
/// `meta` key: the transparency log's signer key, a C2SP signed-note key text
/// (`PRIVATE+KEY+…`, secret: it signs the checkpoints).
pub const META_LOG_SIGNER_KEY: &str = "log_signer_key";
/// `meta` key: the transparency log's verifier key text (public: in every bundle
/// and in the evidence).
pub const META_LOG_VERIFIER_KEY: &str = "log_verifier_key";
/// `meta` key: when `center init` ran (Unix ms, text).
pub const META_CREATED_UNIX_MS: &str = "created_unix_ms";

/// The tables. Every figure is an INTEGER; hashes and keys are BLOBs.
pub const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;

-- One row per station of the definition (made at init). head_* is the last batch
-- durably applied: (0, 32 zero bytes) before the first. local_head_sequence,
-- sealed_unacknowledged, last_seen and connected come from hellos and heartbeats
-- (operators' view, written in batches).
CREATE TABLE stations (
    station TEXT PRIMARY KEY,
    revoked INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    head_sequence INTEGER NOT NULL DEFAULT 0,
    head_hash BLOB NOT NULL,
    last_seen_unix_ms INTEGER NOT NULL DEFAULT 0,
    local_head_sequence INTEGER NOT NULL DEFAULT 0,
    sealed_unacknowledged INTEGER NOT NULL DEFAULT 0,
    connected INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Every certificate ever enrolled for a station (key_no 1, 2, ... per station).
-- current = 1 marks the newest; it verifies new batches and is the only key
-- accepted on a connection, unless retired (the reason, set by `center release`
-- after a fork signed with it: the device that forked stays refused until it is
-- replaced). Older keys stay for the audit of the batches they signed
-- (batches.key_no) and are refused on connections (STALE_KEY).
CREATE TABLE station_keys (
    station TEXT NOT NULL,
    key_no INTEGER NOT NULL,
    cert_der BLOB NOT NULL,
    public_key BLOB NOT NULL,
    current INTEGER NOT NULL,
    enrolled_unix_ms INTEGER NOT NULL,
    retired TEXT,
    PRIMARY KEY (station, key_no)
) WITHOUT ROWID;

-- Signed evidence of a fork: the batch the center holds at (station, sequence)
-- and another batch with the same sequence whose signature verified under the
-- station's key then current, both exactly as received, with the keys that
-- signed them. Kept for audit and the public record.
CREATE TABLE fork_evidence (
    station TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    stored_hash BLOB NOT NULL,
    stored_batch BLOB NOT NULL,
    stored_signature BLOB NOT NULL,
    stored_key_no INTEGER NOT NULL,
    other_hash BLOB NOT NULL,
    other_batch BLOB NOT NULL,
    other_signature BLOB NOT NULL,
    other_key_no INTEGER NOT NULL,
    unix_ms INTEGER NOT NULL,
    PRIMARY KEY (station, sequence, other_hash)
) WITHOUT ROWID;

-- Every accepted batch: the exact signed bytes as received (batch = the bytes of
-- SignedBatch.batch, signature = SignedBatch.signature), its chain hash, the
-- key that verified it and its leaf in the transparency log. No time is kept
-- (secret ballot, G6).
CREATE TABLE batches (
    station TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    hash BLOB NOT NULL,
    batch BLOB NOT NULL,
    signature BLOB NOT NULL,
    key_no INTEGER NOT NULL,
    events INTEGER NOT NULL,
    ballots INTEGER NOT NULL,
    leaf INTEGER NOT NULL,
    PRIMARY KEY (station, sequence)
);

-- Running tallies computed from the accepted batches' ballots, per station and
-- contest; closed = 1 once the station's close arrived, with its tally sheet
-- (JSON, the shape of SPEC section 7).
CREATE TABLE tally_contest (
    station TEXT NOT NULL,
    contest TEXT NOT NULL,
    issued INTEGER NOT NULL DEFAULT 0,
    returned INTEGER NOT NULL DEFAULT 0,
    valid INTEGER NOT NULL DEFAULT 0,
    void INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    sheet TEXT,
    PRIMARY KEY (station, contest)
) WITHOUT ROWID;

-- FOR and AGAINST per formal candidate (valid ballots only).
CREATE TABLE tally_candidate (
    station TEXT NOT NULL,
    contest TEXT NOT NULL,
    candidate TEXT NOT NULL,
    for_votes INTEGER NOT NULL DEFAULT 0,
    against INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (station, contest, candidate)
) WITHOUT ROWID;

-- FOR per write-in name (valid ballots only); a name back at 0 is deleted.
CREATE TABLE tally_write_in (
    station TEXT NOT NULL,
    contest TEXT NOT NULL,
    name TEXT NOT NULL,
    for_votes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (station, contest, name)
) WITHOUT ROWID;

-- Every rejection but GAP, every refused stale key (rate-limited), every change of
-- a station's standing: station, kind (the reject reason's name, e.g. FORK or
-- STALE_KEY; REVOKED, REPLACED, RELEASED for an operator's decision, whose detail
-- carries the reason given), the batch sequence (0 if none), the detail, when
-- (Unix ms).
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    station TEXT NOT NULL,
    kind TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    detail TEXT NOT NULL,
    unix_ms INTEGER NOT NULL
);

-- The transparency log (SPEC section 10, docs/PROTOCOL.md section 9): an
-- append-only Merkle tree in the C2SP tlog-tiles layout. log_leaves holds each
-- leaf's record (leaf = its index, from 0), log_hashes every stored hash of the
-- tree by its stored-hash index (Go sumdb/tlog numbering): tiles are read from
-- it. A leaf is appended in the same transaction as what it records.
CREATE TABLE log_leaves (leaf INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE log_hashes (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL);

-- Every signed checkpoint published (a C2SP signed note), by tree size.
CREATE TABLE log_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);

-- The text of each standing change (revoke, replace, release) whose SHA-256 is
-- the hash of its standing leaf.
CREATE TABLE standing_records (
    leaf INTEGER PRIMARY KEY,
    station TEXT NOT NULL,
    record TEXT NOT NULL
);
";
