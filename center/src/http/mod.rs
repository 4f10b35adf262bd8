//! The operators' HTTP side of `center serve --http ADDR` (SPEC §8): a dashboard
//! page that updates live, a JSON API (`/api/status`, `/api/results`,
//! `/api/alerts`), a live event stream (`/api/events`, server-sent events) and
//! Prometheus metrics (`/metrics`).
//!
//! The views are computed from the store exactly as `center status|results|alerts`
//! compute them (the same functions), so the dashboard and the command line can
//! never disagree; events come from the ingest and are sent only once the batch
//! they describe is durable. On a loopback address no token is needed; bound
//! anywhere else, every request must carry the operators' bearer token.

mod api;
mod auth;
mod events;
mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
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

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    data_dir: Arc<PathBuf>,
    ingest: IngestHandle,
    views: Arc<Semaphore>,
    token: Option<Arc<Token>>,
    /// Turns true when the center stops (ends the event streams).
    stop: watch::Receiver<bool>,
}

/// Why the HTTP side could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "the operators' HTTP address {addr} is not a loopback address: set an access token (POLLSYNC_HTTP_TOKEN or --http-token-file FILE) so that only operators can read it"
    )]
    TokenRequired { addr: SocketAddr },
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

/// The router: every route behind the token check (which passes when no token is
/// set, allowed only on loopback: see [`check_token`]).
fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/", get(api::dashboard))
        .route("/api/status", get(api::status))
        .route("/api/results", get(api::results))
        .route("/api/alerts", get(api::alerts))
        .route("/api/events", get(events::stream))
        .route("/metrics", get(metrics::render))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    protected.with_state(state)
}

/// Refuses to serve beyond loopback without a token. `center serve` calls it before
/// starting anything, and [`serve_http`] again for any other caller.
pub fn check_token(addr: SocketAddr, token: Option<&Token>) -> Result<(), HttpError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(HttpError::TokenRequired { addr });
    }
    Ok(())
}

/// Serve the operators' pages and API on `listener` until `shutdown` resolves.
pub async fn serve_http(
    data_dir: PathBuf,
    ingest: IngestHandle,
    listener: TcpListener,
    token: Option<Token>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    check_token(listener.local_addr()?, token.as_ref())?;
    let (stop_tx, stop) = watch::channel(false);
    let state = AppState {
        data_dir: Arc::new(data_dir),
        ingest,
        views: Arc::new(Semaphore::new(MAX_CONCURRENT_VIEWS)),
        token: token.map(Arc::new),
        stop,
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await?;
    Ok(())
}
