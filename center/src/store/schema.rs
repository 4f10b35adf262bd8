//! The center store's schema (`center-data/center.db` on SQLite, or a PostgreSQL
//! database), one text for both engines.
//!
//! Built for group commit and for the P1 target (≈ 780k ballots from ≈ 600
//! stations applied in about a second): there is **no row per ballot** and no
//! B-tree index on a random key anywhere on the ingest path. A batch's ballots
//! live only inside its raw signed bytes (`batches.batch`, which `center audit`
//! re-verifies and re-tallies), while the running tallies per (station, contest),
//! per (station, contest, candidate) and per (station, contest, write-in name) are
//! updated by a handful of upserts in the same transaction that stores the batch.
//! Keys are (station, …) texts: a few hundred rows per commit, never random.

use super::sql::Dialect;

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

/// The tables, in words both engines read: `{int}` is `INTEGER` (SQLite) or
/// `BIGINT` (PostgreSQL), `{blob}` is `BLOB` or `BYTEA`, `{key}` an integer
/// primary key (SQLite's rowid), `{id}` one the engine numbers, and `{rowid}`
/// SQLite's `WITHOUT ROWID` for tables keyed by text. Every figure is an integer;
/// hashes and keys are byte strings. [`schema`] renders it for an engine.
const SCHEMA_TEMPLATE: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value {blob} NOT NULL){rowid};

-- One row per station of the definition (made at init). head_* is the last batch
-- durably applied: (0, 32 zero bytes) before the first. local_head_sequence,
-- sealed_unacknowledged, last_seen and connected come from hellos and heartbeats
-- (operators' view, written in batches).
CREATE TABLE stations (
    station TEXT PRIMARY KEY,
    revoked {int} NOT NULL DEFAULT 0,
    quarantined {int} NOT NULL DEFAULT 0,
    head_sequence {int} NOT NULL DEFAULT 0,
    head_hash {blob} NOT NULL,
    last_seen_unix_ms {int} NOT NULL DEFAULT 0,
    local_head_sequence {int} NOT NULL DEFAULT 0,
    sealed_unacknowledged {int} NOT NULL DEFAULT 0,
    connected {int} NOT NULL DEFAULT 0
){rowid};

-- Every certificate ever enrolled for a station (key_no 1, 2, ... per station).
-- current = 1 marks the newest; it verifies new batches and is the only key
-- accepted on a connection, unless retired (the reason, set by `center release`
-- after a fork signed with it: the device that forked stays refused until it is
-- replaced). Older keys stay for the audit of the batches they signed
-- (batches.key_no) and are refused on connections (STALE_KEY).
CREATE TABLE station_keys (
    station TEXT NOT NULL,
    key_no {int} NOT NULL,
    cert_der {blob} NOT NULL,
    public_key {blob} NOT NULL,
    current {int} NOT NULL,
    enrolled_unix_ms {int} NOT NULL,
    retired TEXT,
    PRIMARY KEY (station, key_no)
){rowid};

-- Signed evidence of a fork: the batch the center holds at (station, sequence)
-- and another batch with the same sequence whose signature verified under the
-- station's key then current, both exactly as received, with the keys that
-- signed them. Kept for audit and the public record.
CREATE TABLE fork_evidence (
    station TEXT NOT NULL,
    sequence {int} NOT NULL,
    stored_hash {blob} NOT NULL,
    stored_batch {blob} NOT NULL,
    stored_signature {blob} NOT NULL,
    stored_key_no {int} NOT NULL,
    other_hash {blob} NOT NULL,
    other_batch {blob} NOT NULL,
    other_signature {blob} NOT NULL,
    other_key_no {int} NOT NULL,
    unix_ms {int} NOT NULL,
    PRIMARY KEY (station, sequence, other_hash)
){rowid};

-- Every accepted batch: the exact signed bytes as received (batch = the bytes of
-- SignedBatch.batch, signature = SignedBatch.signature), its chain hash, the
-- key that verified it and its leaf in the transparency log. No time is kept
-- (secret ballot, G6).
CREATE TABLE batches (
    station TEXT NOT NULL,
    sequence {int} NOT NULL,
    hash {blob} NOT NULL,
    batch {blob} NOT NULL,
    signature {blob} NOT NULL,
    key_no {int} NOT NULL,
    events {int} NOT NULL,
    ballots {int} NOT NULL,
    leaf {int} NOT NULL,
    PRIMARY KEY (station, sequence)
);

-- Running tallies computed from the accepted batches' ballots, per station and
-- contest; closed = 1 once the station's close arrived, with its tally sheet
-- (JSON, the shape of SPEC section 7).
CREATE TABLE tally_contest (
    station TEXT NOT NULL,
    contest TEXT NOT NULL,
    issued {int} NOT NULL DEFAULT 0,
    returned {int} NOT NULL DEFAULT 0,
    valid {int} NOT NULL DEFAULT 0,
    void {int} NOT NULL DEFAULT 0,
    closed {int} NOT NULL DEFAULT 0,
    sheet TEXT,
    PRIMARY KEY (station, contest)
){rowid};

-- FOR and AGAINST per formal candidate (valid ballots only).
CREATE TABLE tally_candidate (
    station TEXT NOT NULL,
    contest TEXT NOT NULL,
    candidate TEXT NOT NULL,
    for_votes {int} NOT NULL DEFAULT 0,
    against {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (station, contest, candidate)
){rowid};

-- FOR per write-in name (valid ballots only); a name back at 0 is deleted.
CREATE TABLE tally_write_in (
    station TEXT NOT NULL,
    contest TEXT NOT NULL,
    name TEXT NOT NULL,
    for_votes {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (station, contest, name)
){rowid};

-- Every rejection but GAP, every refused stale key (rate-limited), every change of
-- a station's standing: station, kind (the reject reason's name, e.g. FORK or
-- STALE_KEY; REVOKED, REPLACED, RELEASED for an operator's decision, whose detail
-- carries the reason given), the batch sequence (0 if none), the detail, when
-- (Unix ms).
CREATE TABLE alerts (
    id {id},
    station TEXT NOT NULL,
    kind TEXT NOT NULL,
    sequence {int} NOT NULL,
    detail TEXT NOT NULL,
    unix_ms {int} NOT NULL
);

-- The transparency log (SPEC section 10, docs/PROTOCOL.md section 9): an
-- append-only Merkle tree in the C2SP tlog-tiles layout. log_leaves holds each
-- leaf's record (leaf = its index, from 0), log_hashes every stored hash of the
-- tree by its stored-hash index (Go sumdb/tlog numbering): tiles are read from
-- it. A leaf is appended in the same transaction as what it records.
CREATE TABLE log_leaves (leaf {key}, entry {blob} NOT NULL);
CREATE TABLE log_hashes (idx {key}, hash {blob} NOT NULL);

-- Every signed checkpoint published (a C2SP signed note), by tree size.
CREATE TABLE log_checkpoints (size {key}, note {blob} NOT NULL);

-- The text of each standing change (revoke, replace, release) whose SHA-256 is
-- the hash of its standing leaf.
CREATE TABLE standing_records (
    leaf {key},
    station TEXT NOT NULL,
    record TEXT NOT NULL
);
";

/// The schema's DDL for `dialect`.
pub fn schema(dialect: Dialect) -> String {
    let words: [(&str, &str); 5] = match dialect {
        Dialect::Sqlite => [
            ("{int}", "INTEGER"),
            ("{blob}", "BLOB"),
            ("{key}", "INTEGER PRIMARY KEY"),
            ("{id}", "INTEGER PRIMARY KEY"),
            ("{rowid}", " WITHOUT ROWID"),
        ],
        Dialect::Postgres => [
            ("{int}", "BIGINT"),
            ("{blob}", "BYTEA"),
            ("{key}", "BIGINT PRIMARY KEY"),
            (
                "{id}",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            ),
            ("{rowid}", ""),
        ],
    };
    let mut ddl = SCHEMA_TEMPLATE.to_owned();
    for (word, engine) in words {
        ddl = ddl.replace(word, engine);
    }
    ddl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_gets_its_own_words_and_no_template_is_left() {
        let sqlite = schema(Dialect::Sqlite);
        let postgres = schema(Dialect::Postgres);
        for ddl in [&sqlite, &postgres] {
            assert!(!ddl.contains('{'), "{ddl}");
        }
        assert!(sqlite.contains("WITHOUT ROWID") && !postgres.contains("WITHOUT ROWID"));
        assert!(postgres.contains("BYTEA") && !postgres.contains("BLOB"));
        assert!(!postgres.contains("INTEGER"));
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&sqlite).unwrap();
    }
}
