//! The sealer of `station run`: seals every interval what any `station` process
//! recorded, and publishes the head of the sealed chain (batches sealed by other
//! processes included) to the session, until told to stop or told that sealing
//! must stop on this device.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::{Log, Note, Shared, wait_stop, with_store};
use crate::store::Provisioned;

/// Seals every `interval` what any `station` process recorded, and publishes the
/// head of the sealed chain (batches sealed by other processes included).
pub(super) async fn seal_loop(
    store: Shared,
    prov: Arc<Provisioned>,
    interval: Duration,
    heads: watch::Sender<u64>,
    allowed: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
    log: Log,
) {
    let mut last_error: Option<String> = None;
    let mut stopping = false;
    loop {
        if allowed.load(Ordering::SeqCst) {
            let prov = Arc::clone(&prov);
            match with_store(&store, move |s| {
                let made = s.seal(&prov)?;
                Ok((made, s.head()?.sequence))
            })
            .await
            {
                Ok((_, head)) => {
                    heads.send_if_modified(|h| {
                        let newer = head > *h;
                        *h = (*h).max(head);
                        newer
                    });
                    last_error = None;
                }
                Err(e) => {
                    let text = format!("sealing: {e}");
                    if last_error.as_ref() != Some(&text) {
                        log(&Note::LocalProblem {
                            error: text.clone(),
                        });
                    }
                    last_error = Some(text);
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wait_stop(&mut shutdown) => stopping = true,
        }
    }
}
