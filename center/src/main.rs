//! The `center` command: the counting center's tools (SPEC §7).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pollsync_center::commands::{alerts, enroll, import, init, revoke};
use pollsync_center::logging::{self, LogFormat};
use pollsync_center::serve_config::ServeOptions;
use pollsync_center::store::DEFAULT_DATA_DIR;
use pollsync_center::store::Records as _;
use pollsync_center::validate::{self, Verdict};
use pollsync_proto::output::emit;
use pollsync_proto::{out, outln};

#[derive(Parser)]
#[command(
    name = "center",
    about = "pollsync counting center: check the election, receive the stations' batches, reconcile results"
)]
struct Cli {
    /// The center's data folder (its SQLite store).
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    data: PathBuf,
    /// A PostgreSQL store instead of the data folder: `postgres://USER@HOST:PORT/DB`
    /// (SPEC §11). Every command of that center takes the same `--store`. A
    /// password is best given as `PGPASSWORD`, not in the URL (which `ps` shows).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "POLLSYNC_STORE",
        hide_env_values = true
    )]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check an election definition (TOML) before use: print its summary, or every
    /// mistake with its place in the file. Exits 1 if there is any mistake.
    Validate {
        /// The election definition file.
        #[arg(long)]
        election: PathBuf,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create the center's store, the election CA and the server certificate, and
    /// load the election. Refuses if a store exists.
    Init {
        /// The election definition file.
        #[arg(long)]
        election: PathBuf,
        /// HOST:PORT where stations reach the center (repeatable); the first goes
        /// into enrollment bundles. Default 127.0.0.1:7443.
        #[arg(long, value_name = "HOST:PORT")]
        advertise: Vec<String>,
        /// Keep the CA's private key in this folder (made 0700, key 0600) instead of
        /// the store, so that it can live off the serving machine: `enroll` needs
        /// it (`--ca-dir`), `serve` never reads it.
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Issue enrollment bundles (mode 0600) as OUT_DIR/<STATION>.bundle.
    Enroll {
        /// Stations to enroll.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        stations: Vec<String>,
        /// Enroll every station of the election.
        #[arg(long)]
        all: bool,
        /// Where to write the bundles.
        #[arg(long)]
        out_dir: PathBuf,
        /// Replace the devices of stations enrolled already: new keys, bundles that
        /// continue the center's chain for each station, old keys refused from now
        /// on (and kept for the audit of what they signed).
        #[arg(long)]
        replace: bool,
        /// Why the devices are replaced (recorded with the change; with --replace).
        #[arg(long, requires = "replace")]
        reason: Option<String>,
        /// The folder holding the CA key, when `init --ca-dir` kept it out of the store.
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Refuse a station from now on, with every key it has (its hello and batches
    /// are rejected). The reason is recorded and shown to operators.
    Revoke {
        /// The station.
        station: String,
        /// Why (recorded with the change).
        #[arg(long)]
        reason: String,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Lift a station's quarantine after a fork has been investigated. The center's
    /// chain stays as it is; the key that signed the fork is retired, so the device
    /// that forked stays refused until the station is replaced (`enroll --replace`).
    Release {
        /// The station.
        station: String,
        /// Why (recorded with the change).
        #[arg(long)]
        reason: String,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the aggregator: receive the stations' batches over gRPC with mutual TLS
    /// and apply each exactly once; serve the operators' dashboard, JSON API, live
    /// events and metrics over HTTP. Stops cleanly on Ctrl-C or SIGTERM.
    Serve {
        /// Read these options from a TOML file (keys: the long options' names with
        /// `_`; see deploy/center.toml). An option given here wins over the file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Stations by state (never seen, online, offline, lagging, closed, fully synced),
    /// contests by status with the stations not yet in, and the alert count.
    Status {
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Results and winners per contest, with totals: as a table, JSON or CSV.
    /// A contest shows as pending, naming its stations, until all have closed and synced.
    Results {
        /// Only this contest.
        #[arg(long, value_name = "ID")]
        contest: Option<String>,
        /// table (for people), json (SPEC shape), csv (one row per candidate), nist
        /// (NIST SP 1500-100 v2 election results, JSON).
        #[arg(long, default_value = "table", value_parser = ["table", "json", "csv", "nist"])]
        format: String,
    },
    /// Re-verify every stored batch from its raw signed bytes, count every station's
    /// tallies again from them, and compare with the live tallies. Exits 1 naming
    /// every difference.
    Audit {
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every alert: station, kind, sequence, detail, time.
    Alerts {
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ingest station export files with the same checks and exactly-once effect as
    /// the network. Exits 1 if any batch is rejected or any file cannot be read.
    Import {
        /// Export files (`station export --out FILE`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the public record (definition, CA, every station certificate, every
    /// signed batch as received, fork evidence, standing changes, the transparency
    /// log's tiles and a fresh checkpoint, the results in JSON and NIST form) into
    /// a new folder, for `pollsync-verify DIR` or any verifier written from
    /// docs/PROTOCOL.md.
    ExportEvidence {
        /// The folder to write (must not exist).
        dir: PathBuf,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn print_json(value: &serde_json::Value) {
    emit(&format!("{value:#}\n"));
}

fn to_value<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("center: {error}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data = match &cli.store {
        None => pollsync_center::store::StoreLocation::Folder(cli.data.clone()),
        Some(url) => match pollsync_center::store::StoreLocation::parse_url(url) {
            Ok(location) => location,
            Err(e) => return fail(e),
        },
    };
    // `serve` sets its logging up once its options (and config file) are read.
    if !matches!(cli.command, Command::Serve { .. }) {
        logging::init_for_command();
    }
    match cli.command {
        Command::Validate { election, json } => run_validate(election, json),
        Command::Init {
            election,
            advertise,
            ca_dir,
            json,
        } => match init::init(&data, &election, &advertise, ca_dir.as_deref()) {
            Ok(report) => {
                if json {
                    print_json(&to_value(&report));
                } else {
                    outln!(
                        "created {} for election {} ({} stations, {} contests)",
                        report.store.display(),
                        report.election,
                        report.stations,
                        report.contests
                    );
                    outln!("definition sha256 {}", report.definition_sha256);
                    outln!(
                        "server certificate names: {}",
                        report.server_names.join(", ")
                    );
                    outln!(
                        "advertised: {} (bundles list them all, stations try them in this order)",
                        report.advertise.join(", ")
                    );
                    if let Some(key) = &report.ca_key_file {
                        outln!(
                            "CA key written to {} (mode 0600), not into the store: `center enroll` needs --ca-dir; `center serve` does not",
                            key.display()
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Enroll {
            stations,
            all,
            out_dir,
            replace,
            reason,
            ca_dir,
            json,
        } => {
            let request = enroll::EnrollRequest {
                stations,
                all,
                out_dir,
                replace,
                reason,
                ca_dir,
            };
            match enroll::enroll(&data, &request) {
                Ok(report) => {
                    if json {
                        print_json(&to_value(&report));
                    } else {
                        for e in &report.enrolled {
                            outln!(
                                "{}: {}{}",
                                e.station,
                                e.bundle.display(),
                                if e.replaced {
                                    format!(
                                        " (replaces the earlier key, which is refused from now on; the new device continues after batch {})",
                                        e.continues_after
                                    )
                                } else {
                                    String::new()
                                }
                            );
                        }
                        outln!(
                            "{} bundle(s) written, mode 0600; stations will reach the center at {}",
                            report.enrolled.len(),
                            report.center_addresses.join(", then ")
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Release {
            station,
            reason,
            json,
        } => match revoke::release(&data, &station, &reason) {
            Ok(report) => {
                if json {
                    print_json(&to_value(&report));
                } else {
                    match report.retired_key_no {
                        Some(k) => outln!(
                            "station {} released from quarantine; its key {k}, which signed the fork, is retired: replace the device (center enroll {} --replace --out-dir DIR) to sync again",
                            report.station,
                            report.station
                        ),
                        None => outln!(
                            "station {} released from quarantine; its current key did not sign the fork and stays accepted",
                            report.station
                        ),
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Revoke {
            station,
            reason,
            json,
        } => match revoke::revoke(&data, &station, &reason) {
            Ok(report) => {
                if json {
                    print_json(&to_value(&report));
                } else if report.newly_revoked {
                    outln!(
                        "station {} revoked: it is refused from now on",
                        report.station
                    );
                } else {
                    outln!("station {} was revoked already", report.station);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Serve {
            config,
            options: given,
        } => {
            let options = match config.as_deref().map(ServeOptions::read).transpose() {
                Ok(file) => given.over(file.unwrap_or_default()),
                Err(e) => return fail(e),
            };
            let log_format = options.log_format();
            if let Err(e) = logging::init(log_format, logging::SERVE_FILTER) {
                return fail(e);
            }
            let mut limits = pollsync_center::listen::Limits::from_process();
            if let Some(n) = options.max_connections {
                limits.max_connections = n.max(1);
            }
            if let Some(n) = options.max_handshakes {
                limits.max_handshakes = n.max(1);
            }
            match serve(
                &data,
                options.grpc(),
                options.http(),
                options.http_token_file.as_deref(),
                limits,
                &options.http_host,
            ) {
                Ok(()) => ExitCode::SUCCESS,
                // Stderr holds JSON lines only: the reason is an event too.
                Err(e) if log_format == LogFormat::Json => {
                    tracing::error!(error = %format!("{e:#}"), "center serve failed");
                    ExitCode::FAILURE
                }
                Err(e) => fail(format!("{e:#}")),
            }
        }
        Command::Status { json } => {
            match pollsync_center::store::Store::open_at(&data)
                .and_then(|s| pollsync_center::status::compute(&s))
            {
                Ok(v) => {
                    if json {
                        print_json(&v);
                    } else {
                        emit(&pollsync_center::status::to_text(&v));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Results { contest, format } => {
            let computed = pollsync_center::store::Store::open_at(&data)
                .and_then(|store| pollsync_center::results::compute(&store, contest.as_deref()));
            match computed {
                Ok(results) => {
                    match format.as_str() {
                        "json" => print_json(&results.to_json()),
                        "csv" => emit(&results.to_csv()),
                        "nist" => {
                            print_json(&results.to_nist(pollsync_center::store::now_unix_ms()))
                        }
                        _ => emit(&results.to_table()),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Audit { json } => {
            match pollsync_center::store::Store::open_at(&data)
                .and_then(|s| pollsync_center::audit::audit(&s))
            {
                Ok(report) => {
                    if json {
                        let mut v = to_value(&report);
                        v["ok"] = report.is_clean().into();
                        print_json(&v);
                    } else {
                        for d in &report.differences {
                            outln!("DIFFERENCE: {d}");
                        }
                        for f in &report.findings {
                            outln!("FINDING: {f}");
                        }
                        outln!(
                            "audited {} batch(es) of {} station(s), {} ballot(s): {}",
                            report.batches,
                            report.stations,
                            report.ballots,
                            if report.is_clean() {
                                "every signature, chain and tally checks out".to_string()
                            } else {
                                format!("{} difference(s)", report.differences.len())
                            }
                        );
                    }
                    if report.is_clean() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => fail(e),
            }
        }
        Command::Alerts { json } => match alerts::alerts_with_evidence(&data) {
            Ok((list, evidence)) => {
                if json {
                    print_json(&alerts::to_json_with_evidence(&list, &evidence));
                } else {
                    emit(&alerts::to_text_with_evidence(&list, &evidence));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::ExportEvidence { dir, json } => {
            match pollsync_center::commands::evidence::export_evidence(&data, &dir) {
                Ok(report) => {
                    if json {
                        print_json(&to_value(&report));
                    } else {
                        outln!(
                            "evidence of {} written to {}: {} files; {} stations, {} batches, {} fork(s), {} standing change(s); log of {} leaves with a fresh checkpoint",
                            report.election,
                            report.dir.display(),
                            report.files,
                            report.stations,
                            report.batches,
                            report.forks,
                            report.standing_changes,
                            report.log_size
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Import { files, json } => match import::import(&data, &files) {
            Ok(reports) => {
                if json {
                    print_json(&import::to_json(&reports));
                } else {
                    out!("{}", import::to_text(&reports));
                }
                if reports.iter().all(import::FileReport::is_clean) {
                    ExitCode::SUCCESS
                } else {
                    if !json {
                        eprintln!("center: some batches or files were not imported (see above)");
                    }
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(e),
        },
    }
}

/// Environment variable holding the operators' HTTP bearer token.
const HTTP_TOKEN_ENV: &str = "POLLSYNC_HTTP_TOKEN";

/// The operators' token from `--http-token-file` or [`HTTP_TOKEN_ENV`], if any.
fn http_token(
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<pollsync_center::http::Token>> {
    use anyhow::Context;
    let text = match file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the HTTP token file {}", f.display()))?,
        ),
        None => std::env::var(HTTP_TOKEN_ENV).ok(),
    };
    text.map(|t| pollsync_center::http::Token::new(&t))
        .transpose()
        .map_err(|e| match file {
            Some(f) => anyhow::anyhow!("{}: {e}", f.display()),
            None => anyhow::anyhow!("{HTTP_TOKEN_ENV}: {e}"),
        })
}

/// `center serve`: the ingest writer, then the gRPC server for stations and the
/// HTTP server for operators, until a stop signal.
fn serve(
    data: &pollsync_center::store::StoreLocation,
    grpc: &str,
    http: &str,
    http_token_file: Option<&std::path::Path>,
    limits: pollsync_center::listen::Limits,
    http_hosts: &[String],
) -> anyhow::Result<()> {
    use anyhow::Context;
    let meta = pollsync_center::store::Store::open_at(data)?.meta()?;
    let token = http_token(http_token_file)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let grpc_listener = tokio::net::TcpListener::bind(grpc)
            .await
            .with_context(|| format!("cannot listen on {grpc} for stations (--grpc)"))?;
        let http_listener = tokio::net::TcpListener::bind(http)
            .await
            .with_context(|| format!("cannot listen on {http} for operators (--http)"))?;
        let http_bound = http_listener
            .local_addr()
            .context("HTTP listening address")?;
        pollsync_center::http::check_token(http_bound, token.as_ref())?;
        // Beyond loopback: HTTPS with the center's own certificate.
        let https = (!http_bound.ip().is_loopback())
            .then(|| (meta.server_cert_pem.clone(), meta.server_key_pem.clone()));
        let scheme = if https.is_some() { "https" } else { "http" };
        let mut hosts: Vec<String> = meta
            .advertise
            .iter()
            .map(|a| pollsync_proto::identity::server_name_of(a))
            .collect();
        hosts.extend(http_hosts.iter().cloned());
        let grpc_bound = grpc_listener
            .local_addr()
            .context("gRPC listening address")?;
        let http_serving = pollsync_center::server::HttpServing {
            listener: http_listener,
            config: pollsync_center::http::HttpConfig {
                token,
                tls: https,
                hosts,
            },
        };
        let running =
            pollsync_center::server::start(data, grpc_listener, limits, Some(http_serving))?;
        outln!("gRPC listening on {grpc_bound}");
        outln!("HTTP listening on {http_bound} (dashboard {scheme}://{http_bound}/)");
        outln!(
            "election {}; stations reach this center at {}",
            meta.election_id,
            meta.center_addresses().join(", ")
        );
        tracing::info!(
            grpc = %grpc_bound,
            http = %http_bound,
            dashboard = %format!("{scheme}://{http_bound}/"),
            store = %data.describe(),
            election = %meta.election_id,
            advertised = %meta.center_addresses().join(","),
            "center serving"
        );
        running
            .run_until(async {
                stop_signal().await;
                tracing::info!("stop signal received: finishing what is in flight");
            })
            .await?;
        tracing::info!("center stopped");
        anyhow::Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn run_validate(election: PathBuf, json: bool) -> ExitCode {
    let verdict = validate::check_file(&election);
    if json {
        outln!("{:#}", verdict.to_json());
    } else {
        match &verdict {
            Verdict::Valid(summary) => {
                outln!("{}: valid", election.display());
                out!("{}", summary.to_text());
            }
            Verdict::Invalid(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                eprintln!(
                    "{}: {} mistake(s); nothing was loaded",
                    election.display(),
                    errors.len()
                );
            }
        }
    }
    if verdict.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
