//! Station enrollment bundles: everything a polling-station device needs to join
//! an election (its identity, key and certificate, the CA, the center's addresses
//! and the election definition), as one JSON file that the center writes with
//! mode 0600 and the station reads at `station init`.
//!
//! The bundle holds the station's private key: it is written with owner-only
//! permissions from the first byte, and `Debug` never shows the key.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use pollsync_election::Mode;
use serde::{Deserialize, Serialize};

use crate::envelope::ChainHead;
use crate::fsutil::write_atomic;
use crate::identity::{self, ElectionCa, IdentityError};
use crate::limits::{MAX_BUNDLE_BYTES, MAX_CENTER_ADDRESSES, escape_text};

/// Longest piece of a bad address shown in an error, in characters.
const SHOWN_ADDRESS_CHARS: usize = 80;

/// The bundle format this code writes and reads.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// Unix permissions of a bundle file.
pub const BUNDLE_FILE_MODE: u32 = 0o600;

/// A station's enrollment bundle.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentBundle {
    /// [`BUNDLE_FORMAT_VERSION`].
    pub format_version: u32,
    /// The election id.
    pub election_id: String,
    /// Whether the election is official or a test: the definition's `[election]
    /// mode`, named by both certificates and the log key too.
    pub mode: Mode,
    /// The station id; equals the CN of `station_cert_pem`.
    pub station_id: String,
    /// Where the station reaches the center, `HOST:PORT` each, 1 to
    /// [`MAX_CENTER_ADDRESSES`] of them without repeats, in the order the station
    /// tries them (fail-over: the next one after a failure).
    pub center_addresses: Vec<String>,
    /// The election CA certificate (PEM): trust root for the center's certificate.
    pub ca_cert_pem: String,
    /// The station's client certificate (PEM), issued by the CA.
    pub station_cert_pem: String,
    /// The station's Ed25519 private key (PKCS#8 PEM): TLS client key and batch
    /// signing key.
    pub station_key_pem: String,
    /// The election definition file, byte for byte (its SHA-256 is the
    /// `definition_sha256` of every batch).
    pub election_toml: String,
    /// For a replacement device (`center enroll --replace`): the center's head for
    /// the station when the bundle was issued. The device's first batch continues
    /// that chain (sequence `head + 1`, `prev_hash` = the head's hash). Absent for a
    /// first enrollment (the chain starts at genesis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_head: Option<BundleHead>,
    /// The verifier key of the center's transparency log (C2SP signed-note key
    /// text): the station checks the checkpoints of its receipts with it. `center
    /// enroll` always sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
}

/// A chain position carried in a bundle: sequence and chain hash (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHead {
    /// The last batch the center held for the station (at least 1).
    pub sequence: u64,
    /// Its chain hash, 64 lowercase hex digits.
    pub hash: String,
}

impl BundleHead {
    /// From a chain head.
    pub fn of(head: &ChainHead) -> Self {
        BundleHead {
            sequence: head.sequence,
            hash: head.hash_hex(),
        }
    }

    /// As a chain head, if the hash is 32 bytes of hex.
    pub fn chain_head(&self) -> Option<ChainHead> {
        let bytes = hex::decode(&self.hash).ok()?;
        Some(ChainHead {
            sequence: self.sequence,
            hash: <[u8; 32]>::try_from(bytes.as_slice()).ok()?,
        })
    }
}

impl fmt::Debug for EnrollmentBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentBundle")
            .field("format_version", &self.format_version)
            .field("election_id", &self.election_id)
            .field("mode", &self.mode)
            .field("station_id", &self.station_id)
            .field("center_addresses", &self.center_addresses)
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("station_cert_pem", &self.station_cert_pem)
            .field("station_key_pem", &"<redacted>")
            .field(
                "election_toml",
                &format_args!("<{} bytes>", self.election_toml.len()),
            )
            .finish()
    }
}

/// What is inconsistent inside a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleCheckError {
    /// Unsupported `format_version`.
    #[error("format_version {found} is not supported (this version reads {BUNDLE_FORMAT_VERSION})")]
    Version {
        /// The version in the bundle.
        found: u32,
    },
    /// A required field is empty.
    #[error("field {0} is empty")]
    Empty(&'static str),
    /// `center_addresses` lists no address.
    #[error("center_addresses is empty: at least one HOST:PORT is needed")]
    NoCenterAddress,
    /// `center_addresses` lists more than [`MAX_CENTER_ADDRESSES`].
    #[error(
        "center_addresses lists {count} addresses, more than the {MAX_CENTER_ADDRESSES} allowed"
    )]
    TooManyCenterAddresses {
        /// How many it lists.
        count: usize,
    },
    /// An entry of `center_addresses` is not `HOST:PORT`.
    #[error("center_addresses[{index}] {address:?} is not HOST:PORT: {reason}")]
    CenterAddress {
        /// Its position in the list, from 0.
        index: usize,
        /// The entry (shown escaped, cut).
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry of `center_addresses` repeats an earlier one.
    #[error("center_addresses[{index}] {address:?} repeats center_addresses[{first}]")]
    DuplicateCenterAddress {
        /// Its position in the list, from 0.
        index: usize,
        /// The position of the same address earlier in the list.
        first: usize,
        /// The entry (shown escaped, cut).
        address: String,
    },
    /// A certificate or key does not parse.
    #[error("{what}: {source}")]
    Identity {
        /// Which field.
        what: &'static str,
        /// Why.
        source: IdentityError,
    },
    /// The certificate is for another station.
    #[error(
        "station certificate is for station {cert:?}, but the bundle is for station {bundle:?}"
    )]
    StationMismatch {
        /// CN of the certificate.
        cert: String,
        /// `station_id` of the bundle.
        bundle: String,
    },
    /// The CA is for another election.
    #[error("CA certificate is for election {ca:?}, but the bundle is for election {bundle:?}")]
    ElectionMismatch {
        /// Election (OU) of the CA certificate.
        ca: String,
        /// `election_id` of the bundle.
        bundle: String,
    },
    /// A certificate or the log key is of the other mode (official or test).
    #[error(
        "{what} names mode {found:?}, but the bundle's mode is {bundle:?}: test and official elections never mix"
    )]
    ModeMismatch {
        /// Which field.
        what: &'static str,
        /// The mode it names.
        found: &'static str,
        /// `mode` of the bundle.
        bundle: &'static str,
    },
    /// `start_head` is not a chain position.
    #[error(
        "start_head: sequence {sequence} with hash {hash} is not a chain position (sequence at least 1, hash 64 hex digits)"
    )]
    StartHead {
        /// The sequence given.
        sequence: u64,
        /// The hash given (shown escaped, cut).
        hash: String,
    },
    /// `log_key` is not a verifier key of this election's log.
    #[error("log_key: not the verifier key of the transparency log {origin}")]
    LogKey {
        /// The log the bundle's election and mode name.
        origin: String,
    },
}

/// Why a bundle file cannot be written or read; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
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
    /// The file is larger than any bundle.
    #[error("{}: {size} bytes, larger than the {max}-byte limit of an enrollment bundle", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Not JSON of the bundle's shape.
    #[error("{}: not a pollsync enrollment bundle: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The JSON error (line and column).
        source: serde_json::Error,
    },
    /// The bundle's content is inconsistent.
    #[error("{}: invalid enrollment bundle: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: BundleCheckError,
    },
}

impl EnrollmentBundle {
    /// Issues a new station certificate and key from `ca` and assembles the bundle.
    pub fn issue(
        ca: &ElectionCa,
        station_id: &str,
        center_addresses: &[impl AsRef<str>],
        election_toml: &str,
    ) -> Result<Self, IdentityError> {
        let station = ca.issue_station(station_id)?;
        Ok(Self {
            format_version: BUNDLE_FORMAT_VERSION,
            election_id: ca.election_id().to_owned(),
            mode: ca.mode(),
            station_id: station_id.to_owned(),
            center_addresses: center_addresses
                .iter()
                .map(|a| a.as_ref().to_owned())
                .collect(),
            ca_cert_pem: ca.cert_pem().to_owned(),
            station_cert_pem: station.cert_pem,
            station_key_pem: station.key_pem,
            election_toml: election_toml.to_owned(),
            start_head: None,
            log_key: None,
        })
    }

    /// Where this device's chain starts: genesis, or the head carried for a
    /// replacement device (checked by [`EnrollmentBundle::check`]).
    pub fn chain_start(&self) -> ChainHead {
        self.start_head
            .as_ref()
            .and_then(BundleHead::chain_head)
            .unwrap_or_default()
    }

    /// Checks the bundle's consistency: version, non-empty fields, 1 to
    /// [`MAX_CENTER_ADDRESSES`] distinct `HOST:PORT` center addresses, the CA names
    /// this election, the station certificate was issued by the CA and names this
    /// station (CN), both certificates and the log key name the bundle's mode, and
    /// the private key belongs to the certificate.
    pub fn check(&self) -> Result<(), BundleCheckError> {
        if self.format_version != BUNDLE_FORMAT_VERSION {
            return Err(BundleCheckError::Version {
                found: self.format_version,
            });
        }
        for (name, value) in [
            ("election_id", &self.election_id),
            ("station_id", &self.station_id),
            ("ca_cert_pem", &self.ca_cert_pem),
            ("station_cert_pem", &self.station_cert_pem),
            ("station_key_pem", &self.station_key_pem),
            ("election_toml", &self.election_toml),
        ] {
            if value.trim().is_empty() {
                return Err(BundleCheckError::Empty(name));
            }
        }
        check_center_addresses(&self.center_addresses)?;
        let ident = |what: &'static str| move |source| BundleCheckError::Identity { what, source };
        let ca_der =
            identity::cert_der_from_pem(&self.ca_cert_pem).map_err(ident("ca_cert_pem"))?;
        let ca_election =
            identity::election_id_from_cert_der(&ca_der).map_err(ident("ca_cert_pem"))?;
        if ca_election != self.election_id {
            return Err(BundleCheckError::ElectionMismatch {
                ca: ca_election,
                bundle: self.election_id.clone(),
            });
        }
        let cert_der = identity::cert_der_from_pem(&self.station_cert_pem)
            .map_err(ident("station_cert_pem"))?;
        let cn =
            identity::station_id_from_cert_der(&cert_der).map_err(ident("station_cert_pem"))?;
        if cn != self.station_id {
            return Err(BundleCheckError::StationMismatch {
                cert: cn,
                bundle: self.station_id.clone(),
            });
        }
        identity::verify_issued_by(&cert_der, &ca_der).map_err(ident("station_cert_pem"))?;
        for (what, der) in [("ca_cert_pem", &ca_der), ("station_cert_pem", &cert_der)] {
            let found = identity::mode_from_cert_der(der).map_err(ident(what))?;
            if found != self.mode {
                return Err(BundleCheckError::ModeMismatch {
                    what,
                    found: found.as_str(),
                    bundle: self.mode.as_str(),
                });
            }
        }
        identity::check_key_matches_cert(&self.station_key_pem, &cert_der)
            .map_err(ident("station_key_pem"))?;
        if let Some(head) = &self.start_head
            && (head.sequence == 0 || head.chain_head().is_none())
        {
            return Err(BundleCheckError::StartHead {
                sequence: head.sequence,
                hash: crate::limits::truncate_chars(&format!("{:?}", head.hash), 80),
            });
        }
        if let Some(key) = &self.log_key {
            let origin = crate::tlog::origin(&self.election_id, self.mode.as_str());
            if crate::tlog::verifier_key_name(key).as_deref() != Some(origin.as_str()) {
                return Err(BundleCheckError::LogKey { origin });
            }
        }
        Ok(())
    }

    /// Writes the bundle as JSON, mode 0600 from the start, atomically (temporary
    /// file in the same directory, fsync, rename, fsync of the directory).
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        self.check().map_err(|source| BundleError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| BundleError::Json {
            path: path.to_owned(),
            source,
        })?;
        json.push(b'\n');
        write_atomic(path, &json, BUNDLE_FILE_MODE).map_err(|source| BundleError::Io {
            path: path.to_owned(),
            action: "cannot write the enrollment bundle",
            source,
        })
    }

    /// Reads and checks a bundle (see [`EnrollmentBundle::check`]).
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let io = |action: &'static str| {
            move |source| BundleError::Io {
                path: path.to_owned(),
                action,
                source,
            }
        };
        let file = std::fs::File::open(path).map_err(io("cannot open the enrollment bundle"))?;
        let size = file
            .metadata()
            .map_err(io("cannot read the enrollment bundle"))?
            .len();
        if size > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                path: path.to_owned(),
                size,
                max: MAX_BUNDLE_BYTES,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(MAX_BUNDLE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io("cannot read the enrollment bundle"))?;
        let bundle: Self = serde_json::from_slice(&bytes).map_err(|source| BundleError::Json {
            path: path.to_owned(),
            source,
        })?;
        bundle.check().map_err(|source| BundleError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        Ok(bundle)
    }

    /// The station's signing key (also its TLS client key).
    pub fn signing_key(&self) -> Result<SigningKey, IdentityError> {
        identity::signing_key_from_pem(&self.station_key_pem)
    }

    /// The station certificate, DER.
    pub fn station_cert_der(&self) -> Result<Vec<u8>, IdentityError> {
        identity::cert_der_from_pem(&self.station_cert_pem)
    }

    /// SHA-256 of `election_toml`'s bytes: the `definition_sha256` of batches.
    pub fn definition_sha256(&self) -> [u8; 32] {
        crate::envelope::definition_sha256(self.election_toml.as_bytes())
    }

    /// The first of `center_addresses` (a checked bundle has at least one).
    pub fn first_center_address(&self) -> &str {
        self.center_addresses.first().map_or("", String::as_str)
    }

    /// A tonic client TLS configuration for reaching the first of
    /// `center_addresses` as this station.
    pub fn client_tls_config(&self) -> tonic::transport::ClientTlsConfig {
        crate::tls::client_tls_config(
            &self.ca_cert_pem,
            &self.station_cert_pem,
            &self.station_key_pem,
            &identity::server_name_of(self.first_center_address()),
        )
    }
}

/// Why `address` is not a center's `HOST:PORT`, if it is not: the host must be
/// non-empty and free of spaces and control characters, the port a number from 1
/// to 65535. A bare IPv6 host is written in brackets (`[::1]:7443`).
pub fn center_address_problem(address: &str) -> Option<&'static str> {
    if address.is_empty() {
        return Some("it is empty");
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it holds a space or a control character");
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Some("no :PORT");
    };
    if host.is_empty() || host == "[]" {
        return Some("no host before :PORT");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Some("an IPv6 host goes in brackets, [::1]:7443");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some("the port is not a number from 1 to 65535"),
    }
}

/// Checks a list of center addresses as a bundle (or `station init --center`)
/// gives it: 1 to [`MAX_CENTER_ADDRESSES`] entries, each `HOST:PORT`
/// ([`center_address_problem`]), none repeated (hosts compared without case).
pub fn check_center_addresses(addresses: &[String]) -> Result<(), BundleCheckError> {
    if addresses.is_empty() {
        return Err(BundleCheckError::NoCenterAddress);
    }
    if addresses.len() > MAX_CENTER_ADDRESSES {
        return Err(BundleCheckError::TooManyCenterAddresses {
            count: addresses.len(),
        });
    }
    let shown = |address: &str| escape_text(address, SHOWN_ADDRESS_CHARS);
    for (index, address) in addresses.iter().enumerate() {
        if let Some(reason) = center_address_problem(address) {
            return Err(BundleCheckError::CenterAddress {
                index,
                address: shown(address),
                reason,
            });
        }
        if let Some(first) = addresses[..index]
            .iter()
            .position(|earlier| earlier.eq_ignore_ascii_case(address))
        {
            return Err(BundleCheckError::DuplicateCenterAddress {
                index,
                first,
                address: shown(address),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn bundle() -> EnrollmentBundle {
        let ca = ElectionCa::generate("beichen-2021", pollsync_election::Mode::Official).unwrap();
        EnrollmentBundle::issue(
            &ca,
            "S-0001",
            &["127.0.0.1:7443"],
            "[election]\nid = \"beichen-2021\"\n",
        )
        .unwrap()
    }

    #[test]
    fn write_is_mode_0600_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("S-0001.bundle.json");
        let b = bundle();
        b.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(EnrollmentBundle::read(&path).unwrap(), b);
        // Overwriting an existing, wider file leaves it 0600.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        b.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            b.definition_sha256(),
            crate::envelope::chain_hash(b.election_toml.as_bytes())
        );
        b.signing_key().unwrap();
    }

    #[test]
    fn debug_redacts_the_key() {
        let b = bundle();
        let shown = format!("{b:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("PRIVATE KEY"));
        assert!(!shown.contains(&b.station_key_pem));
    }

    #[test]
    fn read_names_file_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");

        let err = EnrollmentBundle::read(&path).unwrap_err();
        assert!(matches!(err, BundleError::Io { .. }));
        assert!(err.to_string().contains("b.json"), "{err}");

        std::fs::write(&path, "{not json").unwrap();
        let err = EnrollmentBundle::read(&path).unwrap_err();
        assert!(matches!(err, BundleError::Json { .. }), "{err}");
        assert!(err.to_string().contains("b.json"));

        let write_raw =
            |b: &EnrollmentBundle| std::fs::write(&path, serde_json::to_vec(b).unwrap()).unwrap();

        let mut b = bundle();
        b.format_version = 2;
        write_raw(&b);
        let err = EnrollmentBundle::read(&path).unwrap_err();
        assert!(
            matches!(
                &err,
                BundleError::Invalid {
                    source: BundleCheckError::Version { found: 2 },
                    ..
                }
            ),
            "{err}"
        );

        let mut b = bundle();
        b.station_id = "S-0002".into();
        write_raw(&b);
        let err = EnrollmentBundle::read(&path).unwrap_err();
        assert!(
            matches!(
                &err,
                BundleError::Invalid {
                    source: BundleCheckError::StationMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("\"S-0002\""), "{err}");

        // Key of another station.
        let mut b = bundle();
        b.station_key_pem = bundle().station_key_pem;
        write_raw(&b);
        let err = EnrollmentBundle::read(&path).unwrap_err();
        assert!(
            matches!(
                &err,
                BundleError::Invalid {
                    source: BundleCheckError::Identity {
                        what: "station_key_pem",
                        source: IdentityError::KeyMismatch
                    },
                    ..
                }
            ),
            "{err}"
        );

        // Certificate from another CA.
        let mut b = bundle();
        b.ca_cert_pem = bundle().ca_cert_pem;
        write_raw(&b);
        let err = EnrollmentBundle::read(&path).unwrap_err();
        assert!(
            matches!(
                &err,
                BundleError::Invalid {
                    source: BundleCheckError::Identity {
                        source: IdentityError::NotIssuedByCa(_),
                        ..
                    },
                    ..
                }
            ),
            "{err}"
        );

        // Refuses to write an inconsistent bundle.
        let mut b = bundle();
        b.election_id = "other".into();
        assert!(matches!(
            b.write(&path),
            Err(BundleError::Invalid {
                source: BundleCheckError::ElectionMismatch { .. },
                ..
            })
        ));
    }
    /// A test election's parts never pass for an official one's: the bundle's
    /// mode must be what both certificates and the log key name.
    #[test]
    fn a_bundle_mixing_modes_is_refused() {
        let test_ca = ElectionCa::generate("beichen-2021", Mode::Test).unwrap();
        let test = EnrollmentBundle::issue(&test_ca, "S-0001", &["127.0.0.1:7443"], "x").unwrap();
        assert_eq!(test.mode, Mode::Test);
        test.check().unwrap();

        // Relabelled official: both certificates still say test.
        let mut relabelled = test.clone();
        relabelled.mode = Mode::Official;
        let err = relabelled.check().unwrap_err();
        assert!(
            matches!(
                err,
                BundleCheckError::ModeMismatch {
                    what: "ca_cert_pem",
                    found: "test",
                    bundle: "official"
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "ca_cert_pem names mode \"test\", but the bundle's mode is \"official\": test and official elections never mix"
        );

        // An official bundle carrying the test log's key.
        let mut official = bundle();
        let test_log =
            crate::tlog::LogKey::generate(&crate::tlog::origin("beichen-2021", "test")).unwrap();
        official.log_key = Some(test_log.verifier_text().to_owned());
        let err = official.check().unwrap_err();
        assert!(
            matches!(&err, BundleCheckError::LogKey { origin } if origin == "pollsync/beichen-2021/official"),
            "{err}"
        );
        let right = crate::tlog::LogKey::generate(&crate::tlog::origin("beichen-2021", "official"))
            .unwrap();
        official.log_key = Some(right.verifier_text().to_owned());
        official.check().unwrap();
    }

    /// The center's address list: 1 to MAX_CENTER_ADDRESSES distinct HOST:PORT
    /// entries, each refusal naming the entry.
    #[test]
    fn center_addresses_are_checked() {
        let with = |addresses: &[&str]| {
            let mut b = bundle();
            b.center_addresses = addresses.iter().map(|a| (*a).to_owned()).collect();
            b.check()
        };
        with(&[
            "10.0.0.5:7443",
            "10.0.0.6:7443",
            "[::1]:7443",
            "center.example:443",
        ])
        .unwrap();

        let err = with(&[]).unwrap_err();
        assert!(matches!(err, BundleCheckError::NoCenterAddress), "{err}");
        assert_eq!(
            err.to_string(),
            "center_addresses is empty: at least one HOST:PORT is needed"
        );

        let many: Vec<String> = (0..=MAX_CENTER_ADDRESSES)
            .map(|i| format!("10.0.0.{i}:7443"))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        with(&refs[..MAX_CENTER_ADDRESSES]).unwrap();
        let err = with(&refs).unwrap_err();
        assert!(
            matches!(err, BundleCheckError::TooManyCenterAddresses { count } if count == MAX_CENTER_ADDRESSES + 1),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "center_addresses lists 9 addresses, more than the 8 allowed"
        );

        let err = with(&[
            "10.0.0.5:7443",
            "Center.Example:7443",
            "center.example:7443",
        ])
        .unwrap_err();
        assert!(
            matches!(
                &err,
                BundleCheckError::DuplicateCenterAddress {
                    index: 2,
                    first: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "center_addresses[2] \"center.example:7443\" repeats center_addresses[1]"
        );

        for (bad, reason) in [
            ("", "it is empty"),
            ("10.0.0.5", "no :PORT"),
            (":7443", "no host before :PORT"),
            ("10.0.0.5:0", "the port is not a number from 1 to 65535"),
            ("10.0.0.5:http", "the port is not a number from 1 to 65535"),
            ("10.0.0.5:70000", "the port is not a number from 1 to 65535"),
            ("::1:7443", "an IPv6 host goes in brackets, [::1]:7443"),
            ("10.0.0.5 :7443", "it holds a space or a control character"),
        ] {
            let err = with(&["10.0.0.9:7443", bad]).unwrap_err();
            assert!(
                matches!(
                    &err,
                    BundleCheckError::CenterAddress { index: 1, reason: r, .. } if *r == reason
                ),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().starts_with("center_addresses[1] "), "{err}");
        }
        // Shown escaped: a terminal is never handed control characters.
        let err = with(&["a\u{1b}[2J:1"]).unwrap_err();
        assert!(err.to_string().contains("\\\\u{1b}"), "{err}");
    }

    /// The JSON key is `center_addresses`, a list.
    #[test]
    fn center_addresses_travel_as_a_json_list() {
        let b = bundle();
        let json: serde_json::Value = serde_json::to_value(&b).unwrap();
        assert_eq!(
            json["center_addresses"],
            serde_json::json!(["127.0.0.1:7443"])
        );
        assert!(json.get("center_address").is_none());
        assert_eq!(b.first_center_address(), "127.0.0.1:7443");
    }
}
