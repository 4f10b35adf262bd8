//! Bounds on protobuf input checked on the raw wire bytes, before prost builds
//! anything (SPEC §13): a batch of a megabyte could otherwise hold half a million
//! empty events, each a struct on the heap. [`check_batch_counts`] walks the
//! encoding of a `Batch` and counts every repeated field that allocates (events,
//! write-in names, tally-sheet rows, a zero report's contests) against the limits in [`crate::limits`],
//! without allocating itself.

use crate::limits::{
    MAX_BATCH_EVENTS, MAX_MARKS, MAX_SHEET_WRITE_INS, MAX_WRITE_INS, MAX_ZERO_REPORT_CONTESTS,
};

/// What is wrong with the raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not protobuf wire format.
    #[error("not protobuf: {0}")]
    Malformed(&'static str),
    /// A repeated field has more entries than allowed.
    #[error("{what}: {count} entries, more than the limit of {max}")]
    TooMany {
        /// Which field.
        what: &'static str,
        /// Entries counted so far.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// One field of a message: its number and, for length-delimited fields, the bytes.
struct Field<'a> {
    number: u64,
    payload: Option<&'a [u8]>,
}

fn varint(bytes: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes
            .split_first()
            .ok_or(WireError::Malformed("a varint runs past the end"))?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::Malformed("a varint is longer than 10 bytes"))
}

fn take<'a>(bytes: &mut &'a [u8], n: u64) -> Result<&'a [u8], WireError> {
    let n = usize::try_from(n).map_err(|_| WireError::Malformed("a length is too large"))?;
    if n > bytes.len() {
        return Err(WireError::Malformed("a field runs past the end"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// Calls `each` for every top-level field of the message `bytes`.
fn fields<'a>(
    mut bytes: &'a [u8],
    mut each: impl FnMut(Field<'a>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = key >> 3;
        let payload = match key & 7 {
            0 => {
                varint(&mut bytes)?;
                None
            }
            1 => {
                take(&mut bytes, 8)?;
                None
            }
            2 => {
                let len = varint(&mut bytes)?;
                Some(take(&mut bytes, len)?)
            }
            5 => {
                take(&mut bytes, 4)?;
                None
            }
            _ => return Err(WireError::Malformed("an unsupported wire type")),
        };
        each(Field { number, payload })?;
    }
    Ok(())
}

/// Counts the occurrences of field `number` in `bytes`, failing past `max`.
fn count(bytes: &[u8], number: u64, what: &'static str, max: usize) -> Result<(), WireError> {
    let mut n = 0usize;
    fields(bytes, |f| {
        if f.number == number {
            n += 1;
            if n > max {
                return Err(WireError::TooMany {
                    what,
                    count: n,
                    max,
                });
            }
        }
        Ok(())
    })
}

/// The value of the first varint field `number` of the message `bytes`, if the
/// bytes read as protobuf up to it (a batch's sequence for an error message).
pub fn varint_field(bytes: &[u8], number: u64) -> Option<u64> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let key = varint(&mut rest).ok()?;
        match key & 7 {
            0 => {
                let value = varint(&mut rest).ok()?;
                if key >> 3 == number {
                    return Some(value);
                }
            }
            1 => {
                take(&mut rest, 8).ok()?;
            }
            2 => {
                let len = varint(&mut rest).ok()?;
                take(&mut rest, len).ok()?;
            }
            5 => {
                take(&mut rest, 4).ok()?;
            }
            _ => return None,
        }
    }
    None
}

/// Checks the repeated fields of an encoded `Batch` against the limits: at most
/// `MAX_BATCH_EVENTS` events, `MAX_WRITE_INS` write-ins per ballot, `MAX_MARKS`
/// FOR and AGAINST rows and `MAX_SHEET_WRITE_INS` write-in rows on a tally sheet,
/// `MAX_ZERO_REPORT_CONTESTS` contests in a zero report.
pub fn check_batch_counts(batch: &[u8]) -> Result<(), WireError> {
    count(batch, 6, "events of the batch", MAX_BATCH_EVENTS)?;
    fields(batch, |f| {
        let (6, Some(event)) = (f.number, f.payload) else {
            return Ok(());
        };
        fields(event, |e| match (e.number, e.payload) {
            // Ballot: write_in = 4.
            (1, Some(ballot)) => count(ballot, 4, "write-ins of a ballot", MAX_WRITE_INS),
            // Close: sheet = 2, whose lists are 5, 6 and 7.
            (4, Some(close)) => fields(close, |c| match (c.number, c.payload) {
                (2, Some(sheet)) => {
                    count(sheet, 5, "FOR rows of a tally sheet", MAX_MARKS)?;
                    count(sheet, 6, "AGAINST rows of a tally sheet", MAX_MARKS)?;
                    count(
                        sheet,
                        7,
                        "write-in rows of a tally sheet",
                        MAX_SHEET_WRITE_INS,
                    )
                }
                _ => Ok(()),
            }),
            // ZeroReport: contests = 1.
            (5, Some(report)) => count(
                report,
                1,
                "contests of a zero report",
                MAX_ZERO_REPORT_CONTESTS,
            ),
            _ => Ok(()),
        })
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::pb;

    fn batch(events: Vec<pb::Event>) -> Vec<u8> {
        pb::Batch {
            election_id: "e".into(),
            station_id: "S".into(),
            sequence: 1,
            prev_hash: vec![0; 32],
            definition_sha256: vec![0; 32],
            events,
            mode: "official".into(),
        }
        .encode_to_vec()
    }

    fn ballot(write_ins: usize) -> pb::Event {
        pb::Event {
            kind: Some(pb::event::Kind::Ballot(pb::Ballot {
                id: vec![1; 16],
                contest: "D".into(),
                marks: vec![0, 1],
                write_in: vec![String::new(); write_ins],
            })),
        }
    }

    #[test]
    fn counts_are_checked_at_every_level_without_decoding() {
        assert_eq!(check_batch_counts(&batch(vec![ballot(2); 10])), Ok(()));
        let empty = pb::Event { kind: None };
        assert!(matches!(
            check_batch_counts(&batch(vec![empty; MAX_BATCH_EVENTS + 1])),
            Err(WireError::TooMany {
                what: "events of the batch",
                ..
            })
        ));
        assert!(matches!(
            check_batch_counts(&batch(vec![ballot(MAX_WRITE_INS + 1)])),
            Err(WireError::TooMany {
                what: "write-ins of a ballot",
                ..
            })
        ));
        let close = |write_ins: usize| pb::Event {
            kind: Some(pb::event::Kind::Close(pb::Close {
                contest: "D".into(),
                sheet: Some(pb::TallySheet {
                    write_in: vec![pb::WriteInCount::default(); write_ins],
                    ..pb::TallySheet::default()
                }),
            })),
        };
        // As many write-in names as the election allows a sheet pass the wire.
        assert_eq!(
            check_batch_counts(&batch(vec![close(MAX_SHEET_WRITE_INS)])),
            Ok(())
        );
        assert!(matches!(
            check_batch_counts(&batch(vec![close(MAX_SHEET_WRITE_INS + 1)])),
            Err(WireError::TooMany {
                what: "write-in rows of a tally sheet",
                ..
            })
        ));
        let zero_report = |contests: usize| pb::Event {
            kind: Some(pb::event::Kind::ZeroReport(pb::ZeroReport {
                contests: vec!["D".into(); contests],
            })),
        };
        assert_eq!(
            check_batch_counts(&batch(vec![zero_report(MAX_ZERO_REPORT_CONTESTS)])),
            Ok(())
        );
        assert!(matches!(
            check_batch_counts(&batch(vec![zero_report(MAX_ZERO_REPORT_CONTESTS + 1)])),
            Err(WireError::TooMany {
                what: "contests of a zero report",
                ..
            })
        ));
    }

    #[test]
    fn broken_bytes_are_malformed_not_a_panic() {
        for bytes in [&[0x32, 0x05, 0x01][..], &[0xff; 11], &[0x0b], &[0x32]] {
            assert!(
                matches!(check_batch_counts(bytes), Err(WireError::Malformed(_))),
                "{bytes:?}"
            );
        }
    }
}
