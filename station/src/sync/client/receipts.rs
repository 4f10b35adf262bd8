//! `station run`'s receipts (SPEC §10, docs/PROTOCOL.md §13.5): while the agent
//! runs, at most every [`RECEIPT_INTERVAL_MS`] and only once the center has
//! acknowledged more than the last receipt covers, ask the center to prove the
//! newest acknowledged batch in its public log, check the answer and keep it, on a
//! connection and a store connection of its own. A log that shows two histories is
//! kept as the alarm (`station status` shows it) and ends the asking: the station
//! keeps recording and sending, and the operator is told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Log, Note, wait_stop};
use crate::receipt::ReceiptError;
use crate::store::{Provisioned, Store};
use crate::sync::receipt::{Ask, TakeError, ask, keep, prove, stored};

/// The shortest time between two receipts `station run` asks for.
pub const RECEIPT_INTERVAL_MS: u64 = 5_000;

/// Runs `f` on `store` on tokio's blocking pool.
async fn on_store<T, F>(store: &Arc<Mutex<Store>>, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, TakeError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let guard = store
            .lock()
            .map_err(|_| "the receipt store was poisoned".to_owned())?;
        f(&guard).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Takes receipts until `shutdown` turns true (or the log showed two histories).
/// A station whose bundle carries no log key has nothing to check receipts with
/// and asks for none.
pub async fn receipt_loop(
    store: Store,
    prov: Arc<Provisioned>,
    mut shutdown: watch::Receiver<bool>,
    log: Log,
) {
    if prov.bundle.log_key.is_none() {
        return;
    }
    let store = Arc::new(Mutex::new(store));
    let mut proved_through = on_store(&store, |s| Ok(stored(s)?.0.map(|r| r.sequence)))
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(RECEIPT_INTERVAL_MS)) => {}
            _ = wait_stop(&mut shutdown) => return,
        }
        let p = Arc::clone(&prov);
        let asked: Option<Ask> = match on_store(&store, move |s| ask(s, &p)).await {
            Ok(Some(a)) if a.sequence > proved_through => Some(a),
            Ok(_) => None,
            Err(error) => {
                log(&Note::NoReceipt { error });
                None
            }
        };
        let Some(asked) = asked else { continue };
        let reply = tokio::select! {
            reply = prove(&prov, &asked) => reply,
            _ = wait_stop(&mut shutdown) => return,
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                log(&Note::NoReceipt {
                    error: e.to_string(),
                });
                continue;
            }
        };
        let p = Arc::clone(&prov);
        let kept = on_store(&store, move |s| match keep(s, &p, &asked, &reply) {
            Err(TakeError::Receipt(ReceiptError::TwoHistories(alarm))) => Ok(Err(alarm.detail)),
            other => other.map(Ok),
        })
        .await;
        match kept {
            Ok(Ok(receipt)) => {
                proved_through = receipt.sequence;
                log(&Note::Receipt {
                    sequence: receipt.sequence,
                    leaf_index: receipt.leaf_index,
                    tree_size: receipt.tree_size,
                });
            }
            Ok(Err(detail)) => {
                log(&Note::LogAlarm { detail });
                return;
            }
            Err(error) => log(&Note::NoReceipt { error }),
        }
    }
}
