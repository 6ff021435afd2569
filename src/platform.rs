//! What the core needs from the platform besides storage and the cache: the time and an HTTP
//! client for small requests. `SystemTime::now()` does not exist on `wasm32-unknown-unknown`, so
//! time always comes through `Clock`.

/// Wall-clock time.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// A clock that says what it is told, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct FixedClock(pub std::cell::Cell<u64>);

#[cfg(test)]
impl FixedClock {
    pub fn at(now: u64) -> FixedClock {
        FixedClock(std::cell::Cell::new(now))
    }

    pub fn advance(&self, seconds: u64) {
        self.0.set(self.0.get() + seconds);
    }
}

#[cfg(test)]
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

/// Requests to upstream registries (pull-through reads). Redirects are not followed, and an
/// answer's body is left where it is until the core decides: small ones (manifests, token
/// answers, lists) are `read`, bounded; a blob's is handed to the client as it is
/// (`pass_through`), so its bytes never pass through Rust. An `Err` is a transport failure; any
/// HTTP status is an `Ok`.
#[allow(async_fn_in_trait)]
pub trait UpstreamHttp {
    type Body;

    /// Sends a request without a body; `timeout` bounds the wait for the answer's headers.
    async fn send(
        &self,
        request: http::Request<()>,
        timeout: std::time::Duration,
    ) -> Result<http::Response<Self::Body>, crate::origin::OriginError>;

    /// The whole body, or `None` when it is longer than `limit` bytes.
    async fn read(
        &self,
        body: Self::Body,
        limit: usize,
        timeout: std::time::Duration,
    ) -> Result<Option<Vec<u8>>, crate::origin::OriginError>;

    /// Makes `body` the body of the answer the edge gives its client.
    fn pass_through(&self, body: Self::Body);

    /// Lets go of an answer's body the edge does not want (a 401, a redirect, an error): on
    /// Workers an unread body holds one of the request's few connections until it is cancelled.
    fn discard(&self, _body: Self::Body) {}
}

impl<T: UpstreamHttp> UpstreamHttp for &T {
    type Body = T::Body;

    async fn send(
        &self,
        request: http::Request<()>,
        timeout: std::time::Duration,
    ) -> Result<http::Response<Self::Body>, crate::origin::OriginError> {
        (**self).send(request, timeout).await
    }

    async fn read(
        &self,
        body: Self::Body,
        limit: usize,
        timeout: std::time::Duration,
    ) -> Result<Option<Vec<u8>>, crate::origin::OriginError> {
        (**self).read(body, limit, timeout).await
    }

    fn pass_through(&self, body: Self::Body) {
        (**self).pass_through(body)
    }

    fn discard(&self, body: Self::Body) {
        (**self).discard(body)
    }
}

/// A receiver's answer to a webhook delivery: its status (none when it did not answer, and then
/// why), its `Retry-After`, the first bytes of its body (the rest is never read), and how long
/// it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookAnswer {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
    pub elapsed_ms: u64,
}

/// Webhook deliveries: one `POST`, redirects not followed, bounded by `timeout`.
#[allow(async_fn_in_trait)]
pub trait HookHttp {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> HookAnswer;
}

impl<T: HookHttp> HookHttp for &T {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> HookAnswer {
        (**self).post(url, headers, body, timeout).await
    }
}

/// The implementations one deployment of the App runs on, named once: the worker's in
/// `workers`, in-memory ones in tests.
pub trait Platform {
    /// Storage, and uploads into it of bodies the upstream streams (mirror fills).
    type Store: crate::storage::ObjectStore
        + crate::storage::BlobSink<Body = <Self::Upstream as UpstreamHttp>::Body>;
    type Cache: crate::cache::EdgeCache;
    type Clock: Clock;
    type Origin: crate::origin::Origin;
    type Events: crate::events::EventSink;
    type Kv: KeyValue;
    type Background: Background;
    type Upstream: UpstreamHttp;
    /// The queue of work off the request's path.
    type Jobs: crate::jobs::Jobs;
    /// Webhook deliveries.
    type Hooks: HookHttp;
}

/// Work that may finish after the response is sent: `ctx.waitUntil` on Workers (which ends the
/// work ~30 s after the client disconnects:
/// <https://developers.cloudflare.com/workers/runtime-apis/context/#waituntil>), so it suits
/// cache writes and refreshes, not copies that must complete (those go to a queue). A task owns
/// what it needs (`'static`).
pub trait Background {
    fn spawn(&self, task: futures::future::LocalBoxFuture<'static, ()>);
}

/// Tasks kept until the test runs them, as a response is sent before `waitUntil`'s work ends.
#[cfg(test)]
#[derive(Default)]
pub struct DeferredTasks(pub std::cell::RefCell<Vec<futures::future::LocalBoxFuture<'static, ()>>>);

#[cfg(test)]
impl DeferredTasks {
    /// Runs every task spawned so far; returns how many.
    pub fn run_all(&self) -> usize {
        let tasks: Vec<_> = self.0.borrow_mut().drain(..).collect();
        let n = tasks.len();
        for task in tasks {
            futures::executor::block_on(task);
        }
        n
    }
}

#[cfg(test)]
impl Background for &DeferredTasks {
    fn spawn(&self, task: futures::future::LocalBoxFuture<'static, ()>) {
        self.0.borrow_mut().push(task);
    }
}

/// Where the platform says the request arrived (`request.cf` on Cloudflare), put into the
/// request's extensions by the adapter beside the client address: for choosing a nearby replica
/// and for events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestLocation {
    /// The data centre (IATA code), e.g. `SYD`.
    pub colo: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A small key-value store for the registry's own records (tokens, scope maps, settings,
/// repository attributes): a KV namespace on Workers, `MemoryKv` in tests. Values are JSON text.
/// Reads may be stale for a while after a write elsewhere (KV is eventually consistent).
#[allow(async_fn_in_trait)]
pub trait KeyValue {
    async fn get(&self, key: &str) -> Result<Option<String>, String>;
    async fn put(&self, key: &str, value: &str) -> Result<(), String>;
    async fn delete(&self, key: &str) -> Result<(), String>;
    /// Every key that starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String>;
}

/// An in-memory `KeyValue`, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryKv(pub std::cell::RefCell<std::collections::BTreeMap<String, String>>);

#[cfg(test)]
impl KeyValue for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.0.borrow().get(key).cloned())
    }
    async fn put(&self, key: &str, value: &str) -> Result<(), String> {
        self.0.borrow_mut().insert(key.to_owned(), value.to_owned());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), String> {
        self.0.borrow_mut().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        Ok(self
            .0
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

impl<T: KeyValue> KeyValue for &T {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: &str) -> Result<(), String> {
        (**self).put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), String> {
        (**self).delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        (**self).list(prefix).await
    }
}

/// The client's address as the platform reports it, put into the request's extensions by the
/// adapter (`CF-Connecting-IP` on Cloudflare). Network rules read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);

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
