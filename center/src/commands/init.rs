//! `center init --election FILE [--advertise HOST:PORT]…`: check the definition,
//! then create the store, the election CA and the center's server certificate
//! (names: every advertised host, plus `localhost` and `127.0.0.1`). Refuses if a
//! store exists: keys are never overwritten.

use std::path::{Path, PathBuf};

use pollsync_proto::ElectionCa;
use pollsync_proto::identity::server_name_of;
use serde::Serialize;

use crate::error::{CenterError, Result};
use crate::store::{InitSetup, Store, db_path};
use crate::validate;

/// The address put into bundles when none is advertised.
pub const DEFAULT_ADVERTISE: &str = "127.0.0.1:7443";

/// What `init` created.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The database file.
    pub store: PathBuf,
    /// The election id.
    pub election: String,
    /// SHA-256 of the definition file (hex).
    pub definition_sha256: String,
    /// Stations in the election.
    pub stations: usize,
    /// Contests in the election.
    pub contests: usize,
    /// Advertised addresses; the first goes into bundles.
    pub advertise: Vec<String>,
    /// Names in the server certificate.
    pub server_names: Vec<String>,
}

/// Checks that `address` is `HOST:PORT` (`[v6]:PORT` for IPv6).
pub fn check_address(address: &str) -> Result<()> {
    let bad = || CenterError::BadAddress {
        address: address.to_owned(),
    };
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && !host.contains(':')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Runs `center init`.
pub fn init(data_dir: &Path, election: &Path, advertise: &[String]) -> Result<InitReport> {
    if db_path(data_dir).exists() {
        // Store::create refuses too; checking first skips generating keys.
        return Err(Store::exists_error(data_dir));
    }
    let advertise: Vec<String> = if advertise.is_empty() {
        vec![DEFAULT_ADVERTISE.to_owned()]
    } else {
        advertise.to_vec()
    };
    for a in &advertise {
        check_address(a)?;
    }
    let (text, definition) =
        validate::load_file(election).map_err(|errors| CenterError::Definition { errors })?;
    let ca = ElectionCa::generate(&definition.election.id)?;
    let server = ca.issue_server(&advertise)?;
    let store = Store::create(
        data_dir,
        &InitSetup {
            election_toml: &text,
            definition: &definition,
            ca: &ca,
            server_cert_pem: &server.cert_pem,
            server_key_pem: &server.key_pem,
            advertise: &advertise,
        },
    )?;
    let mut server_names: Vec<String> = Vec::new();
    for name in advertise
        .iter()
        .map(|a| server_name_of(a).to_ascii_lowercase())
        .chain(["localhost".to_owned(), "127.0.0.1".to_owned()])
    {
        if !server_names.contains(&name) {
            server_names.push(name);
        }
    }
    Ok(InitReport {
        store: db_path(store.dir()),
        election: definition.election.id.clone(),
        definition_sha256: hex::encode(pollsync_proto::definition_sha256(text.as_bytes())),
        stations: definition.stations.len(),
        contests: definition.contests.len(),
        advertise,
        server_names,
    })
}
