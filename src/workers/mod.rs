//! The Cloudflare Workers adapter: the only code that imports `worker`. It turns the fetch event
//! into an `http::Request`, builds the core's traits from the bindings (R2 or S3 over `fetch()`,
//! isolate memory + Cache API, `Date.now()`), runs `App::handle` and turns the answer back into a
//! `Response`. Configuration is parsed once per isolate.

mod cache;
mod fetch;
mod hooks;
mod kv;
mod origin;
mod r2;
mod sink;
mod upstream;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use worker::worker_sys::web_sys;
use worker::{Context, Env, event};

use crate::app::{App, error_response};
use crate::config::{Backend, Config};
use crate::error::Error;
use crate::events::{Event, EventSink};
use crate::platform::{Background, Clock, Platform};
use crate::storage::presign::Presigner;
use crate::storage::s3::S3Store;
use crate::storage::{ObjectStore, StoreError};

use crate::config::{KV_BINDING, R2_BINDING};

/// What is built once per isolate from the environment.
struct Setup {
    config: Rc<Config>,
    presigner: Option<Rc<Presigner>>,
}

thread_local! {
    static SETUP: RefCell<Option<Rc<Setup>>> = const { RefCell::new(None) };
}

fn setup(env: &Env, request_url: &str) -> Result<Rc<Setup>, String> {
    if let Some(setup) = SETUP.with(|s| s.borrow().clone()) {
        return Ok(setup);
    }
    let lookup = |name: &str| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    };
    let config = Config::from_lookup(lookup)?;
    let presigner = config
        .s3
        .as_ref()
        .map(Presigner::new)
        .transpose()?
        .map(Rc::new);
    if config.public_url.is_none() && !is_local(request_url) {
        // Realms and upload Locations then come from each request's Host header.
        log(
            "warning: PUBLIC_URL is not set: the token realm and upload locations follow each \
             request's Host header; set PUBLIC_URL to the registry's public URL",
        );
    }
    let setup = Rc::new(Setup {
        config: Rc::new(config),
        presigner,
    });
    SETUP.with(|s| *s.borrow_mut() = Some(setup.clone()));
    Ok(setup)
}

#[derive(Clone, Copy)]
pub(crate) struct WorkerClock;

impl Clock for WorkerClock {
    fn now(&self) -> u64 {
        (js_sys::Date::now() / 1000.0) as u64
    }
}

fn log(message: &str) {
    worker::console_error!("{message}");
}

/// Events go to the worker's log as JSON lines, for now.
pub(crate) struct WorkerEvents;

impl EventSink for WorkerEvents {
    fn emit(&self, event: Event) {
        if let Ok(json) = serde_json::to_string(&event) {
            worker::console_log!("event {json}");
        }
    }
}

struct WorkerPlatform<'a>(PhantomData<&'a ()>);

impl<'a> Platform for WorkerPlatform<'a> {
    type Store = Store;
    type Cache = cache::TieredCache;
    type Clock = WorkerClock;
    type Origin = origin::WorkerOrigin<'a>;
    type Events = WorkerEvents;
    type Kv = kv::Kv;
    type Background = WorkerBackground;
    type Upstream = upstream::WorkerUpstream;
    type Jobs = WorkerJobs;
    type Hooks = hooks::WorkerHooks;
}

/// The queue's producer binding; `None` when the deployment has no queue (a mirror then serves
/// as a proxy, and says so in the log). And the dead-letter queue's, when bound.
pub(crate) struct WorkerJobs(Option<worker::Queue>, Option<worker::Queue>);

impl crate::jobs::Jobs for WorkerJobs {
    fn available(&self) -> bool {
        self.0.is_some()
    }

    async fn enqueue(&self, jobs: &[crate::jobs::Job]) -> Result<(), String> {
        let Some(queue) = &self.0 else {
            return Err(format!(
                "no queue: bind {} (wrangler.toml [[queues.producers]])",
                crate::config::QUEUE_BINDING
            ));
        };
        let batch = jobs.iter().map(|job| {
            message(
                &crate::jobs::Envelope {
                    job: job.clone(),
                    tried: 0,
                },
                None,
            )
        });
        queue
            .send_raw_batch(batch.collect::<Vec<_>>())
            .await
            .map_err(|e| format!("queue: {e}"))
    }
}

/// A message: the envelope as JSON text, sent as text (read back by the core's own parser,
/// never through the JS structure a serializer would choose), delivered after `delay` seconds.
fn message(
    envelope: &crate::jobs::Envelope,
    delay: Option<u32>,
) -> worker::SendMessage<wasm_bindgen::JsValue> {
    let text = serde_json::to_string(envelope).expect("a job serializes");
    let mut builder = worker::RawMessageBuilder::new(wasm_bindgen::JsValue::from_str(&text));
    if let Some(delay) = delay {
        builder = builder.delay_seconds(delay);
    }
    builder.build_with_content_type(worker::QueueContentType::Text)
}

impl WorkerJobs {
    /// Sends a job that failed every attempt to the dead-letter queue, when there is one.
    async fn dead_letter(&self, envelope: &crate::jobs::Envelope) -> Result<(), String> {
        let queue = self.1.as_ref().ok_or("no dead-letter queue bound")?;
        queue
            .send_raw(message(envelope, None))
            .await
            .map_err(|e| format!("dead-letter queue: {e}"))
    }

    /// Sends `envelope` again, to be delivered after `delay` seconds.
    async fn send_later(&self, envelope: crate::jobs::Envelope, delay: u32) -> Result<(), String> {
        let queue = self.0.as_ref().ok_or("no queue")?;
        queue
            .send_raw(message(&envelope, Some(delay)))
            .await
            .map_err(|e| format!("queue: {e}"))
    }
}

/// `ctx.waitUntil`: the fetch event lives on until the task ends (or ~30 s after the client went).
#[derive(Clone)]
pub(crate) struct WorkerBackground(Rc<Context>);

impl Background for WorkerBackground {
    fn spawn(&self, task: futures::future::LocalBoxFuture<'static, ()>) {
        self.0.wait_until(task);
    }
}

/// The store the configuration asks for, each call bounded by `STORAGE_TIMEOUT_SECONDS`: a hung
/// storage endpoint answers the client a 504, never holds its request open.
struct Store {
    backend: StoreBackend,
    timeout: std::time::Duration,
    /// Signs R2's download URLs (its S3 API), when S3 settings are configured.
    presigner: Option<Rc<Presigner>>,
}

enum StoreBackend {
    S3(S3Store<fetch::FetchClient, WorkerClock>),
    R2(r2::R2Store),
    /// `STORAGE_BACKEND=none`: a store that holds nothing, so every read goes to the upstream.
    None,
}

/// How long completing a multipart upload may take.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

impl crate::storage::BlobSink for Store {
    type Body = web_sys::Response;
    type Upload = sink::WorkerUpload;

    async fn begin(&self, key: &str) -> Result<sink::WorkerUpload, StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, sink::begin_s3(s, key)).await,
            StoreBackend::R2(s) => within(self.timeout, sink::begin_r2(s.bucket(), key)).await,
            StoreBackend::None => Err(StoreError(
                "STORAGE_BACKEND=none: no storage to write".into(),
            )),
        }
    }

    /// Not bounded by the storage timeout: a part streams as long as the upstream sends it.
    async fn part(
        &self,
        upload: &mut sink::WorkerUpload,
        body: web_sys::Response,
        length: u64,
    ) -> Result<(), StoreError> {
        sink::part(self.s3(), upload, body, length).await
    }

    async fn sha256(&self, upload: &mut sink::WorkerUpload) -> Result<String, StoreError> {
        sink::sha256(upload).await
    }

    /// Completing a large upload takes the store a while (S3 may take minutes for gigabytes):
    /// bounded by `COMMIT_TIMEOUT`, not the storage timeout of reads.
    async fn commit(&self, upload: sink::WorkerUpload) -> Result<(), StoreError> {
        within(COMMIT_TIMEOUT, sink::commit(self.s3(), upload)).await
    }

    async fn abort(&self, upload: sink::WorkerUpload) {
        sink::abort(self.s3(), upload).await
    }
}

impl Store {
    fn s3(&self) -> Option<&S3Store<fetch::FetchClient, WorkerClock>> {
        match &self.backend {
            StoreBackend::S3(s) => Some(s),
            _ => None,
        }
    }
}

/// `op`, or a timeout error once `timeout` has passed (the runtime's timer).
async fn within<T>(
    timeout: std::time::Duration,
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let op = std::pin::pin!(op);
    let timer = std::pin::pin!(worker::Delay::from(timeout));
    match futures::future::select(op, timer).await {
        futures::future::Either::Left((result, _)) => result,
        futures::future::Either::Right(_) => Err(StoreError::timeout(timeout)),
    }
}

impl ObjectStore for Store {
    async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, s.get_versioned(key)).await,
            StoreBackend::R2(s) => within(self.timeout, s.get_versioned(key)).await,
            StoreBackend::None => Ok(None),
        }
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expect: crate::storage::Expect<'_>,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, s.put_if(key, bytes, expect)).await,
            StoreBackend::R2(s) => within(self.timeout, s.put_if(key, bytes, expect)).await,
            StoreBackend::None => Err(StoreError(
                "STORAGE_BACKEND=none: no storage to write".into(),
            )),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, s.get(key)).await,
            StoreBackend::R2(s) => within(self.timeout, s.get(key)).await,
            StoreBackend::None => Ok(None),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, s.head(key)).await,
            StoreBackend::R2(s) => within(self.timeout, s.head(key)).await,
            StoreBackend::None => Ok(None),
        }
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, s.list_dirs(prefix)).await,
            StoreBackend::R2(s) => within(self.timeout, s.list_dirs(prefix)).await,
            StoreBackend::None => Ok(Vec::new()),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, s.put(key, bytes)).await,
            StoreBackend::R2(s) => within(self.timeout, s.put(key, bytes)).await,
            StoreBackend::None => Err(StoreError(
                "STORAGE_BACKEND=none: no storage to write".into(),
            )),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match &self.backend {
            StoreBackend::S3(s) => within(self.timeout, s.delete(key)).await,
            StoreBackend::R2(s) => within(self.timeout, s.delete(key)).await,
            StoreBackend::None => Ok(()),
        }
    }

    /// S3 presigns its own; the R2 binding cannot, so R2's S3 API (the S3 settings) signs them.
    fn download_url(&self, key: &str, expires: std::time::Duration, now: u64) -> Option<url::Url> {
        match &self.backend {
            StoreBackend::S3(s) => s.download_url(key, expires, now),
            StoreBackend::None => None,
            StoreBackend::R2(_) => self
                .presigner
                .as_ref()
                .map(|p| p.object_url(crate::storage::presign::Method::Get, key, expires, now)),
        }
    }
}

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    #[cfg(feature = "storage-suite")]
    if req.url().ends_with("/_suite/storage") {
        return into_web_response(storage_suite(&env).await, None);
    }
    #[cfg(feature = "storage-suite")]
    if req.url().ends_with("/_suite/storage-s3") {
        return into_web_response(storage_suite_s3(&env, &req.url()).await, None);
    }
    let background = WorkerBackground(Rc::new(ctx));
    let (response, passed) = match handle(&req, &env, background).await {
        Ok(answer) => answer,
        Err(message) => {
            log(&message);
            (error_response(&Error::internal(message)), None)
        }
    };
    drain_unread_body(&req).await;
    into_web_response(response, passed)
}

/// The shared ObjectStore suite against the R2 binding: the fixture is written through the
/// binding, then `R2Store` must read it back as every backend does. 200, or 500 naming the first
/// difference. Only in a `storage-suite` build.
#[cfg(feature = "storage-suite")]
async fn storage_suite(env: &Env) -> http::Response<Vec<u8>> {
    let answer = |status: u16, text: String| {
        let mut response = http::Response::new(text.into_bytes());
        *response.status_mut() = http::StatusCode::from_u16(status).expect("a status");
        response
    };
    let bucket = match env.bucket(R2_BINDING) {
        Ok(bucket) => bucket,
        Err(e) => return answer(500, format!("R2 binding {R2_BINDING}: {e}")),
    };
    let objects = crate::storage::suite::fixture();
    let puts = objects.into_iter().map(|(key, bytes)| {
        let bucket = &bucket;
        async move {
            bucket
                .put(key.clone(), bytes)
                .execute()
                .await
                .map_err(|e| format!("put {key}: {e}"))
        }
    });
    if let Err(e) = futures::future::try_join_all(puts).await {
        return answer(500, e);
    }
    let store = r2::R2Store::new(bucket);
    let checked = match crate::storage::suite::run(&store).await {
        Ok(()) => crate::storage::suite::run_writes(&store).await,
        failed => failed,
    };
    match checked {
        Ok(()) => answer(200, "the storage suite passed on the R2 binding".into()),
        Err(e) => answer(
            500,
            format!("the storage suite failed on the R2 binding: {e}"),
        ),
    }
}

/// The writes of the shared suite (conditional writes included) against the configured S3
/// endpoint, over `fetch()`: the S3 server's own answers to `If-Match` and `If-None-Match`.
#[cfg(feature = "storage-suite")]
async fn storage_suite_s3(env: &Env, url: &str) -> http::Response<Vec<u8>> {
    let answer = |status: u16, text: String| {
        let mut response = http::Response::new(text.into_bytes());
        *response.status_mut() = http::StatusCode::from_u16(status).expect("a status");
        response
    };
    let presigner = match setup(env, url) {
        Ok(setup) => match setup.presigner.clone() {
            Some(p) => p,
            None => return answer(500, "no S3 settings".into()),
        },
        Err(e) => return answer(500, format!("configuration: {e}")),
    };
    let store = S3Store::new(presigner, fetch::FetchClient, WorkerClock);
    match crate::storage::suite::run_writes(&store).await {
        Ok(()) => answer(200, "the storage suite's writes passed on S3".into()),
        Err(e) => answer(500, format!("the storage suite failed on S3: {e}")),
    }
}

/// The answer, and the upstream's stream when its body is one (a blob an upstream streams).
type Answer = (http::Response<Vec<u8>>, Option<web_sys::ReadableStream>);

async fn handle(
    req: &web_sys::Request,
    env: &Env,
    background: WorkerBackground,
) -> Result<Answer, String> {
    let request = match into_http_request(req) {
        Ok(request) => request,
        // A URL or header the http types refuse is the client's error, not the edge's.
        Err(why) => {
            let error = Error::new(crate::error::ErrorCode::BadRequest)
                .with_message(format!("request not understood: {why}"));
            return Ok((error_response(&error), None));
        }
    };
    let setup = setup(env, &req.url()).map_err(|e| format!("configuration: {e}"))?;
    let origin = setup
        .config
        .origin
        .as_ref()
        .map(|_| origin::WorkerOrigin { incoming: req });
    let app = build_app(env, &setup, background, origin)?;
    let request = request.map(|()| origin::Incoming(req));
    let response = app.handle(request).await;
    let passed = app.upstream.take_passed();
    Ok((response, passed))
}

/// The App on this isolate's setup and the environment's bindings.
fn build_app<'a>(
    env: &Env,
    setup: &Setup,
    background: WorkerBackground,
    origin: Option<origin::WorkerOrigin<'a>>,
) -> Result<App<WorkerPlatform<'a>>, String> {
    let backend = match setup.config.backend {
        Backend::R2 => StoreBackend::R2(r2::R2Store::new(
            env.bucket(R2_BINDING)
                .map_err(|e| format!("R2 binding {R2_BINDING}: {e}"))?,
        )),
        Backend::None => StoreBackend::None,
        Backend::S3 => {
            let presigner = setup
                .presigner
                .clone()
                .ok_or("S3 backend without S3 settings")?;
            StoreBackend::S3(S3Store::new(presigner, fetch::FetchClient, WorkerClock))
        }
    };
    let store = Store {
        backend,
        timeout: setup.config.storage_timeout,
        presigner: setup.presigner.clone(),
    };
    Ok(App {
        config: setup.config.clone(),
        store,
        cache: cache::TieredCache {
            background: background.clone(),
        },
        clock: WorkerClock,
        origin,
        events: WorkerEvents,
        kv: kv::Kv(
            env.kv(KV_BINDING)
                .map_err(|e| format!("KV binding {KV_BINDING}: {e}"))?,
        ),
        log,
        background,
        upstream: upstream::WorkerUpstream::default(),
        jobs: WorkerJobs(
            env.queue(crate::config::QUEUE_BINDING).ok(),
            env.queue(crate::config::DEAD_LETTER_BINDING).ok(),
        ),
        hooks: hooks::WorkerHooks,
    })
}

/// The queue consumer: each message is one job (`App::run_job`). A job that failed in passing is
/// sent again with a growing delay (`jobs::retry_delay_seconds`), at most `jobs::ATTEMPTS` times
/// in all; the platform's own redelivery (wrangler.toml's `max_retries`) covers only a consumer
/// that fails as a whole.
/// The Cron Trigger (wrangler.toml's `[triggers] crons`, none by default): queues a reconcile of
/// the indexes, which the queue consumer runs as a rebuild unless one is under way.
#[event(scheduled)]
async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    let jobs = WorkerJobs(env.queue(crate::config::QUEUE_BINDING).ok(), None);
    if let Err(e) = crate::jobs::Jobs::enqueue(&jobs, &[crate::jobs::Job::ReconcileIndex]).await {
        log(&format!("the scheduled reconcile was not queued: {e}"));
    }
}

#[event(queue)]
async fn queue(
    batch: worker::MessageBatch<wasm_bindgen::JsValue>,
    env: Env,
    ctx: Context,
) -> worker::Result<()> {
    use worker::MessageExt;
    let setup = setup(&env, "http://localhost/")
        .map_err(|e| worker::Error::RustError(format!("configuration: {e}")))?;
    let app = build_app(&env, &setup, WorkerBackground(Rc::new(ctx)), None)
        .map_err(worker::Error::RustError)?;
    for message in batch.raw_iter() {
        let body = message.body();
        let text = body.as_string().unwrap_or_else(|| format!("{body:?}"));
        let Ok(envelope) = serde_json::from_str::<crate::jobs::Envelope>(&text) else {
            log(&format!(
                "a queue message that is no job, dropped: {text:.200}"
            ));
            message.ack();
            continue;
        };
        let attempt = envelope.tried + 1;
        let last = attempt >= crate::jobs::ATTEMPTS;
        let outcome = app.run_job(&envelope.job, attempt, last).await;
        let step = crate::jobs::next_step(&outcome, attempt, setup.config.job_retry_seconds);
        let why = match &outcome {
            crate::jobs::Outcome::Done => String::new(),
            crate::jobs::Outcome::Failed(why)
            | crate::jobs::Outcome::Retry(why)
            | crate::jobs::Outcome::RetryIn(why, _) => why.clone(),
        };
        let delay = match step {
            crate::jobs::Step::Ack => {
                if let crate::jobs::Outcome::Failed(why) = &outcome {
                    log(&format!("job dropped: {why}"));
                }
                None
            }
            crate::jobs::Step::DeadLetter => {
                log(&format!("job given up after {attempt} attempts: {why}"));
                let gone = crate::jobs::Envelope {
                    job: envelope.job.clone(),
                    tried: attempt,
                };
                match app.jobs.dead_letter(&gone).await {
                    Ok(()) => log(&format!(
                        "job sent to the dead-letter queue {}: {:?}",
                        crate::config::DEAD_LETTER_BINDING,
                        gone.job
                    )),
                    Err(e) => log(&format!("job not dead-lettered: {e}")),
                }
                None
            }
            crate::jobs::Step::Again(delay) => {
                log(&format!(
                    "job failed (attempt {attempt}), again in {delay} s: {why}"
                ));
                Some(delay)
            }
        };
        if let Some(delay) = delay {
            let again = crate::jobs::Envelope {
                job: envelope.job,
                tried: attempt,
            };
            if let Err(e) = app.jobs.send_later(again, delay).await {
                log(&format!(
                    "job not queued again ({e}): the platform redelivers it"
                ));
                message.retry();
                continue;
            }
        }
        message.ack();
    }
    Ok(())
}

/// Reads and discards a request body the edge answered without reading (a refused chunk, a
/// 401/403 on an upload): workerd closes a keep-alive connection whose request body was left
/// unread, and the client's next request on it fails. The bytes run through the runtime's own
/// pipe into a sink, never through Rust, bounded by `DRAIN_SECONDS`. Only a declared body of at
/// most `DRAIN_MAX_BYTES` is drained (the response waits for it); past that the connection is
/// given up, as before.
async fn drain_unread_body(req: &web_sys::Request) {
    const DRAIN_SECONDS: u32 = 30;
    /// Larger bodies are not waited for: the answer matters more than the connection.
    const DRAIN_MAX_BYTES: u64 = 4 << 20;
    let Some(body) = req.body() else {
        return;
    };
    if body.locked() {
        return;
    }
    let headers = req.headers();
    let declared = headers
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    // A client waiting for `100 Continue` has not sent the body; reading would ask for it.
    let expects = headers.get("expect").ok().flatten().is_some();
    if expects || declared.is_none_or(|n| n > DRAIN_MAX_BYTES) {
        return;
    }
    let Ok(sink) = web_sys::WritableStream::new() else {
        return;
    };
    let options = web_sys::StreamPipeOptions::new();
    options.set_signal(&web_sys::AbortSignal::timeout_with_u32(
        DRAIN_SECONDS * 1000,
    ));
    let _ = wasm_bindgen_futures::JsFuture::from(body.pipe_to_with_options(&sink, &options)).await;
}

/// `request.cf`'s location fields (Cloudflare sets them; Miniflare from its `cf` option).
fn request_location(req: &web_sys::Request) -> Option<crate::platform::RequestLocation> {
    let cf = js_sys::Reflect::get(req, &"cf".into()).ok()?;
    if !cf.is_object() {
        return None;
    }
    let text = |key: &str| {
        js_sys::Reflect::get(&cf, &key.into())
            .ok()?
            .as_string()
            .filter(|v| !v.is_empty())
    };
    // latitude and longitude are strings in `request.cf`.
    let number = |key: &str| text(key)?.parse::<f64>().ok();
    Some(crate::platform::RequestLocation {
        colo: text("colo"),
        country: text("country"),
        continent: text("continent"),
        latitude: number("latitude"),
        longitude: number("longitude"),
    })
}

/// Whether the edge runs on this machine (the local stack), by the host it was reached at.
fn is_local(request_url: &str) -> bool {
    url::Url::parse(request_url).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

fn into_http_request(req: &web_sys::Request) -> Result<http::Request<()>, String> {
    let url = req.url();
    // The absolute URL: its path as the client sent it, its scheme and host as the edge's public
    // URL for the Locations the edge hands out.
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(&url);
    let headers = req.headers();
    let entries = js_sys::try_iter(&headers).ok().flatten();
    for entry in entries.into_iter().flatten().flatten() {
        let pair = js_sys::Array::from(&entry);
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            continue;
        };
        // A header the http types cannot hold (the core reads none such) is left out rather than
        // failing the request.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder = builder.header(name, value);
        }
    }
    // The client's address as the platform reports it (Cloudflare sets this header itself, over
    // anything a client sent).
    let address = headers
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok());
    let mut request = builder
        .body(())
        .map_err(|e| format!("request {url}: {e}"))?;
    if let Some(address) = address {
        request
            .extensions_mut()
            .insert(crate::platform::ClientAddress(address));
    }
    if let Some(location) = request_location(req) {
        request.extensions_mut().insert(location);
    }
    Ok(request)
}

fn into_web_response(
    response: http::Response<Vec<u8>>,
    passed: Option<web_sys::ReadableStream>,
) -> worker::Result<web_sys::Response> {
    let (parts, mut body) = response.into_parts();
    let headers = web_sys::Headers::new()?;
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers.append(name.as_str(), value)?;
        }
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(parts.status.as_u16());
    init.set_headers(&headers);
    let no_body = body.is_empty()
        || parts.status == http::StatusCode::NOT_MODIFIED
        || parts.status == http::StatusCode::NO_CONTENT;
    // An upstream's stream is the body of the answer it was passed for, never of an error.
    let streamed = matches!(parts.status.as_u16(), 200 | 206 | 416);
    let response = if let Some(stream) = passed.filter(|_| streamed) {
        // An upstream's blob, from its socket to the client's inside the runtime. (A HEAD's
        // answer is sent without it by the runtime.)
        web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stream), &init)?
    } else if no_body {
        web_sys::Response::new_with_opt_u8_array_and_init(None, &init)?
    } else {
        web_sys::Response::new_with_opt_u8_array_and_init(Some(&mut body), &init)?
    };
    Ok(response)
}
