//! Harness for the cross-process tests: the real `center` and `station` binaries,
//! each in its own folder, driven as an operator and election workers would, with a
//! ground truth drawn by `pollsync-sim` to compare the results against.

/// The tests' private PostgreSQL servers (`sim` starts them for its benchmarks too).
pub use pollsync_sim::pg;
pub mod proxy;
pub mod rogue;

use pollsync_center::store::Records as _;
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
            "-p",
            "pollsync-verify",
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
    /// A PostgreSQL store's URL (`--store`), when the center is not on its folder.
    pub store: Option<String>,
    pub bundles: PathBuf,
    pub grpc: Option<String>,
    /// The operators' HTTP address while serving.
    pub http: Option<String>,
    process: Option<Child>,
    /// The PostgreSQL server this center's store lives on, when the test owns it
    /// ([`ENGINE_ENV`]); stopped after the center.
    pg: Option<pg::PgServer>,
}

/// Environment variable choosing the engine of the centers [`Center::init`] makes:
/// `postgres` puts each on a PostgreSQL server of its own (`.ci/run` runs the
/// storage-facing suites once more so); anything else, or unset, SQLite.
pub const ENGINE_ENV: &str = "POLLSYNC_TEST_ENGINE";

/// Whether [`ENGINE_ENV`] asks for PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var(ENGINE_ENV).is_ok_and(|v| v == "postgres")
}

impl Center {
    /// `center init` with `election` in `root/center-data` (on a PostgreSQL server
    /// of its own if [`ENGINE_ENV`] says so), then `center enroll --all`.
    pub fn init(root: &Path, election: &Path) -> Center {
        if on_postgres() {
            let server = pg::PgServer::start();
            let url = server.create_database("center");
            let mut center = Center::init_on(root, election, &url);
            center.pg = Some(server);
            return center;
        }
        Center::at(root.join("center-data"), None, root.join("bundles")).init_enrolled(election)
    }

    /// `center init --store URL` with `election` (a PostgreSQL store), then `center
    /// enroll --all` into `root/bundles`.
    pub fn init_on(root: &Path, election: &Path, url: &str) -> Center {
        Center::at(
            root.join("center-data-unused"),
            Some(url.to_owned()),
            root.join("bundles"),
        )
        .init_enrolled(election)
    }

    /// A center whose store is at `data` (or the PostgreSQL `store`), its bundles
    /// in `bundles`; not serving.
    fn at(data: PathBuf, store: Option<String>, bundles: PathBuf) -> Center {
        Center {
            data,
            store,
            bundles,
            grpc: None,
            http: None,
            process: None,
            pg: None,
        }
    }

    /// `center init` with `election`, then `center enroll --all` into its bundles.
    fn init_enrolled(self, election: &Path) -> Center {
        ok(self.command().args(["init", "--election"]).arg(election));
        ok(self
            .command()
            .args(["enroll", "--all", "--out-dir"])
            .arg(&self.bundles));
        self
    }

    /// Another `center serve` replica of this center's PostgreSQL store (not
    /// serving yet; its own gRPC and HTTP ports once it does).
    pub fn replica(&self) -> Center {
        assert!(self.store.is_some(), "replicas share a PostgreSQL store");
        Center::at(self.data.clone(), self.store.clone(), self.bundles.clone())
    }

    /// Its store, opened on whichever engine it is.
    pub fn open_store(&self) -> pollsync_center::store::Store {
        pollsync_center::store::Store::open_at(&self.location()).expect("center store opens")
    }

    /// Where its store is.
    pub fn location(&self) -> pollsync_center::store::StoreLocation {
        match &self.store {
            Some(url) => pollsync_center::store::StoreLocation::Postgres(url.clone()),
            None => pollsync_center::store::StoreLocation::Folder(self.data.clone()),
        }
    }

    /// A center initialised and enrolled already (by the test itself).
    pub fn existing(data: PathBuf, bundles: PathBuf) -> Center {
        Center::at(data, None, bundles)
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("center"));
        cmd.arg("--data").arg(&self.data);
        if let Some(url) = &self.store {
            cmd.args(["--store", url]);
        }
        cmd
    }

    /// Start `center serve` on a free loopback port (or the one it had before, so
    /// stations find it again after a restart) and wait until it listens.
    pub fn serve(&mut self) {
        self.serve_with(None, &[]);
    }

    /// [`Center::serve`] with more `center serve` arguments (caps, say), and with
    /// its descriptor limit (soft and hard) set to `descriptors` if given.
    pub fn serve_with(&mut self, descriptors: Option<u64>, extra: &[&str]) {
        assert!(self.process.is_none(), "already serving");
        let addr = self.grpc.clone().unwrap_or_else(|| "127.0.0.1:0".into());
        let mut cmd = match descriptors {
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                    .arg(bin("center"))
                    .arg("--data")
                    .arg(&self.data);
                if let Some(url) = &self.store {
                    sh.args(["--store", url]);
                }
                sh
            }
            None => self.command(),
        };
        let mut child = cmd
            .args(["serve", "--grpc", &addr, "--http", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("center serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut grpc, mut http) = (None, None);
        while grpc.is_none() || http.is_none() {
            let line = lines
                .next()
                .expect("center serve printed its addresses")
                .expect("stdout line");
            if let Some(addr) = line.strip_prefix("gRPC listening on ") {
                grpc = Some(addr.trim().to_string());
            } else if let Some(rest) = line.strip_prefix("HTTP listening on ") {
                http = rest.split_whitespace().next().map(str::to_string);
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.grpc = grpc;
        self.http = http;
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
        Station::init_with_centers(root, center, id, &[center_address])
    }

    /// `station init` from the center's bundle, pointed at `center_addresses` in
    /// this order (`--center` repeated): the station fails over along them.
    pub fn init_with_centers(
        root: &Path,
        center: &Center,
        id: &str,
        center_addresses: &[&str],
    ) -> Station {
        let data = root.join(format!("station-{id}"));
        let mut cmd = Command::new(bin("station"));
        cmd.arg("--data")
            .arg(&data)
            .args(["init", "--bundle"])
            .arg(center.bundle(id));
        for address in center_addresses {
            cmd.args(["--center", address]);
        }
        ok(&mut cmd);
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

/// The first station of `def` that collects two contests (a district-level and a
/// town-level one, counted separately).
pub fn station_with_two_contests(
    def: &pollsync_election::ElectionDefinition,
) -> &pollsync_election::Station {
    def.stations
        .iter()
        .find(|s| s.contests.len() == 2)
        .expect("a station with two contests")
}

/// A small generated election written to `root/election.toml`, with its definition.
pub fn small_election(root: &Path, seed: u64) -> (PathBuf, pollsync_election::ElectionDefinition) {
    let path = root.join("election.toml");
    let def = pollsync_sim::generate::generate_to_file(&pollsync_sim::generate::SMALL, seed, &path)
        .expect("small election");
    (path, def)
}

/// Station → contest → tally sheet.
pub type Tallies = std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<String, pollsync_election::TallySheet>,
>;

/// What the center's store holds: station → contest → computed tally (zeros left out).
pub fn center_tallies(center: &Center) -> Tallies {
    let store =
        pollsync_center::store::Store::open_at(&center.location()).expect("center store opens");
    let mut map = store.tally_map().expect("tallies read");
    for contests in map.values_mut() {
        for sheet in contests.values_mut() {
            *sheet = sheet.without_zeros();
        }
    }
    map
}

/// Ground truth drawn for `def`: station → contest → tally (zeros left out).
pub fn truth(drawn: &[pollsync_sim::ballots::StationContest]) -> Tallies {
    let mut map = Tallies::default();
    for sc in drawn {
        map.entry(sc.station.clone())
            .or_default()
            .insert(sc.contest.clone(), sc.truth.without_zeros());
    }
    map
}

/// Record a station's drawn ballots as its workers would: the issued counts
/// (`station issue`), then the ballots from the box by one `station import`; no
/// contest is closed.
pub fn record_ballots(
    station: &Station,
    drawn: &[pollsync_sim::ballots::StationContest],
    root: &Path,
) {
    issue_all(station, drawn);
    let lines = pollsync_sim::ballots::import_lines(drawn, &station.id);
    if !lines.is_empty() {
        let file = root.join(format!("{}.jsonl", station.id));
        std::fs::write(&file, lines).expect("write ballots");
        station.ok(&["import", &file.display().to_string()]);
    }
}

/// Record a station's drawn day: [`record_ballots`], then every contest closed
/// from its records.
pub fn record_day(station: &Station, drawn: &[pollsync_sim::ballots::StationContest], root: &Path) {
    record_ballots(station, drawn, root);
    close_all(station, drawn);
}

/// A small generated election drawn by seed, with its center initialised, every
/// station enrolled and the center serving: the start of most end-to-end tests.
pub struct SmallDay {
    pub root: tempfile::TempDir,
    pub def: pollsync_election::ElectionDefinition,
    pub drawn: Vec<pollsync_sim::ballots::StationContest>,
    pub center: Center,
}

impl SmallDay {
    pub fn start(seed: u64) -> SmallDay {
        let root = tempfile::tempdir().expect("tempdir");
        let (file, def) = small_election(root.path(), seed);
        let drawn = pollsync_sim::ballots::draw(&def, seed, &pollsync_sim::ballots::USUAL);
        let mut center = Center::init(root.path(), &file);
        center.serve();
        SmallDay {
            root,
            def,
            drawn,
            center,
        }
    }
}

// ---------------------------------------------------------------------------------
// Background processes, partial records and end-of-test checks (fault tests).

/// A command running in the background (`station run`, `station sync`), its stdout
/// and stderr kept in files. Dropping it SIGKILLs it if it still runs.
pub struct Spawned {
    pub what: String,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Numbers the log files of background commands.
static SPAWNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Spawned {
    /// Starts `cmd`, its output going to files in `logs` named after `what`.
    pub fn start(mut cmd: Command, what: &str, logs: &Path) -> Spawned {
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stem: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        std::fs::create_dir_all(logs).expect("log folder");
        let stdout = logs.join(format!("{stem}-{n}.out"));
        let stderr = logs.join(format!("{stem}-{n}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        Spawned {
            what: what.to_string(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the process was already reaped")
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `limit` for it to end by itself.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let what = self.what.clone();
        let status = wait_for(&format!("{what} to end"), limit, || {
            self.child().try_wait().expect("try_wait")
        });
        self.child = None;
        status
    }

    /// SIGTERM (a clean stop for `station run`), then waits up to `limit`.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child().id().to_string();
        ok(Command::new("kill").args(["-TERM", &pid]));
        self.wait(limit)
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Stops a `station run --json` by SIGTERM (waiting up to `limit`) and checks its
/// summary: it exits 0, no rejection stopped it, and everything it sealed is
/// acknowledged. Returns the summary.
pub fn stop_agent(run: &mut Spawned, limit: Duration) -> serde_json::Value {
    let status = run.terminate(limit);
    assert!(
        status.success(),
        "{} ended with {status}:\n{}",
        run.what,
        run.stderr()
    );
    let out = run.stdout();
    let summary: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{} printed no JSON summary ({e}): {out}", run.what));
    assert!(summary["stopped"].is_null(), "{}: {summary}", run.what);
    assert_eq!(
        summary["acknowledged_through"], summary["local_head"],
        "{}: {summary}",
        run.what
    );
    summary
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Station {
    /// `station ARGS…` in the background (e.g. `run`, or `sync --timeout-s N`).
    pub fn spawn(&self, args: &[&str], logs: &Path) -> Spawned {
        let mut cmd = self.command();
        cmd.args(args);
        Spawned::start(cmd, &format!("{} {}", self.id, args.join(" ")), logs)
    }

    /// `station status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = self.ok(&["status", "--json"]);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("station status did not print JSON ({e}): {out}"))
    }

    /// Whether everything recorded is sealed and the center acknowledged every
    /// sealed batch, with `ballots` ballots sealed in all.
    pub fn caught_up(&self, ballots: u64) -> bool {
        let s = self.status();
        s["events"]["pending"] == 0
            && s["ballots_waiting"] == 0
            && s["ballots_sealed"] == ballots
            && s["batches"]["sealed"] == s["batches"]["acknowledged"]
    }
}

/// Every station row of the center's store (heads, presence).
pub fn center_stations(center: &Center) -> Vec<pollsync_center::store::StationRow> {
    pollsync_center::store::Store::open_at(&center.location())
        .expect("center store opens")
        .stations()
        .expect("stations read")
}

/// The last batch the center applied, per station.
pub fn center_heads(center: &Center) -> std::collections::BTreeMap<String, u64> {
    center_stations(center)
        .into_iter()
        .map(|s| (s.station, s.head_sequence))
        .collect()
}

/// Ballots the center holds in all (returned, over every station and contest).
pub fn center_ballots(center: &Center) -> u64 {
    center_tallies(center)
        .values()
        .flat_map(|c| c.values())
        .map(|t| t.returned)
        .sum()
}

/// The drawn station-contests of the stations in `ids` only.
pub fn drawn_for(
    drawn: &[pollsync_sim::ballots::StationContest],
    ids: &[&str],
) -> Vec<pollsync_sim::ballots::StationContest> {
    drawn
        .iter()
        .filter(|sc| ids.contains(&sc.station.as_str()))
        .cloned()
        .collect()
}

/// Ballots drawn for one station.
pub fn ballots_of(drawn: &[pollsync_sim::ballots::StationContest], station: &str) -> u64 {
    drawn
        .iter()
        .filter(|sc| sc.station == station)
        .map(|sc| sc.ballots.len() as u64)
        .sum()
}

/// A station's drawn ballots as `station import` lines, cut into `parts` parts of
/// nearly equal size (each ends with a newline; an empty part has no lines).
pub fn ballot_parts(
    drawn: &[pollsync_sim::ballots::StationContest],
    station: &str,
    parts: usize,
) -> Vec<String> {
    let all = pollsync_sim::ballots::import_lines(drawn, station);
    let lines: Vec<&str> = all.lines().collect();
    let parts = parts.max(1);
    let size = lines.len().div_ceil(parts).max(1);
    let mut out: Vec<String> = lines
        .chunks(size)
        .map(|c| c.iter().map(|l| format!("{l}\n")).collect())
        .collect();
    out.resize(parts, String::new());
    out
}

/// `station issue` for every contest of the station, with the drawn counts.
pub fn issue_all(station: &Station, drawn: &[pollsync_sim::ballots::StationContest]) {
    for sc in drawn.iter().filter(|sc| sc.station == station.id) {
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
}

/// `station import` of one part of its ballots (see [`ballot_parts`]), through a
/// file `dir/<station>-<label>.jsonl`; an empty part records nothing.
pub fn import_part(station: &Station, part: &str, dir: &Path, label: &str) {
    if part.is_empty() {
        return;
    }
    let file = dir.join(format!("{}-{label}.jsonl", station.id));
    std::fs::write(&file, part).expect("write ballots");
    station.ok(&["import", &file.display().to_string()]);
}

/// `station close --from-records` for every contest of the station.
pub fn close_all(station: &Station, drawn: &[pollsync_sim::ballots::StationContest]) {
    for sc in drawn.iter().filter(|sc| sc.station == station.id) {
        station.ok(&["close", "--contest", &sc.contest, "--from-records"]);
    }
}

/// Asserts the center raised no alert (honest stations only).
pub fn assert_no_alerts(center: &Center) {
    let alerts = center.json(&["alerts", "--json"]);
    assert!(
        alerts.as_array().is_some_and(|a| a.is_empty()),
        "honest stations raise no alert: {alerts}"
    );
}

/// Checks `center results --format json` against the truth of `drawn` (every
/// station-contest of the election; `present` are the stations that recorded and
/// synced their day): a contest all of whose stations are present is decided (not
/// pending) with the true ballots and votes; any other contest is pending. Returns
/// how many contests are decided.
pub fn assert_results_are_truth(
    center: &Center,
    drawn: &[pollsync_sim::ballots::StationContest],
    present: &[&str],
) -> usize {
    let results = center.json(&["results", "--format", "json"]);
    let truth = pollsync_sim::ballots::truth_per_contest(&drawn_for(drawn, present));
    let contests = results["contests"].as_array().expect("contests in results");
    let mut decided = 0;
    for r in contests {
        let id = r["id"].as_str().expect("contest id");
        let all_in = drawn
            .iter()
            .filter(|sc| sc.contest == id)
            .all(|sc| present.contains(&sc.station.as_str()));
        if !all_in {
            assert_eq!(r["status"], "pending", "{id}: stations missing: {r}");
            continue;
        }
        decided += 1;
        assert_ne!(r["status"], "pending", "{id}: every station is in: {r}");
        let t = truth.get(id).cloned().unwrap_or_default();
        let seen = (
            &r["ballots"]["issued"],
            &r["ballots"]["returned"],
            &r["ballots"]["valid"],
            &r["ballots"]["void"],
        );
        let want: (
            serde_json::Value,
            serde_json::Value,
            serde_json::Value,
            serde_json::Value,
        ) = (
            t.issued.into(),
            t.returned.into(),
            t.valid.into(),
            t.void.into(),
        );
        assert_eq!(seen, (&want.0, &want.1, &want.2, &want.3), "{id} ballots");
        for cand in r["candidates"].as_array().expect("candidates") {
            let c = cand["id"].as_str().expect("candidate id");
            assert_eq!(cand["for"], t.for_of(c), "{id} {c} FOR");
            assert_eq!(cand["against"], t.against_of(c), "{id} {c} AGAINST");
        }
        for w in r["write_ins"].as_array().expect("write-ins") {
            let name = w["name"].as_str().expect("write-in name");
            assert_eq!(w["for"], t.write_in_of(name), "{id} write-in {name}");
        }
    }
    assert_eq!(
        contests.len(),
        drawn
            .iter()
            .map(|sc| sc.contest.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "every contest has results"
    );
    decided
}

// ---------------------------------------------------------------------------------
// Folders and the independent Python verifier.

/// Copies the folder `from` into `to`, subfolders included (a device's data, an
/// evidence folder).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// The Python interpreter to run the Python verifier with (`POLLSYNC_PYTHON`, by
/// default `python3`).
pub fn python() -> String {
    std::env::var("POLLSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The Python verifier's script, when this machine can run it; with
/// `POLLSYNC_REQUIRE_PYTHON_VERIFIER=1` (CI) it must.
pub fn python_verifier() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verify/python/pollsync_verify.py");
    let usable = script.exists()
        && Command::new(python())
            .args(["-c", "import cryptography"])
            .status()
            .is_ok_and(|s| s.success());
    if std::env::var_os("POLLSYNC_REQUIRE_PYTHON_VERIFIER").is_some_and(|v| v == "1") {
        assert!(
            usable,
            "the Python verifier must run here: python3 with cryptography, and {}",
            script.display()
        );
    }
    usable.then_some(script)
}
