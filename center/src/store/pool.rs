//! A few open stores kept for the operators' HTTP readers, so that a request does
//! not open a connection of its own (on PostgreSQL a TCP connection and a login
//! each time). Bounded: the readers are already limited by their permits; a store
//! given back beyond `max_idle` is closed. A connection PostgreSQL dropped while it
//! sat idle is replaced by the store itself at its next statement.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use super::{Store, StoreLocation};
use crate::error::Result;

/// Open stores waiting to be lent, and where to open more.
pub struct StorePool {
    location: StoreLocation,
    idle: Mutex<Vec<Store>>,
    max_idle: usize,
}

/// A store lent by a [`StorePool`]; given back when dropped.
pub struct PooledStore {
    store: Option<Store>,
    pool: Arc<StorePool>,
}

impl StorePool {
    /// A pool of stores at `location`, keeping at most `max_idle` open.
    pub fn new(location: StoreLocation, max_idle: usize) -> Arc<StorePool> {
        assert!(max_idle > 0, "a pool keeps at least one store");
        Arc::new(StorePool {
            location,
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            max_idle,
        })
    }

    /// Where the stores are.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// Stores open and waiting now.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// An open store: a waiting one, else a new one (which blocks on opening it).
    pub fn get(self: &Arc<Self>) -> Result<PooledStore> {
        let waiting = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let store = match waiting {
            Some(store) => store,
            None => Store::open_at(&self.location)?,
        };
        Ok(PooledStore {
            store: Some(store),
            pool: Arc::clone(self),
        })
    }
}

impl Deref for PooledStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        self.store
            .as_ref()
            .expect("a lent store is there until it is given back")
    }
}

impl Drop for PooledStore {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.pool.max_idle {
            idle.push(store);
        }
        debug_assert!(idle.len() <= self.pool.max_idle);
    }
}
