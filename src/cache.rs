//! The edge cache: what the edge has read from storage, kept close. Immutable things (manifest bytes
//! by digest, blob sizes by digest) live long; mutable ones (tag resolution, link checks, tag and
//! repository lists) only for `TAG_CACHE_SECONDS`. On Workers it is two tiers (isolate memory, then
//! the Cache API); natively and in tests it is `MemoryCache`. A cache may forget anything at any
//! time: it is never the only copy.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::platform::Clock;
use crate::reference::{Digest, Name, Tag};

/// Lifetime of immutable entries (content addressed by digest).
pub const IMMUTABLE_SECONDS: u64 = 365 * 24 * 3600;

#[allow(async_fn_in_trait)]
pub trait EdgeCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>>;
    async fn put(&self, key: &str, value: &[u8], ttl_seconds: u64);
    async fn delete(&self, key: &str);

    /// Like `get`, from the nearest tier only (the isolate's memory on Workers): for entries
    /// cheaper to recompute than to fetch from a shared tier.
    async fn get_local(&self, key: &str) -> Option<Vec<u8>> {
        self.get(key).await
    }

    /// Like `put`, into the nearest tier only.
    async fn put_local(&self, key: &str, value: &[u8], ttl_seconds: u64) {
        self.put(key, value, ttl_seconds).await
    }

    /// Like `delete`, from the nearest tier only.
    async fn delete_local(&self, key: &str) {
        self.delete(key).await
    }

    /// A number kept as its decimal text (a blob size); `None` when absent or not a number.
    async fn get_number(&self, key: &str) -> Option<u64> {
        String::from_utf8(self.get(key).await?).ok()?.parse().ok()
    }

    async fn put_number(&self, key: &str, number: u64, ttl_seconds: u64) {
        self.put(key, number.to_string().as_bytes(), ttl_seconds)
            .await
    }
}

/// The cache's keys, in one place.
pub mod key {
    use super::*;

    pub fn manifest(digest: &Digest) -> String {
        format!("manifest/{digest}")
    }
    pub fn blob_size(digest: &Digest) -> String {
        format!("size/{digest}")
    }
    pub fn tag(name: &Name, tag: &Tag) -> String {
        format!("tag/{name}/{tag}")
    }
    pub fn revision(name: &Name, digest: &Digest) -> String {
        format!("revision/{name}/{digest}")
    }
    pub fn layer(name: &Name, digest: &Digest) -> String {
        format!("layer/{name}/{digest}")
    }
    pub fn tags(name: &Name) -> String {
        format!("tags/{name}")
    }
    pub fn referrers(name: &Name, subject: &Digest) -> String {
        format!("referrers/{name}/{subject}")
    }
    pub fn catalog() -> String {
        "catalog".to_owned()
    }
    /// A catalog shard, by the sha256 its name holds (immutable).
    pub fn index_shard(sha256: &str) -> String {
        format!("index-shard/{sha256}")
    }
    /// Whether the indexes are complete ("1") or not ("0"), as the catalog's root last said.
    pub fn index_complete() -> String {
        "index-complete".to_owned()
    }
    /// That this location asked for a rebuild of the indexes lately, for this reason.
    pub fn index_rebuild_asked(reason: &str) -> String {
        format!("index-rebuild-asked/{reason}")
    }
    /// A registry record (`records`), by its KV key.
    pub fn record(kv_key: &str) -> String {
        format!("kv/{kv_key}")
    }
    /// The KV keys under a prefix.
    pub fn record_list(prefix: &str) -> String {
        format!("kv-list/{prefix}")
    }
    /// The origin's `WWW-Authenticate` challenge.
    pub fn origin_challenge() -> String {
        "origin/challenge".to_owned()
    }
    /// A token of the origin's token service for these scopes.
    pub fn origin_token(scopes: &[String]) -> String {
        format!("origin/token/{}", scopes.join(" "))
    }
    /// What the edge keeps of the upstream with namespace `prefix`: `kind` (`token`, `tag`,
    /// `manifest`, ...) of `rest` (the repository's name there, and a tag or digest). `:` appears
    /// in no prefix or name, so no two upstreams' keys meet.
    /// Pulls of a manifest counted for a webhook's pull events (isolate memory only).
    pub fn pulls(webhook: &str, created: u64, name: &Name, digest: &str) -> String {
        format!("pulls:{webhook}.{created}:{name}@{digest}")
    }

    pub fn upstream(prefix: &str, kind: &str, rest: &str) -> String {
        format!("upstream:{prefix}:{kind}:{rest}")
    }
    /// A bearer token that passed verification, by its SHA-256.
    pub fn verified_token(token_sha256: &str) -> String {
        format!("verified/{token_sha256}")
    }
}

/// A bounded in-memory cache with expiry.
pub struct MemoryCache<K> {
    clock: K,
    max_bytes: usize,
    state: RefCell<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    entries: HashMap<String, (Vec<u8>, u64)>,
    bytes: usize,
}

impl<K: Clock> MemoryCache<K> {
    pub fn new(clock: K, max_bytes: usize) -> Self {
        MemoryCache {
            clock,
            max_bytes,
            state: RefCell::default(),
        }
    }

    pub fn get_now(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.clock.now();
        let mut state = self.state.borrow_mut();
        match state.entries.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                if let Some((value, _)) = state.entries.remove(key) {
                    state.bytes -= value.len() + key.len();
                }
                None
            }
            None => None,
        }
    }

    pub fn put_now(&self, key: &str, value: &[u8], ttl_seconds: u64) {
        let cost = value.len() + key.len();
        if ttl_seconds == 0 || cost > self.max_bytes / 4 {
            return;
        }
        let now = self.clock.now();
        let mut state = self.state.borrow_mut();
        if let Some((old, _)) = state.entries.remove(key) {
            state.bytes -= old.len() + key.len();
        }
        if state.bytes + cost > self.max_bytes {
            // Drop what has expired; if that is not enough, start over. Simple, bounded, and a
            // cache miss only costs a storage read.
            state.entries.retain(|_, (_, expires)| *expires > now);
            state.bytes = state
                .entries
                .iter()
                .map(|(k, (v, _))| k.len() + v.len())
                .sum();
            if state.bytes + cost > self.max_bytes {
                state.entries.clear();
                state.bytes = 0;
            }
        }
        state.entries.insert(
            key.to_owned(),
            (value.to_vec(), now.saturating_add(ttl_seconds)),
        );
        state.bytes += cost;
    }

    pub fn delete_now(&self, key: &str) {
        let mut state = self.state.borrow_mut();
        if let Some((value, _)) = state.entries.remove(key) {
            state.bytes -= value.len() + key.len();
        }
    }
}

impl<K: Clock> EdgeCache for MemoryCache<K> {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_now(key)
    }

    async fn put(&self, key: &str, value: &[u8], ttl_seconds: u64) {
        self.put_now(key, value, ttl_seconds)
    }

    async fn delete(&self, key: &str) {
        self.delete_now(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::FixedClock;

    #[test]
    fn entries_expire() {
        let clock = FixedClock::at(100);
        let cache = MemoryCache::new(&clock, 1 << 20);
        cache.put_now("a", b"1", 5);
        assert_eq!(cache.get_now("a"), Some(b"1".to_vec()));
        clock.advance(4);
        assert_eq!(cache.get_now("a"), Some(b"1".to_vec()));
        clock.advance(1);
        assert_eq!(cache.get_now("a"), None);
        cache.put_now("z", b"1", 0);
        assert_eq!(cache.get_now("z"), None);
    }

    #[test]
    fn stays_within_its_budget() {
        let clock = FixedClock::at(0);
        let cache = MemoryCache::new(&clock, 1000);
        for i in 0..100 {
            cache.put_now(&format!("k{i}"), &[0u8; 100], 60);
            assert!(cache.state.borrow().bytes <= 1000);
        }
        assert!(cache.get_now("k99").is_some());
        cache.put_now("big", &[0u8; 600], 60);
        assert!(
            cache.get_now("big").is_none(),
            "entries over a quarter of the budget are not kept"
        );
        cache.delete_now("k99");
        assert!(cache.get_now("k99").is_none());
    }
}
