//! `center alerts [--json]`: every alert the center raised (rejected batches but
//! gaps, forks and quarantines, refused stale keys, and every change of a station's
//! standing: revoke, replace, release, with its reason): station, kind, sequence,
//! detail, time. A FORK alert shows its signed evidence: both batches of that
//! sequence, each with its chain hash and the key that signed it.

use serde_json::json;

use crate::error::Result;
use crate::store::{AlertRow, EvidenceBatch, ForkEvidence, Records as _, Store, StoreLocation};

use super::utc_time;

/// Every alert, oldest first.
pub fn alerts(store: impl Into<StoreLocation>) -> Result<Vec<AlertRow>> {
    Store::open_at(&store.into())?.alerts()
}

/// Every alert with the fork evidence kept (what `center alerts` shows).
pub fn alerts_with_evidence(
    store: impl Into<StoreLocation>,
) -> Result<(Vec<AlertRow>, Vec<ForkEvidence>)> {
    let store = Store::open_at(&store.into())?;
    Ok((store.alerts()?, store.fork_evidence()?))
}

fn evidence_of<'e>(a: &AlertRow, evidence: &'e [ForkEvidence]) -> Vec<&'e ForkEvidence> {
    if a.kind != "FORK" {
        return Vec::new();
    }
    evidence
        .iter()
        .filter(|e| e.station == a.station && e.sequence == a.sequence)
        .collect()
}

fn batch_json(b: &EvidenceBatch) -> serde_json::Value {
    json!({
        "chain_hash": hex::encode(b.hash),
        "key_no": b.key_no,
        "batch_hex": hex::encode(&b.batch),
        "signature_hex": hex::encode(&b.signature),
    })
}

/// The JSON array printed by `--json`: `[{"id", "station", "kind", "sequence",
/// "detail", "unix_ms", "time"}]`; a FORK alert adds `"evidence": [{"center":
/// {"chain_hash", "key_no", "batch_hex", "signature_hex"}, "other": {…}}]`.
pub fn to_json_with_evidence(alerts: &[AlertRow], evidence: &[ForkEvidence]) -> serde_json::Value {
    alerts
        .iter()
        .map(|a| {
            let mut v = json!({
                "id": a.id,
                "station": a.station,
                "kind": a.kind,
                "sequence": a.sequence,
                "detail": a.detail,
                "unix_ms": a.unix_ms,
                "time": utc_time(a.unix_ms),
            });
            let found = evidence_of(a, evidence);
            if !found.is_empty() {
                v["evidence"] = found
                    .iter()
                    .map(
                        |e| json!({"center": batch_json(&e.stored), "other": batch_json(&e.other)}),
                    )
                    .collect();
            }
            v
        })
        .collect()
}

/// [`to_json_with_evidence`] without evidence.
pub fn to_json(alerts: &[AlertRow]) -> serde_json::Value {
    to_json_with_evidence(alerts, &[])
}

/// [`to_text`] with each FORK alert followed by its evidence.
pub fn to_text_with_evidence(alerts: &[AlertRow], evidence: &[ForkEvidence]) -> String {
    let mut out = to_text(alerts);
    for e in evidence {
        out.push_str(&format!(
            "fork evidence, station {} batch {}: the center holds chain hash {} (signed by key {}), the other batch hashes to {} (signed by key {}); both kept as signed\n",
            e.station,
            e.sequence,
            hex::encode(e.stored.hash),
            e.stored.key_no,
            hex::encode(e.other.hash),
            e.other.key_no
        ));
    }
    out
}

/// One line per alert, for people.
pub fn to_text(alerts: &[AlertRow]) -> String {
    if alerts.is_empty() {
        return "no alerts\n".to_owned();
    }
    let mut out = String::new();
    for a in alerts {
        let batch = if a.sequence > 0 {
            format!("batch {}", a.sequence)
        } else {
            "-".to_owned()
        };
        out.push_str(&format!(
            "{}  {}  {}  {}  {}\n",
            utc_time(a.unix_ms),
            a.station,
            a.kind,
            batch,
            a.detail
        ));
    }
    out.push_str(&format!("{} alert(s)\n", alerts.len()));
    out
}
