//! Batches read ahead from the store for sending, so that a window of sends costs
//! one store read rather than one per batch.

use std::collections::VecDeque;

use pollsync_proto::pb;

use super::session::SessionError;
use super::{LocalError, Shared, with_store};
use crate::error::StationError;

/// Batches read from the store at once for sending.
const PREFETCH_BATCHES: usize = crate::sync::sender::MAX_WINDOW;

/// Batches read ahead from the store, in sequence from `first`.
#[derive(Default)]
pub(super) struct Outbox {
    first: u64,
    batches: VecDeque<pb::SignedBatch>,
}

impl Outbox {
    /// Sealed batch `sequence`, read ahead with the ones after it if not at hand.
    pub(super) async fn take(
        &mut self,
        store: &Shared,
        sequence: u64,
    ) -> Result<pb::SignedBatch, SessionError> {
        let end = self.first + self.batches.len() as u64;
        if sequence < self.first || sequence >= end {
            let loaded =
                with_store(store, move |s| s.batches_from(sequence, PREFETCH_BATCHES)).await?;
            self.batches = loaded.into();
        } else {
            self.batches.drain(..(sequence - self.first) as usize);
        }
        self.first = sequence + 1;
        self.batches.pop_front().ok_or_else(|| {
            SessionError::Local(LocalError::Store(StationError::Corrupt {
                detail: format!("sealed batch {sequence} is missing"),
            }))
        })
    }
}
