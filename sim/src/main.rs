//! The `sim` command: generate elections of the model case's size, and run the
//! whole election day on one machine (`sim demo`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pollsync_election::DefinitionSummary;
use pollsync_sim::generate::{self, PRESETS};
use pollsync_sim::{bench, demo};

#[derive(Parser)]
#[command(
    name = "sim",
    about = "pollsync simulator: generate elections of the model case's size, run the election day on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write an election definition (TOML) of a preset's size and make-up.
    Generate {
        /// Which election to model: `beichen` (the 2021 Beichen District election) or `small`.
        #[arg(long, default_value = "beichen")]
        preset: String,
        /// Seed for every random draw; the same seed gives the same election.
        #[arg(long, default_value_t = 2021)]
        seed: u64,
        /// Where to write the definition.
        #[arg(long)]
        out: PathBuf,
    },
    /// The whole election day on one machine: a center on loopback with mutual TLS
    /// and every station of the preset as a real station agent (its own store, key and
    /// connection); ballots issued and recorded in waves while the center counts;
    /// stations closing at different times, mobile ballot boxes coming in late; then
    /// the results, the center's audit, and the center's tallies checked against the
    /// ground truth of the drawn ballots. Exits 1 if any check fails.
    Demo {
        /// Which election to model: `beichen` (the 2021 Beichen District election) or `small`.
        #[arg(long, default_value = "beichen")]
        preset: String,
        /// Seed of the generated election. The ballots are drawn with the same seed
        /// (on a random stream of their own), so one seed gives the same day.
        #[arg(long, default_value_t = 2021)]
        seed: u64,
        /// Work in this folder (new or empty) and keep it; default: a temporary
        /// folder removed at the end (kept with --keep-serving).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Serve the operators' dashboard from the start (http://127.0.0.1:7480/ if
        /// that port is free) and, after the results, leave the center and the
        /// dashboard serving until Ctrl-C.
        #[arg(long)]
        keep_serving: bool,
        /// Print one JSON object instead of text (and no progress bars).
        #[arg(long)]
        json: bool,
    },
    /// Measure the performance targets of SPEC §9 (P1–P7, and P1PG: P1 on
    /// PostgreSQL) on this machine, each checked for correctness as it is
    /// measured: a table (id, what, target, measured, ratio to the baseline), or
    /// JSON with --json. Exits 1 if a target does not hold. Build with --release
    /// for meaningful figures.
    Bench {
        /// Only these measurements, e.g. `--only P1,P5`.
        #[arg(long, value_delimiter = ',', value_name = "P1,…")]
        only: Vec<String>,
        /// Seed of the elections and ballots.
        #[arg(long, default_value_t = 2021)]
        seed: u64,
        /// Work in this folder (new or empty) and keep it; default: a temporary
        /// folder removed at the end.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print `[{"id", "measured", "unit", "target", "baseline", "holds", …}]`.
        #[arg(long)]
        json: bool,
    },
    /// The center's process of `sim bench` (not for people): serve the center store
    /// in DIR on a free loopback port, print `listening ADDR`, stop when stdin closes.
    #[command(hide = true)]
    BenchCenter {
        #[arg(long, required_unless_present = "store")]
        data: Option<PathBuf>,
        #[arg(long, conflicts_with = "data")]
        store: Option<String>,
    },
    /// P7's process of `sim bench` (not for people): `center import` of FILE… into
    /// the center store in DIR; prints the JSON report; exits 1 unless all is clean.
    #[command(hide = true)]
    BenchImport {
        #[arg(long)]
        data: PathBuf,
        files: Vec<PathBuf>,
    },
}

fn preset(name: &str) -> anyhow::Result<&'static generate::Preset> {
    generate::preset_by_name(name).with_context(|| {
        let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!(
            "unknown preset {name:?}; known presets: {}",
            known.join(", ")
        )
    })
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Generate {
            preset: name,
            seed,
            out,
        } => {
            let p = preset(&name)?;
            let def = generate::generate_to_file(p, seed, &out)?;
            println!("wrote {}", out.display());
            print!("{}", DefinitionSummary::of(&def).to_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            only,
            seed,
            dir,
            json,
        } => {
            let options = bench::BenchOptions {
                only,
                seed,
                verbose: !json,
            };
            let temp;
            let root = match dir {
                Some(d) => {
                    if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                        anyhow::bail!("{}: not empty; give a new or empty folder", d.display());
                    }
                    d
                }
                None => {
                    temp = tempfile::tempdir().context("creating a temporary folder")?;
                    temp.path().to_path_buf()
                }
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let figures = runtime.block_on(bench::run(&options, &root))?;
            if json {
                println!("{:#}", bench::to_json(&figures));
            } else {
                print!("{}", bench::to_table(&figures));
            }
            Ok(if figures.iter().all(|f| f.holds) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::BenchCenter { data, store } => {
            let location = match (store, data) {
                (Some(url), _) => pollsync_center::store::StoreLocation::Postgres(url),
                (None, Some(dir)) => pollsync_center::store::StoreLocation::Folder(dir),
                (None, None) => anyhow::bail!("bench-center needs --data or --store"),
            };
            bench::serve_child(&location)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchImport { data, files } => {
            Ok(if bench::hostile::import_child(&data, &files)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo {
            preset: name,
            seed,
            dir,
            keep_serving,
            json,
        } => {
            let options = demo::DemoOptions {
                preset: preset(&name)?,
                seed,
                dir,
                keep_serving,
                json,
            };
            if demo::run(&options)? {
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
