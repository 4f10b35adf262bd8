//! The HTTP readers' pool of open stores (`store::pool`), on whichever engine the
//! test center is (`POLLSYNC_TEST_ENGINE`).

mod support;

use pollsync_center::store::Records as _;
use pollsync_center::store::pool::{PooledStore, StorePool};

#[test]
fn stores_are_lent_again_and_at_most_max_idle_are_kept() {
    let center = support::Center::new();
    let pool = StorePool::new(center.store.clone(), 2);
    let lent: Vec<PooledStore> = (0..3).map(|_| pool.get().expect("store")).collect();
    assert_eq!(pool.idle(), 0);
    for store in &lent {
        assert_eq!(store.stations().expect("stations").len(), 3);
    }
    drop(lent);
    assert_eq!(pool.idle(), 2, "the third store is closed, not kept");
    let again = pool.get().expect("store");
    assert_eq!(pool.idle(), 1, "a waiting store is lent again");
    assert_eq!(again.meta().expect("meta").election_id, "test-2021");
}
