//! Harness for the cross-process tests: the real `center` and `station` binaries,
//! each in its own folder, driven as an operator and election workers would, with a
//! ground truth drawn by `pollsync-sim` to compare the results against.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The folder holding the workspace's binaries: the test executable lives in
/// `target/<profile>/deps/`, the binaries in `target/<profile>/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

/// Path of a workspace binary, building the binaries first if `cargo test` was run
/// for this package alone (a workspace run builds them before any test starts).
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = bin_dir().file_name().is_some_and(|p| p == "release");
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--bins",
            "-p",
            "pollsync-center",
            "-p",
            "pollsync-station",
            "-p",
            "pollsync-sim",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo build runs");
        assert!(status.success(), "building the binaries failed");
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Run a command to completion, insisting on success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command to completion, whatever its exit.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("command runs")
}

/// Poll `check` until it returns `Some`, failing after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The counting center: its folder and, while serving, its process.
pub struct Center {
    pub data: PathBuf,
    pub bundles: PathBuf,
    pub grpc: Option<String>,
    process: Option<Child>,
}

impl Center {
    /// `center init` with `election` in `root/center-data`, then `center enroll --all`.
    pub fn init(root: &Path, election: &Path) -> Center {
        let data = root.join("center-data");
        let bundles = root.join("bundles");
        ok(Command::new(bin("center"))
            .arg("--data")
            .arg(&data)
            .args(["init", "--election"])
            .arg(election));
        ok(Command::new(bin("center"))
            .arg("--data")
            .arg(&data)
            .args(["enroll", "--all", "--out-dir"])
            .arg(&bundles));
        Center {
            data,
            bundles,
            grpc: None,
            process: None,
        }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("center"));
        cmd.arg("--data").arg(&self.data);
        cmd
    }

    /// Start `center serve` on a free loopback port (or the one it had before, so
    /// stations find it again after a restart) and wait until it listens.
    pub fn serve(&mut self) {
        assert!(self.process.is_none(), "already serving");
        let addr = self.grpc.clone().unwrap_or_else(|| "127.0.0.1:0".into());
        let mut child = self
            .command()
            .args(["serve", "--grpc", &addr, "--http", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("center serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let listening = loop {
            let line = lines
                .next()
                .expect("center serve printed its address")
                .expect("stdout line");
            if let Some(addr) = line.strip_prefix("gRPC listening on ") {
                break addr.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.grpc = Some(listening);
        self.process = Some(child);
    }

    /// SIGKILL the server: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn address(&self) -> &str {
        self.grpc.as_deref().expect("serving")
    }

    pub fn bundle(&self, station: &str) -> PathBuf {
        self.bundles.join(format!("{station}.bundle"))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = ok(self.command().args(args));
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("center {args:?} did not print JSON ({e}): {out}"))
    }
}

impl Drop for Center {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One polling station's device.
pub struct Station {
    pub id: String,
    pub data: PathBuf,
}

impl Station {
    /// `station init` from the center's bundle, pointed at `center_address`.
    pub fn init(root: &Path, center: &Center, id: &str, center_address: &str) -> Station {
        let data = root.join(format!("station-{id}"));
        ok(Command::new(bin("station"))
            .arg("--data")
            .arg(&data)
            .args(["init", "--bundle"])
            .arg(center.bundle(id))
            .args(["--center", center_address]));
        Station {
            id: id.to_string(),
            data,
        }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("station"));
        cmd.arg("--data").arg(&self.data);
        cmd
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.command().args(args))
    }
}

/// A small generated election written to `root/election.toml`, with its definition.
pub fn small_election(root: &Path, seed: u64) -> (PathBuf, pollsync_election::ElectionDefinition) {
    let path = root.join("election.toml");
    let def = pollsync_sim::generate::generate_to_file(&pollsync_sim::generate::SMALL, seed, &path)
        .expect("small election");
    (path, def)
}

/// What the center's store holds: station → contest → computed tally (zeros left out).
pub fn center_tallies(
    center: &Center,
) -> std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<String, pollsync_election::TallySheet>,
> {
    let store = pollsync_center::store::Store::open(&center.data).expect("center store opens");
    let mut map = store.tally_map().expect("tallies read");
    for contests in map.values_mut() {
        for sheet in contests.values_mut() {
            *sheet = sheet.without_zeros();
        }
    }
    map
}

/// Ground truth drawn for `def`: station → contest → tally (zeros left out).
pub fn truth(
    drawn: &[pollsync_sim::ballots::StationContest],
) -> std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<String, pollsync_election::TallySheet>,
> {
    let mut map: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, pollsync_election::TallySheet>,
    > = Default::default();
    for sc in drawn {
        map.entry(sc.station.clone())
            .or_default()
            .insert(sc.contest.clone(), sc.truth.without_zeros());
    }
    map
}

/// Record a station's drawn day: the issued counts, its ballots by `station import`,
/// then every contest closed from its records.
pub fn record_day(station: &Station, drawn: &[pollsync_sim::ballots::StationContest], root: &Path) {
    let mine: Vec<_> = drawn.iter().filter(|sc| sc.station == station.id).collect();
    for sc in &mine {
        if sc.issued > 0 {
            station.ok(&[
                "issue",
                "--contest",
                &sc.contest,
                "--count",
                &sc.issued.to_string(),
            ]);
        }
    }
    let file = root.join(format!("{}.jsonl", station.id));
    std::fs::write(
        &file,
        pollsync_sim::ballots::import_lines(drawn, &station.id),
    )
    .expect("write ballots");
    if mine.iter().any(|sc| !sc.ballots.is_empty()) {
        station.ok(&["import", &file.display().to_string()]);
    }
    for sc in &mine {
        station.ok(&["close", "--contest", &sc.contest, "--from-records"]);
    }
}
