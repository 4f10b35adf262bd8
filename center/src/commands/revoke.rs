//! `center revoke STATION --reason TEXT` and `center release STATION --reason
//! TEXT`: an operator's decision about a station's standing, each recorded as an
//! alert with its reason and time (G9).
//!
//! Revoke refuses the station from now on (its Hello is answered
//! `PERMISSION_DENIED`, its batches `REVOKED`). Release lifts a quarantine after a
//! fork; the center's chain stays as it is and the key that signed the fork is
//! retired, so the device that forked stays refused until the station is replaced.
//! A running `center serve` picks either up within its refresh interval.

use serde::Serialize;

use crate::error::{CenterError, Result};
use crate::store::{Records as _, Store, StoreLocation};

/// What `revoke` did.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    /// The station.
    pub station: String,
    /// False if it was revoked already.
    pub newly_revoked: bool,
}

/// What `release` did.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    /// The station.
    pub station: String,
    /// The key retired because it signed the fork (`None`: the station was
    /// replaced since, and its current key stays accepted).
    pub retired_key_no: Option<u32>,
}

/// Opens the store of `data_dir` and checks that `station` is in its election and
/// `reason` says something.
fn open_for(store: StoreLocation, station: &str, reason: &str) -> Result<Store> {
    if reason.trim().is_empty() {
        return Err(CenterError::NoReason);
    }
    let store = Store::open_at(&store)?;
    let meta = store.meta()?;
    if meta.definition()?.station(station).is_none() {
        return Err(CenterError::UnknownStations {
            election: meta.election_id,
            stations: vec![station.to_owned()],
        });
    }
    Ok(store)
}

/// Runs `center revoke`.
pub fn revoke(
    store: impl Into<StoreLocation>,
    station: &str,
    reason: &str,
) -> Result<RevokeReport> {
    let mut store = open_for(store.into(), station, reason)?;
    let newly_revoked = store.revoke(station, reason)?;
    Ok(RevokeReport {
        station: station.to_owned(),
        newly_revoked,
    })
}

/// Runs `center release`.
pub fn release(
    store: impl Into<StoreLocation>,
    station: &str,
    reason: &str,
) -> Result<ReleaseReport> {
    let mut store = open_for(store.into(), station, reason)?;
    let released = store.release(station, reason)?;
    Ok(ReleaseReport {
        station: station.to_owned(),
        retired_key_no: released.retired_key_no,
    })
}
