//! The center in a process of its own for the benchmarks (this binary re-started
//! as the hidden `sim bench-center`), so that the center's CPU and memory are its
//! own and the stations' clients in the benchmark's process do not share its
//! runtime.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, ensure};
use pollsync_center::store::StoreLocation;

/// `sim bench-center --data DIR` (or `--store URL`): serve the center store at
/// `store` on a free loopback port, print `listening ADDR`, stop cleanly when
/// stdin closes.
pub fn serve_child(store: &StoreLocation) -> anyhow::Result<()> {
    // A free port: bound and let go just before the center binds it.
    let address = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let center = crate::fleet::CenterHandle::start(store, address, threads)?;
    println!("listening {address}");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(center.stop())?;
    Ok(())
}

/// A center store in `dir/center-data` for `def` (written to `dir/election.toml`),
/// with `stations` enrolled and their bundles in `dir/bundles`. Returns both
/// folders.
pub async fn init_enrolled(
    dir: &Path,
    def: &pollsync_election::ElectionDefinition,
    stations: Vec<String>,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    use pollsync_center::commands::{enroll, init};
    std::fs::create_dir_all(dir)?;
    let election_file = dir.join("election.toml");
    std::fs::write(&election_file, def.to_toml_string())?;
    let data = dir.join("center-data");
    let bundles = dir.join("bundles");
    let (d, b) = (data.clone(), bundles.clone());
    tokio::task::spawn_blocking(move || {
        init::init(&d, &election_file, &[], None)?;
        enroll::enroll(
            &d,
            &enroll::EnrollRequest {
                stations,
                out_dir: b,
                ..Default::default()
            },
        )?;
        anyhow::Ok(())
    })
    .await??;
    Ok((data, bundles))
}

/// The center's process; killed if the measurement fails half-way.
pub struct CenterProcess {
    child: Child,
    /// Where it listens.
    pub address: String,
}

impl CenterProcess {
    pub fn start(store: impl Into<StoreLocation>) -> anyhow::Result<CenterProcess> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut command = Command::new(exe);
        command.arg("bench-center");
        match &store.into() {
            StoreLocation::Folder(data) => command.arg("--data").arg(data),
            StoreLocation::Postgres(url) => command.args(["--store", url]),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the center's process")?;
        let stdout = child.stdout.take().context("center stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line
            .trim()
            .strip_prefix("listening ")
            .with_context(|| format!("the center's process said {line:?}"))?
            .to_string();
        Ok(CenterProcess { child, address })
    }

    /// Resident and peak resident memory (VmRSS, VmHWM) in MiB.
    pub fn memory_mib(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc status"))?;
            let kib: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Close its stdin and wait for a clean stop (everything acknowledged is
    /// durable in its store by then).
    pub fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        ensure!(status.success(), "the center's process ended with {status}");
        Ok(())
    }
}

impl Drop for CenterProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
