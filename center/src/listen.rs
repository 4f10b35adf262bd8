//! The gRPC port's front door, before tonic sees a byte (SPEC §4, §13, G7):
//!
//! - TCP accept, backing off on accept errors (out of descriptors, say) instead of
//!   spinning;
//! - two caps, both sized from the process's descriptor limit (raised at start where
//!   the hard limit allows): connections still in their TLS handshake, and
//!   connections in all. A connection over either cap is closed at once, so idle or
//!   half-open sockets can never use up the descriptors that honest stations, the
//!   store and the operators' HTTP need;
//! - TCP keepalive on every accepted socket, and a TLS handshake that must finish
//!   within [`HANDSHAKE_TIMEOUT_MS`];
//! - TLS 1.3 only, a client certificate of the election CA required
//!   (`pollsync_proto::tls::server_rustls_config`).
//!
//! What passes is an [`Admitted`] stream that carries tonic's connection info (the
//! peer's certificates) and holds its connection slot until tonic drops it.
//!
//! What is turned away is counted (`ListenStats`) and logged at warn (accept errors
//! at error), at most [`TURNED_AWAY_LOGS_PER_WINDOW`] a minute: anyone who reaches
//! the port can provoke these.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::ingest::IngestHandle;
use crate::ingest::events::ListenStats;
use crate::logging::{Throttle, text};

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Idle time before the kernel probes a silent TCP peer, and between probes.
pub const TCP_KEEPALIVE_MS: u64 = 20_000;
/// Longest pause after accept errors (doubling from [`ACCEPT_BACKOFF_MIN_MS`]).
pub const ACCEPT_BACKOFF_MAX_MS: u64 = 1_000;
/// First pause after an accept error.
pub const ACCEPT_BACKOFF_MIN_MS: u64 = 5;
/// Descriptors kept for everything but station connections (store, WAL, HTTP
/// clients, logs).
pub const RESERVED_DESCRIPTORS: u64 = 256;
/// The descriptor limit the center asks for at start (the hard limit caps it).
pub const WANTED_DESCRIPTORS: u64 = 1 << 16;
/// Handshakes in progress at most, whatever the descriptor limit.
pub const MAX_HANDSHAKES_CEILING: usize = 1_024;
/// Connections turned away that are logged per minute at most (the rest are
/// counted in the metrics, and their number is told with the next one logged).
pub const TURNED_AWAY_LOGS_PER_WINDOW: u64 = 30;
static TURNED_AWAY_LOGS: Throttle = Throttle::new(TURNED_AWAY_LOGS_PER_WINDOW, 60_000);

/// Which door: the stations' gRPC port counts in the ingest's metrics, the
/// operators' HTTPS port does not.
fn door(ingest: Option<&IngestHandle>) -> &'static str {
    if ingest.is_some() {
        "stations"
    } else {
        "operators"
    }
}

/// Admitted streams waiting for tonic to pick them up.
const ADMITTED_QUEUE: usize = 64;

/// The two connection caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections whose TLS handshake is in progress.
    pub max_handshakes: usize,
    /// Connections in all (handshaking or established).
    pub max_connections: usize,
}

impl Limits {
    /// Caps sized from a descriptor limit: [`RESERVED_DESCRIPTORS`] kept aside, an
    /// eighth of the rest (at most [`MAX_HANDSHAKES_CEILING`], at least 8) for
    /// handshakes, the rest for connections.
    pub fn for_descriptors(descriptors: u64) -> Limits {
        let usable = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(16);
        let usable = usize::try_from(usable).unwrap_or(usize::MAX);
        let max_handshakes = (usable / 8).clamp(8, MAX_HANDSHAKES_CEILING);
        Limits {
            max_handshakes,
            max_connections: usable.max(max_handshakes),
        }
    }

    /// Raises this process's descriptor limit towards [`WANTED_DESCRIPTORS`] (as far
    /// as the hard limit allows) and sizes the caps from what it got.
    pub fn from_process() -> Limits {
        let got = rlimit::increase_nofile_limit(WANTED_DESCRIPTORS)
            .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
            .unwrap_or(1_024);
        Limits::for_descriptors(got)
    }
}

/// A TLS 1.3 connection that passed the handshake, holding its connection slot.
pub struct Admitted {
    io: TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Admitted {
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepts on `listener` until the returned stream is dropped, and yields every
/// connection that completes a TLS 1.3 handshake with a client certificate of the
/// election CA, within `limits`; `ingest`'s metrics count what is turned away.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    ingest: IngestHandle,
) -> impl Stream<Item = Result<Admitted, io::Error>> + Send + 'static {
    ReceiverStream::new(accept_tls(listener, tls, limits, Some(ingest))).map(|(io, _)| Ok(io))
}

/// The accepting loop under [`incoming`] and the operators' HTTPS: every
/// connection within `limits` that completes its handshake under `tls` in time,
/// with its peer address, until the receiver is dropped. `ingest`, if given,
/// counts what is turned away.
pub(crate) fn accept_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    ingest: Option<IngestHandle>,
) -> mpsc::Receiver<(Admitted, SocketAddr)> {
    let (tx, rx) = mpsc::channel(ADMITTED_QUEUE);
    tokio::spawn(accept_loop(
        listener,
        TlsAcceptor::from(tls),
        limits,
        ingest,
        tx,
    ));
    rx
}

/// Counts one thing turned away in `ingest`'s metrics, if there are any.
fn count(ingest: Option<&IngestHandle>, counter: fn(&ListenStats) -> &AtomicU64) {
    if let Some(ingest) = ingest {
        counter(&ingest.metrics().listen).fetch_add(1, Ordering::Relaxed);
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Limits,
    ingest: Option<IngestHandle>,
    tx: mpsc::Sender<(Admitted, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff_ms = ACCEPT_BACKOFF_MIN_MS;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff_ms = ACCEPT_BACKOFF_MIN_MS;
                accepted
            }
            Err(e) => {
                count(ingest.as_ref(), |s| &s.accept_errors);
                if let Some(suppressed) = TURNED_AWAY_LOGS.admit() {
                    tracing::error!(
                        door = door(ingest.as_ref()),
                        error = %e,
                        retry_in_ms = backoff_ms,
                        suppressed,
                        "accept failed"
                    );
                }
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(ACCEPT_BACKOFF_MAX_MS);
                continue;
            }
        };
        let (Ok(slot), Ok(handshaking)) = (
            Arc::clone(&connections).try_acquire_owned(),
            Arc::clone(&handshakes).try_acquire_owned(),
        ) else {
            count(ingest.as_ref(), |s| &s.refused_over_cap);
            if let Some(suppressed) = TURNED_AWAY_LOGS.admit() {
                tracing::warn!(
                    door = door(ingest.as_ref()),
                    peer = %peer,
                    max_connections = limits.max_connections,
                    max_handshakes = limits.max_handshakes,
                    suppressed,
                    "connection refused: a connection cap is reached"
                );
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_millis(TCP_KEEPALIVE_MS))
            .with_interval(Duration::from_millis(TCP_KEEPALIVE_MS));
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        let ingest = ingest.clone();
        tokio::spawn(async move {
            let wait = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
            match tokio::time::timeout(wait, acceptor.accept(tcp)).await {
                Ok(Ok(io)) => {
                    drop(handshaking);
                    let _ = tx.send((Admitted { io, _slot: slot }, peer)).await;
                }
                Ok(Err(e)) => {
                    count(ingest.as_ref(), |s| &s.handshake_failures);
                    if let Some(suppressed) = TURNED_AWAY_LOGS.admit() {
                        tracing::warn!(
                            door = door(ingest.as_ref()),
                            peer = %peer,
                            reason = text(&e.to_string()),
                            suppressed,
                            "connection refused at the TLS handshake"
                        );
                    }
                }
                Err(_) => {
                    count(ingest.as_ref(), |s| &s.handshake_timeouts);
                    if let Some(suppressed) = TURNED_AWAY_LOGS.admit() {
                        tracing::warn!(
                            door = door(ingest.as_ref()),
                            peer = %peer,
                            timeout_ms = HANDSHAKE_TIMEOUT_MS,
                            suppressed,
                            "connection refused: the TLS handshake took too long"
                        );
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_descriptors_aside_and_bound_handshakes() {
        let l = Limits::for_descriptors(1_024);
        assert_eq!(l.max_handshakes, 96);
        assert_eq!(l.max_connections, 768);
        assert!(l.max_connections as u64 + RESERVED_DESCRIPTORS <= 1_024);
        let big = Limits::for_descriptors(1 << 20);
        assert_eq!(big.max_handshakes, MAX_HANDSHAKES_CEILING);
        let tiny = Limits::for_descriptors(10);
        assert!(tiny.max_handshakes >= 8 && tiny.max_connections >= tiny.max_handshakes);
    }
}
