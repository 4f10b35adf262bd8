//! The verify pool: a few threads that run the stateless, CPU-heavy part of
//! ingest ([`super::judge::prepare`]: decoding, canonical re-encoding, SHA-256,
//! Ed25519 verification, content checks and tally aggregation) for many batches at
//! once, ahead of the single writer thread.
//!
//! Plain threads on a shared queue, so that it works the same under the tokio
//! server and in the synchronous `center import`.

use std::sync::{Arc, Mutex};
use std::thread;

use super::queue;
use crate::error::{CenterError, Result};

/// Most verify threads, whatever the machine has.
pub const MAX_VERIFY_THREADS: usize = 8;

/// One unit of work.
pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// The sending side of the pool; workers end when it is dropped.
pub struct Pool {
    tx: Mutex<Option<queue::Sender<Task>>>,
}

impl Pool {
    /// Starts `threads` workers (at least one), with at most `max_queued_tasks`
    /// waiting for them.
    pub fn start(threads: usize, max_queued_tasks: usize) -> Result<Pool> {
        let (tx, rx) = queue::bounded::<Task>(max_queued_tasks);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("center-verify-{i}"))
                .spawn(move || {
                    loop {
                        let task = {
                            let guard = match rx.lock() {
                                Ok(g) => g,
                                Err(poisoned) => poisoned.into_inner(),
                            };
                            guard.recv()
                        };
                        match task {
                            Some(task) => task(),
                            None => break,
                        }
                    }
                })
                .map_err(|source| CenterError::Thread {
                    what: "verify pool",
                    source,
                })?;
        }
        Ok(Pool {
            tx: Mutex::new(Some(tx)),
        })
    }

    /// The default size: the machine's cores, at most [`MAX_VERIFY_THREADS`].
    pub fn default_threads() -> usize {
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_VERIFY_THREADS)
    }

    /// Queues a task. Returns false if the pool is closed or its queue full (the
    /// task is dropped).
    pub fn run(&self, task: Task) -> bool {
        let guard = match self.tx.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match guard.as_ref() {
            Some(tx) => tx.try_send(task).is_ok(),
            None => false,
        }
    }

    /// Closes the pool: queued tasks still run, then the workers end.
    pub fn close(&self) {
        let mut guard = match self.tx.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.take();
    }
}
