//! The center's transparency log (SPEC §10), as both ends and every verifier read
//! it: the leaf records, the C2SP tlog-tiles paths and entry bundles, the C2SP
//! signed-note checkpoints signed by the center's log key, and the proofs
//! (inclusion of a leaf in a checkpoint, consistency between two checkpoints).
//!
//! The tree, its hashes, proofs and tile arithmetic come from `tlog_tiles` (a port
//! of Go's `sumdb/tlog`), the note format from `signed_note`; this module only says
//! what pollsync puts in them. docs/PROTOCOL.md §9 documents every byte.
//!
//! A leaf is one of:
//! - **batch**: an accepted batch (station, sequence, chain hash of its bytes);
//! - **fork**: signed fork evidence (station, sequence, chain hash of the *other*
//!   batch: the accepted one is already a batch leaf);
//! - **standing**: a change of a station's standing (station, the station's head
//!   sequence then, SHA-256 of the [`StandingRecord`] text).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use signed_note::{Note, Signer as _, StandardSigner, StandardVerifier, VerifierList};
/// The tree arithmetic (stored-hash indexes, proofs, tiles), for the center and
/// the verifiers.
pub use tlog_tiles;
pub use tlog_tiles::{Checkpoint, HASH_SIZE, Hash, RecordProof, Tile, TreeProof};

use crate::limits::{MAX_ID_BYTES, MAX_REASON_CHARS};

/// Height of every tile (C2SP tlog-tiles: 256 hashes or entries per full tile).
pub const TILE_HEIGHT: u8 = 8;

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// First bytes of every leaf record (domain separation).
pub const LEAF_DOMAIN: &[u8; 17] = b"pollsync/leaf/v1\0";

/// Length of a leaf record for a station id of `station_bytes` bytes.
pub const fn leaf_len(station_bytes: usize) -> usize {
    LEAF_DOMAIN.len() + 1 + 1 + station_bytes + 8 + HASH_SIZE
}

/// Longest leaf record.
pub const MAX_LEAF_BYTES: usize = leaf_len(MAX_ID_BYTES);

/// Longest checkpoint note the station or a verifier reads.
pub const MAX_CHECKPOINT_BYTES: usize = 4096;

/// First line of a standing record.
pub const STANDING_HEADER: &str = "pollsync/standing/v1";

/// What a leaf records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeafKind {
    /// An accepted batch.
    Batch = 1,
    /// Signed evidence of a fork.
    Fork = 2,
    /// A change of a station's standing (revoked, replaced, released).
    Standing = 3,
}

impl LeafKind {
    /// From its byte.
    pub fn from_byte(byte: u8) -> Option<LeafKind> {
        match byte {
            1 => Some(LeafKind::Batch),
            2 => Some(LeafKind::Fork),
            3 => Some(LeafKind::Standing),
            _ => None,
        }
    }

    /// Its word (in evidence files and messages).
    pub fn word(self) -> &'static str {
        match self {
            LeafKind::Batch => "batch",
            LeafKind::Fork => "fork",
            LeafKind::Standing => "standing",
        }
    }
}

/// One leaf of the log: its record is [`Leaf::to_bytes`], its Merkle leaf hash
/// [`Leaf::leaf_hash`] (SHA-256 of `0x00 ‖ record`, RFC 6962).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// What it records.
    pub kind: LeafKind,
    /// The station (1 to [`MAX_ID_BYTES`] bytes).
    pub station: String,
    /// The batch's sequence (batch, fork) or the station's head then (standing).
    pub sequence: u64,
    /// The batch's chain hash (batch), the other batch's (fork), or the standing
    /// record's SHA-256.
    pub hash: [u8; 32],
}

/// Why bytes are not a leaf record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// Shorter or longer than its station id says, or not the leaf domain.
    #[error("not a pollsync leaf record ({len} bytes)")]
    Malformed {
        /// The record's length.
        len: usize,
    },
    /// An unknown kind byte.
    #[error("unknown leaf kind {0}")]
    Kind(u8),
    /// The station id is empty, too long or not UTF-8.
    #[error("bad station id in a leaf record")]
    Station,
}

impl Leaf {
    /// An accepted batch: `hash` is the chain hash of its bytes.
    pub fn batch(station: &str, sequence: u64, hash: [u8; 32]) -> Leaf {
        Leaf {
            kind: LeafKind::Batch,
            station: station.to_owned(),
            sequence,
            hash,
        }
    }

    /// Fork evidence: `other_hash` is the chain hash of the batch the center did
    /// not accept.
    pub fn fork(station: &str, sequence: u64, other_hash: [u8; 32]) -> Leaf {
        Leaf {
            kind: LeafKind::Fork,
            station: station.to_owned(),
            sequence,
            hash: other_hash,
        }
    }

    /// A standing change.
    pub fn standing(record: &StandingRecord) -> Leaf {
        Leaf {
            kind: LeafKind::Standing,
            station: record.station.clone(),
            sequence: record.head_sequence,
            hash: Sha256::digest(record.to_text().as_bytes()).into(),
        }
    }

    /// The record: `LEAF_DOMAIN ‖ kind (1) ‖ station length (1) ‖ station ‖
    /// sequence (8, big-endian) ‖ hash (32)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let station = self.station.as_bytes();
        assert!(!station.is_empty() && station.len() <= MAX_ID_BYTES);
        let mut out = Vec::with_capacity(leaf_len(station.len()));
        out.extend_from_slice(LEAF_DOMAIN);
        out.push(self.kind as u8);
        out.push(station.len() as u8);
        out.extend_from_slice(station);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.hash);
        debug_assert_eq!(out.len(), leaf_len(station.len()));
        out
    }

    /// Reads a record written by [`Leaf::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Leaf, LeafError> {
        let malformed = LeafError::Malformed { len: bytes.len() };
        let rest = bytes.strip_prefix(LEAF_DOMAIN).ok_or(malformed.clone())?;
        let [kind, station_len, rest @ ..] = rest else {
            return Err(malformed);
        };
        let kind = LeafKind::from_byte(*kind).ok_or(LeafError::Kind(*kind))?;
        let station_len = usize::from(*station_len);
        if station_len == 0 || station_len > MAX_ID_BYTES {
            return Err(LeafError::Station);
        }
        if bytes.len() != leaf_len(station_len) {
            return Err(malformed);
        }
        let (station, rest) = rest.split_at(station_len);
        let station = std::str::from_utf8(station).map_err(|_| LeafError::Station)?;
        let (sequence, hash) = rest.split_at(8);
        Ok(Leaf {
            kind,
            station: station.to_owned(),
            sequence: u64::from_be_bytes(sequence.try_into().map_err(|_| malformed.clone())?),
            hash: hash.try_into().map_err(|_| malformed)?,
        })
    }

    /// The Merkle leaf hash of this record.
    pub fn leaf_hash(&self) -> Hash {
        tlog_tiles::record_hash(&self.to_bytes())
    }
}

/// A change of a station's standing, as published (SPEC G9): the text whose
/// SHA-256 is a standing leaf's hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StandingRecord {
    /// The station.
    pub station: String,
    /// `REVOKED`, `REPLACED` or `RELEASED`.
    pub change: String,
    /// The station's head sequence when it changed.
    pub head_sequence: u64,
    /// SHA-256 (hex) of the new certificate's DER for `REPLACED`, else empty.
    pub new_cert_sha256: String,
    /// When (Unix ms).
    pub unix_ms: u64,
    /// The operator's reason (at most [`MAX_REASON_CHARS`] characters).
    pub reason: String,
}

impl StandingRecord {
    /// The record as text: [`STANDING_HEADER`], then one `name value` line per
    /// field in the order of the struct, the reason as a JSON string (so it is one
    /// line whatever it holds), each line ending in `\n`.
    pub fn to_text(&self) -> String {
        debug_assert!(self.reason.chars().count() <= MAX_REASON_CHARS);
        let reason = serde_json::to_string(&self.reason).unwrap_or_else(|_| "\"\"".to_owned());
        format!(
            "{STANDING_HEADER}\nstation {}\nchange {}\nhead_sequence {}\nnew_cert_sha256 {}\nunix_ms {}\nreason {}\n",
            self.station,
            self.change,
            self.head_sequence,
            self.new_cert_sha256,
            self.unix_ms,
            reason
        )
    }
}

/// The checkpoint origin line of an election's log: `pollsync/<election id>/<mode>`;
/// also the log key's name.
pub fn origin(election_id: &str, mode: &str) -> String {
    format!("pollsync/{election_id}/{mode}")
}

/// Why a log key or checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The verifier key text is malformed.
    #[error("malformed log verifier key")]
    VerifierKey,
    /// The signer key text is malformed.
    #[error("malformed log signing key")]
    SignerKey,
    /// Longer than [`MAX_CHECKPOINT_BYTES`].
    #[error("checkpoint longer than {MAX_CHECKPOINT_BYTES} bytes")]
    TooLong,
    /// Not a signed note, or no valid signature by the log key.
    #[error("checkpoint not signed by the log key: {0}")]
    Signature(String),
    /// The signed text is not a checkpoint.
    #[error("malformed checkpoint text")]
    Text,
    /// Another log's checkpoint.
    #[error("checkpoint of origin '{found}', expected '{expected}'")]
    Origin {
        /// The origin line expected.
        expected: String,
        /// The origin line found (escaped).
        found: String,
    },
}

/// The center's log key, as signed-note key texts.
#[derive(Clone)]
pub struct LogKey {
    signer: StandardSigner,
    signer_text: String,
    verifier_text: String,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("verifier", &self.verifier_text)
            .finish_non_exhaustive()
    }
}

/// Key ID per C2SP signed-note: the first 4 bytes of SHA-256(name ‖ `\n` ‖ key).
fn key_id(name: &str, public: &[u8]) -> u32 {
    signed_note::key_id(name, public)
}

/// The verifier key text (`name+id+base64(0x01 ‖ public key)`) for an Ed25519 key.
pub fn verifier_key_text(name: &str, public: &[u8; 32]) -> String {
    let mut key = vec![1u8];
    key.extend_from_slice(public);
    format!("{name}+{:08x}+{}", key_id(name, &key), BASE64.encode(&key))
}

/// The name of a well-formed Ed25519 verifier key text (`None`: not one).
pub fn verifier_key_name(text: &str) -> Option<String> {
    StandardVerifier::new(text)
        .ok()
        .map(|v| signed_note::Verifier::name(&v).to_owned())
}

impl LogKey {
    /// A new key named `name` (the log's origin).
    pub fn generate(name: &str) -> Result<LogKey, CheckpointError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| CheckpointError::SignerKey)?;
        let key = SigningKey::from_bytes(&seed);
        let mut public = vec![1u8];
        public.extend_from_slice(key.verifying_key().as_bytes());
        let mut private = vec![1u8];
        private.extend_from_slice(&seed);
        let text = format!(
            "PRIVATE+KEY+{name}+{:08x}+{}",
            key_id(name, &public),
            BASE64.encode(&private)
        );
        LogKey::from_signer_text(&text)
    }

    /// From its signer key text (`PRIVATE+KEY+name+id+base64`).
    pub fn from_signer_text(text: &str) -> Result<LogKey, CheckpointError> {
        let signer = StandardSigner::new(text).map_err(|_| CheckpointError::SignerKey)?;
        // PRIVATE+KEY+name+id+base64 (the base64 may hold '+' itself).
        let key = text
            .splitn(5, '+')
            .nth(4)
            .ok_or(CheckpointError::SignerKey)?;
        let private = BASE64.decode(key).map_err(|_| CheckpointError::SignerKey)?;
        let seed: [u8; 32] = private
            .get(1..)
            .and_then(|s| s.try_into().ok())
            .ok_or(CheckpointError::SignerKey)?;
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let verifier_text = verifier_key_text(signer.name(), &public);
        Ok(LogKey {
            signer,
            signer_text: text.to_owned(),
            verifier_text,
        })
    }

    /// The secret signer key text (kept by the center, never published).
    pub fn signer_text(&self) -> &str {
        &self.signer_text
    }

    /// The public verifier key text (in every bundle and the evidence).
    pub fn verifier_text(&self) -> &str {
        &self.verifier_text
    }

    /// The key's name (the log's origin).
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// Signs the checkpoint of a tree of `size` leaves with root `root`: the note
    /// text per C2SP tlog-checkpoint (origin, size, base64 root) and its signature.
    pub fn sign_checkpoint(&self, size: u64, root: &Hash) -> Result<Vec<u8>, CheckpointError> {
        let checkpoint =
            Checkpoint::new(self.name(), size, *root, "").map_err(|_| CheckpointError::Text)?;
        let mut note = Note::new(&checkpoint.to_bytes(), &[]).map_err(|_| CheckpointError::Text)?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        Ok(note.to_bytes())
    }
}

/// A signed note (at most [`MAX_CHECKPOINT_BYTES`]) with a valid signature by the
/// key of `verifier_key`, and that key's name.
fn open_note(note: &[u8], verifier_key: &str) -> Result<(Note, String), CheckpointError> {
    if note.len() > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::TooLong);
    }
    let verifier = StandardVerifier::new(verifier_key).map_err(|_| CheckpointError::VerifierKey)?;
    let name = signed_note::Verifier::name(&verifier).to_owned();
    let note = Note::from_bytes(note).map_err(|e| CheckpointError::Signature(e.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| CheckpointError::Signature(e.to_string()))?;
    Ok((note, name))
}

/// First line of the note that signs an export's results.
pub const RESULTS_NOTE_HEADER: &str = "pollsync results v1";

impl LogKey {
    /// Signs the results of an evidence export: a note whose text is
    /// [`RESULTS_NOTE_HEADER`] then one `<file> <sha256 hex>` line per file.
    pub fn sign_results(&self, files: &[(&str, &[u8])]) -> Result<Vec<u8>, CheckpointError> {
        let mut text = format!("{RESULTS_NOTE_HEADER}\n");
        for (name, bytes) in files {
            text.push_str(&format!("{name} {}\n", hex::encode(Sha256::digest(bytes))));
        }
        let mut note = Note::new(text.as_bytes(), &[]).map_err(|_| CheckpointError::Text)?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        Ok(note.to_bytes())
    }
}

/// Verifies a results note ([`LogKey::sign_results`]) with the log's verifier key
/// text: each file name with the SHA-256 (hex) it names.
pub fn open_results(
    note: &[u8],
    verifier_key: &str,
) -> Result<Vec<(String, String)>, CheckpointError> {
    let (note, _) = open_note(note, verifier_key)?;
    let text = std::str::from_utf8(note.text()).map_err(|_| CheckpointError::Text)?;
    let mut lines = text.lines();
    if lines.next() != Some(RESULTS_NOTE_HEADER) {
        return Err(CheckpointError::Text);
    }
    lines
        .map(|l| {
            l.split_once(' ')
                .map(|(name, hash)| (name.to_owned(), hash.to_owned()))
                .ok_or(CheckpointError::Text)
        })
        .collect()
}

/// Verifies a signed checkpoint against the log's verifier key text and reads it;
/// the origin must be the key's name.
pub fn open_checkpoint(note: &[u8], verifier_key: &str) -> Result<Checkpoint, CheckpointError> {
    let (note, name) = open_note(note, verifier_key)?;
    let checkpoint = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::Text)?;
    if checkpoint.origin() != name {
        return Err(CheckpointError::Origin {
            expected: name,
            found: checkpoint.origin().escape_default().to_string(),
        });
    }
    Ok(checkpoint)
}

/// The C2SP tlog-tiles path of a tile (`tile/<L>/<N>[.p/<W>]`, or
/// `tile/entries/<N>[.p/<W>]` for an entry bundle), relative to the log's prefix.
pub fn tile_path(tile: &Tile) -> String {
    debug_assert_eq!(tile.height(), TILE_HEIGHT);
    // `Tile::path` writes Go sumdb's `tile/<H>/<L or data>/…`; C2SP drops the
    // height (always 8) and names data tiles `entries`.
    let sumdb = tile.path();
    let rest = sumdb
        .strip_prefix(&format!("tile/{TILE_HEIGHT}/"))
        .unwrap_or(&sumdb);
    match rest.strip_prefix("data/") {
        Some(n) => format!("tile/entries/{n}"),
        None => format!("tile/{rest}"),
    }
}

/// Reads a C2SP tlog-tiles path (`tile/<L>/<N>[.p/<W>]` or
/// `tile/entries/<N>[.p/<W>]`, `N` in 3-digit elements all but the last prefixed
/// `x`, `W` from 1 to 255); `None` if it is not one. (`Tile::from_path` panics on
/// some bad widths, so a path from outside is read here.)
pub fn parse_tile_path(path: &str) -> Option<Tile> {
    if path.len() > 64 {
        return None;
    }
    let rest = path.strip_prefix("tile/")?;
    let (level, rest) = rest.split_once('/')?;
    let (level, data) = match level {
        "entries" => (0u8, true),
        l if l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()) => (l.parse().ok()?, false),
        _ => return None,
    };
    if level >= 64 / TILE_HEIGHT {
        return None;
    }
    let (index, width) = match rest.split_once(".p/") {
        Some((index, w)) => {
            let w: u32 = (!w.is_empty() && w.len() <= 3 && w.bytes().all(|b| b.is_ascii_digit()))
                .then(|| w.parse().ok())??;
            (index, (1..TILE_WIDTH as u32).contains(&w).then_some(w)?)
        }
        None => (rest, TILE_WIDTH as u32),
    };
    let elements: Vec<&str> = index.split('/').collect();
    let mut n: u64 = 0;
    for (i, element) in elements.iter().enumerate() {
        let digits = if i + 1 < elements.len() {
            element.strip_prefix('x')?
        } else {
            element
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    let mut tile = Tile::new(TILE_HEIGHT, level, n, width, false);
    if data {
        tile.set_is_data();
    }
    // One path per tile: no `x000/` elements in front.
    (tile_path(&tile) == path).then_some(tile)
}

/// An entry bundle: each entry as a 2-byte big-endian length then its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).expect("a leaf record is short");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    out
}

/// Reads an entry bundle; `None` if it is cut short.
pub fn parse_entry_bundle(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let [a, b, rest @ ..] = bytes else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if rest.len() < len {
            return None;
        }
        let (entry, rest) = rest.split_at(len);
        entries.push(entry);
        bytes = rest;
    }
    Some(entries)
}

/// Checks that `proof` proves leaf `index` with leaf hash `leaf` is in the tree of
/// `size` leaves with root `root`.
pub fn check_inclusion(
    proof: &[Hash],
    size: u64,
    root: Hash,
    index: u64,
    leaf: Hash,
) -> Result<(), tlog_tiles::Error> {
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf)
}

/// Checks that `proof` proves the tree of `old_size` leaves with root `old_root`
/// is a prefix of the tree of `size` leaves with root `root`.
pub fn check_consistency(
    proof: &[Hash],
    size: u64,
    root: Hash,
    old_size: u64,
    old_root: Hash,
) -> Result<(), tlog_tiles::Error> {
    tlog_tiles::check_tree(&proof.to_vec(), size, root, old_size, old_root)
}

/// The hashes (or, for an entry bundle, the leaves) `start..end` at the tile's
/// level that `tile` holds, if the tree of `size` leaves covers it (`None`: not
/// published by a checkpoint of that size, or not a tile of this log).
pub fn tile_span(tile: &Tile, size: u64) -> Option<(u64, u64)> {
    if tile.height() != TILE_HEIGHT || (tile.is_data() && tile.level() != 0) {
        return None;
    }
    let shift = u32::from(tile.level()) * u32::from(TILE_HEIGHT);
    let start = tile.level_index().checked_mul(TILE_WIDTH)?;
    let end = start.checked_add(u64::from(tile.width()))?;
    (end <= size.checked_shr(shift).unwrap_or(0)).then_some((start, end))
}

/// A whole log held in memory: its leaf records and every stored hash. What a
/// verifier rebuilds from an evidence export (and what tests use as a log).
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    entries: Vec<Vec<u8>>,
    hashes: Vec<Hash>,
}

impl tlog_tiles::HashReader for MemoryLog {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                usize::try_from(*i)
                    .ok()
                    .and_then(|i| self.hashes.get(i))
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl MemoryLog {
    /// Appends a leaf record; returns its index.
    pub fn append(&mut self, record: &[u8]) -> u64 {
        let index = self.size();
        let new = tlog_tiles::stored_hashes(index, record, self)
            .expect("a memory log holds every hash it needs");
        self.hashes.extend(new);
        self.entries.push(record.to_vec());
        index
    }

    /// Leaves appended.
    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The leaf records.
    pub fn entries(&self) -> &[Vec<u8>] {
        &self.entries
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, tlog_tiles::Error> {
        tlog_tiles::tree_hash(size, self)
    }

    /// Inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion_proof(&self, size: u64, index: u64) -> Result<Vec<Hash>, tlog_tiles::Error> {
        tlog_tiles::prove_record(size, index, self)
    }

    /// Consistency proof from the tree of `old_size` leaves to that of `size`.
    pub fn consistency_proof(
        &self,
        size: u64,
        old_size: u64,
    ) -> Result<Vec<Hash>, tlog_tiles::Error> {
        tlog_tiles::prove_tree(size, old_size, self)
    }

    /// The bytes `tile` should have (hashes, or an entry bundle), if the first
    /// `size` leaves cover it.
    pub fn tile(&self, tile: &Tile, size: u64) -> Option<Vec<u8>> {
        let (start, end) = tile_span(tile, size)?;
        if tile.is_data() {
            let start = usize::try_from(start).ok()?;
            let end = usize::try_from(end).ok()?;
            return Some(entry_bundle(
                self.entries[start..end].iter().map(Vec::as_slice),
            ));
        }
        tile.read_data(self).ok()
    }
}

/// A 32-byte hash from bytes of the right length.
pub fn hash_of(bytes: &[u8]) -> Option<Hash> {
    <[u8; HASH_SIZE]>::try_from(bytes).ok().map(Hash)
}

#[cfg(test)]
mod tests;
