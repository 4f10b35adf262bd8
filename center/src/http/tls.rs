//! HTTPS for the operators' side beyond loopback: the center's own certificate
//! (the one stations check), TLS 1.3, no client certificate (operators sign in with
//! their token). The gRPC port's accepting loop (`crate::listen`) runs it: each
//! handshake on its own task with its timeout, at most [`MAX_HANDSHAKES`] at once,
//! so a slow or silent client never holds up the others.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use pollsync_proto::tls::TlsSetupError;

use crate::listen::{Admitted, Limits, accept_tls};

/// Handshakes in progress at most.
pub const MAX_HANDSHAKES: usize = 64;

/// Accepts TCP connections and hands out those that completed a TLS handshake
/// (through the gRPC port's accepting loop, `crate::listen`).
pub struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(Admitted, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` with the certificate and key `cert_pem`,
    /// `key_pem`.
    pub fn new(
        listener: TcpListener,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, TlsSetupError> {
        let pem = |what: &'static str, e: rustls::pki_types::pem::Error| TlsSetupError::Pem {
            what,
            detail: e.to_string(),
        };
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem("server certificate", e))?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| pem("server key", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = listener.local_addr().map_err(|e| TlsSetupError::Pem {
            what: "listener",
            detail: e.to_string(),
        })?;
        // Handshakes bounded; connections only by the descriptors.
        let limits = Limits {
            max_handshakes: MAX_HANDSHAKES,
            max_connections: Semaphore::MAX_PERMITS,
        };
        let ready = accept_tls(listener, Arc::new(config), limits, None);
        Ok(TlsListener { addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Admitted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
