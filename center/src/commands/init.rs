//! `center init --election FILE [--advertise HOST:PORT]…`: check the definition,
//! then create the store, the election CA and the center's server certificate
//! (names: every advertised host, plus `localhost` and `127.0.0.1`). Refuses if a
//! store exists: keys are never overwritten. `--ca-dir DIR` writes the CA key to
//! `DIR/ca.key.pem` (0600) instead of the store, so that it can be kept off the
//! serving machine.

use std::path::{Path, PathBuf};

use pollsync_proto::ElectionCa;
use pollsync_proto::identity::server_name_of;
use pollsync_proto::limits::MAX_CENTER_ADDRESSES;
use serde::Serialize;

use crate::error::{CenterError, Result};
use crate::store::{
    CA_CERT_FILE, CA_KEY_FILE, DATA_DIR_MODE, InitSetup, Store, StoreLocation, db_path,
};
use crate::validate;

pub use crate::store::DEFAULT_ADVERTISE;

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
    /// The CA key's file when `--ca-dir` kept it out of the store.
    pub ca_key_file: Option<PathBuf>,
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

/// Writes the CA key (0600) and certificate into `dir` (made 0700), refusing to
/// overwrite a key already there. Returns the key file.
fn write_ca_dir(dir: &Path, ca: &ElectionCa) -> Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CenterError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(dir)
        .map_err(io(dir))?;
    let mut written = Vec::new();
    for (name, text, mode) in [
        (CA_KEY_FILE, ca.key_pem(), 0o600),
        (CA_CERT_FILE, ca.cert_pem(), 0o644),
    ] {
        let path = dir.join(name);
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_all()
            });
        if let Err(source) = result {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            return Err(CenterError::Io { path, source });
        }
        written.push(path);
    }
    Ok(dir.join(CA_KEY_FILE))
}

/// The advertised addresses all go into every enrollment bundle: at most
/// [`MAX_CENTER_ADDRESSES`], none twice.
fn check_advertise_list(advertise: &[String]) -> Result<()> {
    if advertise.len() > MAX_CENTER_ADDRESSES {
        return Err(CenterError::AdvertiseList {
            detail: format!(
                "{} addresses, more than the {MAX_CENTER_ADDRESSES} an enrollment bundle lists",
                advertise.len()
            ),
        });
    }
    for (i, a) in advertise.iter().enumerate() {
        if advertise[..i].iter().any(|b| b.eq_ignore_ascii_case(a)) {
            return Err(CenterError::AdvertiseList {
                detail: format!("{a} is given twice"),
            });
        }
    }
    Ok(())
}

/// Runs `center init`. With `ca_dir`, the CA key goes there instead of the store.
pub fn init(
    store: impl Into<StoreLocation>,
    election: &Path,
    advertise: &[String],
    ca_dir: Option<&Path>,
) -> Result<InitReport> {
    let location = store.into();
    if let StoreLocation::Folder(data_dir) = &location
        && db_path(data_dir).exists()
    {
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
    check_advertise_list(&advertise)?;
    let (text, definition) =
        validate::load_file(election).map_err(|errors| CenterError::Definition { errors })?;
    let ca = ElectionCa::generate(&definition.election.id, definition.election.mode)?;
    let server = ca.issue_server(&advertise)?;
    let ca_key_file = ca_dir.map(|dir| write_ca_dir(dir, &ca)).transpose()?;
    let ca_dir_abs = ca_dir.map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()));
    let created = Store::create_at(
        &location,
        &InitSetup {
            election_toml: &text,
            definition: &definition,
            ca: &ca,
            server_cert_pem: &server.cert_pem,
            server_key_pem: &server.key_pem,
            advertise: &advertise,
            ca_dir: ca_dir_abs.as_deref(),
        },
    );
    let store = match created {
        Ok(store) => store,
        Err(e) => {
            if let Some(dir) = ca_dir {
                let _ = std::fs::remove_file(dir.join(CA_KEY_FILE));
                let _ = std::fs::remove_file(dir.join(CA_CERT_FILE));
            }
            return Err(e);
        }
    };
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
        store: store.location().describe().into(),
        election: definition.election.id.clone(),
        definition_sha256: hex::encode(pollsync_proto::definition_sha256(text.as_bytes())),
        stations: definition.stations.len(),
        contests: definition.contests.len(),
        advertise,
        server_names,
        ca_key_file,
    })
}
