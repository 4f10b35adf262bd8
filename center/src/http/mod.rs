//! The operators' HTTP side of `center serve --http ADDR` (SPEC §8): a dashboard
//! page that updates live, a JSON API (`/api/status`, `/api/results`,
//! `/api/alerts`), a live event stream (`/api/events`, server-sent events) and
//! Prometheus metrics (`/metrics`).
//!
//! The views are computed from the store exactly as `center status|results|alerts`
//! compute them (the same functions), so the dashboard and the command line can
//! never disagree; events come from the ingest and are sent only once the batch
//! they describe is durable. On a loopback address no token is needed; bound
//! anywhere else, the side is served over HTTPS with the center's certificate and
//! every request must carry the operators' token or a session cookie signed in with
//! it (`auth`). Every request's `Host` must name this center; at most
//! [`MAX_EVENT_STREAMS`] event streams are open at once.

mod api;
mod auth;
mod events;
mod log;
mod metrics;
mod tls;

use crate::store::StoreLocation;
use crate::store::pool::StorePool;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::ingest::IngestHandle;

pub use auth::{Token, TokenError};

/// Store-reading API requests served at once; more wait their turn, so a page
/// refreshed by many operators cannot take the machine from the ingest.
pub const MAX_CONCURRENT_VIEWS: usize = 4;
/// Longest a request may take before it is answered 503.
pub const VIEW_TIMEOUT_MS: u64 = 30_000;
/// Event streams (`/api/events`) open at once; more are answered 503.
pub const MAX_EVENT_STREAMS: usize = 64;

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    /// Open stores for the readers (as many as their permits).
    store: Arc<StorePool>,
    ingest: IngestHandle,
    views: Arc<Semaphore>,
    token: Option<Arc<Token>>,
    /// Signed-in sessions.
    sessions: Arc<auth::Sessions>,
    /// Host names (no port, lower case) a request may name.
    hosts: Arc<Vec<String>>,
    /// Served over HTTPS (session cookies are `Secure`).
    https: bool,
    /// Event streams open.
    streams: Arc<Semaphore>,
    /// Permits for the public log's reads.
    log_reads: Arc<Semaphore>,
    /// Turns true when the center stops (ends the event streams).
    stop: watch::Receiver<bool>,
}

/// How the operators' side is served.
#[derive(Default)]
pub struct HttpConfig {
    /// The operators' token (required beyond loopback).
    pub token: Option<Token>,
    /// HTTPS with this certificate and key (PEM); required beyond loopback.
    pub tls: Option<(String, String)>,
    /// Host names operators use to reach it, beyond the bound address and the
    /// loopback names (the advertised hosts, `--http-host`).
    pub hosts: Vec<String>,
}

/// Why the HTTP side could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Bound beyond loopback without an access token.
    #[error(
        "the operators' HTTP address {addr} is not a loopback address: set an access token (POLLSYNC_HTTP_TOKEN or --http-token-file FILE) so that only operators can read it"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Bound beyond loopback without a certificate for HTTPS.
    #[error(
        "the operators' HTTP address {addr} is not a loopback address: it is served over HTTPS only, and no certificate was given"
    )]
    HttpsRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The certificate and key for HTTPS could not be set up.
    #[error("HTTPS: {0}")]
    Tls(#[from] pollsync_proto::tls::TlsSetupError),
    /// The listener could not be bound or served.
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

/// The router: every route behind the token check (which passes when no token is
/// set, allowed only on loopback: see [`check_token`]).
fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/overview", get(api::overview))
        .route("/api/status", get(api::status))
        .route("/api/results", get(api::results))
        .route("/api/alerts", get(api::alerts))
        .route("/api/events", get(events::stream))
        .route("/metrics", get(metrics::render))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_access,
        ));
    // The page holds no data (it signs in, then reads the API).
    let open = Router::new()
        .route("/", get(api::dashboard))
        .route("/api/session", axum::routing::post(auth::sign_in))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_host,
        ));
    // The transparency log is public: no token, any host name (SPEC §8, §10).
    let public = Router::new()
        .route("/log/checkpoint", get(log::checkpoint))
        .route("/log/tile/{*path}", get(log::tile));
    protected.merge(open).merge(public).with_state(state)
}

/// The host names a request may name: loopback names, the bound address (unless
/// it is the unspecified address), and `extra`; lower case, without port.
fn allowed_hosts(addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
    if !addr.ip().is_unspecified() {
        hosts.push(match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        });
    }
    for h in extra {
        let h = h.trim().to_ascii_lowercase();
        if !h.is_empty() && !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts
}

/// Refuses to serve beyond loopback without a token. `center serve` calls it before
/// starting anything, and [`serve_http`] again for any other caller.
pub fn check_token(addr: SocketAddr, token: Option<&Token>) -> Result<(), HttpError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(HttpError::TokenRequired { addr });
    }
    Ok(())
}

/// Serve the operators' pages and API on `listener` until `shutdown` resolves
/// (plain HTTP, no extra host names: for loopback).
pub async fn serve_http(
    store: impl Into<StoreLocation>,
    ingest: IngestHandle,
    listener: TcpListener,
    token: Option<Token>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let config = HttpConfig {
        token,
        ..HttpConfig::default()
    };
    serve_http_with(store, ingest, listener, config, shutdown).await
}

/// Serve the operators' pages and API on `listener` until `shutdown` resolves.
/// Beyond loopback a token and HTTPS are required.
pub async fn serve_http_with(
    store: impl Into<StoreLocation>,
    ingest: IngestHandle,
    listener: TcpListener,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let addr = listener.local_addr()?;
    check_token(addr, config.token.as_ref())?;
    if config.tls.is_none() && !addr.ip().is_loopback() {
        return Err(HttpError::HttpsRequired { addr });
    }
    let (stop_tx, stop) = watch::channel(false);
    let state = AppState {
        store: StorePool::new(
            store.into(),
            MAX_CONCURRENT_VIEWS + log::MAX_CONCURRENT_LOG_READS,
        ),
        ingest,
        views: Arc::new(Semaphore::new(MAX_CONCURRENT_VIEWS)),
        token: config.token.map(Arc::new),
        sessions: Arc::default(),
        hosts: Arc::new(allowed_hosts(addr, &config.hosts)),
        https: config.tls.is_some(),
        streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
        log_reads: Arc::new(Semaphore::new(log::MAX_CONCURRENT_LOG_READS)),
        stop,
    };
    let app = router(state);
    let graceful = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    match config.tls {
        Some((cert, key)) => {
            let listener = tls::TlsListener::new(listener, &cert, &key)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await?
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await?
        }
    }
    Ok(())
}
