//! Concurrent reads of one key share one storage request. When a cached tag expires under load,
//! every request in flight in the isolate misses at once; without this, each would ask storage the
//! same question. The first (the leader) asks; the others wait for its answer. If the leader fails
//! or is cancelled, each follower asks for itself, so nobody waits on a request that is gone.
//!
//! `Coalescing` wraps any `ObjectStore`; its `Flights` live as long as the isolate (or the test).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures::channel::oneshot;

use super::{ObjectStore, StoreError};

type Waiters<T> = RefCell<HashMap<String, Vec<oneshot::Sender<T>>>>;

/// Reads in flight, by operation and key.
#[derive(Default)]
pub struct Flights {
    get: Waiters<Option<Vec<u8>>>,
    head: Waiters<Option<u64>>,
    list: Waiters<Vec<String>>,
}

/// An `ObjectStore` whose concurrent reads of one key are one read of the inner store.
pub struct Coalescing<S> {
    inner: S,
    flights: Rc<Flights>,
}

impl<S: ObjectStore> Coalescing<S> {
    pub fn new(inner: S, flights: Rc<Flights>) -> Self {
        Coalescing { inner, flights }
    }
}

/// Removes the leader's entry however its request ends; dropping the waiters' senders tells them
/// to read for themselves.
struct Leader<'a, T> {
    waiters: &'a Waiters<T>,
    key: &'a str,
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        self.waiters.borrow_mut().remove(self.key);
    }
}

async fn coalesce<T, F, Fut>(waiters: &Waiters<T>, key: &str, read: F) -> Result<T, StoreError>
where
    T: Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let follower = {
        let mut map = waiters.borrow_mut();
        match map.get_mut(key) {
            Some(list) => {
                let (tx, rx) = oneshot::channel();
                list.push(tx);
                Some(rx)
            }
            None => {
                map.insert(key.to_owned(), Vec::new());
                None
            }
        }
    };
    if let Some(rx) = follower {
        return match rx.await {
            Ok(value) => Ok(value),
            Err(oneshot::Canceled) => read().await,
        };
    }
    let leader = Leader { waiters, key };
    let result = read().await;
    let followers = waiters.borrow_mut().remove(key).unwrap_or_default();
    drop(leader);
    if let Ok(value) = &result {
        for tx in followers {
            let _ = tx.send(value.clone());
        }
    }
    result
}

impl<S: ObjectStore> ObjectStore for Coalescing<S> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        coalesce(&self.flights.get, key, || self.inner.get(key)).await
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        coalesce(&self.flights.head, key, || self.inner.head(key)).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        coalesce(&self.flights.list, prefix, || self.inner.list_dirs(prefix)).await
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use futures::future::{join, join_all};

    use super::*;
    use crate::storage::memory::MemoryStore;

    /// A store whose reads wait until the test lets them go, so that requests overlap.
    struct Gated {
        inner: MemoryStore,
        open: Rc<Cell<bool>>,
        fail: Cell<bool>,
    }

    async fn until(open: &Cell<bool>) {
        futures::future::poll_fn(|cx| {
            if open.get() {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await
    }

    impl ObjectStore for Gated {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            until(&self.open).await;
            if self.fail.replace(false) {
                return Err(StoreError("boom".into()));
            }
            self.inner.get(key).await
        }
        async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
            until(&self.open).await;
            self.inner.head(key).await
        }
        async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            until(&self.open).await;
            self.inner.list_dirs(prefix).await
        }
    }

    fn gated() -> (Coalescing<Gated>, Rc<Cell<bool>>) {
        let open = Rc::new(Cell::new(false));
        let inner = MemoryStore::default();
        inner.put("k", b"v".to_vec());
        inner.put("d/a/x", b"1".to_vec());
        let store = Gated {
            inner,
            open: open.clone(),
            fail: Cell::new(false),
        };
        (Coalescing::new(store, Rc::new(Flights::default())), open)
    }

    #[test]
    fn concurrent_reads_of_one_key_are_one_read() {
        let (store, open) = gated();
        let reads = join_all((0..8).map(|_| store.get("k")));
        let release = async {
            futures::pending!();
            open.set(true);
        };
        let (results, ()) = futures::executor::block_on(join(reads, release));
        assert!(results.iter().all(|r| *r == Ok(Some(b"v".to_vec()))));
        assert_eq!(store.inner.inner.call_count(), 1);
        // Other operations and keys are their own flights.
        let (a, b) = futures::executor::block_on(join(store.head("k"), store.list_dirs("d/")));
        assert_eq!((a, b), (Ok(Some(1)), Ok(vec!["a".to_owned()])));
        assert_eq!(store.inner.inner.call_count(), 3);
        assert!(store.flights.get.borrow().is_empty());
    }

    #[test]
    fn followers_read_for_themselves_when_the_leader_fails() {
        let (store, open) = gated();
        store.inner.fail.set(true);
        let reads = join_all((0..3).map(|_| store.get("k")));
        let release = async {
            futures::pending!();
            open.set(true);
        };
        let (results, ()) = futures::executor::block_on(join(reads, release));
        assert!(results[0].is_err());
        assert!(results[1..].iter().all(|r| *r == Ok(Some(b"v".to_vec()))));
        assert!(store.flights.get.borrow().is_empty());
    }

    #[test]
    fn a_cancelled_leader_leaves_no_one_waiting() {
        let (store, open) = gated();
        {
            let mut leader = Box::pin(store.get("k"));
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(leader.as_mut().poll(&mut cx).is_pending());
            assert_eq!(store.flights.get.borrow().len(), 1);
        }
        assert!(store.flights.get.borrow().is_empty());
        open.set(true);
        assert_eq!(
            futures::executor::block_on(store.get("k")),
            Ok(Some(b"v".to_vec()))
        );
    }
}
