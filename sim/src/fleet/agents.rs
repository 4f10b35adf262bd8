//! The stations' sync agents (`station run`'s loop) as tokio tasks, and what they
//! tell along the way.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pollsync_station::sync::client::{Log, RunOptions, RunSummary};
use pollsync_station::sync::{Note, SyncError};
use tokio::sync::watch;

use super::{FleetError, MAX_KEPT_NOTES, Result, lock};

/// What the agents said: which stations reached the center, and what is worth a
/// look (rejections, store problems, lost connections). Routine notes (progress,
/// sealed) are not kept.
#[derive(Default)]
pub struct AgentNotes {
    connected: Mutex<HashSet<String>>,
    kept: Mutex<Vec<String>>,
    total: AtomicU64,
    stops: AtomicU64,
}

impl AgentNotes {
    /// A log for `station`'s agent writing here.
    pub fn log_for(self: &Arc<Self>, station: &str) -> Log {
        let notes = Arc::clone(self);
        let station = station.to_string();
        Arc::new(move |note: &Note| {
            if matches!(note, Note::Connected { .. }) {
                lock(&notes.connected).insert(station.clone());
                return;
            }
            if matches!(note, Note::Progress { .. } | Note::Sealed { .. }) {
                return;
            }
            if matches!(note, Note::Stopped { .. } | Note::SealingStopped) {
                notes.stops.fetch_add(1, Ordering::Relaxed);
            }
            notes.total.fetch_add(1, Ordering::Relaxed);
            let mut kept = lock(&notes.kept);
            if kept.len() < MAX_KEPT_NOTES {
                kept.push(format!("station {station}: {note}"));
            }
        })
    }

    /// Stations whose agent has said Hello to the center at least once.
    pub fn connected(&self) -> usize {
        lock(&self.connected).len()
    }

    /// Notes kept, oldest first.
    pub fn kept(&self) -> Vec<String> {
        lock(&self.kept).clone()
    }

    /// Every note counted (kept or not).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Rejections that stopped an agent's pushing or sealing.
    pub fn stops(&self) -> u64 {
        self.stops.load(Ordering::Relaxed)
    }
}

/// A station's sync agent running as a task.
pub struct AgentHandle {
    pub station: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<RunSummary, SyncError>>,
}

/// Start `station run`'s loop for the station in `dir`: seal every
/// `options.seal_interval_ms`, push to the center, reconnect with backoff.
pub fn start_agent(station: &str, dir: &Path, options: RunOptions, log: Log) -> AgentHandle {
    let (stop, stopped) = watch::channel(false);
    let dir = dir.to_path_buf();
    let task = tokio::spawn(async move {
        pollsync_station::sync::client::run(&dir, options, stopped, log).await
    });
    AgentHandle {
        station: station.to_string(),
        stop,
        task,
    }
}

impl AgentHandle {
    /// Ask the agent to stop (it answers what is in flight first).
    pub fn ask_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stop and wait for the agent; a rejection that stopped its pushing is an error.
    pub async fn stop(self) -> Result<RunSummary> {
        self.ask_stop();
        let fail = |detail: String| FleetError::Agent {
            station: self.station.clone(),
            detail,
        };
        let summary = self
            .task
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
        if let Some(stop) = &summary.stopped {
            return Err(fail(stop.message.clone()));
        }
        Ok(summary)
    }
}
