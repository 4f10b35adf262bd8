//! The `center` command: the counting center's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pollsync_center::validate::{self, Verdict};

#[derive(Parser)]
#[command(
    name = "center",
    about = "pollsync counting center: check the election, receive the stations' batches, reconcile results"
)]
struct Cli {
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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate { election, json } => {
            let verdict = validate::check_file(&election);
            if json {
                println!("{:#}", verdict.to_json());
            } else {
                match &verdict {
                    Verdict::Valid(summary) => {
                        println!("{}: valid", election.display());
                        print!("{}", summary.to_text());
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
    }
}
