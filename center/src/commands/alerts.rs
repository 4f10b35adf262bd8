//! `center alerts [--json]`: every alert the center raised (rejected batches but
//! gaps, forks and quarantines, revocations): station, kind, sequence, detail, time.

use std::path::Path;

use serde_json::json;

use crate::error::Result;
use crate::store::{AlertRow, Store};

use super::utc_time;

/// Every alert, oldest first.
pub fn alerts(data_dir: &Path) -> Result<Vec<AlertRow>> {
    Store::open(data_dir)?.alerts()
}

/// The JSON array printed by `--json`: `[{"id", "station", "kind", "sequence",
/// "detail", "unix_ms", "time"}]`.
pub fn to_json(alerts: &[AlertRow]) -> serde_json::Value {
    alerts
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "station": a.station,
                "kind": a.kind,
                "sequence": a.sequence,
                "detail": a.detail,
                "unix_ms": a.unix_ms,
                "time": utc_time(a.unix_ms),
            })
        })
        .collect()
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
