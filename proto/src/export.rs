//! The station export file, carried by hand (USB) where there is no network:
//! the 8 ASCII bytes `PSYNCEX1` followed by one protobuf-encoded
//! [`pb::StationExport`] holding signed batches exactly as they would be pushed.
//!
//! Reading checks the container (size, magic, encoding, version, ids). The
//! batches inside get the same checks as batches pushed over the network when the
//! center imports them; [`check_export_chain`] checks that they form one
//! contiguous piece of the station's chain.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use prost::Message as _;

use crate::envelope::{self, ChainError, ChainHead};
use crate::fsutil::write_atomic;
use crate::limits::{HASH_BYTES, MAX_BATCH_BYTES, MAX_EXPORT_BYTES, MAX_ID_BYTES};
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
    /// One entry is longer than any batch can be.
    #[error(
        "entry #{entry} at byte {offset} is {len} bytes, more than the {max} bytes a batch with its signature can take; the rest of the file is not read"
    )]
    EntryTooLarge {
        /// Its number in the file (0-based).
        entry: u64,
        /// Where it starts (bytes from the start of the file).
        offset: u64,
        /// Its declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The file stops inside an entry, or its framing is broken.
    #[error("byte {offset}: {detail}; the rest of the file is not read")]
    Framing {
        /// Where (bytes from the start of the file).
        offset: u64,
        /// What is wrong.
        detail: String,
    },
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

impl ExportError {
    /// The OS error `source`, met while doing `action` on `path`.
    fn io(path: &Path, action: &'static str, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }
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
    write_atomic(path, &encode_export(export), EXPORT_FILE_MODE)
        .map_err(|e| ExportError::io(path, "cannot write the export file", e))
}

/// Reads an export file and checks its container (see [`decode_export`]).
pub fn read_export(path: &Path) -> Result<pb::StationExport, ExportError> {
    let io = |action| move |e| ExportError::io(path, action, e);
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

/// Longest entry of an export file: a batch at its size limit, its signature and
/// the framing around them.
pub const MAX_EXPORT_ENTRY_BYTES: u64 = MAX_BATCH_BYTES as u64 + 1_024;

/// Reads an export file as a stream, one entry at a time (SPEC §13): memory stays
/// at one entry (at most [`MAX_EXPORT_ENTRY_BYTES`]) whatever the file holds. Each
/// length is checked against its limit before anything is allocated for it.
pub struct ExportReader {
    path: PathBuf,
    input: BufReader<std::io::Take<std::fs::File>>,
    /// Bytes consumed from the start of the file.
    offset: u64,
    entries: u64,
    format_version: Option<u32>,
    election_id: Option<String>,
    station_id: Option<String>,
    done: bool,
}

impl ExportReader {
    /// Opens `path`, checks its size and magic.
    pub fn open(path: &Path) -> Result<ExportReader, ExportError> {
        let io = |action| move |e| ExportError::io(path, action, e);
        let file = std::fs::File::open(path).map_err(io("cannot open the export file"))?;
        let size = file
            .metadata()
            .map_err(io("cannot read the export file"))?
            .len();
        let mut reader = ExportReader {
            path: path.to_owned(),
            input: BufReader::with_capacity(64 * 1024, file.take(MAX_EXPORT_BYTES + 1)),
            offset: 0,
            entries: 0,
            format_version: None,
            election_id: None,
            station_id: None,
            done: false,
        };
        if size > MAX_EXPORT_BYTES {
            return Err(reader.format(ExportFormatError::TooLarge {
                size,
                max: MAX_EXPORT_BYTES,
            }));
        }
        let mut magic = [0u8; 8];
        let got = reader.read_up_to(&mut magic)?;
        if got < magic.len() {
            return Err(reader.format(ExportFormatError::TooShort { len: got }));
        }
        if &magic != EXPORT_MAGIC {
            return Err(reader.format(ExportFormatError::BadMagic {
                found: hex::encode(magic),
            }));
        }
        Ok(reader)
    }

    fn format(&self, source: ExportFormatError) -> ExportError {
        ExportError::Format {
            path: self.path.clone(),
            source,
        }
    }

    fn framing(&self, detail: impl Into<String>) -> ExportError {
        self.format(ExportFormatError::Framing {
            offset: self.offset,
            detail: detail.into(),
        })
    }

    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, ExportError> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ExportError::io(
                        &self.path,
                        "cannot read the export file",
                        e,
                    ));
                }
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    fn byte(&mut self) -> Result<Option<u8>, ExportError> {
        let mut b = [0u8; 1];
        Ok((self.read_up_to(&mut b)? == 1).then_some(b[0]))
    }

    /// A varint; `None` at a clean end of file (only where `eof_ok`).
    fn varint(&mut self, eof_ok: bool) -> Result<Option<u64>, ExportError> {
        let mut value = 0u64;
        for (i, shift) in (0..64).step_by(7).enumerate() {
            let Some(b) = self.byte()? else {
                return if i == 0 && eof_ok {
                    Ok(None)
                } else {
                    Err(self.framing("the file ends inside a field header"))
                };
            };
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(self.framing("a varint is longer than 10 bytes"))
    }

    fn bytes(&mut self, len: u64, max: u64, what: &str) -> Result<Vec<u8>, ExportError> {
        if len > max {
            return Err(self.framing(format!("{what} is {len} bytes, more than {max}")));
        }
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        if self.read_up_to(&mut buf)? < buf.len() {
            return Err(self.framing(format!("the file ends inside {what}")));
        }
        Ok(buf)
    }

    fn skip(&mut self, len: u64) -> Result<(), ExportError> {
        let copied = std::io::copy(&mut (&mut self.input).take(len), &mut std::io::sink())
            .map_err(|e| ExportError::io(&self.path, "cannot read the export file", e))?;
        self.offset += copied;
        if copied < len {
            return Err(self.framing("the file ends inside a field"));
        }
        Ok(())
    }

    fn text(&mut self, len: u64, what: &'static str) -> Result<String, ExportError> {
        let bytes = self.bytes(len, MAX_ID_BYTES as u64 * 4, what)?;
        String::from_utf8(bytes).map_err(|_| self.framing(format!("{what} is not UTF-8")))
    }

    /// The next signed batch with its entry number (0-based), or `None` at the end
    /// of the file, once the header fields were found sound.
    pub fn next_batch(&mut self) -> Result<Option<(u64, pb::SignedBatch)>, ExportError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let start = self.offset;
            let Some(key) = self.varint(true)? else {
                self.done = true;
                self.check_header()?;
                return Ok(None);
            };
            match (key >> 3, key & 7) {
                (1, 0) => {
                    let v = self.varint(false)?.unwrap_or(0);
                    self.format_version = Some(u32::try_from(v).unwrap_or(u32::MAX));
                }
                (2, 2) => {
                    let len = self.varint(false)?.unwrap_or(0);
                    self.election_id = Some(self.text(len, "election_id")?);
                }
                (3, 2) => {
                    let len = self.varint(false)?.unwrap_or(0);
                    self.station_id = Some(self.text(len, "station_id")?);
                }
                (4, 2) => {
                    let len = self.varint(false)?.unwrap_or(0);
                    let entry = self.entries;
                    if len > MAX_EXPORT_ENTRY_BYTES {
                        return Err(self.format(ExportFormatError::EntryTooLarge {
                            entry,
                            offset: start,
                            len,
                            max: MAX_EXPORT_ENTRY_BYTES,
                        }));
                    }
                    let bytes = self.bytes(len, MAX_EXPORT_ENTRY_BYTES, "an entry")?;
                    self.entries += 1;
                    let signed = pb::SignedBatch::decode(bytes.as_slice()).map_err(|e| {
                        self.framing(format!(
                            "entry #{entry} does not decode as a SignedBatch: {e}"
                        ))
                    })?;
                    return Ok(Some((entry, signed)));
                }
                // Unknown fields are skipped, within the entry limit.
                (_, 0) => {
                    self.varint(false)?;
                }
                (_, 1) => self.skip(8)?,
                (_, 5) => self.skip(4)?,
                (_, 2) => {
                    let len = self.varint(false)?.unwrap_or(0);
                    if len > MAX_EXPORT_ENTRY_BYTES {
                        return Err(self.framing(format!("an unknown field of {len} bytes")));
                    }
                    self.skip(len)?;
                }
                (field, wire) => {
                    return Err(
                        self.framing(format!("field {field} has an unsupported wire type {wire}"))
                    );
                }
            }
        }
    }

    fn check_header(&self) -> Result<(), ExportError> {
        match self.format_version.unwrap_or(0) {
            EXPORT_FORMAT_VERSION => {}
            found => return Err(self.format(ExportFormatError::Version { found })),
        }
        if self.election_id.as_deref().unwrap_or("").is_empty() {
            return Err(self.format(ExportFormatError::MissingId("election_id")));
        }
        if self.station_id.as_deref().unwrap_or("").is_empty() {
            return Err(self.format(ExportFormatError::MissingId("station_id")));
        }
        Ok(())
    }

    /// The station id the file claims (nothing signs it), once read.
    pub fn station_id(&self) -> Option<&str> {
        self.station_id.as_deref()
    }

    /// Entries read so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }
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
