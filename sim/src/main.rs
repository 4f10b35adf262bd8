//! The `sim` command: generate elections of the model case's size.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pollsync_election::DefinitionSummary;
use pollsync_sim::generate::{self, PRESETS};

#[derive(Parser)]
#[command(
    name = "sim",
    about = "pollsync simulator: generate elections of the model case's size"
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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate { preset, seed, out } => {
            let p = generate::preset_by_name(&preset).with_context(|| {
                let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                format!(
                    "unknown preset {preset:?}; known presets: {}",
                    known.join(", ")
                )
            })?;
            let def = generate::generate_to_file(p, seed, &out)?;
            println!("wrote {}", out.display());
            print!("{}", DefinitionSummary::of(&def).to_text());
        }
    }
    Ok(())
}
