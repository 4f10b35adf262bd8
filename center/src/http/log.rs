//! The public transparency log over HTTP (SPEC §10): the newest signed checkpoint
//! at `/log/checkpoint` and the C2SP tlog-tiles paths under `/log/tile/`
//! (hash tiles and entry bundles), read-only and without a token: anyone may
//! audit the log. Only what the published checkpoint covers is served, so every
//! tile a client can fetch verifies against a checkpoint it can fetch. Public
//! reads take their own permits, so they cannot crowd out the operators' views.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pollsync_proto::tlog;

use super::AppState;
use super::api::read_store;
use crate::store::log as store_log;

/// Public log reads served at once; more wait.
pub const MAX_CONCURRENT_LOG_READS: usize = 8;

/// Tiles and entry bundles never change once served (a partial tile's path names
/// its width).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The newest checkpoint changes every few seconds while batches arrive.
const FRESH: &str = "public, max-age=1";

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{what}\n"),
    )
        .into_response()
}

/// `GET /log/checkpoint`: the newest signed checkpoint (C2SP signed note).
pub(super) async fn checkpoint(State(state): State<AppState>) -> Response {
    match read_store(&state, &state.log_reads, |store| store.latest_checkpoint()).await {
        Ok(Some((_, note))) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, FRESH),
            ],
            note,
        )
            .into_response(),
        Ok(None) => not_found("no checkpoint published yet"),
        Err(failure) => failure.into_response(),
    }
}

/// `GET /log/tile/<L>/<N>[.p/<W>]` and `/log/tile/entries/<N>[.p/<W>]`.
pub(super) async fn tile(State(state): State<AppState>, Path(rest): Path<String>) -> Response {
    let Some(tile) = tlog::parse_tile_path(&format!("tile/{rest}")) else {
        return not_found("not a tile path of this log (c2sp.org/tlog-tiles)");
    };
    let read = read_store(&state, &state.log_reads, move |store| {
        let Some((size, _)) = store.latest_checkpoint()? else {
            return Ok(None);
        };
        store_log::tile(store, &tile, size)
    })
    .await;
    match read {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, IMMUTABLE),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => not_found("this tile is beyond the published checkpoint"),
        Err(failure) => failure.into_response(),
    }
}
