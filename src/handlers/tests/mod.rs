//! The handlers end to end over an in-memory store laid out as distribution writes it, one file
//! per resource or concern. This file holds only what they share: the fixture, the fake origin,
//! the test platform, and the request and response helpers.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use http::{Method, Request, Response};
use serde_json::{Value, json};

use crate::app::App;
use crate::cache::MemoryCache;
use crate::config::Config;
use crate::events::MemoryEvents;
use crate::layout::Layout;
use crate::origin::{Origin, OriginBody, OriginError};
use crate::platform::{DeferredTasks, FixedClock, MemoryKv, Platform};
use crate::reference::Digest;
use crate::storage::memory::MemoryStore;
use crate::storage::presign::Presigner;

mod blobs;
mod catalog;
mod events;
mod indexes;
mod lists;
mod locks;
mod manage;
mod manifests;
mod mirror;
mod network;
mod origin;
mod permissions;
mod properties;
mod referrers;
mod tags;
mod token;
mod uploads;
mod upstreams;
mod version;
mod webhooks;
mod writes;

const ROOT: &str = "origin";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// `admin:admin-password-for-tests`, sent by every request that names no other credentials.
const ADMIN_BASIC: &str = "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQtZm9yLXRlc3Rz";
const NOW: u64 = 1_700_000_000;
const OCI_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const TEAM_PULL: &str = "repositories/team/*/content/read";
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

type Handler = Box<dyn Fn(&Request<OriginBody>) -> Result<Response<Vec<u8>>, OriginError>>;

/// An origin registry that answers with `handler` and records what it was sent.
struct FakeOrigin {
    handler: RefCell<Handler>,
    sent: RefCell<Vec<(Method, String, http::HeaderMap, OriginBody)>>,
}

impl Default for FakeOrigin {
    fn default() -> Self {
        FakeOrigin {
            handler: RefCell::new(Box::new(|_| answer(500, &[], b""))),
            sent: RefCell::default(),
        }
    }
}

impl Origin for &FakeOrigin {
    async fn send(
        &self,
        request: Request<OriginBody>,
        _timeout: Duration,
    ) -> Result<Response<Vec<u8>>, OriginError> {
        self.sent.borrow_mut().push((
            request.method().clone(),
            request.uri().to_string(),
            request.headers().clone(),
            request.body().clone(),
        ));
        (self.handler.borrow())(&request)
    }
}

/// An origin response for `FakeOrigin` handlers.
fn answer(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response<Vec<u8>>, OriginError> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    Ok(r.body(body.to_vec()).unwrap())
}

type UpstreamHandler = Box<dyn Fn(&Request<()>) -> Result<Response<Vec<u8>>, OriginError>>;

/// Upstream registries that answer with `handler`, recording what they were sent and the body
/// the edge passed through to its client.
struct FakeUpstream {
    handler: RefCell<UpstreamHandler>,
    sent: RefCell<Vec<(Method, String, http::HeaderMap)>>,
    passed: RefCell<Option<Vec<u8>>>,
}

impl Default for FakeUpstream {
    fn default() -> Self {
        FakeUpstream {
            handler: RefCell::new(Box::new(|_| {
                Err(OriginError::Unreachable("no upstream".into()))
            })),
            sent: RefCell::default(),
            passed: RefCell::default(),
        }
    }
}

impl crate::platform::UpstreamHttp for FakeUpstream {
    type Body = Vec<u8>;

    async fn send(
        &self,
        request: Request<()>,
        _timeout: Duration,
    ) -> Result<Response<Vec<u8>>, OriginError> {
        self.sent.borrow_mut().push((
            request.method().clone(),
            request.uri().to_string(),
            request.headers().clone(),
        ));
        (self.handler.borrow())(&request)
    }

    async fn read(
        &self,
        body: Vec<u8>,
        limit: usize,
        _timeout: Duration,
    ) -> Result<Option<Vec<u8>>, OriginError> {
        Ok((body.len() <= limit).then_some(body))
    }

    fn pass_through(&self, body: Vec<u8>) {
        *self.passed.borrow_mut() = Some(body);
    }
}

struct Test<'a>(PhantomData<&'a ()>);

impl<'a> Platform for Test<'a> {
    type Store = &'a MemoryStore;
    type Cache = MemoryCache<&'a FixedClock>;
    type Clock = &'a FixedClock;
    type Origin = &'a FakeOrigin;
    type Events = &'a MemoryEvents;
    type Kv = &'a MemoryKv;
    type Background = &'a DeferredTasks;
    type Upstream = &'a FakeUpstream;
    type Jobs = &'a crate::jobs::MemoryJobs;
    type Hooks = &'a FakeReceiver;
}

type ReceiverHandler = Box<dyn Fn(&str) -> crate::platform::HookAnswer>;
/// A delivery as the receiver saw it: URL, headers, body.
type Post = (String, Vec<(String, String)>, Vec<u8>);

/// Webhook receivers: each POST recorded (URL, headers, body), answered by `handler` (200 until
/// told otherwise).
struct FakeReceiver {
    handler: RefCell<ReceiverHandler>,
    posts: RefCell<Vec<Post>>,
}

impl Default for FakeReceiver {
    fn default() -> Self {
        FakeReceiver {
            handler: RefCell::new(Box::new(|_| crate::platform::HookAnswer {
                status: Some(200),
                body: b"ok".to_vec(),
                elapsed_ms: 3,
                ..Default::default()
            })),
            posts: RefCell::default(),
        }
    }
}

impl crate::platform::HookHttp for FakeReceiver {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        _timeout: Duration,
    ) -> crate::platform::HookAnswer {
        self.posts
            .borrow_mut()
            .push((url.to_owned(), headers.to_vec(), body));
        (self.handler.borrow())(url)
    }
}

impl crate::storage::BlobSink for &MemoryStore {
    type Body = Vec<u8>;
    type Upload = crate::storage::memory::MemoryUpload;

    async fn begin(&self, key: &str) -> Result<Self::Upload, crate::storage::StoreError> {
        crate::storage::BlobSink::begin(*self, key).await
    }
    async fn part(
        &self,
        upload: &mut Self::Upload,
        body: Vec<u8>,
        length: u64,
    ) -> Result<(), crate::storage::StoreError> {
        crate::storage::BlobSink::part(*self, upload, body, length).await
    }
    async fn sha256(
        &self,
        upload: &mut Self::Upload,
    ) -> Result<String, crate::storage::StoreError> {
        crate::storage::BlobSink::sha256(*self, upload).await
    }
    async fn commit(&self, upload: Self::Upload) -> Result<(), crate::storage::StoreError> {
        crate::storage::BlobSink::commit(*self, upload).await
    }
    async fn abort(&self, upload: Self::Upload) {
        crate::storage::BlobSink::abort(*self, upload).await
    }
}

impl crate::storage::ObjectStore for &MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::storage::StoreError> {
        (**self).get(key).await
    }
    async fn head(&self, key: &str) -> Result<Option<u64>, crate::storage::StoreError> {
        (**self).head(key).await
    }
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, crate::storage::StoreError> {
        (**self).list_dirs(prefix).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), crate::storage::StoreError> {
        crate::storage::ObjectStore::put(*self, key, bytes).await
    }
    async fn delete(&self, key: &str) -> Result<(), crate::storage::StoreError> {
        crate::storage::ObjectStore::delete(*self, key).await
    }
    async fn get_versioned(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, crate::storage::StoreError> {
        (**self).get_versioned(key).await
    }
    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expect: crate::storage::Expect<'_>,
    ) -> Result<bool, crate::storage::StoreError> {
        (**self).put_if(key, bytes, expect).await
    }
    fn download_url(&self, key: &str, expires: Duration, now: u64) -> Option<url::Url> {
        (**self).download_url(key, expires, now)
    }
}

/// The deployment's configuration: S3 storage, the admin password and the signing key, then
/// `extra` (a later variable wins over an earlier one).
fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("S3_BUCKET", "registry"),
        ("S3_ACCESS_KEY_ID", "key"),
        ("S3_SECRET_ACCESS_KEY", "secret"),
        ("STORAGE_ROOT", "/origin"),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("TOKEN_SIGNING_KEY", crate::auth::jwt::test_pem()),
    ];
    vars.extend_from_slice(extra);
    Config::from_lookup(|k| {
        vars.iter()
            .rev()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// Download URLs signed for the configured S3 endpoint, as the deployment signs them.
fn presigner(config: &Config) -> Option<Presigner> {
    config.s3.as_ref().map(|s| Presigner::new(s).unwrap())
}

/// A store with five repositories (`library/busybox` with tags latest, a, b, c and 1.0;
/// `team/app/service`, `a-b` and `private` on the same OCI manifest; `docker/v2s2` on a Docker
/// one; a blob linked only in `private`), a fake origin, and the configuration built from `vars`.
///
/// `Fixture::new()` reads storage only; `.with_origin()` adds an origin to forward writes to, and
/// `.with(&[..])` any other variables.
struct Fixture {
    store: MemoryStore,
    origin: FakeOrigin,
    upstream: FakeUpstream,
    events: MemoryEvents,
    clock: FixedClock,
    kv: MemoryKv,
    background: DeferredTasks,
    jobs: crate::jobs::MemoryJobs,
    receiver: FakeReceiver,
    vars: Vec<(&'static str, &'static str)>,
    config: Rc<Config>,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    layer_digest: Digest,
    private_digest: Digest,
}

impl Fixture {
    fn new() -> Fixture {
        let config = config(&[]);
        let mut store = MemoryStore::default();
        store.presigner = presigner(&config);
        let layout = Layout::new(ROOT);
        let put_blob = |bytes: &[u8]| {
            let d = Digest::sha256(bytes);
            store.put(layout.blob_data(&d), bytes.to_vec());
            d
        };
        let link = |key: String, d: &Digest| store.put(key, d.to_string().into_bytes());

        let layer = put_blob(b"layer bytes");
        let config_blob = put_blob(b"{}");
        // As umoci writes it: no top-level mediaType.
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_blob.to_string(), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 11}],
        }))
        .unwrap();
        let manifest_digest = put_blob(&manifest);
        let docker = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_blob.to_string(), "size": 2},
            "layers": [],
        }))
        .unwrap();
        let docker_digest = put_blob(&docker);
        let private = put_blob(b"private layer");

        let repo = |name: &str, tags: &[&str], manifest: &Digest| {
            let name = name.parse().unwrap();
            link(layout.manifest_revision_link(&name, manifest), manifest);
            link(layout.layer_link(&name, manifest), manifest);
            for blob in [&layer, &config_blob] {
                link(layout.layer_link(&name, blob), blob);
            }
            for tag in tags {
                let tag = tag.parse().unwrap();
                link(layout.tag_current_link(&name, &tag), manifest);
            }
        };
        repo(
            "library/busybox",
            &["latest", "a", "b", "c", "1.0"],
            &manifest_digest,
        );
        repo("team/app/service", &["v1"], &manifest_digest);
        repo("docker/v2s2", &["1"], &docker_digest);
        repo("a-b", &["x"], &manifest_digest);
        repo("private", &["secret"], &manifest_digest);
        link(
            layout.layer_link(&"private".parse().unwrap(), &private),
            &private,
        );

        Fixture {
            store,
            origin: FakeOrigin::default(),
            upstream: FakeUpstream::default(),
            events: MemoryEvents::default(),
            clock: FixedClock::at(NOW),
            kv: MemoryKv::default(),
            background: Default::default(),
            jobs: Default::default(),
            receiver: Default::default(),
            vars: Vec::new(),
            config: Rc::new(config),
            manifest,
            manifest_digest,
            layer_digest: layer,
            private_digest: private,
        }
    }

    /// Adds `vars` to the configuration (over any set before).
    fn with(mut self, vars: &[(&'static str, &'static str)]) -> Fixture {
        self.vars.extend_from_slice(vars);
        let config = config(&self.vars);
        self.store.presigner = presigner(&config);
        self.config = Rc::new(config);
        self
    }

    /// An origin at 127.0.0.1:5000 that writes are forwarded to (it answers 500 until told
    /// otherwise with `origin_answers`).
    fn with_origin(self) -> Fixture {
        self.with(&[
            ("ORIGIN_URL", "http://127.0.0.1:5000"),
            ("EDGE_SECRET", "test-secret"),
        ])
    }

    fn app(&self) -> App<Test<'_>> {
        App {
            config: self.config.clone(),
            store: &self.store,
            cache: MemoryCache::new(&self.clock, 1 << 20),
            clock: &self.clock,
            origin: self.config.origin.as_ref().map(|_| &self.origin),
            events: &self.events,
            kv: &self.kv,
            log: |_| {},
            background: &self.background,
            upstream: &self.upstream,
            jobs: &self.jobs,
            hooks: &self.receiver,
        }
    }

    /// Makes the fake upstreams answer with `handler`.
    fn upstream_answers(
        &self,
        handler: impl Fn(&Request<()>) -> Result<Response<Vec<u8>>, OriginError> + 'static,
    ) {
        *self.upstream.handler.borrow_mut() = Box::new(handler);
    }

    /// Makes the fake origin answer with `handler`.
    fn origin_answers(
        &self,
        handler: impl Fn(&Request<OriginBody>) -> Result<Response<Vec<u8>>, OriginError> + 'static,
    ) {
        *self.origin.handler.borrow_mut() = Box::new(handler);
    }

    /// Stores `bytes` as a manifest of `repo` tagged `tags`, as the origin does on a push.
    fn put_manifest(&self, repo: &str, bytes: &[u8], tags: &[&str]) -> Digest {
        let layout = Layout::new(ROOT);
        let name = repo.parse().unwrap();
        let digest = Digest::sha256(bytes);
        self.store.put(layout.blob_data(&digest), bytes.to_vec());
        self.store.put(
            layout.manifest_revision_link(&name, &digest),
            digest.to_string(),
        );
        for tag in tags {
            self.store.put(
                layout.tag_current_link(&name, &tag.parse().unwrap()),
                digest.to_string(),
            );
        }
        digest
    }

    /// An SBOM in library/busybox whose subject is the fixture's manifest.
    fn put_referrer(&self) -> (Vec<u8>, Digest) {
        let sbom = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.sbom.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
            "layers": [],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": self.manifest_digest.to_string(), "size": self.manifest.len()},
            "annotations": {"org.example": "yes"},
        }))
        .unwrap();
        let sbom_digest = self.put_manifest("library/busybox", &sbom, &[]);
        (sbom, sbom_digest)
    }
}

/// The descriptor the referrers API lists for `put_referrer`'s SBOM.
fn sbom_descriptor(sbom: &[u8], digest: &Digest) -> Value {
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest.to_string(),
        "size": sbom.len(),
        "artifactType": "application/vnd.example.sbom.v1+json",
        "annotations": {"org.example": "yes"},
    })
}

/// A session URL as the edge hands it out.
fn sealed(app: &App<Test<'_>>, name: &str, upload_id: &str) -> String {
    let session = crate::handlers::uploads::Session {
        origin_params: vec![("_state".into(), "s".into())],
        offset: Some(0),
    };
    app.sealed_path(&name.parse().unwrap(), upload_id, &session)
}

/// Sends a request with `body`, as the admin unless `headers` name an `authorization` (or
/// `anonymous`, for none).
fn send_body<P: Platform>(
    app: &App<P>,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response<Vec<u8>> {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization") || *k == "anonymous")
    {
        request = request.header("authorization", ADMIN_BASIC);
    }
    futures::executor::block_on(app.handle(request.body(body.to_vec()).unwrap()))
}

fn send<P: Platform>(
    app: &App<P>,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> Response<Vec<u8>> {
    send_body(app, method, uri, headers, b"")
}

fn get<P: Platform>(app: &App<P>, uri: &str) -> Response<Vec<u8>> {
    send(app, Method::GET, uri, &[("accept", OCI_ACCEPT)])
}

fn anonymous<P: Platform>(app: &App<P>, method: Method, uri: &str) -> Response<Vec<u8>> {
    send(
        app,
        method,
        uri,
        &[("anonymous", "1"), ("accept", OCI_ACCEPT)],
    )
}

fn as_bearer<P: Platform>(
    app: &App<P>,
    method: Method,
    uri: &str,
    token: &str,
) -> Response<Vec<u8>> {
    send(
        app,
        method,
        uri,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("accept", OCI_ACCEPT),
        ],
    )
}

/// `POST /oauth2/token` with a form, without credentials in a header.
fn post_token<P: Platform>(app: &App<P>, form: &[u8]) -> Response<Vec<u8>> {
    send_body(
        app,
        Method::POST,
        "/oauth2/token",
        &[("anonymous", "1")],
        form,
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A management API call as the admin that must succeed; its JSON answer, or null.
fn manage<P: Platform>(app: &App<P>, method: Method, path: &str, body: Value) -> Value {
    let r = send_body(app, method.clone(), path, JSON, body.to_string().as_bytes());
    assert!(
        r.status().is_success(),
        "{method} {path}: {} {}",
        r.status(),
        String::from_utf8_lossy(r.body())
    );
    if r.body().is_empty() {
        Value::Null
    } else {
        json_body(&r)
    }
}

/// Creates a scope map and a token on it; returns the token's password.
fn token_with<P: Platform>(app: &App<P>, name: &str, actions: &[&str]) -> String {
    manage(
        app,
        Method::PUT,
        &format!("/api/v1/scope-maps/{name}-map"),
        json!({ "actions": actions }),
    );
    let created = manage(
        app,
        Method::PUT,
        &format!("/api/v1/tokens/{name}"),
        json!({ "scopeMap": format!("{name}-map") }),
    );
    created["credentials"]["passwords"][0]["password"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A token from the token service for `scopes`, signed in as `authorization` (or anonymous).
fn fetch_token<P: Platform>(app: &App<P>, authorization: Option<&str>, scopes: &[&str]) -> Value {
    let mut uri = "/oauth2/token?service=registry-edge".to_owned();
    for s in scopes {
        uri.push_str(&format!(
            "&scope={}",
            s.replace('/', "%2F").replace(':', "%3A")
        ));
    }
    let r = match authorization {
        Some(a) => send(app, Method::GET, &uri, &[("authorization", a)]),
        None => anonymous(app, Method::GET, &uri),
    };
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    json_body(&r)
}

/// A JWT's claims, unverified.
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn header<'a>(r: &'a Response<Vec<u8>>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

/// Asserts each `(name, value)` header of `r`, naming the header on a mismatch.
#[track_caller]
fn assert_headers(r: &Response<Vec<u8>>, expected: &[(&str, &str)]) {
    for (name, value) in expected {
        assert_eq!(header(r, name), *value, "{name}");
    }
}

fn json_body(r: &Response<Vec<u8>>) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

fn error_code(r: &Response<Vec<u8>>) -> String {
    json_body(r)["errors"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The sha512 digest of `bytes`.
fn sha512(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::from_parts(
        crate::reference::Algorithm::Sha512,
        &hex::encode(sha2::Sha512::digest(bytes)),
    )
    .unwrap()
}

fn error_message(r: &Response<Vec<u8>>) -> String {
    json_body(r)["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs queued jobs (and the jobs they queue) until none is left, a job that asks to be retried
/// again after the others (as the queue does, later); their last outcomes.
fn run_jobs(f: &Fixture, app: &App<Test<'_>>) -> Vec<(crate::jobs::Job, crate::jobs::Outcome)> {
    let mut done = Vec::new();
    let mut retried = Vec::new();
    for _ in 0..10_000 {
        let mut jobs = f.jobs.take();
        jobs.append(&mut retried);
        if jobs.is_empty() {
            return done;
        }
        for job in jobs {
            let outcome = run(app, &job);
            if matches!(outcome, crate::jobs::Outcome::Retry(_)) {
                retried.push(job);
            } else {
                done.push((job, outcome));
            }
        }
    }
    panic!("jobs still queued after 10,000 rounds (retried: {retried:?})");
}

/// One attempt of `job`.
fn run(app: &App<Test<'_>>, job: &crate::jobs::Job) -> crate::jobs::Outcome {
    futures::executor::block_on(app.run_job(job, 1, false))
}
