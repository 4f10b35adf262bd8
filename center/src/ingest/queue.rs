//! A queue between threads with a limit on what it holds: items leave in the
//! order they came, and one beyond the limit is refused at once instead of queued.
//! The count is kept beside a standard channel, so that no room is set aside up
//! front for a limit that is rarely reached (the writer's queue allows a quarter
//! of a million jobs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue holds its limit already.
    #[error("the queue is full ({max} waiting)")]
    Full {
        /// The limit.
        max: usize,
    },
    /// The receiving side is gone.
    #[error("the queue is closed")]
    Closed,
}

/// The sending side; the receiver sees the queue closed once every sender is
/// dropped and it has taken what was queued before.
pub struct Sender<T> {
    tx: mpsc::Sender<T>,
    queued: Arc<AtomicUsize>,
    max: usize,
}

/// The receiving side.
pub struct Receiver<T> {
    rx: mpsc::Receiver<T>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding at most `max` items (at least one).
pub fn bounded<T>(max: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let max = max.max(1);
    (
        Sender {
            tx,
            queued: Arc::clone(&queued),
            max,
        },
        Receiver { rx, queued },
    )
}

impl<T> Sender<T> {
    /// Queues `item`, or says why not (the item is dropped then).
    pub fn try_send(&self, item: T) -> Result<(), QueueError> {
        let max = self.max;
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| QueueError::Full { max })?;
        if self.tx.send(item).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueError::Closed);
        }
        Ok(())
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let item = self.rx.recv_timeout(timeout)?;
        self.taken();
        Ok(item)
    }

    /// The next item, waiting as long as it takes; `None` once the queue is closed
    /// and empty.
    pub fn recv(&self) -> Option<T> {
        let item = self.rx.recv().ok()?;
        self.taken();
        Some(item)
    }

    /// The next item if one waits.
    pub fn try_recv(&self) -> Option<T> {
        let item = self.rx.try_recv().ok()?;
        self.taken();
        Some(item)
    }

    fn taken(&self) {
        let before = self.queued.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "an item left a queue that counted none");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_its_limit_and_takes_again_once_an_item_left() {
        let (tx, rx) = bounded::<u32>(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(QueueError::Full { max: 2 }));
        assert_eq!(tx.len(), 2);
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(tx.try_send(4), Ok(()));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.recv_timeout(Duration::ZERO), Ok(4));
        assert_eq!(tx.len(), 0);
    }

    #[test]
    fn closed_when_the_receiver_is_gone_and_drained_after_the_sender() {
        let (tx, rx) = bounded::<u32>(4);
        assert_eq!(tx.try_send(7), Ok(()));
        drop(tx);
        assert_eq!(rx.recv(), Some(7));
        assert_eq!(rx.recv(), None);
        let (tx, rx) = bounded::<u32>(4);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(QueueError::Closed));
        assert_eq!(tx.len(), 0, "a refused item is not counted");
    }

    #[test]
    fn threads_never_see_more_than_the_limit() {
        let (tx, rx) = bounded::<usize>(16);
        let tx = Arc::new(tx);
        let sent: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let tx = Arc::clone(&tx);
                    s.spawn(move || (0..1_000).filter(|&i| tx.try_send(i).is_ok()).count())
                })
                .collect();
            let mut taken = 0;
            while handles.iter().any(|h| !h.is_finished()) || tx.len() > 0 {
                assert!(tx.len() <= 16);
                if rx.try_recv().is_some() {
                    taken += 1;
                }
            }
            let sent = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
            assert_eq!(taken, sent, "every item queued was taken once");
            sent
        });
        assert!(sent >= 16);
    }
}
