//! `station run`: keep the station in touch with the center until told to stop,
//! sealing beside it; a session after another, with backoff between failures, each
//! failure moving to the next of the center's addresses.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::clock::{Clock, ms};
use super::receipts::receipt_loop;
use super::sealer::seal_loop;
use super::session::SessionError;
use super::{
    Note, RunOptions, RunSummary, STOP_MARGIN_MS, SyncError, open_agent, wait_stop, with_store,
};
use crate::store::Store;
use crate::sync::backoff::{Backoff, os_random};
use crate::sync::core::ending::RunStop;
use crate::sync::core::{Goal, Retry, SHUTDOWN_GRACE_MS, SessionEnd};

/// `station run`: keep the station in touch with the center until `shutdown`
/// turns true. Returns what happened; `stopped` is set if the center rejected the
/// station (pushing stopped, recording did not).
pub async fn run(
    dir: &Path,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
    log: super::Log,
) -> Result<RunSummary, SyncError> {
    let started = Instant::now();
    let clock = Clock::starting_at(started);
    let head = Store::open(dir)?.head()?.sequence;
    let (heads_tx, heads_rx) = watch::channel(head);
    let mut agent = open_agent(
        dir,
        Goal::Run,
        clock,
        heads_rx,
        shutdown.clone(),
        log.clone(),
    )?;
    let sealing = Arc::new(AtomicBool::new(true));
    let sealer = tokio::spawn(seal_loop(
        Arc::new(Mutex::new(Store::open(dir)?)),
        Arc::clone(&agent.prov),
        Duration::from_millis(options.seal_interval_ms.max(1)),
        heads_tx,
        Arc::clone(&sealing),
        shutdown.clone(),
        log.clone(),
    ));
    let receipts = tokio::spawn(receipt_loop(
        Store::open(dir)?,
        Arc::clone(&agent.prov),
        shutdown.clone(),
        log.clone(),
    ));
    let mut stop_requested = shutdown.clone();
    let mut backoff = Backoff::default();
    let mut stopped: Option<RunStop> = None;
    loop {
        if *stop_requested.borrow() {
            break;
        }
        if stopped.is_some() {
            // Pushing is over until an operator acts; sealing goes on.
            wait_stop(&mut stop_requested).await;
            break;
        }
        let mut hello_ok = false;
        let mut stop_during = shutdown.clone();
        let result = tokio::select! {
            result = agent.session(&mut hello_ok) => result,
            // A session drains itself on a stop; this only bounds a stop that comes
            // while it is still connecting or saying Hello.
            _ = async {
                wait_stop(&mut stop_during).await;
                tokio::time::sleep(Duration::from_millis(SHUTDOWN_GRACE_MS + STOP_MARGIN_MS)).await;
            } => Ok(SessionEnd::Shutdown),
        };
        agent.core.on_disconnected();
        if hello_ok {
            backoff.reset();
        }
        let error = match result {
            Ok(_) => break,
            Err(e) => e,
        };
        if let Some(stop) = error.run_stop(agent.center()) {
            if stop.sealing_stopped {
                sealing.store(false, Ordering::SeqCst);
                agent.note(Note::SealingStopped);
            }
            agent.note(Note::Stopped {
                message: stop.message.clone(),
            });
            stopped = Some(stop);
            continue;
        }
        // Fail-over: the next attempt goes to the next address.
        let failed = agent.on_link_failed(&error);
        let next_center = agent.center().to_owned();
        let now_ms = clock.now_ms();
        let at_ms = match agent.core.retry(now_ms, backoff.next_delay_ms(os_random())) {
            Retry::At { at_ms } => at_ms,
            // Only `station sync` gives up.
            Retry::GiveUp => now_ms,
        };
        let retry_in_ms = at_ms.saturating_sub(now_ms);
        let text = error.text();
        agent.note(match (&error, hello_ok) {
            (SessionError::Local(_), _) => Note::LocalProblem {
                error: format!("{text}; retrying in {retry_in_ms} ms"),
            },
            (_, true) => Note::ConnectionLost {
                center: failed,
                error: text,
                retry_in_ms,
                next_center,
            },
            (_, false) => Note::Unreachable {
                center: failed,
                error: text,
                retry_in_ms,
                next_center,
            },
        });
        tokio::select! {
            _ = tokio::time::sleep_until(clock.instant_at(at_ms)) => {}
            _ = wait_stop(&mut stop_requested) => break,
        }
    }
    let _ = sealer.await;
    let _ = receipts.await;
    let center = agent.center().to_owned();
    let acknowledged = agent.recorder.finish().await.map_err(SyncError::Record)?;
    let local_head = with_store(&agent.reader, |s| s.head()).await?.sequence;
    Ok(RunSummary {
        center,
        local_head,
        acknowledged_through: acknowledged,
        counters: agent.counters,
        running_ms: ms(started.elapsed()),
        stopped,
    })
}
