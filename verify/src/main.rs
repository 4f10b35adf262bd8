//! `pollsync-verify DIR [--json]`: verifies an election's public evidence and
//! exits 0, or exits 1 naming the first step, file and item that failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Verify an election's public evidence (`center export-evidence DIR`) from the files
/// alone: certificates, signatures, chains, zero reports, the transparency log, and a
/// recount against the published results (docs/PROTOCOL.md §10).
#[derive(Parser)]
#[command(name = "pollsync-verify", version)]
struct Cli {
    /// The evidence folder.
    dir: PathBuf,
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    json: bool,
    /// Fail unless the evidence is of an election of this mode (`official` or
    /// `test`): an observer checking the official result passes `--mode official`,
    /// so that a test election's evidence is refused by name.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<pollsync_election::Mode>,
}

fn parse_mode(word: &str) -> Result<pollsync_election::Mode, String> {
    pollsync_election::Mode::from_word(word)
        .ok_or_else(|| format!("{word:?} is not a mode: use official or test"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match pollsync_verify::verify(&cli.dir, cli.mode) {
        Ok(report) => {
            if cli.json {
                println!("{:#}", report.to_json());
            } else {
                for line in report.steps.iter().chain(&report.notes) {
                    println!("{line}");
                }
                println!(
                    "OK: the evidence of {} ({}) verifies",
                    report.election, report.mode
                );
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if cli.json {
                println!(
                    "{:#}",
                    serde_json::json!({"ok": false, "step": failure.step, "item": failure.item, "reason": failure.reason})
                );
            }
            eprintln!("FAIL {failure}");
            ExitCode::FAILURE
        }
    }
}
