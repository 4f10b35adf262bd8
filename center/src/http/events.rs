//! `/api/events`: the ingest's durable decisions as server-sent events, one JSON
//! object per batch judged (`accepted`, `duplicate`, `rejected`). A reader too slow
//! to keep up gets a `lagged` event with how many it missed and should re-read
//! `/api/status`; nothing is ever buffered without bound for it. The stream ends
//! when the center stops.

use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use super::AppState;
use crate::ingest::events::IngestEvent;

/// Interval of the keep-alive comment that holds idle connections open.
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 15_000;

pub(super) async fn stream(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    // One slot per open stream, held by the stream itself.
    let Ok(slot) = std::sync::Arc::clone(&state.streams).try_acquire_owned() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} event streams are open already; try again later\n",
                super::MAX_EVENT_STREAMS
            ),
        )
            .into_response();
    };
    let events =
        BroadcastStream::new(state.ingest.subscribe()).filter_map(|item| {
            let event =
                match item {
                    Ok(e) => Event::default().event(name(&e)).data(
                        &*pollsync_proto::limits::escape_output(&serde_json::to_string(&e).ok()?),
                    ),
                    Err(BroadcastStreamRecvError::Lagged(missed)) => Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{missed}}}")),
                };
            Some(Some(Ok::<Event, std::convert::Infallible>(event)))
        });
    // End the stream when the center stops, or graceful shutdown would wait for
    // every watching browser to go away.
    let stop = WatchStream::new(state.stop.clone())
        .filter(|stopping| *stopping)
        .map(|_| None);
    let events = events
        .merge(stop)
        .take_while(Option::is_some)
        .filter_map(|e| e)
        .map(move |e| {
            // The slot lives as long as the stream.
            let _held = &slot;
            e
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS)))
        .into_response()
}

/// The SSE event name: the event's kind.
fn name(e: &IngestEvent) -> &'static str {
    match e {
        IngestEvent::Accepted { .. } => "accepted",
        IngestEvent::Duplicate { .. } => "duplicate",
        IngestEvent::Rejected { .. } => "rejected",
    }
}
