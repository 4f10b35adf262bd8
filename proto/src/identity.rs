//! Certificates of an election: the election CA, the center's server certificate
//! and each station's client certificate, all Ed25519 (rcgen), and reading a
//! station's identity and public key back from a certificate (x509-parser).
//!
//! A station's single Ed25519 key both authenticates its TLS connection and signs
//! its batches, so the key that verifies batches is read from the certificate the
//! center issued ([`verifying_key_from_cert_der`]).
//!
//! Certificate profile (see docs/PROTOCOL.md):
//! - CA: CN `pollsync election CA <election>`, O `pollsync`, OU `<election>`,
//!   SAN URI `urn:pollsync:mode:<mode>`, basicConstraints CA (path length 0),
//!   keyCertSign + cRLSign.
//! - center: CN `pollsync center <election>`, SAN = advertised hosts + `localhost`
//!   + `127.0.0.1` + the mode URI, EKU serverAuth.
//! - station: CN `<station id>`, OU `<election>`, SAN URIs
//!   `urn:pollsync:station:<station id>` and `urn:pollsync:mode:<mode>`, EKU
//!   clientAuth.
//!
//! The mode (`official` or `test`, the definition's `[election] mode`) is in every
//! certificate so that a test election's identities are never taken for an
//! official one's ([`mode_from_cert_der`]).
//!
//! Validity runs from 2000-01-01 so that a polling-station device whose clock is
//! wrong still connects on election day; leaves end 5 years after issue, the CA 10.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_SIG_ED25519;

use pollsync_election::Mode;

use crate::limits::MAX_ID_BYTES;

/// Prefix of the station's SAN URI; the station id follows.
pub const STATION_URI_PREFIX: &str = "urn:pollsync:station:";

/// Prefix of the SAN URI naming the election's mode in every certificate;
/// `official` or `test` follows.
pub const MODE_URI_PREFIX: &str = "urn:pollsync:mode:";

/// Organisation (O) of every pollsync certificate.
pub const ORGANIZATION: &str = "pollsync";

/// Errors about keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// rcgen could not generate a key or certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Not a PEM certificate.
    #[error("not a PEM certificate: {0}")]
    CertPem(String),
    /// Not a DER X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    CertDer(String),
    /// The certificate has no (or an empty) common name.
    #[error("certificate has no common name (CN)")]
    NoCommonName,
    /// The certificate's key is not Ed25519.
    #[error("certificate key is not Ed25519 (algorithm {0})")]
    NotEd25519(String),
    /// The certificate's Ed25519 key is malformed or weak.
    #[error("certificate holds an invalid or weak Ed25519 public key")]
    BadPublicKey,
    /// Not a PKCS#8 Ed25519 private key in PEM.
    #[error("not a PKCS#8 PEM Ed25519 private key: {0}")]
    KeyPem(String),
    /// Private key and certificate do not belong together.
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    /// A certificate was not issued by the expected CA.
    #[error("certificate was not issued by this election's CA: {0}")]
    NotIssuedByCa(String),
    /// The certificate does not name an election.
    #[error("certificate names no election (no OU in its subject)")]
    NoElection,
    /// The certificate does not name its election's mode, or names more than one.
    #[error(
        "certificate names no election mode (exactly one SAN URI urn:pollsync:mode:official or urn:pollsync:mode:test)"
    )]
    NoMode,
    /// An id that cannot go into a certificate.
    #[error("invalid {what} {value:?}: use 1 to {MAX_ID_BYTES} characters from A-Z a-z 0-9 . _ -")]
    InvalidId {
        /// "election id" or "station id".
        what: &'static str,
        /// The id given.
        value: String,
    },
    /// A host name that cannot go into a certificate.
    #[error("invalid host name {0:?} for the server certificate")]
    InvalidHost(String),
    /// The system has no randomness.
    #[error("no system randomness: {0}")]
    Random(String),
}

/// A certificate and its private key, both PEM. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKeyPem {
    /// The certificate (PEM, `CERTIFICATE`).
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8 `PRIVATE KEY`).
    pub key_pem: String,
}

impl fmt::Debug for CertifiedKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKeyPem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The election's certificate authority.
pub struct ElectionCa {
    election_id: String,
    mode: Mode,
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ElectionCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElectionCa")
            .field("election_id", &self.election_id)
            .field("mode", &self.mode)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn check_id(what: &'static str, value: &str) -> Result<(), IdentityError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_BYTES
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::InvalidId {
            what,
            value: value.to_owned(),
        })
    }
}

fn random_serial() -> Result<SerialNumber, IdentityError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| IdentityError::Random(e.to_string()))?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte to strip
    Ok(SerialNumber::from_slice(&bytes))
}

/// Base parameters: validity from 2000-01-01 to `years` years from now, random serial.
fn base_params(years: u64) -> Result<CertificateParams, IdentityError> {
    let mut params = CertificateParams::default();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    params.not_after =
        rcgen::date_time_ymd(1970, 1, 1) + now + Duration::from_secs(years * 365 * 24 * 3600);
    params.serial_number = Some(random_serial()?);
    params.distinguished_name = DistinguishedName::new();
    Ok(params)
}

fn new_key() -> Result<KeyPair, IdentityError> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ED25519)?)
}

fn mode_san(mode: Mode) -> Result<SanType, IdentityError> {
    let uri = format!("{MODE_URI_PREFIX}{}", mode.as_str());
    Ok(SanType::URI(uri.as_str().try_into()?))
}

impl ElectionCa {
    /// Creates a new CA (new Ed25519 key) for `election_id` in `mode`.
    pub fn generate(election_id: &str, mode: Mode) -> Result<Self, IdentityError> {
        check_id("election id", election_id)?;
        let key = new_key()?;
        let mut params = base_params(10)?;
        params.distinguished_name.push(
            DnType::CommonName,
            format!("pollsync election CA {election_id}"),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANIZATION);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, election_id);
        params.subject_alt_names = vec![mode_san(mode)?];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let cert_der = cert.der().to_vec();
        let key_pem = key.serialize_pem();
        Ok(Self {
            election_id: election_id.to_owned(),
            mode,
            cert_pem,
            key_pem,
            cert_der,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA saved with [`ElectionCa::cert_pem`] and [`ElectionCa::key_pem`];
    /// checks that the key belongs to the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, IdentityError> {
        let cert_der = cert_der_from_pem(cert_pem)?;
        let cert = parse_cert(&cert_der)?;
        let election_id = election_of(&cert)?;
        let mode = mode_of(&cert)?;
        let signing = signing_key_from_pem(key_pem)?;
        if signing.verifying_key() != verifying_key_of(&cert)? {
            return Err(IdentityError::KeyMismatch);
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| IdentityError::KeyPem(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)?;
        Ok(Self {
            election_id,
            mode,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_der,
            issuer,
        })
    }

    /// The election this CA serves.
    pub fn election_id(&self) -> &str {
        &self.election_id
    }

    /// Whether this CA's election is official or a test.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The CA certificate (PEM): the trust root of both ends.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key (PKCS#8 PEM). Keep it on the center only.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues the center's server certificate. SANs: each host (an IP address
    /// becomes an IP SAN, `[v6]` brackets and a `:port` suffix are removed),
    /// then `localhost` and `127.0.0.1`, without duplicates; and the mode URI.
    pub fn issue_server(&self, hosts: &[String]) -> Result<CertifiedKeyPem, IdentityError> {
        let mut names: Vec<String> = Vec::new();
        for host in hosts
            .iter()
            .map(|h| server_name_of(h))
            .chain(["localhost".to_owned(), "127.0.0.1".to_owned()])
        {
            if host.is_empty() {
                return Err(IdentityError::InvalidHost(host));
            }
            let host = host.to_ascii_lowercase();
            if !names.contains(&host) {
                names.push(host);
            }
        }
        let mut params = base_params(5)?;
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => name
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| IdentityError::InvalidHost(name.clone())),
            })
            .collect::<Result<_, _>>()?;
        params.subject_alt_names.push(mode_san(self.mode)?);
        params.distinguished_name.push(
            DnType::CommonName,
            format!("pollsync center {}", self.election_id),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANIZATION);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, self.election_id.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        self.sign_leaf(params)
    }

    /// Issues a station's client certificate with a new Ed25519 key: CN = station
    /// id, SAN URIs `urn:pollsync:station:<id>` and `urn:pollsync:mode:<mode>`.
    pub fn issue_station(&self, station_id: &str) -> Result<CertifiedKeyPem, IdentityError> {
        check_id("station id", station_id)?;
        let mut params = base_params(5)?;
        params
            .distinguished_name
            .push(DnType::CommonName, station_id);
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANIZATION);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, self.election_id.as_str());
        let uri = format!("{STATION_URI_PREFIX}{station_id}");
        params.subject_alt_names =
            vec![SanType::URI(uri.as_str().try_into()?), mode_san(self.mode)?];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        self.sign_leaf(params)
    }

    fn sign_leaf(&self, params: CertificateParams) -> Result<CertifiedKeyPem, IdentityError> {
        let key = new_key()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKeyPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Checks that `cert_der` was signed by this CA.
    pub fn verify_issued(&self, cert_der: &[u8]) -> Result<(), IdentityError> {
        verify_issued_by(cert_der, &self.cert_der)
    }
}

/// The host part of an address for certificate names and TLS server names:
/// `"10.0.0.5:7443"` → `"10.0.0.5"`, `"[::1]:7443"` → `"::1"`,
/// `"center.example:7443"` → `"center.example"`; a bare host is returned as is.
pub fn server_name_of(address: &str) -> String {
    let address = address.trim();
    if address.parse::<IpAddr>().is_ok() {
        return address.to_owned();
    }
    if let Some(rest) = address.strip_prefix('[')
        && let Some((inner, _)) = rest.split_once(']')
    {
        return inner.to_owned();
    }
    if let Ok(sock) = address.parse::<std::net::SocketAddr>() {
        return sock.ip().to_string();
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.to_owned()
        }
        _ => address.to_owned(),
    }
}

/// Decodes the first `CERTIFICATE` block of a PEM text to DER.
pub fn cert_der_from_pem(cert_pem: &str) -> Result<Vec<u8>, IdentityError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| IdentityError::CertPem(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(IdentityError::CertPem(format!(
            "PEM block is {:?}, expected CERTIFICATE",
            pem.label
        )));
    }
    Ok(pem.contents)
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::CertDer(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IdentityError::CertDer(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// The station id of a station certificate: its subject common name (CN).
pub fn station_id_from_cert_der(cert_der: &[u8]) -> Result<String, IdentityError> {
    let cert = parse_cert(cert_der)?;
    common_name(&cert)
}

fn common_name(cert: &X509Certificate<'_>) -> Result<String, IdentityError> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(IdentityError::NoCommonName)
}

/// The station id in the certificate's `urn:pollsync:station:` SAN URI, if any.
pub fn station_uri_from_cert_der(cert_der: &[u8]) -> Result<Option<String>, IdentityError> {
    let cert = parse_cert(cert_der)?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::CertDer(e.to_string()))?;
    Ok(sans.and_then(|ext| {
        ext.value.general_names.iter().find_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(STATION_URI_PREFIX).map(str::to_owned),
            _ => None,
        })
    }))
}

/// The election a pollsync certificate (CA, center or station) belongs to: its
/// subject's organizational unit (OU).
pub fn election_id_from_cert_der(cert_der: &[u8]) -> Result<String, IdentityError> {
    let cert = parse_cert(cert_der)?;
    election_of(&cert)
}

fn election_of(cert: &X509Certificate<'_>) -> Result<String, IdentityError> {
    cert.subject()
        .iter_organizational_unit()
        .next()
        .and_then(|ou| ou.as_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(IdentityError::NoElection)
}

/// The Ed25519 public key of a certificate (its SubjectPublicKeyInfo), which
/// verifies the batches of the station the certificate names.
pub fn verifying_key_from_cert_der(cert_der: &[u8]) -> Result<VerifyingKey, IdentityError> {
    let cert = parse_cert(cert_der)?;
    verifying_key_of(&cert)
}

fn verifying_key_of(cert: &X509Certificate<'_>) -> Result<VerifyingKey, IdentityError> {
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(IdentityError::NotEd25519(
            spki.algorithm.algorithm.to_id_string(),
        ));
    }
    let bytes: &[u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| IdentityError::BadPublicKey)?;
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| IdentityError::BadPublicKey)?;
    if key.is_weak() {
        return Err(IdentityError::BadPublicKey);
    }
    Ok(key)
}

/// The mode of a pollsync certificate (CA, center or station): its one
/// `urn:pollsync:mode:` SAN URI, which must name `official` or `test`.
pub fn mode_from_cert_der(cert_der: &[u8]) -> Result<Mode, IdentityError> {
    let cert = parse_cert(cert_der)?;
    mode_of(&cert)
}

fn mode_of(cert: &X509Certificate<'_>) -> Result<Mode, IdentityError> {
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::CertDer(e.to_string()))?;
    let mut words = sans.iter().flat_map(|ext| {
        ext.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => uri.strip_prefix(MODE_URI_PREFIX),
                _ => None,
            })
    });
    match (words.next().and_then(Mode::from_word), words.next()) {
        (Some(mode), None) => Ok(mode),
        _ => Err(IdentityError::NoMode),
    }
}

/// Checks that `cert_der` carries a valid signature by the key of `ca_cert_der`.
pub fn verify_issued_by(cert_der: &[u8], ca_cert_der: &[u8]) -> Result<(), IdentityError> {
    let cert = parse_cert(cert_der)?;
    let ca = parse_cert(ca_cert_der)?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| IdentityError::NotIssuedByCa(e.to_string()))
}

/// The Ed25519 signing key in a PKCS#8 PEM (`PRIVATE KEY`) as rcgen writes it.
pub fn signing_key_from_pem(key_pem: &str) -> Result<SigningKey, IdentityError> {
    SigningKey::from_pkcs8_pem(key_pem).map_err(|e| IdentityError::KeyPem(e.to_string()))
}

/// Checks that `key_pem` is the private key of the certificate `cert_der`.
pub fn check_key_matches_cert(key_pem: &str, cert_der: &[u8]) -> Result<SigningKey, IdentityError> {
    let key = signing_key_from_pem(key_pem)?;
    if key.verifying_key() != verifying_key_from_cert_der(cert_der)? {
        return Err(IdentityError::KeyMismatch);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope;

    #[test]
    fn station_cert_carries_id_and_signing_key() {
        let ca = ElectionCa::generate("beichen-2021", Mode::Official).unwrap();
        let station = ca.issue_station("S-0001").unwrap();
        let der = cert_der_from_pem(&station.cert_pem).unwrap();
        assert_eq!(station_id_from_cert_der(&der).unwrap(), "S-0001");
        assert_eq!(
            station_uri_from_cert_der(&der).unwrap().as_deref(),
            Some("S-0001")
        );
        ca.verify_issued(&der).unwrap();

        // The station's TLS key signs batches; the certificate's key verifies them.
        let signing = signing_key_from_pem(&station.key_pem).unwrap();
        let signed = crate::chain::ChainWriter::new(
            "beichen-2021",
            Mode::Official,
            "S-0001",
            [1; 32],
            signing,
            envelope::ChainHead::GENESIS,
        )
        .next(vec![]);
        let key = verifying_key_from_cert_der(&der).unwrap();
        envelope::verify_batch(&key, &signed).unwrap();
        check_key_matches_cert(&station.key_pem, &der).unwrap();

        let other = ca.issue_station("S-0002").unwrap();
        assert!(matches!(
            check_key_matches_cert(&other.key_pem, &der),
            Err(IdentityError::KeyMismatch)
        ));
        assert!(format!("{station:?}").contains("<redacted>"));
        assert!(!format!("{station:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn ca_roundtrips_through_pem_and_keeps_issuing() {
        let ca = ElectionCa::generate("e-1", Mode::Official).unwrap();
        let again = ElectionCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(again.election_id(), "e-1");
        let station = again.issue_station("S-7").unwrap();
        let der = cert_der_from_pem(&station.cert_pem).unwrap();
        ca.verify_issued(&der).unwrap();
        let other_ca = ElectionCa::generate("e-1", Mode::Official).unwrap();
        assert!(matches!(
            other_ca.verify_issued(&der),
            Err(IdentityError::NotIssuedByCa(_))
        ));
        assert!(matches!(
            ElectionCa::from_pem(ca.cert_pem(), other_ca.key_pem()),
            Err(IdentityError::KeyMismatch)
        ));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn server_cert_sans_are_hosts_plus_loopback_deduplicated() {
        let ca = ElectionCa::generate("e-1", Mode::Official).unwrap();
        let server = ca
            .issue_server(&[
                "center.example".into(),
                "10.1.2.3:7443".into(),
                "[::1]:7443".into(),
                "localhost".into(),
                "127.0.0.1".into(),
            ])
            .unwrap();
        let der = cert_der_from_pem(&server.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => format!("IP:{}", IpAddr::from(<[u8; 4]>::try_from(*b).unwrap())),
                    _ => format!("IP:{}", IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
                },
                GeneralName::URI(u) => format!("URI:{u}"),
                other => format!("{other}"),
            })
            .collect();
        assert_eq!(
            sans,
            [
                "DNS:center.example",
                "IP:10.1.2.3",
                "IP:::1",
                "DNS:localhost",
                "IP:127.0.0.1",
                "URI:urn:pollsync:mode:official",
            ]
        );
    }

    /// Every certificate of a test election says so, and reads back as such; a
    /// certificate naming no mode, or two, is refused.
    #[test]
    fn every_certificate_names_the_mode() {
        for mode in [Mode::Official, Mode::Test] {
            let ca = ElectionCa::generate("e-1", mode).unwrap();
            assert_eq!(mode_from_cert_der(ca.cert_der()).unwrap(), mode);
            let again = ElectionCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
            assert_eq!(again.mode(), mode);
            for pem in [
                ca.issue_station("S-1").unwrap().cert_pem,
                ca.issue_server(&["center.example".into()])
                    .unwrap()
                    .cert_pem,
            ] {
                let der = cert_der_from_pem(&pem).unwrap();
                assert_eq!(mode_from_cert_der(&der).unwrap(), mode);
            }
        }
        let key = new_key().unwrap();
        let mut bare = base_params(1).unwrap();
        bare.distinguished_name.push(DnType::CommonName, "S-1");
        let cert = bare.self_signed(&key).unwrap();
        assert!(matches!(
            mode_from_cert_der(cert.der()),
            Err(IdentityError::NoMode)
        ));
        let mut both = base_params(1).unwrap();
        both.subject_alt_names = vec![
            mode_san(Mode::Official).unwrap(),
            mode_san(Mode::Test).unwrap(),
        ];
        let cert = both.self_signed(&key).unwrap();
        assert!(matches!(
            mode_from_cert_der(cert.der()),
            Err(IdentityError::NoMode)
        ));
        let mut odd = base_params(1).unwrap();
        odd.subject_alt_names = vec![SanType::URI(
            "urn:pollsync:mode:practice".try_into().unwrap(),
        )];
        let cert = odd.self_signed(&key).unwrap();
        assert!(matches!(
            mode_from_cert_der(cert.der()),
            Err(IdentityError::NoMode)
        ));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let ca = ElectionCa::generate("e-1", Mode::Official).unwrap();
        assert!(matches!(
            ca.issue_station(""),
            Err(IdentityError::InvalidId { .. })
        ));
        assert!(matches!(
            ca.issue_station("a b"),
            Err(IdentityError::InvalidId { .. })
        ));
        assert!(matches!(
            ElectionCa::generate("x/y", Mode::Official),
            Err(IdentityError::InvalidId { .. })
        ));
        assert!(matches!(
            cert_der_from_pem("nope"),
            Err(IdentityError::CertPem(_))
        ));
        assert!(matches!(
            station_id_from_cert_der(b"nope"),
            Err(IdentityError::CertDer(_))
        ));
        assert!(matches!(
            signing_key_from_pem("nope"),
            Err(IdentityError::KeyPem(_))
        ));
        assert!(matches!(
            cert_der_from_pem(ca.key_pem()),
            Err(IdentityError::CertPem(_))
        ));
    }

    #[test]
    fn server_name_of_strips_ports_and_brackets() {
        assert_eq!(server_name_of("127.0.0.1:7443"), "127.0.0.1");
        assert_eq!(server_name_of("[::1]:7443"), "::1");
        assert_eq!(server_name_of("::1"), "::1");
        assert_eq!(server_name_of("center.example:7443"), "center.example");
        assert_eq!(server_name_of("center.example"), "center.example");
    }
}
