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
use crate::store::Store;
use crate::{commands, results, status};

/// The dashboard: one static page that reads the API and the event stream.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

pub(super) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
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

/// Runs `compute` on a fresh read of the store, at most
/// [`super::MAX_CONCURRENT_VIEWS`] at a time.
async fn view(
    state: &AppState,
    compute: impl FnOnce(&Store) -> Result<Value, CenterError> + Send + 'static,
) -> Response {
    let work = async {
        let _permit = state.views.acquire().await.ok()?;
        let dir = state.data_dir.clone();
        tokio::task::spawn_blocking(move || Store::open(&dir).and_then(|s| compute(&s)))
            .await
            .ok()
    };
    match tokio::time::timeout(Duration::from_millis(VIEW_TIMEOUT_MS), work).await {
        Ok(Some(Ok(value))) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            pollsync_proto::limits::escape_output(&value.to_string()).into_owned(),
        )
            .into_response(),
        Ok(Some(Err(CenterError::UnknownContest { contest }))) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("contest '{contest}' is not in this election")})),
        )
            .into_response(),
        Ok(Some(Err(e))) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Ok(None) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "the view could not be computed (the center is shutting down)"})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": format!("the view took longer than {VIEW_TIMEOUT_MS} ms; try again")})),
        )
            .into_response(),
    }
}
