//! What the core needs from the platform besides storage and the cache: the time and an HTTP
//! client for small requests. `SystemTime::now()` does not exist on `wasm32-unknown-unknown`, so
//! time always comes through `Clock`.

/// Wall-clock time.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The native clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that says what it is told, for tests.
#[derive(Debug, Default)]
pub struct FixedClock(pub std::cell::Cell<u64>);

impl FixedClock {
    pub fn at(now: u64) -> FixedClock {
        FixedClock(std::cell::Cell::new(now))
    }

    pub fn advance(&self, seconds: u64) {
        self.0.set(self.0.get() + seconds);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
}

impl<T: Clock + ?Sized> Clock for &T {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// Sends small requests (bodies are bounded: storage reads, token requests). Redirects are not
/// followed. An `Err` is a transport failure; any HTTP status is an `Ok`.
#[allow(async_fn_in_trait)]
pub trait HttpClient {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, String>;
}

/// The implementations one deployment of the App runs on, named once: the worker's in
/// `workers`, in-memory ones in tests.
pub trait Platform {
    type Store: crate::storage::ObjectStore;
    type Cache: crate::cache::EdgeCache;
    type Clock: Clock;
    type Origin: crate::origin::Origin;
    type Events: crate::events::EventSink;
}

/// The body of the client's request, read only when the core asks: an upload's body is never
/// read, but handed to the origin untouched (`OriginBody::Client`).
#[allow(async_fn_in_trait)]
pub trait ClientBody {
    /// The whole body, or `None` when it is longer than `limit` bytes.
    async fn read(&self, limit: usize) -> Result<Option<Vec<u8>>, String>;
}

/// No body (reads, tests).
impl ClientBody for () {
    async fn read(&self, _limit: usize) -> Result<Option<Vec<u8>>, String> {
        Ok(Some(Vec::new()))
    }
}

impl ClientBody for Vec<u8> {
    async fn read(&self, limit: usize) -> Result<Option<Vec<u8>>, String> {
        Ok((self.len() <= limit).then(|| self.clone()))
    }
}
