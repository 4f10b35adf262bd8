//! The center of a fleet, serving in this process on a tokio runtime of its own, and
//! a reader of its store for progress figures.

use pollsync_center::store::Records as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pollsync_center::ingest::IngestHandle;
use pollsync_center::listen::Limits;
use pollsync_center::server::{self, Running};
use pollsync_center::store::StoreLocation;

use super::{FleetError, LISTEN_BACKLOG, Result, io_error, lock};

/// The center serving in this process, on a tokio runtime of its own (as if on its
/// own machine): busy station agents cannot hold up its accept loop or its answers.
/// It is started as `center serve` starts one (`pollsync_center::server`), without
/// the operators' HTTP server.
pub struct CenterHandle {
    /// Its store's folder (for a PostgreSQL store, the folder it would have had).
    pub data_dir: PathBuf,
    /// Where its store is.
    pub store: StoreLocation,
    pub address: SocketAddr,
    pub ingest: IngestHandle,
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<Running>,
}

impl CenterHandle {
    /// Start the ingest writer and the gRPC server (mTLS, as `center serve`) on
    /// `address`, with `threads` runtime threads.
    pub fn start(
        store: &StoreLocation,
        address: SocketAddr,
        threads: usize,
    ) -> Result<CenterHandle> {
        let data_dir = match store {
            StoreLocation::Folder(dir) => dir.as_path(),
            StoreLocation::Postgres(_) => Path::new("."),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("center")
            .enable_all()
            .build()
            .map_err(io_error(data_dir))?;
        let running = {
            let _in_runtime = runtime.enter();
            let listener = listen(address)?;
            server::start(store, listener, Limits::from_process(), None)
                .map_err(FleetError::Serve)?
        };
        Ok(CenterHandle {
            data_dir: data_dir.to_path_buf(),
            store: store.clone(),
            address,
            ingest: running.ingest.clone(),
            runtime: Some(runtime),
            running: Some(running),
        })
    }

    /// A second connection to the center's store, for reading while it serves.
    pub fn reader(&self) -> Result<CenterReader> {
        Ok(CenterReader {
            store: Arc::new(Mutex::new(pollsync_center::store::Store::open_at(
                &self.store,
            )?)),
        })
    }

    /// Stop serving, then stop the writer once it has applied and answered all it
    /// was given: everything acknowledged is durable in the store.
    pub async fn stop(mut self) -> Result<()> {
        let stopped = match self.running.take() {
            Some(running) => running.stop().await,
            None => Ok(()),
        };
        let runtime = self.runtime.take();
        tokio::task::spawn_blocking(move || drop(runtime))
            .await
            .map_err(|e| FleetError::Task(e.to_string()))?;
        stopped.map_err(FleetError::Serve)
    }
}

/// A listening socket on `address` whose accept queue holds every station
/// connecting at once (the standard library's holds only 128).
fn listen(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    let at = |source| FleetError::Io {
        path: PathBuf::from(address.to_string()),
        source,
    };
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(at)?;
    socket.set_reuseaddr(true).map_err(at)?;
    socket.bind(address).map_err(at)?;
    socket.listen(LISTEN_BACKLOG).map_err(at)
}

impl Drop for CenterHandle {
    fn drop(&mut self) {
        // Not stopped through `stop`: let the server and writer wind down.
        drop(self.running.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Reads the center's store while it serves (figures for progress).
#[derive(Clone)]
pub struct CenterReader {
    store: Arc<Mutex<pollsync_center::store::Store>>,
}

impl CenterReader {
    /// Ballots counted in the center's running tallies, over every station.
    pub async fn ballots_counted(&self) -> Result<u64> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let tallies = lock(&store).tallies()?;
            Ok(tallies.iter().map(|t| t.computed.returned).sum())
        })
        .await
        .map_err(|e| FleetError::Task(e.to_string()))?
    }
}
