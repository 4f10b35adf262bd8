//! P7, hostile memory (SPEC §9): the peak memory of `center import` on a crafted
//! export, against the same import of an honest station's small export (the idle
//! figure), each in a process of its own (this binary re-started as the hidden
//! `sim bench-import`), measured through the child's peak resident set (`VmHWM`).
//!
//! The crafted file is the one an outsider used: [`HOSTILE_EXPORT_BYTES`] of empty
//! entries (two bytes each), which once cost about 290 bytes of memory per entry.
//!
//! The second figure is `center serve` (a process of its own) flooded by enrolled
//! stations pushing batches of nearly a megabyte of garbage as fast as their windows
//! allow, on two streams each: its peak memory above its idle figure.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use super::{Better, Figure, Target};

/// Size of the crafted export.
pub const HOSTILE_EXPORT_BYTES: u64 = 50 * 1024 * 1024;

/// Stations flooding the center in P7's second figure, two streams each.
pub const FLOOD_STATIONS: usize = 16;
/// Garbage batches each stream pushes.
pub const FLOOD_BATCHES_PER_STREAM: usize = 40;

pub(crate) const P7_SERVE: Target = Target {
    id: "P7",
    what: "center serve flooded with 1 MiB garbage, peak above idle",
    unit: "MiB",
    target: 256.0,
    better: Better::Lower,
};

pub(crate) const P7: Target = Target {
    id: "P7",
    what: "center import, crafted 50 MB export, peak above idle",
    unit: "MiB",
    target: 256.0,
    better: Better::Lower,
};

/// Writes an export file of `bytes` bytes: the magic, then empty entries (field 4,
/// length 0) claiming nothing but their count.
pub fn write_empty_entries_export(path: &Path, bytes: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(pollsync_proto::EXPORT_MAGIC)?;
    let chunk = [0x22u8, 0x00].repeat(32 * 1024);
    let mut left = bytes.saturating_sub(8) / 2 * 2;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// Runs `cmd` to its end and returns its output with its peak resident memory in
/// MiB (`VmHWM`, read every few milliseconds while it runs: a lower bound of the
/// true peak, off by what it allocates in its last moments).
pub fn run_measuring_peak_mib(cmd: &mut Command) -> std::io::Result<(Output, f64)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    // Read the pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = std::io::Read::read_to_end(o, &mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = std::io::Read::read_to_end(e, &mut buf);
        }
        buf
    });
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
            && let Ok(kib) = line
                .trim_start_matches("VmHWM:")
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok((
        Output {
            status,
            stdout,
            stderr,
        },
        peak_kib as f64 / 1024.0,
    ))
}

/// `sim bench-import --data DIR FILE…`: `center import` of `files` into `data`
/// in this process; prints the JSON report.
pub fn import_child(data: &Path, files: &[PathBuf]) -> anyhow::Result<bool> {
    let reports = pollsync_center::commands::import::import(data, files)?;
    println!("{}", pollsync_center::commands::import::to_json(&reports));
    Ok(reports
        .iter()
        .all(pollsync_center::commands::import::FileReport::is_clean))
}

/// P7: the crafted file against an honest one, each imported by a fresh process.
pub async fn p7_hostile_import(dir: &Path, seed: u64) -> anyhow::Result<Figure> {
    std::fs::create_dir_all(dir)?;
    let (data, honest) = super::small_center_with_export(dir, seed).await?;
    let exe = std::env::current_exe().context("finding this program")?;
    let import = |file: &Path| {
        let mut cmd = Command::new(&exe);
        cmd.arg("bench-import").arg("--data").arg(&data).arg(file);
        run_measuring_peak_mib(&mut cmd)
    };
    let (out, idle_mib) = import(&honest)?;
    ensure!(
        out.status.success(),
        "the honest export did not import: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let crafted = dir.join("crafted.psync");
    write_empty_entries_export(&crafted, HOSTILE_EXPORT_BYTES)?;
    let started = Instant::now();
    let (out, hostile_mib) = import(&crafted)?;
    let took = started.elapsed();
    // Refused cleanly: non-zero, every entry charged to nobody, nothing accepted.
    ensure!(!out.status.success(), "the crafted export was not refused");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the import printed {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let entries = (HOSTILE_EXPORT_BYTES - 8) / 2;
    ensure!(
        report["accepted"] == 0 && report["unattributed"] == entries,
        "the crafted export's {entries} entries were not all refused: {report}"
    );
    Ok(P7.figure(
        hostile_mib - idle_mib,
        None,
        format!(
            "{entries} empty entries refused in {:.1} s; peak {hostile_mib:.0} MiB against {idle_mib:.0} MiB for an honest station's export",
            took.as_secs_f64()
        ),
    ))
}

/// P7, second figure: the serving center's peak memory under a flood of garbage
/// batches from enrolled stations, above its idle figure.
pub async fn p7_hostile_pushes(dir: &Path, seed: u64) -> anyhow::Result<Figure> {
    use pollsync_center::commands::enroll;
    use pollsync_proto::{ChainHead, EnrollmentBundle, pb};
    let def = crate::generate::generate(&crate::generate::SMALL, seed)?;
    let chosen: Vec<String> = def
        .stations
        .iter()
        .take(FLOOD_STATIONS)
        .map(|s| s.id.clone())
        .collect();
    let (data, bundles) = super::center_process::init_enrolled(dir, &def, chosen.clone()).await?;
    let center = super::center_process::CenterProcess::start(&data)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle, _) = center.memory_mib()?;
    // Nearly a megabyte that decodes as nothing.
    let garbage = pb::SignedBatch {
        batch: vec![0xff; pollsync_proto::limits::MAX_BATCH_BYTES - 64],
        signature: vec![0; 64],
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for id in &chosen {
        let bundle = EnrollmentBundle::read(&enroll::bundle_path(&bundles, id))?;
        for _ in 0..2 {
            let (address, bundle, garbage) =
                (center.address.clone(), bundle.clone(), garbage.clone());
            tasks.spawn(async move {
                let mut link =
                    super::link::Link::open(&address, &bundle, ChainHead::default()).await?;
                link.flood(&garbage, FLOOD_BATCHES_PER_STREAM).await
            });
        }
    }
    let mut peak = 0f64;
    let mut answered = 0usize;
    while !tasks.is_empty() {
        let (_, hwm) = center.memory_mib()?;
        peak = peak.max(hwm);
        while let Some(done) = tasks.try_join_next() {
            answered += done??;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, hwm) = center.memory_mib()?;
    peak = peak.max(hwm);
    center.stop()?;
    let pushed_mib = (chosen.len() * 2 * FLOOD_BATCHES_PER_STREAM) as f64;
    Ok(P7_SERVE.figure(
        peak - idle,
        None,
        format!(
            "{} stations x 2 streams x {FLOOD_BATCHES_PER_STREAM} garbage batches of 1 MiB ({pushed_mib:.0} MiB pushed, {answered} answered) in {:.1} s; peak {peak:.0} MiB against {idle:.0} MiB idle",
            chosen.len(),
            started.elapsed().as_secs_f64()
        ),
    ))
}
