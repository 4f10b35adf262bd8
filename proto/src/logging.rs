//! How the `center` and `station` binaries write their logs: one home for the
//! `--log-format` choice, the `RUST_LOG` filter and the `tracing` subscriber, so the
//! two binaries' logs have one shape. What each logs, and what it must never log,
//! lives with the binary (`center::logging`, `station::logging`).
//!
//! Logs go to stderr: for people by default (`human`: one compact line per event,
//! coloured only on a terminal without `NO_COLOR`), or one JSON object per line
//! (`json`: `timestamp`, `level`, `fields` with `message`, `target`) for a log
//! collector.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The environment variable holding the filter (`RUST_LOG=debug`, say).
pub const FILTER_ENV: &str = "RUST_LOG";

/// How log events are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Human,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`).
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `RUST_LOG` does not parse as a filter.
    #[error("{FILTER_ENV}={value:?} is not a log filter: {source}")]
    BadFilter {
        /// The variable's value.
        value: String,
        /// Why it does not parse.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was installed already.
    #[error("logging is set up already: {0}")]
    Installed(String),
}

/// The filter: `RUST_LOG` if it is set and not blank, else `default`.
pub fn filter_from_env(default: &str) -> Result<EnvFilter, LogError> {
    match std::env::var(FILTER_ENV) {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::try_new(&value).map_err(|source| LogError::BadFilter { value, source })
        }
        _ => Ok(EnvFilter::new(default)),
    }
}

/// A subscriber writing `format` through `writer`, keeping what `filter` lets
/// through; `ansi` colours human lines.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Human => Box::new(
            builder
                .compact()
                .with_target(false)
                .with_ansi(ansi)
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Installs the process's logger: `format` to stderr through `filter`.
pub fn install(format: LogFormat, filter: EnvFilter) -> Result<(), LogError> {
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing::subscriber::set_global_default(subscriber(format, filter, std::io::stderr, ansi))
        .map_err(|e| LogError::Installed(e.to_string()))
}

/// A log written to memory, to check in a test what was logged.
#[derive(Debug, Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// What was written so far, one JSON object a line (`LogFormat::Json`).
    pub fn json_lines(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        self.text().lines().map(serde_json::from_str).collect()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&'w self) -> CapturedLog {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_is_the_default() {
        assert_eq!(LogFormat::default(), LogFormat::Human);
    }

    #[test]
    fn a_bad_filter_is_an_error_naming_the_variable() {
        let e = EnvFilter::try_new("pollsync=notalevel[").map_err(|source| LogError::BadFilter {
            value: "pollsync=notalevel[".into(),
            source,
        });
        let e = e.expect_err("does not parse");
        assert!(e.to_string().contains(FILTER_ENV), "{e}");
    }

    #[test]
    fn a_captured_json_log_is_one_object_per_event() {
        let log = CapturedLog::default();
        let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), log.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(station = "S-0001", sequence = 3u64, "batch refused");
            tracing::debug!("not at info");
        });
        let lines = log.json_lines().expect("one JSON object a line");
        assert_eq!(lines.len(), 1, "{}", log.text());
        assert_eq!(lines[0]["fields"]["station"], "S-0001");
        assert_eq!(lines[0]["fields"]["sequence"], 3);
    }
}
