//! The `sim` command: generate elections of the model case's size, and run the
//! whole election day on one machine (`sim demo`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pollsync_election::DefinitionSummary;
use pollsync_sim::demo;
use pollsync_sim::generate::{self, PRESETS};

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
