//! The station export file, carried by hand (USB) where there is no network:
//! the 8 ASCII bytes `PSYNCEX1` followed by one protobuf-encoded
//! [`pb::StationExport`] holding signed batches exactly as they would be pushed.
//!
//! Reading checks the container (size, magic, encoding, version, ids). The
//! batches inside get the same checks as batches pushed over the network when the
//! center imports them; [`check_export_chain`] checks that they form one
//! contiguous piece of the station's chain.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use prost::Message as _;

use crate::envelope::{self, ChainError, ChainHead};
use crate::fsutil::write_atomic;
use crate::limits::{HASH_BYTES, MAX_EXPORT_BYTES};
use crate::pb;

/// The first 8 bytes of every export file.
pub const EXPORT_MAGIC: &[u8; 8] = b"PSYNCEX1";

/// `StationExport.format_version` written and read by this code.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// Unix permissions of a written export file (ballots stay with their owner).
pub const EXPORT_FILE_MODE: u32 = 0o600;

/// What is wrong with the bytes of an export file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportFormatError {
    /// Shorter than the magic.
    #[error("{len} bytes, too short for a pollsync export (at least the 8-byte magic PSYNCEX1)")]
    TooShort {
        /// Length found.
        len: usize,
    },
    /// The first 8 bytes are not `PSYNCEX1`.
    #[error(
        "does not start with the magic PSYNCEX1 (found {found}): not a pollsync station export"
    )]
    BadMagic {
        /// The first bytes found (hex).
        found: String,
    },
    /// Larger than [`MAX_EXPORT_BYTES`].
    #[error("{size} bytes, larger than the {max}-byte limit of an export file")]
    TooLarge {
        /// Size found.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes after the magic do not decode.
    #[error("the content after the magic does not decode as a pollsync.v1.StationExport: {0}")]
    Decode(String),
    /// Unsupported `format_version`.
    #[error("format_version {found} is not supported (this version reads {EXPORT_FORMAT_VERSION})")]
    Version {
        /// Version found.
        found: u32,
    },
    /// `election_id` or `station_id` is empty.
    #[error("the export names no {0}")]
    MissingId(&'static str),
}

/// Why an export file cannot be written or read; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file cannot be read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file's bytes are not a valid export.
    #[error("{}: {source}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ExportFormatError,
    },
}

/// Why the batches of an export are not one contiguous piece of a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportChainError {
    /// The first batch does not decode.
    #[error("first batch: {0}")]
    First(envelope::EnvelopeError),
    /// The batches do not form a chain (see [`ChainError`]).
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// Where the batches of an export sit in the station's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSpan {
    /// The head the first batch links to: sequence `first - 1` and the first
    /// batch's `prev_hash`.
    pub links_to: ChainHead,
    /// The head after the last batch.
    pub head: ChainHead,
}

/// Encodes an export file: magic followed by the encoded message.
pub fn encode_export(export: &pb::StationExport) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXPORT_MAGIC.len() + export.encoded_len());
    out.extend_from_slice(EXPORT_MAGIC);
    export
        .encode(&mut out)
        .unwrap_or_else(|_| unreachable!("a Vec grows as needed"));
    out
}

/// Decodes and checks the container of an export file (magic, size, encoding,
/// version, ids). The batches inside are not checked here.
pub fn decode_export(bytes: &[u8]) -> Result<pb::StationExport, ExportFormatError> {
    if bytes.len() as u64 > MAX_EXPORT_BYTES {
        return Err(ExportFormatError::TooLarge {
            size: bytes.len() as u64,
            max: MAX_EXPORT_BYTES,
        });
    }
    if bytes.len() < EXPORT_MAGIC.len() {
        return Err(ExportFormatError::TooShort { len: bytes.len() });
    }
    let (magic, body) = bytes.split_at(EXPORT_MAGIC.len());
    if magic != EXPORT_MAGIC {
        return Err(ExportFormatError::BadMagic {
            found: hex::encode(magic),
        });
    }
    let export =
        pb::StationExport::decode(body).map_err(|e| ExportFormatError::Decode(e.to_string()))?;
    if export.format_version != EXPORT_FORMAT_VERSION {
        return Err(ExportFormatError::Version {
            found: export.format_version,
        });
    }
    if export.election_id.is_empty() {
        return Err(ExportFormatError::MissingId("election_id"));
    }
    if export.station_id.is_empty() {
        return Err(ExportFormatError::MissingId("station_id"));
    }
    Ok(export)
}

/// Builds the export message for `batches` (format version 1).
pub fn new_export(
    election_id: &str,
    station_id: &str,
    batches: Vec<pb::SignedBatch>,
) -> pb::StationExport {
    pb::StationExport {
        format_version: EXPORT_FORMAT_VERSION,
        election_id: election_id.to_owned(),
        station_id: station_id.to_owned(),
        batches,
    }
}

/// Writes an export file atomically (temporary file, fsync, rename), mode 0600.
pub fn write_export(path: &Path, export: &pb::StationExport) -> Result<(), ExportError> {
    write_atomic(path, &encode_export(export), EXPORT_FILE_MODE).map_err(|source| ExportError::Io {
        path: path.to_owned(),
        action: "cannot write the export file",
        source,
    })
}

/// Reads an export file and checks its container (see [`decode_export`]).
pub fn read_export(path: &Path) -> Result<pb::StationExport, ExportError> {
    let io = |action: &'static str| {
        move |source| ExportError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let format = |source| ExportError::Format {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io("cannot open the export file"))?;
    let size = file
        .metadata()
        .map_err(io("cannot read the export file"))?
        .len();
    if size > MAX_EXPORT_BYTES {
        return Err(format(ExportFormatError::TooLarge {
            size,
            max: MAX_EXPORT_BYTES,
        }));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_EXPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io("cannot read the export file"))?;
    decode_export(&bytes).map_err(format)
}

/// Checks that the export's batches are one contiguous piece of its station's
/// chain: each decodes, names the export's election and station, and links to
/// the one before. Returns `None` for an export without batches. Signatures are
/// not checked (see [`envelope::verify_batches`]), nor whether the piece links to
/// what the center already has (compare [`ExportSpan::links_to`]).
pub fn check_export_chain(
    export: &pb::StationExport,
) -> Result<Option<ExportSpan>, ExportChainError> {
    let Some(first) = export.batches.first() else {
        return Ok(None);
    };
    let first = envelope::decode_batch(first).map_err(ExportChainError::First)?;
    let mut hash = [0u8; HASH_BYTES];
    hash.copy_from_slice(&first.prev_hash); // 32 bytes: checked by decode_batch
    let links_to = ChainHead {
        sequence: first.sequence - 1, // ≥ 1: checked by decode_batch
        hash,
    };
    let head = envelope::check_chain_from(
        links_to,
        &export.election_id,
        &export.station_id,
        &export.batches,
    )?;
    Ok(Some(ExportSpan { links_to, head }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::{make_chain, test_key};
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn roundtrip_through_a_file() {
        let key = test_key(1);
        let chain = make_chain(&key, 5);
        let export = new_export("e-1", "S-0001", chain[2..].to_vec());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("S-0001.psync");
        write_export(&path, &export).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"PSYNCEX1");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = read_export(&path).unwrap();
        assert_eq!(back, export);
        let span = check_export_chain(&back).unwrap().unwrap();
        assert_eq!(span.links_to.sequence, 2);
        assert_eq!(span.links_to.hash, crate::chain_hash(&chain[1].batch));
        assert_eq!(span.head.sequence, 5);
        assert_eq!(
            check_export_chain(&new_export("e-1", "S-0001", vec![])).unwrap(),
            None
        );
    }

    #[test]
    fn container_errors_are_precise() {
        assert_eq!(
            decode_export(b"PSYNC"),
            Err(ExportFormatError::TooShort { len: 5 })
        );
        assert!(matches!(
            decode_export(b"PSYNCEX2rest"),
            Err(ExportFormatError::BadMagic { .. })
        ));
        assert!(matches!(
            decode_export(b"PSYNCEX1\xff\xff\xff"),
            Err(ExportFormatError::Decode(_))
        ));
        let mut export = new_export("e-1", "S-0001", vec![]);
        export.format_version = 2;
        assert_eq!(
            decode_export(&encode_export(&export)),
            Err(ExportFormatError::Version { found: 2 })
        );
        // An empty body decodes to format_version 0.
        assert_eq!(
            decode_export(b"PSYNCEX1"),
            Err(ExportFormatError::Version { found: 0 })
        );
        let export = new_export("", "S-0001", vec![]);
        assert_eq!(
            decode_export(&encode_export(&export)),
            Err(ExportFormatError::MissingId("election_id"))
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.psync");
        std::fs::write(&path, b"hello world").unwrap();
        let err = read_export(&path).unwrap_err();
        assert!(err.to_string().contains("x.psync"), "{err}");
        assert!(err.to_string().contains("magic"), "{err}");
        let err = read_export(&dir.path().join("missing.psync")).unwrap_err();
        assert!(matches!(err, ExportError::Io { .. }));
    }

    #[test]
    fn chain_errors_inside_an_export_are_named() {
        let key = test_key(1);
        let chain = make_chain(&key, 4);
        let gap = new_export("e-1", "S-0001", vec![chain[0].clone(), chain[2].clone()]);
        assert_eq!(
            check_export_chain(&gap),
            Err(ExportChainError::Chain(ChainError::Gap {
                expected: 2,
                found: 3
            }))
        );
        let other_station = new_export("e-1", "S-0009", chain.clone());
        assert!(matches!(
            check_export_chain(&other_station),
            Err(ExportChainError::Chain(ChainError::WrongStation { .. }))
        ));
    }
}
