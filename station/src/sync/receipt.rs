//! Taking a receipt from the center (`station receipt`, and at the end of `station
//! sync`): asks the center to prove the newest acknowledged batch in its
//! transparency log (`Prove`), checks the answer ([`crate::receipt::check`]) and
//! keeps it; a log that shows two histories is kept as an alarm. Waits a little
//! for a checkpoint that covers a batch acknowledged moments ago. The center's
//! addresses are tried in order, the one last reached first.

use std::path::Path;
use std::time::Duration;

use pollsync_proto::limits::MAX_MESSAGE_BYTES;
use pollsync_proto::pb;
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use serde::Serialize;
use tokio::time::{Instant, sleep, timeout};

use super::client::{CONNECT_TIMEOUT_MS, HELLO_TIMEOUT_MS};
use super::connect::CenterLink;
use crate::commands;
use crate::error::StationError;
use crate::ledger::ContestTally;
use crate::receipt::{self, LogAlarm, META_LOG_ALARM, META_RECEIPT, Receipt, ReceiptError};
use crate::store::{Provisioned, Store, trying_order};

/// How long to wait for a checkpoint that covers the batch.
pub const CHECKPOINT_WAIT_MS: u64 = 5_000;
/// Pause between two asks while no checkpoint covers the batch yet.
pub const CHECKPOINT_RETRY_MS: u64 = 200;

/// Why no new receipt was taken.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// The store or enrollment could not be used.
    #[error(transparent)]
    Station(#[from] StationError),
    /// The center could not be reached in time.
    #[error("cannot reach the center at {center}: {reason}")]
    Unreachable {
        /// The center's address.
        center: String,
        /// Why.
        reason: String,
    },
    /// The center refused.
    #[error("the center at {center} gave no receipt: {message}")]
    Refused {
        /// The center's address.
        center: String,
        /// The status and the center's words.
        message: String,
    },
    /// The answer did not check out (an alarm is kept for two histories).
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
}

fn read_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    key: &str,
) -> Result<Option<T>, StationError> {
    store
        .meta(key)?
        .map(|raw| {
            serde_json::from_slice(&raw).map_err(|e| StationError::Corrupt {
                detail: format!("stored {key}: {e}"),
            })
        })
        .transpose()
}

fn write_json<T: Serialize>(store: &Store, key: &str, value: &T) -> Result<(), StationError> {
    let raw = serde_json::to_vec(value).map_err(|e| StationError::Corrupt {
        detail: format!("{key}: {e}"),
    })?;
    store.set_meta(key, &raw)
}

/// The receipt kept, and the alarm if one was raised.
pub fn stored(store: &Store) -> Result<(Option<Receipt>, Option<LogAlarm>), StationError> {
    Ok((
        read_json(store, META_RECEIPT)?,
        read_json(store, META_LOG_ALARM)?,
    ))
}

/// What to ask the center to prove: the newest acknowledged batch, and the
/// checkpoint seen last (read from the store, before any network call).
#[derive(Debug, Clone)]
pub struct Ask {
    /// The log's verifier key (from the bundle).
    log_key: String,
    /// The newest acknowledged batch.
    pub sequence: u64,
    /// Its chain hash.
    batch_hash: [u8; 32],
    /// The checkpoint of the receipt kept, if any.
    seen: Option<String>,
    /// Its tree size (0: none).
    known_size: u64,
    /// The center's addresses in the order to try them: the one last reached
    /// first (as the store says when asked), then round robin.
    centers: Vec<String>,
}

/// What to ask for, from the store: `Ok(None)` when nothing is acknowledged yet.
pub fn ask(store: &Store, prov: &Provisioned) -> Result<Option<Ask>, TakeError> {
    let log_key = prov.bundle.log_key.clone().ok_or(ReceiptError::NoLogKey)?;
    let sequence = store.acknowledged_through()?;
    if sequence == 0 {
        return Ok(None);
    }
    let batch_hash = store
        .hash_at(sequence)?
        .ok_or_else(|| StationError::Corrupt {
            detail: format!("acknowledged batch {sequence} is not in the store"),
        })?;
    let (kept, _) = stored(store)?;
    let seen = kept.map(|r| r.checkpoint);
    let known_size = seen
        .as_deref()
        .and_then(|note| receipt::checkpoint_size(note, &log_key))
        .unwrap_or(0);
    let centers = trying_order(&prov.center_addresses, store.center_reached()?.as_deref());
    Ok(Some(Ask {
        log_key,
        sequence,
        batch_hash,
        seen,
        known_size,
        centers,
    }))
}

/// Asks the center to prove `ask` (`Prove`), on a connection of its own; waits up
/// to [`CHECKPOINT_WAIT_MS`] for a checkpoint that covers the batch. Tries the
/// center's addresses in order, the one last reached first, and stops at the first
/// that answers (a refusal is an answer). Touches no store.
pub async fn prove(prov: &Provisioned, ask: &Ask) -> Result<pb::ProveReply, TakeError> {
    let mut failures = Vec::new();
    for center in &ask.centers {
        match prove_at(prov, center, ask).await {
            Err(TakeError::Unreachable { reason, .. }) => {
                failures.push(format!("{center}: {reason}"))
            }
            answered => return answered,
        }
    }
    Err(TakeError::Unreachable {
        center: ask.centers.join(", "),
        reason: failures.join("; "),
    })
}

/// [`prove`] at one address.
async fn prove_at(
    prov: &Provisioned,
    center: &str,
    ask: &Ask,
) -> Result<pb::ProveReply, TakeError> {
    let center = center.to_owned();
    let unreachable = |reason: String| TakeError::Unreachable {
        center: center.clone(),
        reason,
    };
    let link = CenterLink::for_address(prov, &center).map_err(|e| unreachable(e.to_string()))?;
    let channel = timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), link.connect())
        .await
        .map_err(|_| unreachable("timed out connecting".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let mut client = StationSyncClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let deadline = Instant::now() + Duration::from_millis(CHECKPOINT_WAIT_MS);
    loop {
        let request = pb::ProveRequest {
            sequence: ask.sequence,
            known_size: ask.known_size,
        };
        let answer = timeout(
            Duration::from_millis(HELLO_TIMEOUT_MS),
            client.prove(request),
        )
        .await
        .map_err(|_| unreachable("timed out waiting for the receipt".into()))?;
        match answer {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                sleep(Duration::from_millis(CHECKPOINT_RETRY_MS)).await;
            }
            Err(s) => {
                return Err(TakeError::Refused {
                    center,
                    message: format!(
                        "{:?}: {}",
                        s.code(),
                        pollsync_proto::limits::truncate_chars(s.message(), 300)
                    ),
                });
            }
        }
    }
}

/// Checks the center's `reply` to `ask` ([`crate::receipt::check`]) and keeps it;
/// a log that shows two histories is kept as the alarm.
pub fn keep(
    store: &Store,
    prov: &Provisioned,
    ask: &Ask,
    reply: &pb::ProveReply,
) -> Result<Receipt, TakeError> {
    match receipt::check(
        &ask.log_key,
        prov.station_id(),
        ask.sequence,
        ask.batch_hash,
        ask.seen.as_deref(),
        reply,
    ) {
        Ok(receipt) => {
            write_json(store, META_RECEIPT, &receipt)?;
            Ok(receipt)
        }
        Err(ReceiptError::TwoHistories(alarm)) => {
            tracing::error!(detail = %alarm.detail, "the center's transparency log shows two histories");
            write_json(store, META_LOG_ALARM, &*alarm)?;
            Err(ReceiptError::TwoHistories(alarm).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Asks the center for a receipt of the newest acknowledged batch, checks and keeps
/// it ([`ask`], [`prove`], [`keep`]). `Ok(None)`: nothing acknowledged yet.
pub async fn take(store: &Store, prov: &Provisioned) -> Result<Option<Receipt>, TakeError> {
    let Some(ask) = ask(store, prov)? else {
        return Ok(None);
    };
    let reply = prove(prov, &ask).await?;
    keep(store, prov, &ask, &reply).map(Some)
}

/// `station receipt --json`.
#[derive(Debug, Serialize)]
pub struct ReceiptReport {
    /// The station.
    pub station: String,
    /// The election.
    pub election: String,
    /// What the records say, per contest (the tally sheets to post).
    pub contests: Vec<ContestTally>,
    /// The newest receipt kept (`None`: none yet).
    pub receipt: Option<Receipt>,
    /// Whether `receipt` was taken from the center just now.
    pub fresh: bool,
    /// Why no fresh receipt was taken (the kept one is shown).
    pub not_fresh: Option<String>,
    /// The alarm, if the center's log ever showed two histories.
    pub alarm: Option<LogAlarm>,
}

/// `station receipt`: takes a fresh receipt if the center can be reached, then
/// reports what is kept.
pub async fn receipt(dir: &Path) -> Result<ReceiptReport, StationError> {
    let store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let (fresh, not_fresh) = match take(&store, &prov).await {
        Ok(Some(_)) => (true, None),
        Ok(None) => (
            false,
            Some("no batch acknowledged by the center yet".to_owned()),
        ),
        Err(TakeError::Station(e)) => return Err(e),
        Err(e) => (false, Some(e.to_string())),
    };
    let (receipt, alarm) = stored(&store)?;
    let (station, contests) = commands::tally(dir)?;
    Ok(ReceiptReport {
        station,
        election: prov.bundle.election_id.clone(),
        contests,
        receipt,
        fresh,
        not_fresh,
        alarm,
    })
}

/// `station receipt` in words, to print and post at the polling station.
pub fn receipt_text(prov: &Provisioned, report: &ReceiptReport) -> String {
    let mut out = format!(
        "RECEIPT of station {} — election {}\n",
        report.station, report.election
    );
    if let Some(alarm) = &report.alarm {
        out.push_str(&format!(
            "\n!! ALARM: the center's transparency log is not one history: {}\n!! Call the election authority. Seen before:\n{}\n!! Shown later:\n{}\n",
            alarm.detail,
            indent(&alarm.seen),
            indent(&alarm.shown)
        ));
    }
    out.push('\n');
    out.push_str(&commands::tally_text(
        &prov.definition,
        &report.station,
        &report.contests,
    ));
    match &report.receipt {
        None => {
            out.push_str("\nno receipt yet: the center has acknowledged no batch of this station\n")
        }
        Some(r) => {
            out.push_str(&format!(
                "\nlast batch: {} (chain hash {})\nits leaf in the center's log: {} of {}\nroot hash: {}\ninclusion proof:\n",
                r.sequence, r.batch_hash, r.leaf_index, r.tree_size, r.root_hash
            ));
            for h in &r.inclusion {
                out.push_str(&format!("  {h}\n"));
            }
            out.push_str(&format!("signed checkpoint:\n{}", indent(&r.checkpoint)));
        }
    }
    if let Some(why) = &report.not_fresh {
        out.push_str(&format!(
            "\n(not refreshed from the center just now: {why})\n"
        ));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
