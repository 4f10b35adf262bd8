//! The center's structured logs (`tracing`), written to stderr: for people by
//! default (`--log-format human`: one compact line per event), or one JSON object
//! per line (`--log-format json`) for a log collector. What is logged is filtered
//! by `RUST_LOG` when it is set (e.g. `RUST_LOG=debug`, or
//! `RUST_LOG=pollsync_center::ingest=debug`), else at [`SERVE_FILTER`] for
//! `center serve` and [`COMMAND_FILTER`] for the one-shot commands, whose own
//! report goes to stdout as before.
//!
//! One event per decision that matters, carrying its subject as fields (`station`,
//! `sequence`, `reason`, `detail`, `error`, …): a station connected or refused, a
//! batch refused (debug when accepted or a duplicate), a fork, a group commit that
//! failed, an operator's change noticed, the server's start and stop. Nothing that
//! could tie a ballot to a voter is logged: no ballot id, no mark, no write-in
//! (see [`loggable_detail`]).
//!
//! Text from outside (ids, details) goes through [`text`] so that a log line shows
//! what is there rather than obeying it; [`Throttle`] bounds events that strangers
//! can provoke at will (TLS handshakes, refused calls).

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pollsync_proto::logging::{filter_from_env, install};
use tracing_subscriber::EnvFilter;

pub use pollsync_proto::logging::{FILTER_ENV, LogError, LogFormat};

/// What `center serve` logs when `RUST_LOG` is not set.
pub const SERVE_FILTER: &str = "info";
/// What the one-shot commands (`import`, `status`, …) log when `RUST_LOG` is not
/// set: failures only, their report on stdout says the rest.
pub const COMMAND_FILTER: &str = "error";
/// Longest text field (an id, a detail) in a log event, in characters.
pub const MAX_FIELD_CHARS: usize = pollsync_proto::limits::MAX_DETAIL_CHARS;

/// Installs the process's logger: `format` to stderr, filtered by `RUST_LOG` or
/// else `default_filter`. Human lines are coloured only on a terminal (and not
/// with `NO_COLOR` set).
pub fn init(format: LogFormat, default_filter: &str) -> Result<(), LogError> {
    install(format, filter_from_env(default_filter)?)
}

/// [`init`] for a one-shot command: human lines at [`COMMAND_FILTER`]; a
/// `RUST_LOG` that does not parse is ignored rather than failing the command.
pub fn init_for_command() {
    let filter = filter_from_env(COMMAND_FILTER).unwrap_or_else(|_| EnvFilter::new(COMMAND_FILTER));
    // Installed already (a second call): the first logger stays, which is fine.
    let _ = install(LogFormat::Human, filter);
}

/// Text from outside (a station id from a certificate or a file, a refusal's
/// detail) made safe for a log line: control, bidirectional and invisible
/// characters escaped, cut to [`MAX_FIELD_CHARS`].
pub fn text(value: &str) -> String {
    pollsync_proto::limits::escape_text(value, MAX_FIELD_CHARS)
}

/// Refusal reasons whose detail may quote a batch's ballots (a ballot id, a mark,
/// a write-in name): their detail stays in the alert, out of the log.
const DETAIL_MAY_QUOTE_BALLOTS: [&str; 2] = ["INVALID_CONTENT", "AFTER_CLOSE"];
/// Refusal reasons whose detail is about the batch's envelope, chain or sender
/// only, and may be logged.
const DETAIL_LOGGABLE: [&str; 13] = [
    "BAD_SIGNATURE",
    "WRONG_ELECTION",
    "WRONG_STATION",
    "WRONG_DEFINITION",
    "GAP",
    "FORK",
    "BROKEN_CHAIN",
    "TOO_LARGE",
    "MALFORMED",
    "REVOKED",
    "QUARANTINED",
    "STALE_KEY",
    "WRONG_MODE",
];

/// What a log may say of a refused batch's `detail` (`reason` as
/// `pb::RejectReason::short_name` writes it): the detail, made safe with [`text`],
/// for the reasons known to name no ballot; a pointer to the alert for any other.
///
/// Belt and braces, anything shaped like a ballot id (a run of exactly
/// [`BALLOT_ID_HEX`] hex digits; chain hashes have 64) is blanked even there.
pub fn loggable_detail(reason: &str, detail: &str) -> Cow<'static, str> {
    if DETAIL_LOGGABLE.contains(&reason) && !DETAIL_MAY_QUOTE_BALLOTS.contains(&reason) {
        Cow::Owned(without_ballot_ids(&text(detail)))
    } else {
        Cow::Borrowed("withheld from the log (it may quote ballots); see `center alerts`")
    }
}

/// Hex digits of a ballot id as text shows it.
pub const BALLOT_ID_HEX: usize = 2 * pollsync_proto::limits::BALLOT_ID_BYTES;

/// `text` with every run of exactly [`BALLOT_ID_HEX`] hex digits replaced by
/// `<ballot id>`.
fn without_ballot_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == BALLOT_ID_HEX {
            out.push_str("<ballot id>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// At most so many events per window; what is held back is counted and told with
/// the next event let through. For events that anyone reaching the port can
/// provoke, so that a flood of them cannot flood the log.
#[derive(Debug)]
pub struct Throttle {
    per_window: u64,
    window: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    started: Option<Instant>,
    used: u64,
    suppressed: u64,
}

impl Throttle {
    /// At most `per_window` events every `window_ms` milliseconds.
    pub const fn new(per_window: u64, window_ms: u64) -> Throttle {
        Throttle {
            per_window,
            window: Duration::from_millis(window_ms),
            state: Mutex::new(ThrottleState {
                started: None,
                used: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` if an event may be logged now, `n` being how many were held back
    /// since the last one let through; `None` if this one is held back.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.started
            .is_none_or(|t| now.saturating_duration_since(t) >= self.window)
        {
            s.started = Some(now);
            s.used = 0;
        }
        if s.used < self.per_window {
            s.used += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed = s.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollsync_proto::logging::{CapturedLog, subscriber};

    fn logged(format: LogFormat, filter: &str) -> String {
        let buffer = CapturedLog::default();
        let sub = subscriber(format, EnvFilter::new(filter), buffer.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(
                station = "S-0001",
                sequence = 7u64,
                reason = "BAD_SIGNATURE",
                "batch refused"
            );
            tracing::debug!(station = "S-0001", sequence = 8u64, "batch accepted");
        });
        buffer.text()
    }

    #[test]
    fn json_lines_carry_level_message_and_fields() {
        let out = logged(LogFormat::Json, "info");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "the debug event is filtered out: {out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["message"], "batch refused");
        assert_eq!(v["fields"]["station"], "S-0001");
        assert_eq!(v["fields"]["sequence"], 7);
        assert_eq!(v["fields"]["reason"], "BAD_SIGNATURE");
    }

    #[test]
    fn human_lines_name_the_fields_and_debug_shows_when_asked() {
        let out = logged(LogFormat::Human, "debug");
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(
            out.contains("WARN") && out.contains("batch refused") && out.contains("sequence=7"),
            "{out}"
        );
        assert!(!out.contains('{'), "not JSON: {out}");
    }

    #[test]
    fn details_that_may_quote_ballots_are_withheld() {
        let id = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
        let detail = format!("batch 3: ballot {id} is already in batch 1");
        assert!(!loggable_detail("INVALID_CONTENT", &detail).contains(id));
        assert!(!loggable_detail("AFTER_CLOSE", &detail).contains(id));
        assert!(!loggable_detail("SOMETHING_NEW", &detail).contains(id));
        let gap = "gap: batch 5 arrived, the center expects batch 3 first";
        assert_eq!(loggable_detail("GAP", gap), gap);
        assert_eq!(
            loggable_detail("BAD_SIGNATURE", &detail),
            "batch 3: ballot <ballot id> is already in batch 1"
        );
        let hash = "ab".repeat(32);
        let fork =
            format!("fork at sequence 2: the center holds another batch (chain hash {hash})");
        assert_eq!(loggable_detail("FORK", &fork), fork, "a chain hash stays");
        assert_eq!(
            loggable_detail("BAD_SIGNATURE", "x\u{1b}[2J\u{202e}"),
            "x\\u{1b}[2J\\u{202e}"
        );
    }

    #[test]
    fn a_throttle_lets_a_few_through_per_window_and_counts_the_rest() {
        let t = Throttle::new(2, 1_000);
        let t0 = Instant::now();
        assert_eq!(t.admit_at(t0), Some(0));
        assert_eq!(t.admit_at(t0), Some(0));
        assert_eq!(t.admit_at(t0), None);
        assert_eq!(t.admit_at(t0 + Duration::from_millis(999)), None);
        assert_eq!(t.admit_at(t0 + Duration::from_millis(1_000)), Some(2));
        assert_eq!(t.admit_at(t0 + Duration::from_millis(1_001)), Some(0));
    }
}
