//! The verify pool: a few threads that run the stateless, CPU-heavy part of
//! ingest ([`super::judge::prepare`]: decoding, canonical re-encoding, SHA-256,
//! Ed25519 verification, content checks and tally aggregation) for many batches at
//! once, ahead of the single writer thread.
//!
//! Plain threads on a shared queue, so that it works the same under the tokio
//! server and in the synchronous `center import`.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::error::{CenterError, Result};

/// Most verify threads, whatever the machine has.
pub const MAX_VERIFY_THREADS: usize = 8;

/// One unit of work.
pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// The sending side of the pool; workers end when it is dropped.
pub struct Pool {
    tx: Mutex<Option<mpsc::Sender<Task>>>,
}

impl Pool {
    /// Starts `threads` workers (at least one).
    pub fn start(threads: usize) -> Result<Pool> {
        let (tx, rx) = mpsc::channel::<Task>();
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
                            Ok(task) => task(),
                            Err(_) => break,
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

    /// Queues a task. Returns false if the pool is closed (the task is dropped).
    pub fn run(&self, task: Task) -> bool {
        let guard = match self.tx.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match guard.as_ref() {
            Some(tx) => tx.send(task).is_ok(),
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
