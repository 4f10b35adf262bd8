//! Starting and stopping a serving center: the ingest writer, the stations' gRPC
//! server and, when asked, the operators' HTTP server, wired together in one place.
//! `center serve` and sim's in-process fleet both start a center through
//! [`start`], so that what is served, and the order it stops in, is the same for
//! both: stop taking batches, let the writer answer everything it was given (every
//! acknowledgement is durable), then close the operators' view.

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::CenterError;
use crate::http::{HttpConfig, HttpError};
use crate::ingest::IngestHandle;
use crate::listen::Limits;
use crate::serve::{ServeError, TlsPems, serve_grpc_with};
use crate::store::{Records as _, Store, StoreLocation};

/// Why a center could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be read, or the ingest writer not started.
    #[error(transparent)]
    Store(#[from] CenterError),
    /// The stations' gRPC server failed.
    #[error(transparent)]
    Grpc(#[from] ServeError),
    /// The operators' HTTP server failed.
    #[error("the operators' HTTP server: {0}")]
    Http(#[from] HttpError),
    /// A serving task or the ingest writer panicked.
    #[error("{0} panicked")]
    Panicked(&'static str),
}

/// The operators' HTTP server of a center: where it listens and how.
pub struct HttpServing {
    /// The bound listener.
    pub listener: TcpListener,
    /// Token, TLS and the host names it answers to.
    pub config: HttpConfig,
}

/// A center serving: the handle stations' batches go through, and the tasks to stop.
pub struct Running {
    /// The ingest every server submits to (also for progress figures and events).
    pub ingest: IngestHandle,
    store: StoreLocation,
    stop: watch::Sender<bool>,
    grpc: JoinHandle<Result<(), ServeError>>,
    http: Option<JoinHandle<Result<(), HttpError>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Starts the ingest writer on the store at `store`, the gRPC server for
/// stations on `grpc` (mutual TLS with the store's CA and server certificate,
/// connection caps `limits`) and, if given, the operators' HTTP server. Call from
/// within a tokio runtime: the servers are spawned on it.
pub fn start(
    store: impl Into<StoreLocation>,
    grpc: TcpListener,
    limits: Limits,
    http: Option<HttpServing>,
) -> Result<Running, ServerError> {
    let location = store.into();
    let meta = Store::open_at(&location)?.meta()?;
    let tls = TlsPems {
        server_cert_pem: meta.server_cert_pem,
        server_key_pem: meta.server_key_pem,
        ca_cert_pem: meta.ca_cert_pem,
    };
    let (ingest, writer) = crate::ingest::start(&location)?;
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let http = http.map(|h| {
        tokio::spawn(crate::http::serve_http_with(
            location.clone(),
            ingest.clone(),
            h.listener,
            h.config,
            until_stopped(stopped.clone()),
        ))
    });
    let serving = ingest.clone();
    let grpc = tokio::spawn(async move {
        serve_grpc_with(serving, &tls, grpc, limits, until_stopped(stopped)).await
    });
    Ok(Running {
        ingest,
        store: location,
        stop,
        grpc,
        http,
        writer: Some(writer),
    })
}

impl Running {
    /// Where the store being served is.
    pub fn store(&self) -> &StoreLocation {
        &self.store
    }

    /// Serves until `stop` resolves or the gRPC server ends by itself (an error),
    /// then stops as [`Running::stop`] does.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> Result<(), ServerError> {
        let ended = tokio::select! {
            () = stop => None,
            ended = &mut self.grpc => Some(ended),
        };
        match ended {
            None => self.stop().await,
            Some(ended) => {
                let served = self.wind_down().await;
                ended.map_err(|_| ServerError::Panicked("the gRPC server"))??;
                served
            }
        }
    }

    /// Stops taking batches, lets the writer apply and answer all it was given,
    /// then closes the operators' view. Everything acknowledged is durable.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        let served = (&mut self.grpc)
            .await
            .map_err(|_| ServerError::Panicked("the gRPC server"))?;
        let wound_down = self.wind_down().await;
        served?;
        wound_down
    }

    /// After the gRPC server has ended: the writer, then the HTTP server.
    async fn wind_down(&mut self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        self.ingest.shutdown();
        if let Some(writer) = self.writer.take() {
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .map_err(|_| ServerError::Panicked("the ingest writer"))?
                .map_err(|_| ServerError::Panicked("the ingest writer"))?;
        }
        if let Some(http) = self.http.take() {
            http.await
                .map_err(|_| ServerError::Panicked("the operators' HTTP server"))??;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Not stopped through `stop`: at least let the servers and the writer wind down.
        let _ = self.stop.send(true);
        if self.writer.is_some() {
            self.ingest.shutdown();
        }
    }
}
