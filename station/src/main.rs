//! The `station` command used at a polling station (投票站) or mobile ballot box.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use pollsync_proto::{out, outln};
use pollsync_station::commands::{self, SheetSource};
use pollsync_station::import;
use pollsync_station::logging::{self, LogFormat};
use pollsync_station::receipt::ReceiptError;
use pollsync_station::store::Store;
use pollsync_station::sync::client::{DEFAULT_SEAL_INTERVAL_MS, DEFAULT_SYNC_TIMEOUT_S, Log};
use pollsync_station::sync::{self, Note, RunOptions, SyncOptions};

#[derive(Parser)]
#[command(
    name = "station",
    about = "pollsync polling-station agent: record ballots, close each contest with its tally sheet, send everything to the counting center",
    long_about = "pollsync polling-station agent.\n\nRecords every ballot on this device first (it works without a network), \
                  closes each contest with its tally sheet, and sends signed batches to the counting center. \
                  Start with `station init --bundle FILE` using the enrollment bundle from the center."
)]
struct Cli {
    /// Folder holding this station's data.
    #[arg(
        long,
        global = true,
        default_value = "./station-data",
        value_name = "DIR"
    )]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Json {
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Set up this device from the enrollment bundle the counting center issued for it.
    Init {
        /// The enrollment bundle file (from `center enroll`).
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// Reach the center at this address instead of the bundle's; repeat it to
        /// list several (up to 8): the station moves to the next when one fails.
        #[arg(long, value_name = "HOST:PORT")]
        center: Vec<String>,
    },
    /// Record that more ballots of a contest were handed to voters (发出选票).
    Issue {
        /// The contest, e.g. D-001.
        #[arg(long, value_name = "ID")]
        contest: String,
        /// How many more ballots were handed out.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
    },
    /// Record one ballot as it reads; prints the new ballot's id (keep it to cancel a mistake).
    Record {
        /// The contest the ballot belongs to, e.g. D-001.
        #[arg(long, value_name = "ID")]
        contest: String,
        /// Candidates marked FOR (赞成), by id, separated by commas.
        #[arg(long = "for", value_name = "ID,…", value_delimiter = ',')]
        for_ids: Vec<String>,
        /// Candidates marked AGAINST (反对), by id, separated by commas.
        #[arg(long, value_name = "ID,…", value_delimiter = ',')]
        against: Vec<String>,
        /// A name written in (另选其他选民); repeat for each name.
        #[arg(long = "write-in", value_name = "NAME")]
        write_in: Vec<String>,
    },
    /// Record every ballot of a JSON-lines file, all or nothing: one ballot per line,
    /// {"contest": "D-001", "for": ["D-001-1"], "against": [], "write_in": []}.
    Import {
        /// The JSON-lines file.
        file: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Withdraw a ballot entered by mistake (only before its contest is closed).
    Cancel {
        /// The ballot id `station record` printed.
        ballot: String,
        /// Why it is withdrawn.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Close a contest with its tally sheet (计票结果); nothing more is taken for it afterwards.
    Close {
        /// The contest to close.
        #[arg(long, value_name = "ID")]
        contest: String,
        /// The tally sheet from the human count, as JSON:
        /// {"issued": n, "returned": n, "valid": n, "void": n, "for": {…}, "against": {…}, "write_in": {…}}.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "from_records",
            required_unless_present = "from_records"
        )]
        sheet: Option<PathBuf>,
        /// Use the tally the records on this device give.
        #[arg(long)]
        from_records: bool,
    },
    /// Show what the records say, per contest.
    Tally(Json),
    /// Show events recorded, batches sealed and acknowledged, last contact, closed contests.
    Status(Json),
    /// Seal everything recorded into signed batches now (the running agent does this itself).
    Seal(Json),
    /// Keep this station in touch with the counting center until stopped (Ctrl-C).
    #[command(
        long_about = "Keep this station in touch with the counting center until stopped.\n\n\
        Leave it running all day beside the other `station` commands: every ballot and event \
        recorded on this device is sealed into a signed batch within moments and sent to the \
        center as soon as the center can be reached. When the network is down, recording goes on \
        as usual and `station run` keeps trying (waiting a little longer each time, at most 10 s); \
        everything recorded meanwhile is sent when the connection comes back, with nothing for you \
        to do. What happens is written to the screen as it happens.\n\n\
        If the center rejects this station (for example because it holds a different copy of this \
        station's batches), sending stops and the reason is shown: call an operator. Recording \
        still works. Stop with Ctrl-C; the exit status is non-zero if sending had been stopped by \
        a rejection."
    )]
    Run {
        /// How often newly recorded ballots are sealed into batches, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = DEFAULT_SEAL_INTERVAL_MS)]
        seal_interval_ms: u64,
        /// How what happens is written to stderr: `human` (sentences, the default)
        /// or `json` (one object per line with the station and the numbers, for a
        /// log collector; RUST_LOG filters it, default info).
        #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        #[command(flatten)]
        json: Json,
    },
    /// Send everything recorded to the counting center now and wait until the center has confirmed all of it.
    #[command(
        long_about = "Send everything recorded to the counting center now and wait until the \
        center has confirmed (acknowledged) all of it.\n\n\
        Connects to the center, seals whatever is recorded and not yet sealed (once the center's \
        copy is known to be in step with this device), sends every batch the center does not have \
        yet, and exits with status 0 once the center has acknowledged them all. If the center rejects a batch, it exits non-zero and prints the center's reason: \
        call an operator. If the center cannot be reached, it keeps trying until --timeout-s \
        seconds pass without progress, then exits non-zero saying which address it tried and why \
        it failed. Nothing recorded is lost either way; run it again later, or use `station export` \
        to carry the batches by hand."
    )]
    Sync {
        /// Give up after this many seconds without reaching the center or without progress.
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SYNC_TIMEOUT_S)]
        timeout_s: u64,
        #[command(flatten)]
        json: Json,
    },
    #[command(
        long_about = "Bring back from the center this station's batches that this device lacks.\n\n\
        For a device restored from a backup that is behind the center (the same chain, fewer \
        batches): fetches the batches after its head, checks every signature and link itself, \
        stores them, and lets sealing go on after them. Events recorded on this device that those \
        batches already hold are dropped (nothing counts twice); everything else recorded here is \
        kept and sealed after the recovered head. For a replacement device (enrolled with `center \
        enroll --replace`): fetches the station's batches from before the replacement, so that its \
        records hold the whole day. A device whose chain differs from the center's (a fork) is told \
        so and cannot recover."
    )]
    Recover(Json),
    /// Print the station's receipt, to post at the polling station: its tally sheets, its last batch's hash, and the proof that the center's public log holds it.
    #[command(
        long_about = "Print the station's receipt, to post at the polling station (张榜公布).\n\n        Asks the center (if it can be reached) to prove that this station's newest acknowledged \
        batch is in the center's public transparency log, checks the proof and the center's signed \
        checkpoint itself, and keeps them. Prints what the records say per contest (the tally \
        sheets), the hash of the last batch, its place in the log, the inclusion proof and the \
        signed checkpoint, so that an observer can check the posted count against the public log. \
        If the center ever showed two different histories of its log, the receipt says so first \
        and the exit status is non-zero: call the election authority."
    )]
    Receipt(Json),
    /// Write every batch the center has not acknowledged into one signed file, to carry by hand (USB).
    Export {
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = matches!(
        cli.command,
        Command::Run {
            log_format: LogFormat::Json,
            ..
        }
    );
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Stderr holds JSON lines only: the reason is an event too.
        Err(e) if json_logs && tracing::dispatcher::has_been_set() => {
            tracing::error!(error = %format!("{e:#}"), "station run failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.data.as_path();
    match cli.command {
        Command::Init { bundle, center } => {
            out!("{}", commands::init(dir, &bundle, &center)?)
        }
        Command::Issue { contest, count } => out!("{}", commands::issue(dir, &contest, count)?),
        Command::Record {
            contest,
            for_ids,
            against,
            write_in,
        } => {
            outln!(
                "{}",
                commands::record(dir, &contest, &for_ids, &against, &write_in)?
            )
        }
        Command::Import { file, json } => {
            let mut store = Store::open(dir)?;
            let prov = store.provisioned()?;
            let imported = import::import(&mut store, &prov, &file)?;
            let total: u64 = imported.values().sum();
            if json.json {
                let report = commands::ImportReport {
                    file: file.display().to_string(),
                    ballots: total,
                    contests: &imported,
                };
                outln!("{}", serde_json::to_value(&report)?);
            } else {
                outln!(
                    "{total} ballot(s) imported from {} ({})",
                    file.display(),
                    commands::per_contest_text(&imported)
                );
            }
        }
        Command::Cancel { ballot, reason } => {
            out!("{}", commands::cancel(dir, &ballot, &reason)?)
        }
        Command::Close {
            contest,
            sheet,
            from_records: _,
        } => {
            let source = match &sheet {
                Some(file) => SheetSource::File(file),
                None => SheetSource::FromRecords,
            };
            let (text, differences) = commands::close(dir, &contest, source)?;
            out!("{text}");
            if !differences.is_empty() {
                eprintln!(
                    "warning: the tally sheet differs from this device's records; the center will show a discrepancy:"
                );
                for d in differences {
                    eprintln!("  {d}");
                }
            }
        }
        Command::Tally(json) => {
            let (station, tallies) = commands::tally(dir)?;
            if json.json {
                outln!(
                    "{:#}",
                    serde_json::to_value(commands::TallyReport {
                        station: &station,
                        contests: &tallies,
                    })?
                );
            } else {
                let prov = Store::open(dir)?.provisioned()?;
                out!(
                    "{}",
                    commands::tally_text(&prov.definition, &station, &tallies)
                );
            }
        }
        Command::Status(json) => {
            let status = commands::status(dir)?;
            if json.json {
                outln!("{:#}", serde_json::to_value(&status)?);
            } else {
                out!("{}", commands::status_text(&status));
            }
        }
        Command::Seal(json) => {
            let made = commands::seal(dir)?;
            if json.json {
                let report = commands::SealReport { sealed: &made };
                outln!("{}", serde_json::to_value(&report)?);
            } else if made.is_empty() {
                outln!("nothing to seal");
            } else {
                for b in made {
                    outln!(
                        "sealed batch {} ({} events, {} ballots)",
                        b.sequence,
                        b.events,
                        b.ballots
                    );
                }
            }
        }
        Command::Run {
            seal_interval_ms,
            log_format,
            json,
        } => run_agent(dir, seal_interval_ms, log_format, json.json)?,
        Command::Sync { timeout_s, json } => sync_now(dir, timeout_s, json.json)?,
        Command::Receipt(json) => {
            let rt = runtime()?;
            let report = rt.block_on(sync::receipt::receipt(dir))?;
            if json.json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let prov = Store::open(dir)?.provisioned()?;
                out!("{}", sync::receipt::receipt_text(&prov, &report));
            }
            if let Some(alarm) = &report.alarm {
                anyhow::bail!(
                    "the center's transparency log is not one history: {}",
                    alarm.detail
                );
            }
        }
        Command::Recover(json) => {
            let rt = runtime()?;
            let report = rt.block_on(sync::recover::recover(dir))?;
            let r = &report.recovered;
            if json.json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else if r.history_batches + r.forward_batches == 0 {
                outln!(
                    "nothing to recover: this device holds every batch up to the center's head ({})",
                    report.center_head
                );
            } else {
                if r.history_batches > 0 {
                    outln!(
                        "recovered {} earlier batch(es) of this station (from before this device replaced the old one)",
                        r.history_batches
                    );
                }
                if r.forward_batches > 0 {
                    outln!(
                        "recovered batches {} to {} from the center ({} ballot(s) in all recovered batches); sealing goes on after batch {}",
                        report.local_head_before + 1,
                        report.center_head,
                        r.ballots,
                        report.local_head_after
                    );
                }
                outln!(
                    "{} event(s) recorded here were already in the center's batches and were dropped; {} event(s) recorded here are kept and will be sealed next",
                    r.pending_dropped,
                    r.pending_kept
                );
            }
        }
        Command::Export { out } => {
            let (count, bytes) = commands::export(dir, &out)?;
            outln!(
                "wrote {count} batch(es), {bytes} bytes of signed data, to {}",
                out.display()
            );
        }
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the network runtime")
}

/// Notes go to stderr, one line each.
fn stderr_log() -> Log {
    Arc::new(|note: &Note| eprintln!("{note}"))
}

fn run_agent(
    dir: &std::path::Path,
    seal_interval_ms: u64,
    log_format: LogFormat,
    json: bool,
) -> anyhow::Result<()> {
    let (log, station) = match log_format {
        LogFormat::Human => (stderr_log(), None),
        LogFormat::Json => {
            let station = Store::open(dir)?.provisioned()?.station_id().to_owned();
            logging::init_json()?;
            (logging::event_log(station.clone()), Some(station))
        }
    };
    let station: Arc<Option<String>> = Arc::new(station);
    let say = move |text: &str| match station.as_deref() {
        None => eprintln!("{text}"),
        Some(station) => tracing::info!(station, event = "agent", "{text}"),
    };
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        let say_at_stop = say.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            say_at_stop("stopping: waiting briefly for answers to batches in flight");
            let _ = stop_tx.send(true);
        });
        say(&format!(
            "station run: sealing every {seal_interval_ms} ms and sending to the center; stop with Ctrl-C"
        ));
        let options = RunOptions { seal_interval_ms };
        anyhow::Ok(sync::run(dir, options, stop_rx, log).await?)
    })?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        outln!(
            "stopped: the center holds {} of {} sealed batch(es); {} sent over {} connection(s)",
            summary.acknowledged_through,
            summary.local_head,
            summary.counters.batches_sent,
            summary.counters.connections
        );
    }
    match summary.stopped {
        Some(stop) => anyhow::bail!("sending had stopped: {}", stop.message),
        None => Ok(()),
    }
}

/// `station sync --json` when every batch is acknowledged: `ok` and the summary.
#[derive(serde::Serialize)]
struct SyncReport<'a> {
    ok: bool,
    #[serde(flatten)]
    summary: &'a sync::SyncSummary,
}

/// `station sync --json` when it fails: `ok` false, the kind and the words.
#[derive(serde::Serialize)]
struct SyncFailure {
    ok: bool,
    error: String,
    message: String,
}

fn sync_now(dir: &std::path::Path, timeout_s: u64, json: bool) -> anyhow::Result<()> {
    let rt = runtime()?;
    let options = SyncOptions {
        timeout_ms: timeout_s.saturating_mul(1_000),
    };
    match rt.block_on(sync::sync(dir, options, stderr_log())) {
        Ok(summary) => {
            // The receipt of what was just acknowledged (SPEC §10); a center whose
            // log shows two histories fails the sync.
            let store = Store::open(dir)?;
            let prov = store.provisioned()?;
            match rt.block_on(sync::receipt::take(&store, &prov)) {
                Ok(_) => {}
                Err(e @ sync::receipt::TakeError::Receipt(ReceiptError::TwoHistories(_))) => {
                    return Err(e.into());
                }
                Err(e) => eprintln!("warning: no receipt from the center's log: {e}"),
            }
            if json {
                let report = SyncReport {
                    ok: true,
                    summary: &summary,
                };
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::to_value(&report)?)?
                );
            } else {
                outln!(
                    "all {} sealed batch(es) are acknowledged by the center at {} ({} sent, {} already there; {} ms)",
                    summary.local_head,
                    summary.center,
                    summary.counters.batches_sent,
                    summary.counters.duplicates,
                    summary.elapsed_ms
                );
            }
            Ok(())
        }
        Err(e) => {
            if json {
                outln!(
                    "{}",
                    serde_json::to_value(SyncFailure {
                        ok: false,
                        error: e.kind(),
                        message: e.to_string(),
                    })?
                );
            }
            Err(e.into())
        }
    }
}
