//! The demo's progress: bars for ballots recorded, ballots counted at the center
//! and stations closed and synced (hidden unless standard output is a terminal),
//! the lines printed between them, and the task that reads the figures.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{DemoError, PROGRESS_INTERVAL_MS, STALL_TIMEOUT_MS, Shared, lock};
use crate::fleet::{self, AgentNotes};

/// The progress bars (hidden unless standard output is a terminal, and with --json)
/// and the lines printed between them.
pub(super) struct Bars {
    multi: MultiProgress,
    pub(super) recorded: ProgressBar,
    pub(super) counted: ProgressBar,
    pub(super) synced: ProgressBar,
    visible: bool,
    quiet: bool,
}

impl Bars {
    pub(super) fn new(json: bool, ballots: u64, stations: u64) -> Bars {
        let visible = !json && std::io::stdout().is_terminal();
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        });
        let bar = |len: u64, prefix: &'static str| {
            let bar = multi.add(ProgressBar::new(len));
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>30} [{bar:40.cyan/blue}] {human_pos:>9}/{human_len:9} {percent:>3}%",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(prefix);
            bar
        };
        Bars {
            recorded: bar(ballots, "ballots recorded at stations"),
            counted: bar(ballots, "ballots counted at the center"),
            synced: bar(stations, "stations closed and synced"),
            multi,
            visible,
            quiet: json,
        }
    }

    pub(super) fn say(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else if !self.quiet {
            println!("{line}");
        }
    }

    pub(super) fn finish(&self) {
        for bar in [&self.recorded, &self.counted, &self.synced] {
            bar.finish();
        }
    }
}

/// Live figures the progress task keeps.
#[derive(Default)]
pub(super) struct Live {
    counted: AtomicU64,
    synced: AtomicUsize,
}

impl Live {
    /// Ballots counted at the center when last read.
    pub(super) fn counted(&self) -> u64 {
        self.counted.load(Ordering::Relaxed)
    }
}

/// Reads the center's count and the stations' acknowledgements every
/// [`PROGRESS_INTERVAL_MS`] until stopped.
pub(super) async fn progress_loop(
    reader: fleet::CenterReader,
    days: Vec<Shared>,
    live: Arc<Live>,
    counted_bar: ProgressBar,
    synced_bar: ProgressBar,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Ok(counted) = reader.ballots_counted().await {
            live.counted.store(counted, Ordering::Relaxed);
            counted_bar.set_position(counted);
        }
        let days = days.clone();
        if let Ok(synced) = tokio::task::spawn_blocking(move || count_synced(&days)).await {
            live.synced.store(synced, Ordering::Relaxed);
            synced_bar.set_position(synced as u64);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(PROGRESS_INTERVAL_MS)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Marks closed stations whose every batch the center acknowledged; returns how
/// many are synced. A station busy recording is passed over this time.
fn count_synced(days: &[Shared]) -> usize {
    let mut synced = 0;
    for d in days {
        let Ok(mut day) = d.try_lock() else { continue };
        if day.closed && !day.synced && day.desk.fully_acknowledged().unwrap_or(false) {
            day.synced = true;
        }
        synced += usize::from(day.synced);
    }
    synced
}

/// Waits until every station is closed and fully acknowledged, failing when an
/// agent was stopped by a rejection, or when neither the count nor the synced
/// stations move for [`STALL_TIMEOUT_MS`].
pub(super) async fn wait_all_synced(
    days: &[Shared],
    live: &Live,
    ballots: u64,
    notes: &AgentNotes,
) -> Result<(), DemoError> {
    let mut last = (u64::MAX, usize::MAX);
    let mut moved_at = Instant::now();
    loop {
        let now = (
            live.counted.load(Ordering::Relaxed),
            live.synced.load(Ordering::Relaxed),
        );
        if now.1 == days.len() {
            return Ok(());
        }
        if now != last {
            last = now;
            moved_at = Instant::now();
        }
        if notes.stops() > 0 {
            return Err(DemoError::Rejected {
                notes: notes.kept(),
            });
        }
        if moved_at.elapsed() >= Duration::from_millis(STALL_TIMEOUT_MS) {
            let not_synced = days
                .iter()
                .filter_map(|d| {
                    let day = lock(d);
                    (!day.synced).then(|| format!("{} ({:?})", day.id, day.kind).to_lowercase())
                })
                .collect();
            return Err(DemoError::Stalled {
                waited_ms: u64::try_from(moved_at.elapsed().as_millis()).unwrap_or(u64::MAX),
                counted: now.0,
                ballots,
                not_synced,
                notes: notes.kept(),
            });
        }
        tokio::time::sleep(Duration::from_millis(PROGRESS_INTERVAL_MS)).await;
    }
}
