//! `EdgeCache` in two tiers: the isolate's memory (free, gone when the isolate is) and the Workers
//! Cache API (shared by the isolates of a location). A miss in memory that hits the Cache API is
//! copied back into memory.

use std::cell::RefCell;

use worker::{Cache, Headers, Response};

use super::WorkerClock;
use crate::cache::{EdgeCache, MemoryCache};
use crate::platform::Background;

/// Memory the isolate-level tier may use (an isolate has 128 MB in all:
/// <https://developers.cloudflare.com/workers/platform/limits/#memory>).
const MEMORY_BUDGET: usize = 16 << 20;

thread_local! {
    static MEMORY: RefCell<Option<MemoryCache<WorkerClock>>> = const { RefCell::new(None) };
}

fn with_memory<T>(f: impl FnOnce(&MemoryCache<WorkerClock>) -> T) -> T {
    MEMORY.with(|m| {
        f(m.borrow_mut()
            .get_or_insert_with(|| MemoryCache::new(WorkerClock, MEMORY_BUDGET)))
    })
}

/// A synthetic URL: the Cache API keys entries by URL.
fn cache_url(key: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
    format!("https://registry-edge.cache/{encoded}")
}

/// Writes of immutable entries to the Cache API go to the background (`waitUntil`): a miss is
/// answered without waiting for them, and the isolate's memory has the entry at once.
pub(crate) struct TieredCache {
    pub background: super::WorkerBackground,
}

impl EdgeCache for TieredCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(value) = with_memory(|m| m.get_now(key)) {
            return Some(value);
        }
        let mut response = Cache::default().get(cache_url(key), false).await.ok()??;
        let ttl = response
            .headers()
            .get("x-edge-expires")
            .ok()
            .flatten()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|expires| expires.saturating_sub(crate::platform::Clock::now(&WorkerClock)))?;
        let value = response.bytes().await.ok()?;
        with_memory(|m| m.put_now(key, &value, ttl));
        Some(value)
    }

    async fn put(&self, key: &str, value: &[u8], ttl_seconds: u64) {
        with_memory(|m| m.put_now(key, value, ttl_seconds));
        let headers = Headers::new();
        let expires = crate::platform::Clock::now(&WorkerClock) + ttl_seconds;
        let ok = headers
            .set("cache-control", &format!("max-age={ttl_seconds}"))
            .is_ok()
            && headers.set("x-edge-expires", &expires.to_string()).is_ok();
        if !ok {
            return;
        }
        if let Ok(response) = Response::from_bytes(value.to_vec()) {
            let url = cache_url(key);
            let response = response.with_headers(headers);
            // A failed write only costs a later miss. What is addressed by digest never changes,
            // so its write may finish after the response; anything a later delete must clear
            // (tags, links, lists, records) is written before the response, so that a delete
            // always comes after it.
            if ttl_seconds >= crate::cache::IMMUTABLE_SECONDS {
                self.background.spawn(Box::pin(async move {
                    let _ = Cache::default().put(url, response).await;
                }));
            } else {
                let _ = Cache::default().put(url, response).await;
            }
        }
    }

    async fn get_local(&self, key: &str) -> Option<Vec<u8>> {
        with_memory(|m| m.get_now(key))
    }

    async fn put_local(&self, key: &str, value: &[u8], ttl_seconds: u64) {
        with_memory(|m| m.put_now(key, value, ttl_seconds));
    }

    async fn delete_local(&self, key: &str) {
        with_memory(|m| m.delete_now(key));
    }

    async fn delete(&self, key: &str) {
        with_memory(|m| m.delete_now(key));
        let _ = Cache::default().delete(cache_url(key), false).await;
    }
}
