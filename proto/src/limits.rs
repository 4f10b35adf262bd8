//! Named protocol limits shared by stations and the center.
//!
//! The center announces the session values (`max_in_flight`, `max_message_bytes`,
//! `max_batch_events`, `heartbeat_interval_ms`) in `HelloReply`; these constants are
//! the defaults and the hard ceilings both ends enforce before decoding anything
//! that came from outside.

/// Largest encoded gRPC message (PushMessage, HelloRequest, ...) either end decodes.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Largest encoded `Batch` (the bytes inside `SignedBatch.batch`).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 4096;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_text_and_cuts_long_text_on_char_boundaries() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("北辰区选举", 4), "北辰区…");
        assert_eq!(truncate_chars("北辰区选举", 4).chars().count(), 4);
        assert_eq!(truncate_chars("", 0), "");
        assert_eq!(truncate_chars("a", 0), "");
    }
}
