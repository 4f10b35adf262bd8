//! The acknowledgement recorder: writes what the center acknowledged, the last
//! contact time and the center address last reached to the store on its own connection, coalescing: while one write is
//! being made durable, newer wishes collect and go in the next one, so a burst of
//! acknowledgements costs one durable write. A failed write is retried.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Log, Note, RECORD_RETRY_MS, Shared, with_store};

/// Writes acknowledgements and the last contact time, coalescing: it always writes
/// the latest wish, so a burst of acknowledgements costs one durable write.
pub(super) struct Recorder {
    wish: watch::Sender<Contact>,
    task: JoinHandle<Result<u64, String>>,
}

/// What the store should hold: acknowledged through, the last contact, and the
/// center address last reached.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contact {
    acknowledged_through: u64,
    unix_ms: u64,
    reached: Option<String>,
}

impl Recorder {
    pub(super) fn start(store: Shared, acknowledged_through: u64, log: Log) -> Self {
        let written = Contact {
            acknowledged_through,
            unix_ms: 0,
            reached: None,
        };
        let (wish, rx) = watch::channel(written.clone());
        let task = tokio::spawn(record_loop(store, rx, written, log));
        Recorder { wish, task }
    }

    pub(super) fn acknowledge(&self, through: u64) {
        self.wish.send_modify(|c| {
            c.acknowledged_through = c.acknowledged_through.max(through);
            c.unix_ms = now_unix_ms();
        });
    }

    pub(super) fn touch(&self) {
        self.wish.send_modify(|c| c.unix_ms = now_unix_ms());
    }

    /// The center answered Hello at `address`: the store keeps it as the address
    /// last reached (`station status`, and where receipts and recovery start).
    pub(super) fn reached(&self, address: &str) {
        self.wish.send_modify(|c| {
            c.unix_ms = now_unix_ms();
            if c.reached.as_deref() != Some(address) {
                c.reached = Some(address.to_owned());
            }
        });
    }

    /// Waits until everything wished is written; returns what the store holds as
    /// acknowledged.
    pub(super) async fn finish(self) -> Result<u64, String> {
        drop(self.wish);
        self.task.await.map_err(|e| e.to_string())?
    }
}

async fn record_loop(
    store: Shared,
    mut rx: watch::Receiver<Contact>,
    mut written: Contact,
    log: Log,
) -> Result<u64, String> {
    let mut closed = false;
    loop {
        let want = rx.borrow_and_update().clone();
        if want != written {
            let newly = (want.acknowledged_through > written.acknowledged_through)
                .then_some(want.acknowledged_through);
            let reached = (want.reached != written.reached)
                .then(|| want.reached.clone())
                .flatten();
            let unix_ms = want.unix_ms;
            match with_store(&store, move |s| {
                s.record_contact(newly, unix_ms, reached.as_deref())
            })
            .await
            {
                Ok(()) => written = want,
                Err(e) => {
                    log(&Note::LocalProblem {
                        error: format!("recording acknowledgements: {e}"),
                    });
                    if closed {
                        return Err(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(RECORD_RETRY_MS)).await;
                    continue;
                }
            }
        }
        if closed {
            return Ok(written.acknowledged_through);
        }
        if rx.changed().await.is_err() {
            closed = true;
        }
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
