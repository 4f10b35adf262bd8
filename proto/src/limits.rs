//! Named protocol limits shared by stations and the center.
//!
//! The center announces the session values (`max_in_flight`, `max_message_bytes`,
//! `max_batch_events`, `heartbeat_interval_ms`) in `HelloReply`; these constants are
//! the defaults and the hard ceilings both ends enforce before decoding anything
//! that came from outside.

/// Largest encoded gRPC message (PushMessage, HelloRequest, ...) either end decodes.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES + 4 * 1024;

/// Largest encoded `Batch` (the bytes inside `SignedBatch.batch`).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 4096;

// A station's ballot groups (G6): two groups of K of a contest's largest ballots fit
// in one batch with room for its header, and a group of K to 2K−1 ballots fits in
// the event count (K ≤ 1000).
const _: () =
    assert!(2 * pollsync_election::batching::MAX_BALLOT_GROUP_BYTES + 64 * 1024 <= MAX_BATCH_BYTES);
const _: () = assert!(
    2 * pollsync_election::batching::MAX_MIN_BALLOTS_PER_BATCH as usize <= MAX_BATCH_EVENTS
);

// What the election's rules allow fits the wire, and the sizes both crates name
// agree (ids are ASCII, so their characters are bytes; a write-in character is at
// most four UTF-8 bytes).
const _: () = {
    use pollsync_election::{ballot, definition, event};
    assert!(BALLOT_ID_BYTES == ballot::BALLOT_ID_BYTES);
    assert!(MAX_REASON_CHARS == event::MAX_REASON_CHARS);
    assert!(MAX_WRITE_INS == ballot::MAX_WRITE_INS_PER_BALLOT);
    assert!(MAX_ID_BYTES == definition::MAX_ID_LEN);
    assert!(MAX_MARKS >= definition::MAX_CANDIDATES_PER_CONTEST);
    assert!(MAX_SHEET_WRITE_INS == pollsync_election::tally::MAX_SHEET_WRITE_INS);
    assert!(MAX_NAME_BYTES >= 4 * ballot::MAX_WRITE_IN_CHARS);
    assert!(MAX_ZERO_REPORT_CONTESTS >= definition::MAX_CONTESTS_PER_STATION);
};

/// Batches a station may have sent and not yet seen acknowledged.
pub const MAX_IN_FLIGHT: usize = 32;

/// How often a station sends a heartbeat when it has nothing else to send.
pub const HEARTBEAT_INTERVAL_MS: u64 = 5_000;

/// A station not heard from for this long is shown offline.
pub const OFFLINE_AFTER_MS: u64 = 3 * HEARTBEAT_INTERVAL_MS;

/// Longest `Ack.detail` and `Alert.detail`, in characters (longer text is cut).
pub const MAX_DETAIL_CHARS: usize = 1024;

/// Longest cancel reason, in characters (as `pollsync-election` allows).
pub const MAX_REASON_CHARS: usize = 200;

/// Longest election, station, contest or candidate id, in bytes.
pub const MAX_ID_BYTES: usize = 64;

/// Longest write-in name, in bytes (UTF-8); an outer bound above the election's
/// 50-character rule.
pub const MAX_NAME_BYTES: usize = 256;

/// Most write-in names on one ballot (as `pollsync-election` allows).
pub const MAX_WRITE_INS: usize = 10;

/// Most candidate marks on one ballot (one per formal candidate).
pub const MAX_MARKS: usize = 1024;

/// Most contests one zero report names: an outer bound above the election's rule (a
/// station serves at most one contest per level), so that a report naming a contest
/// too many is refused in the election's words.
pub const MAX_ZERO_REPORT_CONTESTS: usize = 16;

/// Most write-in rows on one tally sheet (as `pollsync-election` allows): more
/// than a station could ever have, each row still inside the batch's bytes.
pub const MAX_SHEET_WRITE_INS: usize = 10_000;

/// Length of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;

/// Length of a SHA-256 digest (chain hashes, definition digest).
pub const HASH_BYTES: usize = 32;

/// Length of a ballot id.
pub const BALLOT_ID_BYTES: usize = 16;

/// Most batches one `Fetch` call returns (a station recovering more calls again).
pub const MAX_FETCH_BATCHES: u64 = 16;

/// Largest export file accepted by `read_export` (8-byte magic included).
pub const MAX_EXPORT_BYTES: u64 = 1024 * 1024 * 1024;

/// Largest enrollment bundle accepted by `EnrollmentBundle::read`.
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;

/// Most center addresses one enrollment bundle (or `station init --center`) lists.
pub const MAX_CENTER_ADDRESSES: usize = 8;

/// Cuts `text` to at most `max` characters (on a character boundary), appending
/// `…` when something was cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().nth(max).is_none() {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Text from outside (an id in a file, a write-in name, a reason) made safe to
/// show anywhere (SPEC §13): control characters, bidirectional overrides and
/// isolates, other invisible format characters and the backslash are written as
/// escapes (`\u{1b}`, `\u{202e}`, `\\`), so a terminal, a page or a CSV reader
/// shows what is there instead of obeying it; then cut to `max` characters.
pub fn escape_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    truncate_chars(&out, max)
}

/// The last safety net before text leaves a program (a terminal, an HTTP body): any
/// control, bidirectional or invisible format character left in `text`, but line
/// breaks and tabs, is written as a JSON-style `\uXXXX` escape, which keeps JSON
/// valid (serde writes such characters only inside strings) and shows a person
/// what is there. Text without such characters is returned as it is.
pub fn escape_output(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| needs_escape(c) && !matches!(c, '\n' | '\t' | '\r');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Control characters, bidirectional formatting and other invisible format
/// characters.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON string literal as serde writes it (only `"` and `\` escaped here).
    fn serde_json_like(s: &str) -> String {
        format!("\"{s}\"\n")
    }

    /// The election's bound of a ballot's size holds for the real encoding of the
    /// largest one: the longest contest id, every candidate marked, ten write-ins of
    /// fifty four-byte characters, wrapped as an event.
    #[test]
    fn the_largest_ballot_fits_the_bound_the_groups_are_planned_with() {
        use pollsync_election::ballot::{MAX_WRITE_IN_CHARS, MAX_WRITE_INS_PER_BALLOT};
        use prost::Message;
        for candidates in [1usize, 7, 1024] {
            let ballot = crate::pb::Ballot {
                id: vec![0xff; BALLOT_ID_BYTES],
                contest: "C".repeat(MAX_ID_BYTES),
                marks: vec![2; candidates],
                write_in: vec!["𝔘".repeat(MAX_WRITE_IN_CHARS); MAX_WRITE_INS_PER_BALLOT],
            };
            let event = crate::pb::Event {
                kind: Some(crate::pb::event::Kind::Ballot(ballot)),
            };
            let bound = pollsync_election::batching::largest_ballot_bytes(MAX_ID_BYTES, candidates);
            assert!(
                event.encoded_len() <= bound,
                "{} > {bound}",
                event.encoded_len()
            );
        }
    }

    #[test]
    fn truncate_keeps_short_text_and_cuts_long_text_on_char_boundaries() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("北辰区选举", 4), "北辰区…");
        assert_eq!(truncate_chars("北辰区选举", 4).chars().count(), 4);
        assert_eq!(truncate_chars("", 0), "");
        assert_eq!(truncate_chars("a", 0), "");
    }

    #[test]
    fn outside_text_is_shown_escaped_and_names_stay_readable() {
        assert_eq!(escape_text("S-0001", 80), "S-0001");
        assert_eq!(escape_text("张三", 80), "张三");
        assert_eq!(
            escape_text("\u{1b}[2J\u{1b}]0;x\u{7}", 80),
            "\\u{1b}[2J\\u{1b}]0;x\\u{7}"
        );
        assert_eq!(escape_text("abc\u{202e}fed", 80), "abc\\u{202e}fed");
        assert_eq!(escape_text("a\\b\nc\u{2066}", 80), "a\\\\b\\u{a}c\\u{2066}");
        assert_eq!(
            escape_text("\u{7f}\u{85}\u{200b}", 80),
            "\\u{7f}\\u{85}\\u{200b}"
        );
        assert_eq!(escape_text(&"x".repeat(100), 10).chars().count(), 10);
        // The output net keeps JSON valid and lines as they are.
        let json = serde_json_like("a\u{202e}b\u{7f}");
        assert_eq!(escape_output(&json), "\"a\\u202eb\\u007f\"\n");
        assert!(matches!(
            escape_output("plain 张三\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        // Whatever is escaped holds no control or bidi character any more.
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!escape_text(&all, usize::MAX).chars().any(needs_escape));
    }
}
