//! What the end of a session means for the command, as pure functions: which gRPC
//! statuses are the center refusing this station (PROTOCOL §7.1: stop, an operator
//! must act) and which are trouble on the way (reconnect after a backoff), and how
//! a terminal rejection or a refusal stops `station run`. The driver hands in the
//! status code and words only.

use crate::sync::sender::Terminal;

/// What a gRPC status from the center means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// The center refused this station (unknown or revoked certificate, wrong
    /// election, a malformed Hello): retrying cannot help; stop.
    Refused,
    /// Network or center trouble: reconnect after a backoff.
    Transient,
}

/// The class of a gRPC status code.
pub fn classify(code: tonic::Code) -> StatusClass {
    use tonic::Code;
    match code {
        Code::Unauthenticated
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::InvalidArgument => StatusClass::Refused,
        _ => StatusClass::Transient,
    }
}

/// `REFUSED_PERMISSIONDENIED`, …: a refusal's short name.
pub fn refused_name(code: tonic::Code) -> String {
    format!("REFUSED_{}", format!("{code:?}").to_uppercase())
}

/// Why pushing stopped during `station run`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunStop {
    /// Its short name: the reject reason (`FORK`, …), `CENTER_AHEAD`,
    /// `HEAD_MISMATCH` or `REFUSED_…`.
    pub reason: String,
    /// What happened and what to do, in words.
    pub message: String,
    /// Whether sealing stopped on this device too.
    pub sealing_stopped: bool,
}

impl RunStop {
    /// A terminal rejection (sealing stops too if it says so).
    pub fn rejected(t: &Terminal) -> RunStop {
        RunStop {
            reason: t.reason(),
            message: t.to_string(),
            sealing_stopped: t.stops_sealing(),
        }
    }

    /// The center at `center` refused this station with `code` and `message`.
    pub fn refused(center: &str, code: tonic::Code, message: &str) -> RunStop {
        RunStop {
            reason: refused_name(code),
            message: format!("the center at {center} refused this station ({code:?}): {message}"),
            sealing_stopped: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use pollsync_proto::pb;

    use super::*;

    #[test]
    fn refusals_are_the_statuses_about_this_station() {
        for code in [
            tonic::Code::Unauthenticated,
            tonic::Code::PermissionDenied,
            tonic::Code::FailedPrecondition,
            tonic::Code::InvalidArgument,
        ] {
            assert_eq!(classify(code), StatusClass::Refused, "{code:?}");
        }
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::DeadlineExceeded,
            tonic::Code::Internal,
            tonic::Code::Unknown,
            tonic::Code::ResourceExhausted,
            tonic::Code::Cancelled,
        ] {
            assert_eq!(classify(code), StatusClass::Transient, "{code:?}");
        }
    }

    #[test]
    fn a_refusal_stops_pushing_but_not_sealing() {
        let stop = RunStop::refused("c:1", tonic::Code::PermissionDenied, "revoked");
        assert_eq!(stop.reason, "REFUSED_PERMISSIONDENIED");
        assert_eq!(
            stop.message,
            "the center at c:1 refused this station (PermissionDenied): revoked"
        );
        assert!(!stop.sealing_stopped);
    }

    #[test]
    fn a_fork_rejection_stops_sealing_and_a_revocation_does_not() {
        let rejected = |reason: pb::RejectReason| Terminal::Rejected {
            sequence: 4,
            reason,
            code: reason as i32,
            detail: String::new(),
        };
        let fork = RunStop::rejected(&rejected(pb::RejectReason::Fork));
        assert_eq!(fork.reason, "FORK");
        assert!(fork.sealing_stopped);
        let revoked = RunStop::rejected(&rejected(pb::RejectReason::Revoked));
        assert_eq!(revoked.reason, "REVOKED");
        assert!(!revoked.sealing_stopped);
        let ahead = RunStop::rejected(&Terminal::CenterAhead {
            center_head: 9,
            local_head: 3,
        });
        assert_eq!(ahead.reason, "CENTER_AHEAD");
        assert!(ahead.sealing_stopped);
    }
}
