//! How the replicas of a shared store (SPEC §11) tell each other what they
//! decided, so that every replica's event stream and pace show the whole center:
//! each writer sends its group's decisions in the group's own transaction
//! (PostgreSQL's `NOTIFY`, delivered only if it commits), and a listener thread on
//! every replica passes the other replicas' decisions on to its subscribers.
//!
//! The wire form is JSON, in chunks under PostgreSQL's payload limit; a replica
//! skips its own. Relayed decisions go to the event stream and the pace only: a
//! replica's `/metrics` counters stay its own (a scraper sums the replicas).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use serde::Deserialize;

use super::Shared;
use super::events::IngestEvent;
use crate::error::{CenterError, Result};
use crate::store::now_unix_ms;
use crate::store::postgres::PgListener;

/// The notification channel the replicas share.
pub const EVENTS_CHANNEL: &str = "pollsync_events";
/// Most bytes of one notification's payload (PostgreSQL refuses 8,000 and more).
pub const MAX_PAYLOAD_BYTES: usize = 7_000;
/// Longest the listener waits for a notification before it looks whether the
/// center is shutting down.
pub const LISTEN_POLL_MS: u64 = 500;
/// SQLSTATE of a feature the engine does not have (`feature_not_supported`).
const NOT_SUPPORTED: &str = "0A000";
/// Wait before listening again after the connection was lost.
pub const RELISTEN_BACKOFF_MS: u64 = 1_000;

/// One notification: who decided, and what.
#[derive(Debug, Deserialize)]
struct Announcement {
    from: String,
    events: Vec<IngestEvent>,
}

/// `events` decided by replica `from`, as payloads of at most
/// [`MAX_PAYLOAD_BYTES`] each, in order: `{"from": …, "events": […]}`. A decision
/// too long for one payload alone travels without its detail (the deciding
/// replica's log has it).
pub fn announcements(from: &str, events: &[IngestEvent]) -> Vec<String> {
    let head = format!(
        "{{\"from\":{},\"events\":[",
        serde_json::to_string(from).unwrap_or_default()
    );
    let overhead = head.len() + "]}".len();
    let encode = |event: &IngestEvent| serde_json::to_string(event).unwrap_or_default();
    let mut out = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    let mut chunk_bytes = 0usize;
    let mut flush = |chunk: &mut Vec<String>| {
        if !chunk.is_empty() {
            out.push(format!("{head}{}]}}", chunk.join(",")));
            chunk.clear();
        }
    };
    for event in events {
        let mut text = encode(event);
        if overhead + text.len() > MAX_PAYLOAD_BYTES
            && let IngestEvent::Rejected { .. } = event
        {
            let mut shorter = event.clone();
            if let IngestEvent::Rejected { detail, .. } = &mut shorter {
                *detail = "(too long to relay: see the deciding replica's log)".into();
            }
            text = encode(&shorter);
        }
        if overhead + chunk_bytes + text.len() + 1 > MAX_PAYLOAD_BYTES {
            flush(&mut chunk);
            chunk_bytes = 0;
        }
        chunk_bytes += text.len() + 1;
        chunk.push(text);
    }
    flush(&mut chunk);
    out
}

/// The decisions in `payload` if another replica than `me` made them (`None`:
/// ours, or not an announcement of this version).
pub fn others(payload: &str, me: &str) -> Option<Vec<IngestEvent>> {
    let announcement: Announcement = serde_json::from_str(payload).ok()?;
    (announcement.from != me).then_some(announcement.events)
}

/// Starts the thread that listens on `url` for the other replicas' decisions and
/// passes them to this replica's subscribers, until the center shuts down (or
/// everything else let go of `shared`: the thread holds it only weakly, so that
/// it never keeps the writer alive).
pub(super) fn spawn_listener(
    url: String,
    me: String,
    shared: &Arc<Shared>,
) -> Result<JoinHandle<()>> {
    let shared: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("center-relay".into())
        .spawn(move || {
            let mut listener: Option<PgListener> = None;
            loop {
                let open = shared
                    .upgrade()
                    .is_some_and(|s| !s.closed.load(Ordering::Acquire));
                if !open {
                    return;
                }
                let Some(l) = listener.as_mut() else {
                    match PgListener::listen(&url, EVENTS_CHANNEL) {
                        Ok(l) => listener = Some(l),
                        Err(e) if e.to_string().contains(NOT_SUPPORTED) => {
                            tracing::warn!(error = %e, "this database has no LISTEN: the other replicas' decisions are not relayed");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for the other replicas' decisions");
                            std::thread::sleep(std::time::Duration::from_millis(
                                RELISTEN_BACKOFF_MS,
                            ));
                        }
                    }
                    continue;
                };
                match l.next(LISTEN_POLL_MS) {
                    Ok(Some(payload)) => {
                        if let (Some(events), Some(shared)) = (others(&payload, &me), shared.upgrade())
                        {
                            shared.publisher.relayed(events, now_unix_ms());
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the other replicas' decisions; listening again");
                        listener = None;
                    }
                }
            }
        })
        .map_err(|source| CenterError::Thread {
            what: "replica relay",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollsync_proto::pb::RejectReason;

    fn accepted(sequence: u64) -> IngestEvent {
        IngestEvent::Accepted {
            station: "S-0001".into(),
            sequence,
            ballots: 40,
            counted: 39,
            closed: vec![],
        }
    }

    #[test]
    fn decisions_cross_over_in_order_and_a_replica_skips_its_own() {
        let events: Vec<IngestEvent> = (1..=500)
            .map(accepted)
            .chain([
                IngestEvent::Duplicate {
                    station: "S-0002".into(),
                    sequence: 3,
                },
                IngestEvent::Rejected {
                    station: "S-0003".into(),
                    sequence: 9,
                    reason: RejectReason::Fork.short_name(),
                    detail: "x".repeat(MAX_PAYLOAD_BYTES),
                    alert: true,
                },
            ])
            .collect();
        let payloads = announcements("a", &events);
        assert!(payloads.len() > 1, "500 decisions do not fit one payload");
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD_BYTES));
        assert!(payloads.iter().all(|p| others(p, "a").is_none()));
        let back: Vec<IngestEvent> = payloads
            .iter()
            .flat_map(|p| others(p, "b").unwrap_or_default())
            .collect();
        assert_eq!(back.len(), events.len());
        assert_eq!(back[..501], events[..501]);
        let IngestEvent::Rejected { reason, detail, .. } = &back[501] else {
            panic!("the fork comes last: {:?}", back[501]);
        };
        assert_eq!(*reason, "FORK");
        assert!(detail.contains("too long"));
    }

    #[test]
    fn a_payload_that_is_not_an_announcement_is_ignored() {
        assert!(others("not json", "b").is_none());
        assert!(
            others("", "b").is_none(),
            "the start-up probe's empty payload"
        );
        let unknown = r#"{"from":"a","events":[{"kind":"rejected","station":"S","sequence":1,"reason":"NO_SUCH","detail":"","alert":false}]}"#;
        assert!(
            others(unknown, "b").is_none(),
            "a reason this version lacks"
        );
    }
}
