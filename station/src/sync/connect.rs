//! How a station reaches its center: TCP with `TCP_NODELAY`, then **TLS 1.3 only**
//! (SPEC §4) with the station's certificate, the election CA as the only root and
//! the center checked by the host actually dialled; gRPC (HTTP/2) runs over that.
//! A station has one link per center address (fail-over, SPEC §11).
//! tonic's own TLS would also offer TLS 1.2, so the handshake is done here and
//! tonic is handed the finished stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use pollsync_proto::{identity, tls};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::client::{CONNECT_TIMEOUT_MS, KEEPALIVE_INTERVAL_MS, KEEPALIVE_TIMEOUT_MS, SyncError};
use crate::store::Provisioned;

/// The station's way to its center at one address: the endpoint (timeouts,
/// keepalive) and the TLS 1.3 connector under it.
#[derive(Clone)]
pub struct CenterLink {
    address: String,
    endpoint: Endpoint,
    connector: Connector,
}

impl CenterLink {
    /// One link per center address the station has (the bundle's, or those `station
    /// init --center` gave), in the station's order.
    pub fn for_station(prov: &Provisioned) -> Result<Vec<CenterLink>, SyncError> {
        prov.center_addresses
            .iter()
            .map(|address| CenterLink::for_address(prov, address))
            .collect()
    }

    /// For the center at `address` (`HOST:PORT`), checked by that host's name.
    pub fn for_address(prov: &Provisioned, address: &str) -> Result<CenterLink, SyncError> {
        tls::install_crypto_provider();
        let center = address;
        let b = &prov.bundle;
        let bad = |reason: String| SyncError::BadAddress {
            address: center.to_owned(),
            reason,
        };
        let config =
            tls::client_rustls_config(&b.ca_cert_pem, &b.station_cert_pem, &b.station_key_pem)
                .map_err(|e| bad(e.to_string()))?;
        let name = ServerName::try_from(identity::server_name_of(center))
            .map_err(|e| bad(format!("not a server name: {e}")))?;
        let endpoint = Endpoint::from_shared(format!("http://{center}"))
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_millis(KEEPALIVE_INTERVAL_MS))
            .keep_alive_timeout(Duration::from_millis(KEEPALIVE_TIMEOUT_MS))
            .keep_alive_while_idle(true)
            .http2_adaptive_window(true);
        Ok(CenterLink {
            address: center.to_owned(),
            endpoint,
            connector: Connector {
                tls: TlsConnector::from(Arc::new(config)),
                name,
            },
        })
    }

    /// The center's address this link dials.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A new connection: TCP, TLS 1.3, HTTP/2.
    pub async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        self.endpoint
            .connect_with_connector(self.connector.clone())
            .await
    }
}

/// Dials the URI's host and port and completes a TLS 1.3 handshake.
#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
    name: ServerName<'static>,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (tls, name) = (self.tls.clone(), self.name.clone());
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}
