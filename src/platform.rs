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
