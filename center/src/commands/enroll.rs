//! `center enroll STATION… | --all --out-dir DIR [--replace]`: one enrollment
//! bundle per station (key, certificate, CA, center address, the exact election
//! TOML), written mode 0600 as `DIR/<STATION>.bundle`, and the station's
//! certificate recorded as its enrolled key.
//!
//! All or nothing: an unknown station, an enrolled one (without `--replace`) or a
//! file in the way is reported before anything is written. Re-enrolling keeps the
//! old key in the store for the audit of the batches it signed, refuses it on
//! connections from then on, and gives the new device the center's head for the
//! station (read in the same transaction that switches keys): the new device's
//! first batch continues that chain. The CA key comes from the store, or from
//! `--ca-dir` when `center init --ca-dir` kept it off the serving machine.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use pollsync_proto::EnrollmentBundle;
use pollsync_proto::bundle::BundleHead;
use pollsync_proto::identity::verifying_key_from_cert_der;
use serde::Serialize;

use crate::error::{CenterError, Result};
use crate::store::{DATA_DIR_MODE, EnrollRecord, Records as _, Store, StoreLocation};

/// File name suffix of a bundle.
pub const BUNDLE_SUFFIX: &str = ".bundle";

/// Which stations to enroll.
#[derive(Debug, Clone, Default)]
pub struct EnrollRequest {
    /// Stations named on the command line.
    pub stations: Vec<String>,
    /// Every station of the election.
    pub all: bool,
    /// Where the bundles go.
    pub out_dir: PathBuf,
    /// Issue new keys for stations enrolled already.
    pub replace: bool,
    /// Why the devices are replaced (recorded with the REPLACED alert).
    pub reason: Option<String>,
    /// The folder holding the CA key, when it is not in the store.
    pub ca_dir: Option<PathBuf>,
}

/// One bundle written.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    /// The station.
    pub station: String,
    /// The bundle file.
    pub bundle: PathBuf,
    /// It replaced an earlier enrollment.
    pub replaced: bool,
    /// The center's head the new device continues from (0 for a first enrollment).
    pub continues_after: u64,
}

/// What `enroll` did.
#[derive(Debug, Clone, Serialize)]
pub struct EnrollReport {
    /// The center addresses in the bundles, in the order stations try them.
    pub center_addresses: Vec<String>,
    /// The bundles, in the order asked.
    pub enrolled: Vec<Enrolled>,
}

/// The bundle path of `station` in `out_dir`.
pub fn bundle_path(out_dir: &Path, station: &str) -> PathBuf {
    out_dir.join(format!("{station}{BUNDLE_SUFFIX}"))
}

/// Runs `center enroll`.
pub fn enroll(store: impl Into<StoreLocation>, request: &EnrollRequest) -> Result<EnrollReport> {
    let mut store = Store::open_at(&store.into())?;
    let meta = store.meta()?;
    let definition = meta.definition()?;
    let mut stations: Vec<String> = if request.all {
        definition.stations.iter().map(|s| s.id.clone()).collect()
    } else {
        request.stations.clone()
    };
    let mut seen = std::collections::BTreeSet::new();
    stations.retain(|s| seen.insert(s.clone()));
    let unknown: Vec<String> = stations
        .iter()
        .filter(|s| definition.station(s).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(CenterError::UnknownStations {
            election: meta.election_id.clone(),
            stations: unknown,
        });
    }
    let mut enrolled_before = Vec::new();
    for s in &stations {
        if !store.keys_of(s)?.is_empty() {
            enrolled_before.push(s.clone());
        }
    }
    if !enrolled_before.is_empty() && !request.replace {
        return Err(CenterError::AlreadyEnrolled {
            stations: enrolled_before,
        });
    }
    if !request.replace {
        for s in &stations {
            let path = bundle_path(&request.out_dir, s);
            if path.exists() {
                return Err(CenterError::BundleFileExists { path });
            }
        }
    }
    let ca = meta.ca(request.ca_dir.as_deref())?;
    let reason = request
        .reason
        .clone()
        .unwrap_or_else(|| "replacement device enrolled".to_owned());
    if reason.trim().is_empty() {
        return Err(CenterError::NoReason);
    }
    let center_addresses = meta.center_addresses();
    let mut bundles = Vec::with_capacity(stations.len());
    let mut records = Vec::with_capacity(stations.len());
    for s in &stations {
        let mut bundle = EnrollmentBundle::issue(&ca, s, &center_addresses, &meta.election_toml)?;
        bundle.log_key = Some(meta.log_verifier_key.clone());
        let cert_der = bundle.station_cert_der()?;
        let public_key = verifying_key_from_cert_der(&cert_der)?.to_bytes();
        records.push(EnrollRecord {
            station: s.clone(),
            cert_der,
            public_key,
        });
        bundles.push(bundle);
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(&request.out_dir)
        .map_err(|source| CenterError::Io {
            path: request.out_dir.clone(),
            source,
        })?;
    let mut written: Vec<PathBuf> = Vec::new();
    let mut starts: Vec<u64> = Vec::new();
    let undo = |written: &[PathBuf]| {
        for p in written {
            let _ = std::fs::remove_file(p);
        }
    };
    // The bundles are written inside the enrollment's transaction, with the heads
    // read there; if anything fails, no key is enrolled and no bundle is left.
    let result = store.enroll(&records, &reason, &mut |heads| {
        for bundle in &mut bundles {
            let path = bundle_path(&request.out_dir, &bundle.station_id);
            let head = heads.get(&bundle.station_id).copied().unwrap_or_default();
            bundle.start_head = (head.sequence > 0).then(|| BundleHead::of(&head));
            starts.push(head.sequence);
            bundle.write(&path)?;
            written.push(path);
        }
        Ok(())
    });
    if let Err(e) = result {
        undo(&written);
        return Err(e);
    }
    Ok(EnrollReport {
        center_addresses,
        enrolled: stations
            .iter()
            .zip(written)
            .zip(starts)
            .map(|((s, bundle), continues_after)| Enrolled {
                station: s.clone(),
                bundle,
                replaced: enrolled_before.contains(s),
                continues_after,
            })
            .collect(),
    })
}
