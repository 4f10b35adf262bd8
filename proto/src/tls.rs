//! Mutual TLS for tonic: server and client configurations from PEM texts, the
//! TCP listener wrapper with `TCP_NODELAY`, and reading the authenticated
//! station's identity and batch-verifying key from a request's client
//! certificate.
//!
//! Both ends use rustls with the ring provider. The server requires a client
//! certificate issued by the election CA; the client trusts only the election CA.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::identity;

/// Installs ring as rustls' process-wide crypto provider, unless one is already
/// installed. Call once at startup of any binary that uses TLS: with both ring
/// and aws-lc compiled in (a dependency enabling rustls defaults), rustls cannot
/// pick one by itself and tonic's server configuration would panic.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another installer is fine: one provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Why a TLS configuration cannot be built from the given PEM texts.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A certificate or key does not parse.
    #[error("{what}: {detail}")]
    Pem {
        /// Which PEM text.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn pem_certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Pem {
            what,
            detail: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

fn pem_key(what: &'static str, pem: &str) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsSetupError::Pem {
        what,
        detail: e.to_string(),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The center's TLS server configuration for its own acceptor: **TLS 1.3 only**, a
/// client certificate of the election CA required, ALPN `h2`.
pub fn server_rustls_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    ca_cert_pem: &str,
) -> Result<rustls::ServerConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certs("CA certificate", ca_cert_pem)? {
        roots.add(ca)?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pem_certs("server certificate", server_cert_pem)?,
            pem_key("server key", server_key_pem)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A station's TLS client configuration: **TLS 1.3 only**, the election CA as the
/// only root, the station's certificate and key as client identity, ALPN `h2`.
pub fn client_rustls_config(
    ca_cert_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certs("CA certificate", ca_cert_pem)? {
        roots.add(ca)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            pem_certs("station certificate", client_cert_pem)?,
            pem_key("station key", client_key_pem)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The center's TLS configuration: its certificate and key, and the election CA
/// as the only root for client certificates, which are required (tonic's own TLS,
/// which also offers TLS 1.2: for tests of fake servers only; `center serve` uses
/// [`server_rustls_config`]).
pub fn server_tls_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    ca_cert_pem: &str,
) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(server_cert_pem, server_key_pem))
        .client_ca_root(Certificate::from_pem(ca_cert_pem))
        .client_auth_optional(false)
}

/// A station's TLS configuration: the election CA as the only root, the
/// station's certificate and key as client identity, and `server_name` (a DNS
/// name or IP address in the center certificate's SANs; see
/// [`identity::server_name_of`]).
pub fn client_tls_config(
    ca_cert_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
    server_name: &str,
) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_cert_pem))
        .identity(Identity::from_pem(client_cert_pem, client_key_pem))
        .domain_name(server_name)
}

/// Wraps a bound listener for `Server::serve_with_incoming` with `TCP_NODELAY`
/// set on every accepted connection (tonic's builder setting does not apply to
/// `serve_with_incoming`; without it small acknowledgements wait for Nagle).
pub fn tcp_incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The DER of the client certificate that authenticated this request (the first
/// certificate of the peer's chain).
pub fn peer_cert_der<T>(request: &Request<T>) -> Result<Vec<u8>, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate on this connection"))?;
    let first = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate on this connection"))?;
    Ok(first.as_ref().to_vec())
}

/// The authenticated station id (the client certificate's CN).
pub fn peer_station_id<T>(request: &Request<T>) -> Result<String, Status> {
    let der = peer_cert_der(request)?;
    identity::station_id_from_cert_der(&der)
        .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))
}

/// The authenticated station id and the Ed25519 key that verifies its batches,
/// both from the client certificate.
pub fn peer_station<T>(request: &Request<T>) -> Result<(String, VerifyingKey), Status> {
    let der = peer_cert_der(request)?;
    let id = identity::station_id_from_cert_der(&der)
        .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
    let key = identity::verifying_key_from_cert_der(&der)
        .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
    Ok((id, key))
}
