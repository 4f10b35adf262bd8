//! `center revoke STATION`: refuse the station from now on (its Hello is answered
//! `PERMISSION_DENIED`, its batches `REVOKED`), with an alert. A running
//! `center serve` picks the revocation up within its refresh interval and cuts the
//! station's open streams.

use std::path::Path;

use serde::Serialize;

use crate::error::{CenterError, Result};
use crate::store::Store;

/// What `revoke` did.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    /// The station.
    pub station: String,
    /// False if it was revoked already.
    pub newly_revoked: bool,
}

/// Runs `center revoke`.
pub fn revoke(data_dir: &Path, station: &str) -> Result<RevokeReport> {
    let mut store = Store::open(data_dir)?;
    let meta = store.meta()?;
    if meta.definition()?.station(station).is_none() {
        return Err(CenterError::UnknownStations {
            election: meta.election_id,
            stations: vec![station.to_owned()],
        });
    }
    let newly_revoked = store.revoke(station)?;
    Ok(RevokeReport {
        station: station.to_owned(),
        newly_revoked,
    })
}
