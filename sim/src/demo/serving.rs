//! `sim demo --keep-serving`: the operators' dashboard of the demo's center, and the
//! center serving on after the day until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pollsync_center::ingest::IngestHandle;

use super::{DASHBOARD_ADDR, DemoError};
use crate::fleet::CenterHandle;

/// The center kept serving after the day (`--keep-serving`), with its dashboard.
pub struct Serving {
    pub center: CenterHandle,
    pub dashboard: Option<Dashboard>,
}

/// The operators' dashboard and HTTP API of the demo's center.
pub struct Dashboard {
    pub address: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), pollsync_center::http::HttpError>>,
}

impl Dashboard {
    /// Stop serving and wait for the server to end.
    pub async fn stop(self) -> Result<(), DemoError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| DemoError::Dashboard(e.to_string()))?
            .map_err(|e| DemoError::Dashboard(e.to_string()))
    }
}

/// The one place the demo starts the operators' dashboard (`center serve --http`'s
/// pages, API, events and metrics) for its center, given the center's data folder
/// and running ingest: on [`DASHBOARD_ADDR`] if free, else on another loopback port
/// (loopback needs no token).
pub async fn start_dashboard(
    center_dir: &Path,
    ingest: &IngestHandle,
) -> Result<Dashboard, DemoError> {
    let listener = match tokio::net::TcpListener::bind(DASHBOARD_ADDR).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| DemoError::Io {
                path: PathBuf::from("127.0.0.1:0"),
                source,
            })?,
    };
    let address = listener.local_addr().map_err(|source| DemoError::Io {
        path: PathBuf::from(DASHBOARD_ADDR),
        source,
    })?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(pollsync_center::http::serve_http(
        center_dir.to_path_buf(),
        ingest.clone(),
        listener,
        None,
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    Ok(Dashboard {
        address,
        stop,
        task,
    })
}

/// `--keep-serving`: the center goes on serving until Ctrl-C or SIGTERM.
pub(super) async fn serve_on(serving: Serving, json: bool) -> Result<(), DemoError> {
    let Serving { center, dashboard } = serving;
    let lines = [
        format!(
            "center serving: gRPC (mTLS) at {}, data in {}",
            center.address,
            center.data_dir.display()
        ),
        match &dashboard {
            Some(d) => format!("dashboard: http://{}/", d.address),
            None => "dashboard: could not be started (see above)".to_string(),
        },
        "press Ctrl-C to stop".to_string(),
    ];
    for line in lines {
        // Standard output stays one JSON object with --json.
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    stop_signal().await;
    if let Some(d) = dashboard {
        d.stop().await?;
    }
    center.stop().await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
