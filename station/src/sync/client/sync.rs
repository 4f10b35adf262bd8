//! `station sync`: connect, compare heads, seal everything, push until the center
//! has acknowledged it all; the core says when to give up for lack of progress.
//! Each failed attempt moves to the next of the center's addresses.

use std::path::Path;

use tokio::sync::watch;
use tokio::time::Instant;

use super::clock::{Clock, ms};
use super::session::{Agent, SessionError};
use super::{Log, Note, SyncError, SyncOptions, SyncSummary, open_agent};
use crate::sync::backoff::{Backoff, os_random};
use crate::sync::core::{Goal, Retry};
use crate::sync::sender::Stop;

/// `station sync`: connect, seal everything, push until the center has acknowledged
/// all of it. Gives up after `timeout_ms` without reaching the center or without
/// progress.
pub async fn sync(dir: &Path, options: SyncOptions, log: Log) -> Result<SyncSummary, SyncError> {
    let started = Instant::now();
    let clock = Clock::starting_at(started);
    // Nothing asks `sync` to stop: Ctrl-C ends the process, and nothing is lost by it.
    let (_keep_shutdown, shutdown) = watch::channel(false);
    let (_keep_heads, heads) = watch::channel(0);
    let goal = Goal::Sync {
        no_progress_ms: options.timeout_ms,
    };
    let mut agent = open_agent(dir, goal, clock, heads, shutdown, log)?;
    let mut backoff = Backoff::default();
    let mut attempts = 0u32;
    let mut ever_connected = false;
    let outcome: Result<Instant, SyncError> = loop {
        attempts += 1;
        let attempt_started = Instant::now();
        let mut hello_ok = false;
        let result = agent.session(&mut hello_ok).await;
        agent.core.on_disconnected();
        if hello_ok {
            backoff.reset();
            ever_connected = true;
        }
        let error = match result {
            Ok(_) => break Ok(attempt_started),
            Err(e) => e,
        };
        let give_up = |agent: &Agent, last_error: String| {
            let waited_s = started.elapsed().as_secs_f64();
            if ever_connected {
                SyncError::NoProgress {
                    center: agent.center().to_owned(),
                    waited_s,
                    attempts,
                    last_error,
                }
            } else {
                SyncError::Unreachable {
                    center: agent.all_centers(),
                    waited_s,
                    attempts,
                    last_error,
                }
            }
        };
        match error {
            SessionError::Stop(Stop::Terminal(t)) => break Err(SyncError::Rejected(t)),
            SessionError::Refused { code, message } => {
                break Err(SyncError::Refused {
                    center: agent.center().to_owned(),
                    code: format!("{code:?}"),
                    message,
                });
            }
            SessionError::NoProgress(text) => break Err(give_up(&agent, text)),
            other => {
                let text = other.text();
                // Fail-over: the next attempt goes to the next address.
                let failed = agent.on_link_failed(&other);
                let next_center = agent.center().to_owned();
                let now_ms = clock.now_ms();
                // The last attempt is made in time to have a chance before the deadline.
                let at_ms = match agent.core.retry(now_ms, backoff.next_delay_ms(os_random())) {
                    Retry::At { at_ms } => at_ms,
                    Retry::GiveUp => break Err(give_up(&agent, text)),
                };
                let retry_in_ms = at_ms.saturating_sub(now_ms);
                agent.note(if hello_ok {
                    Note::ConnectionLost {
                        center: failed,
                        error: text,
                        retry_in_ms,
                        next_center,
                    }
                } else {
                    Note::Unreachable {
                        center: failed,
                        error: text,
                        retry_in_ms,
                        next_center,
                    }
                });
                tokio::time::sleep_until(clock.instant_at(at_ms)).await;
            }
        }
    };
    // Whatever happened, what the center acknowledged is recorded before returning.
    let done_at = Instant::now();
    let center = agent.center().to_owned();
    let recorded = agent.recorder.finish().await;
    let catch_up_started = outcome?;
    let acknowledged = recorded.map_err(SyncError::Record)?;
    let target = agent.core.sync_target().unwrap_or(0);
    if acknowledged < target {
        return Err(SyncError::Record(format!(
            "only batches up to {acknowledged} of {target} are recorded as acknowledged"
        )));
    }
    let (sealed_batches, sealed_ballots) = agent.sealed;
    Ok(SyncSummary {
        center,
        sealed_batches,
        sealed_ballots,
        local_head: agent.core.sender().local_head(),
        acknowledged_through: acknowledged,
        counters: agent.counters,
        elapsed_ms: ms(started.elapsed()),
        catch_up_ms: ms(done_at - catch_up_started),
    })
}
