//! Shared pieces of the station's cross-process tests: an enrolled station in a
//! temporary folder, and running the real `station` binary against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pollsync_proto::{ElectionCa, EnrollmentBundle};

/// A two-contest election: D-001 (2 seats, 3 candidates) and T-001 (1 seat, 2
/// candidates), collected by S-0001 and S-0002; T-002 is collected by S-0003 only.
pub const ELECTION: &str = include_str!("../../../tests/fixtures/three-stations.toml");

pub struct TestStation {
    /// Keeps the temporary folder alive.
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub bundle: PathBuf,
}

/// Write an enrollment bundle for `station_id` into a new temporary folder.
pub fn bundle_for(station_id: &str) -> TestStation {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = ElectionCa::generate("test-2021", pollsync_election::Mode::Test).expect("CA");
    let bundle =
        EnrollmentBundle::issue(&ca, station_id, &["127.0.0.1:7443"], ELECTION).expect("bundle");
    let path = tmp.path().join(format!("{station_id}.bundle"));
    bundle.write(&path).expect("write bundle");
    let data = tmp.path().join("station-data");
    TestStation {
        tmp,
        data,
        bundle: path,
    }
}

/// A station set up with `station init`.
pub fn enrolled(station_id: &str) -> TestStation {
    let s = bundle_for(station_id);
    let out = s.run(&["init", "--bundle", &s.bundle.display().to_string()]);
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

pub fn station_bin() -> &'static str {
    env!("CARGO_BIN_EXE_station")
}

impl TestStation {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(station_bin());
        cmd.arg("--data").arg(&self.data).args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("station runs")
    }

    /// Run and insist on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "station {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and insist on failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "station {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn tally(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["tally", "--json"])).expect("tally JSON")
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status JSON")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// The contest entry of `station tally --json`.
pub fn contest<'a>(tally: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    tally["contests"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no contest {id} in {tally}"))
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}
