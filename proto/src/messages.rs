//! Small constructors for protocol messages, so that both ends build them the
//! same way (acknowledgements with bounded detail text, push messages).

use crate::limits::{MAX_DETAIL_CHARS, truncate_chars};
use crate::pb;

impl pb::RejectReason {
    /// The reason without its `REJECT_REASON_` prefix: `FORK`, `GAP`, … (as logs,
    /// metrics and alerts name it).
    pub fn short_name(&self) -> &'static str {
        let name = self.as_str_name();
        name.strip_prefix("REJECT_REASON_").unwrap_or(name)
    }
}

impl pb::Ack {
    /// The batch `sequence` is durably applied; the center now expects `sequence + 1`.
    pub fn accepted(sequence: u64) -> Self {
        Self {
            sequence,
            kind: pb::AckKind::Accepted as i32,
            reason: pb::RejectReason::Unspecified as i32,
            detail: String::new(),
            expected_sequence: sequence.saturating_add(1),
        }
    }

    /// The batch `sequence` is byte-for-byte one already applied (counted once).
    pub fn duplicate(sequence: u64, expected_sequence: u64) -> Self {
        Self {
            sequence,
            kind: pb::AckKind::Duplicate as i32,
            reason: pb::RejectReason::Unspecified as i32,
            detail: String::new(),
            expected_sequence,
        }
    }

    /// The batch `sequence` is not applied, for `reason`; `detail` is cut to
    /// [`MAX_DETAIL_CHARS`] characters.
    pub fn rejected(
        sequence: u64,
        reason: pb::RejectReason,
        detail: &str,
        expected_sequence: u64,
    ) -> Self {
        Self {
            sequence,
            kind: pb::AckKind::Rejected as i32,
            reason: reason as i32,
            detail: truncate_chars(detail, MAX_DETAIL_CHARS),
            expected_sequence,
        }
    }
}

impl pb::PushMessage {
    /// A push message carrying one signed batch.
    pub fn batch(signed: pb::SignedBatch) -> Self {
        Self {
            kind: Some(pb::push_message::Kind::Batch(signed)),
        }
    }

    /// A heartbeat.
    pub fn heartbeat(local_head_sequence: u64, sealed_unacknowledged: u64) -> Self {
        Self {
            kind: Some(pb::push_message::Kind::Heartbeat(pb::Heartbeat {
                local_head_sequence,
                sealed_unacknowledged,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_constructors() {
        let a = pb::Ack::accepted(7);
        assert_eq!(a.kind(), pb::AckKind::Accepted);
        assert_eq!(a.expected_sequence, 8);
        let d = pb::Ack::duplicate(3, 8);
        assert_eq!(d.kind(), pb::AckKind::Duplicate);
        let long = "x".repeat(MAX_DETAIL_CHARS * 2);
        let r = pb::Ack::rejected(9, pb::RejectReason::Gap, &long, 8);
        assert_eq!(r.kind(), pb::AckKind::Rejected);
        assert_eq!(r.reason(), pb::RejectReason::Gap);
        assert_eq!(r.detail.chars().count(), MAX_DETAIL_CHARS);
        assert_eq!(pb::RejectReason::Fork.as_str_name(), "REJECT_REASON_FORK");
    }
}
