//! The JSON API and the dashboard page. Each view opens the store read-only in a
//! blocking task and computes exactly what the matching `center` command prints
//! with `--json`, so operators see one truth wherever they look.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppState, VIEW_TIMEOUT_MS};
use crate::error::CenterError;
use std::sync::Arc;

use crate::store::Records;
use crate::{commands, overview, results, status};

/// The dashboard: one static page that reads the API and the event stream.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");
/// Where the page learns the language the browser asked for.
const LANG_SLOT: &str = "{{LANG}}";
const _: () = assert!(konst_contains(
    DASHBOARD_HTML.as_bytes(),
    LANG_SLOT.as_bytes()
));

pub(super) async fn dashboard(headers: axum::http::HeaderMap) -> Html<String> {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Html(DASHBOARD_HTML.replacen(LANG_SLOT, page_language(accept), 1))
}

/// The page's language from an `Accept-Language` header: `zh` when Chinese is
/// preferred to English (by quality, then order), `en` otherwise.
pub(super) fn page_language(accept: &str) -> &'static str {
    let mut best: Option<(&'static str, f32)> = None;
    for item in accept.split(',').take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = match tag.split('-').next() {
            Some("zh") => "zh",
            Some("en") => "en",
            _ => continue,
        };
        if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((lang, quality));
        }
    }
    best.map_or("en", |(lang, _)| lang)
}

/// `needle` occurs in `hay` (at compile time).
const fn konst_contains(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let mut j = 0;
        while j < needle.len() && hay[i + j] == needle[j] {
            j += 1;
        }
        if j == needle.len() {
            return true;
        }
        i += 1;
    }
    false
}

/// The dashboard's one view: the summary, the pace, every contest and station,
/// the newest alerts (`overview`).
pub(super) async fn overview(State(state): State<AppState>) -> Response {
    let pace = state.ingest.metrics().pace();
    view(&state, move |store| {
        overview::compute(store, &pace)
            // Every map key is a string or a unit enum: serializing cannot fail.
            .map(|o| serde_json::to_value(o).expect("the overview serializes to JSON"))
    })
    .await
}

pub(super) async fn status(State(state): State<AppState>) -> Response {
    view(&state, status::compute).await
}

pub(super) async fn results(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let contest = query.get("contest").cloned();
    view(&state, move |store| {
        results::compute(store, contest.as_deref()).map(|r| r.to_json())
    })
    .await
}

pub(super) async fn alerts(State(state): State<AppState>) -> Response {
    view(&state, |store| {
        store.alerts().map(|a| commands::alerts::to_json(&a))
    })
    .await
}

/// Why a read of the store gave no value.
pub(super) enum ReadFailure {
    /// The computation failed.
    Store(CenterError),
    /// The blocking task did not finish (the center is shutting down).
    Gone,
    /// It took longer than [`VIEW_TIMEOUT_MS`].
    Timeout,
}

/// Runs `compute` on a fresh read of the store in a blocking task, holding one of
/// `permits` while it runs, for at most [`VIEW_TIMEOUT_MS`].
pub(super) async fn read_store<T: Send + 'static>(
    state: &AppState,
    permits: &tokio::sync::Semaphore,
    compute: impl FnOnce(&dyn Records) -> Result<T, CenterError> + Send + 'static,
) -> Result<T, ReadFailure> {
    let work = async {
        let _permit = permits.acquire().await.ok()?;
        let pool = Arc::clone(&state.store);
        tokio::task::spawn_blocking(move || pool.get().and_then(|s| compute(&*s)))
            .await
            .ok()
    };
    match tokio::time::timeout(Duration::from_millis(VIEW_TIMEOUT_MS), work).await {
        Ok(Some(Ok(value))) => Ok(value),
        Ok(Some(Err(e))) => Err(ReadFailure::Store(e)),
        Ok(None) => Err(ReadFailure::Gone),
        Err(_) => Err(ReadFailure::Timeout),
    }
}

impl IntoResponse for ReadFailure {
    fn into_response(self) -> Response {
        match self {
            ReadFailure::Store(CenterError::UnknownContest { contest }) => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("contest '{contest}' is not in this election")})),
            )
                .into_response(),
            ReadFailure::Store(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": e.to_string()})),
            )
                .into_response(),
            ReadFailure::Gone => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "the view could not be computed (the center is shutting down)"})),
            )
                .into_response(),
            ReadFailure::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": format!("the view took longer than {VIEW_TIMEOUT_MS} ms; try again")})),
            )
                .into_response(),
        }
    }
}

/// Runs `compute` on a fresh read of the store, at most
/// [`super::MAX_CONCURRENT_VIEWS`] at a time, and answers its JSON.
async fn view(
    state: &AppState,
    compute: impl FnOnce(&dyn Records) -> Result<Value, CenterError> + Send + 'static,
) -> Response {
    match read_store(state, &state.views, compute).await {
        Ok(value) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            pollsync_proto::limits::escape_output(&value.to_string()).into_owned(),
        )
            .into_response(),
        Err(failure) => failure.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::page_language;

    #[test]
    fn the_page_speaks_the_language_the_browser_prefers() {
        assert_eq!(page_language(""), "en");
        assert_eq!(page_language("zh-CN,zh;q=0.9,en;q=0.8"), "zh");
        assert_eq!(page_language("en-US,en;q=0.9,zh-CN;q=0.8"), "en");
        assert_eq!(page_language("fr-FR, zh-TW;q=0.5"), "zh");
        assert_eq!(page_language("en;q=0.4, ZH;q=0.6"), "zh");
        assert_eq!(page_language("zh;q=0, de"), "en");
        assert_eq!(page_language("de, fr"), "en");
    }
}
