//! The handlers end to end over an in-memory store laid out as distribution writes it.

use std::rc::Rc;

use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

use crate::app::App;
use crate::cache::MemoryCache;
use crate::config::Config;
use crate::events::MemoryEvents;
use crate::layout::Layout;
use crate::origin::{Origin, OriginBody, OriginError};
use crate::platform::{FixedClock, MemoryKv, Platform};
use crate::reference::Digest;
use crate::storage::memory::MemoryStore;
use crate::storage::presign::Presigner;

const ROOT: &str = "origin";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// `admin:admin-password-for-tests`, sent by every request that names no other credentials.
const ADMIN_BASIC: &str = "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQtZm9yLXRlc3Rz";
const NOW: u64 = 1_700_000_000;

type Handler = Box<dyn Fn(&Request<OriginBody>) -> Result<Response<Vec<u8>>, OriginError>>;

/// An origin registry that answers with `handler` and records what it was sent.
pub(crate) struct FakeOrigin {
    handler: RefCell<Handler>,
    pub sent: RefCell<Vec<(Method, String, http::HeaderMap, OriginBody)>>,
}

impl Default for FakeOrigin {
    fn default() -> Self {
        FakeOrigin {
            handler: RefCell::new(Box::new(|_| {
                Ok(Response::builder().status(500).body(Vec::new()).unwrap())
            })),
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

struct Test<'a>(PhantomData<&'a ()>);

impl<'a> Platform for Test<'a> {
    type Store = &'a MemoryStore;
    type Cache = MemoryCache<&'a FixedClock>;
    type Clock = &'a FixedClock;
    type Origin = &'a FakeOrigin;
    type Events = &'a MemoryEvents;
    type Kv = &'a MemoryKv;
    type Background = &'a crate::platform::DeferredTasks;
}

struct Fixture {
    store: MemoryStore,
    origin: FakeOrigin,
    events: MemoryEvents,
    clock: FixedClock,
    kv: MemoryKv,
    background: crate::platform::DeferredTasks,
    config: Rc<Config>,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    layer_digest: Digest,
    private_digest: Digest,
}

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

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(config(&[]))
    }

    fn with_config(config: Config) -> Fixture {
        let mut store = MemoryStore::default();
        store.presigner = config.s3.as_ref().map(|s| Presigner::new(s).unwrap());
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
            events: MemoryEvents::default(),
            clock: FixedClock::at(NOW),
            kv: MemoryKv::default(),
            background: Default::default(),
            config: Rc::new(config),
            manifest,
            manifest_digest,
            layer_digest: layer,
            private_digest: private,
        }
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
        }
    }

    /// Makes the fake origin answer with `handler`.
    fn origin_answers(
        &self,
        handler: impl Fn(&Request<OriginBody>) -> Result<Response<Vec<u8>>, OriginError> + 'static,
    ) {
        *self.origin.handler.borrow_mut() = Box::new(handler);
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
    fn download_url(&self, key: &str, expires: Duration, now: u64) -> Option<url::Url> {
        (**self).download_url(key, expires, now)
    }
}

const OCI_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

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

fn header<'a>(r: &'a Response<Vec<u8>>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
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

#[test]
fn version_check() {
    let f = Fixture::new();
    let r = get(&f.app(), "/v2/");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), b"{}");
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(
        header(&r, "content-type"),
        "application/json; charset=utf-8"
    );
}

#[test]
fn manifest_by_tag_and_digest() {
    let f = Fixture::new();
    let app = f.app();
    let by_tag = get(&app, "/v2/library/busybox/manifests/latest");
    assert_eq!(by_tag.status(), 200);
    assert_eq!(by_tag.body(), &f.manifest);
    assert_eq!(
        header(&by_tag, "content-type"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        header(&by_tag, "docker-content-digest"),
        f.manifest_digest.to_string()
    );
    assert_eq!(
        header(&by_tag, "content-length"),
        f.manifest.len().to_string()
    );
    assert_eq!(
        header(&by_tag, "etag"),
        format!("\"{}\"", f.manifest_digest)
    );
    assert_eq!(header(&by_tag, "cache-control"), "no-cache");

    let by_digest = get(
        &app,
        &format!("/v2/team/app/service/manifests/{}", f.manifest_digest),
    );
    assert_eq!(by_digest.status(), 200);
    assert_eq!(by_digest.body(), &f.manifest);
    assert_eq!(
        header(&by_digest, "cache-control"),
        "max-age=31536000, immutable"
    );

    let head = send(
        &app,
        Method::HEAD,
        "/v2/library/busybox/manifests/latest",
        &[("accept", OCI_ACCEPT)],
    );
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    assert_eq!(
        header(&head, "content-length"),
        f.manifest.len().to_string()
    );
    assert_eq!(
        header(&head, "docker-content-digest"),
        f.manifest_digest.to_string()
    );

    let docker = send(&app, Method::GET, "/v2/docker/v2s2/manifests/1", &[]);
    assert_eq!(
        header(&docker, "content-type"),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[test]
fn manifests_not_found() {
    let f = Fixture::new();
    let app = f.app();
    let cases = [
        (
            "/v2/library/busybox/manifests/nope",
            404,
            "MANIFEST_UNKNOWN",
        ),
        ("/v2/no/such/repo/manifests/latest", 404, "NAME_UNKNOWN"),
        // The manifest exists, but docker/v2s2 does not link it.
        (
            &format!("/v2/docker/v2s2/manifests/{}", f.manifest_digest),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            &format!("/v2/library/busybox/manifests/sha256:{}", "0".repeat(64)),
            404,
            "MANIFEST_UNKNOWN",
        ),
        ("/v2/Library/busybox/manifests/latest", 400, "NAME_INVALID"),
        (
            "/v2/library/busybox/manifests/sha256:1234",
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/library/busybox/manifests/.bad", 400, "TAG_INVALID"),
    ];
    for (uri, status, code) in cases {
        let r = get(&app, uri);
        assert_eq!(
            (r.status().as_u16(), error_code(&r).as_str()),
            (status, code),
            "{uri}"
        );
    }
}

#[test]
fn oci_manifests_need_an_accept_header_naming_them() {
    let f = Fixture::new();
    let r = send(
        &f.app(),
        Method::GET,
        "/v2/library/busybox/manifests/latest",
        &[(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
    );
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r), "MANIFEST_UNKNOWN");
}

#[test]
fn corrupt_manifest_is_never_served() {
    let f = Fixture::new();
    f.store.put(
        Layout::new(ROOT).blob_data(&f.manifest_digest),
        b"{\"tampered\":true}".to_vec(),
    );
    let r = get(&f.app(), "/v2/library/busybox/manifests/latest");
    assert_eq!(r.status(), 500);
    assert_eq!(error_code(&r), "UNKNOWN");
    assert!(!r.body().windows(8).any(|w| w == b"tampered"));
}

#[test]
fn conditional_get() {
    let f = Fixture::new();
    let etag = format!("\"{}\"", f.manifest_digest);
    let r = send(
        &f.app(),
        Method::GET,
        "/v2/library/busybox/manifests/latest",
        &[("accept", OCI_ACCEPT), ("if-none-match", &etag)],
    );
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.body().is_empty());
}

#[test]
fn cache_spares_storage_and_tags_expire() {
    let f = Fixture::new();
    let app = f.app();
    let uri = "/v2/library/busybox/manifests/latest";
    assert_eq!(get(&app, uri).status(), 200);
    let calls = f.store.call_count();
    assert_eq!(calls, 3, "tag link, revision link, bytes");
    assert_eq!(get(&app, uri).status(), 200);
    assert_eq!(
        f.store.call_count(),
        calls,
        "second read comes from the cache"
    );

    // A new tag target shows once the tag TTL has passed; the bytes stay cached.
    let layout = Layout::new(ROOT);
    let other = b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"layers\":[]}";
    let other_digest = Digest::sha256(other);
    f.store.put(layout.blob_data(&other_digest), other.to_vec());
    let name = "library/busybox".parse().unwrap();
    f.store.put(
        layout.manifest_revision_link(&name, &other_digest),
        other_digest.to_string(),
    );
    f.store.put(
        layout.tag_current_link(&name, &"latest".parse().unwrap()),
        other_digest.to_string(),
    );
    assert_eq!(
        header(&get(&app, uri), "docker-content-digest"),
        f.manifest_digest.to_string()
    );
    f.clock.advance(f.config.tag_cache_seconds);
    assert_eq!(
        header(&get(&app, uri), "docker-content-digest"),
        other_digest.to_string()
    );
}

#[test]
fn blob_head_and_redirect() {
    let f = Fixture::new();
    let app = f.app();
    let uri = format!("/v2/library/busybox/blobs/{}", f.layer_digest);
    let head = send(&app, Method::HEAD, &uri, &[]);
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    assert_eq!(header(&head, "content-length"), "11");
    assert_eq!(
        header(&head, "docker-content-digest"),
        f.layer_digest.to_string()
    );
    assert_eq!(header(&head, "accept-ranges"), "bytes");
    assert_eq!(header(&head, "content-type"), "application/octet-stream");

    let r = get(&app, &uri);
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = url::Url::parse(header(&r, "location")).unwrap();
    assert_eq!(
        location.path(),
        format!(
            "/registry/origin/docker/registry/v2/blobs/sha256/{}/{}/data",
            &f.layer_digest.hex()[..2],
            f.layer_digest.hex()
        )
    );
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["X-Amz-Expires"], "1200");
    assert_eq!(query["X-Amz-Date"], "20231114T221320Z");
    assert_eq!(
        header(&r, "docker-content-digest"),
        f.layer_digest.to_string()
    );
    assert_eq!(header(&r, "cache-control"), "no-store");
}

#[test]
fn blob_base_url_replaces_presigning() {
    let f = Fixture::with_config(config(&[("BLOB_BASE_URL", "https://cdn.example.com/reg/")]));
    let r = get(
        &f.app(),
        &format!("/v2/library/busybox/blobs/{}", f.layer_digest),
    );
    assert_eq!(r.status(), 307);
    assert_eq!(
        header(&r, "location"),
        format!(
            "https://cdn.example.com/reg/origin/docker/registry/v2/blobs/sha256/{}/{}/data",
            &f.layer_digest.hex()[..2],
            f.layer_digest.hex()
        )
    );
}

#[test]
fn no_cross_repository_blob_access() {
    let f = Fixture::new();
    let app = f.app();
    // The blob exists in storage and in `private`, but `library/busybox` does not link it.
    assert_eq!(
        send(
            &app,
            Method::HEAD,
            &format!("/v2/private/blobs/{}", f.private_digest),
            &[]
        )
        .status(),
        200
    );
    for method in [Method::GET, Method::HEAD] {
        let r = send(
            &app,
            method.clone(),
            &format!("/v2/library/busybox/blobs/{}", f.private_digest),
            &[],
        );
        assert_eq!(r.status(), 404, "{method}");
        assert!(header(&r, "location").is_empty());
    }
    let r = get(
        &app,
        &format!("/v2/library/busybox/blobs/{}", f.private_digest),
    );
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");
    let r = get(&app, &format!("/v2/nobody/blobs/{}", f.private_digest));
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
}

#[test]
fn tags_paginate() {
    let f = Fixture::new();
    let app = f.app();
    let r = get(&app, "/v2/library/busybox/tags/list");
    assert_eq!(
        json_body(&r),
        json!({"name": "library/busybox", "tags": ["1.0", "a", "b", "c", "latest"]})
    );
    assert!(header(&r, "link").is_empty());
    let r = get(&app, "/v2/library/busybox/tags/list?n=2");
    assert_eq!(json_body(&r)["tags"], json!(["1.0", "a"]));
    assert_eq!(
        header(&r, "link"),
        "</v2/library/busybox/tags/list?last=a&n=2>; rel=\"next\""
    );
    let r = get(&app, "/v2/library/busybox/tags/list?n=2&last=a");
    assert_eq!(json_body(&r)["tags"], json!(["b", "c"]));
    let r = get(&app, "/v2/library/busybox/tags/list?n=2&last=c");
    assert_eq!(json_body(&r)["tags"], json!(["latest"]));
    assert!(header(&r, "link").is_empty());
    let r = get(&app, "/v2/nope/tags/list");
    assert_eq!(
        (r.status().as_u16(), error_code(&r).as_str()),
        (404, "NAME_UNKNOWN")
    );
    let r = get(&app, "/v2/library/busybox/tags/list?n=x");
    assert_eq!(
        (r.status().as_u16(), error_code(&r).as_str()),
        (400, "PAGINATION_NUMBER_INVALID")
    );
}

#[test]
fn catalog_walks_and_paginates() {
    let f = Fixture::new();
    let app = f.app();
    let r = get(&app, "/v2/_catalog");
    assert_eq!(
        json_body(&r),
        json!({"repositories": ["a-b", "docker/v2s2", "library/busybox", "private", "team/app/service"]})
    );
    let r = get(&app, "/v2/_catalog?n=2");
    assert_eq!(json_body(&r)["repositories"], json!(["a-b", "docker/v2s2"]));
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?last=docker%2Fv2s2&n=2>; rel=\"next\""
    );
    let r = get(&app, "/v2/_catalog?n=2&last=docker%2Fv2s2");
    assert_eq!(
        json_body(&r)["repositories"],
        json!(["library/busybox", "private"])
    );
    let r = get(&app, "/v2/_catalog?n=2&last=private");
    assert_eq!(json_body(&r)["repositories"], json!(["team/app/service"]));
    assert!(header(&r, "link").is_empty());
}

/// An SBOM in library/busybox whose subject is the fixture's manifest.
fn put_referrer(f: &Fixture) -> (Vec<u8>, Digest) {
    let layout = Layout::new(ROOT);
    let name = "library/busybox".parse().unwrap();
    let sbom = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f.manifest_digest.to_string(), "size": f.manifest.len()},
        "annotations": {"org.example": "yes"},
    }))
    .unwrap();
    let sbom_digest = Digest::sha256(&sbom);
    f.store.put(layout.blob_data(&sbom_digest), sbom.clone());
    f.store.put(
        layout.manifest_revision_link(&name, &sbom_digest),
        sbom_digest.to_string(),
    );
    (sbom, sbom_digest)
}

#[test]
fn referrers() {
    let f = Fixture::new();
    let (sbom, sbom_digest) = put_referrer(&f);
    let app = f.app();
    let r = get(
        &app,
        &format!("/v2/library/busybox/referrers/{}", f.manifest_digest),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        json_body(&r)["manifests"],
        json!([{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sbom_digest.to_string(),
            "size": sbom.len(),
            "artifactType": "application/vnd.example.sbom.v1+json",
            "annotations": {"org.example": "yes"},
        }])
    );
    let r = get(
        &app,
        &format!(
            "/v2/library/busybox/referrers/{}?artifactType=other",
            f.manifest_digest
        ),
    );
    assert_eq!(json_body(&r)["manifests"], json!([]));
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let r = get(
        &app,
        &format!("/v2/team/app/service/referrers/{}", f.manifest_digest),
    );
    assert_eq!(json_body(&r)["manifests"], json!([]));
}

#[test]
fn writes_are_refused_without_an_origin() {
    let f = Fixture::new();
    let app = f.app();
    for (method, uri) in [
        (Method::PUT, "/v2/library/busybox/manifests/latest"),
        (Method::DELETE, "/v2/library/busybox/manifests/latest"),
        (Method::POST, "/v2/library/busybox/blobs/uploads/"),
        (Method::PATCH, "/v2/library/busybox/blobs/uploads/abc"),
        (Method::OPTIONS, "/v2/library/busybox/tags/list"),
    ] {
        let r = send(&app, method.clone(), uri, &[]);
        assert_eq!(
            (r.status().as_u16(), error_code(&r).as_str()),
            (405, "UNSUPPORTED"),
            "{method} {uri}"
        );
    }
    let r = get(&app, "/v2/library/busybox/nothing/x");
    assert_eq!(r.status(), 404);
    assert!(json_body(&r)["errors"].is_array());
}

fn with_origin(extra: &[(&str, &str)]) -> Fixture {
    let mut vars = vec![
        ("ORIGIN_URL", "http://127.0.0.1:5000"),
        ("EDGE_SECRET", "test-secret"),
    ];
    vars.extend_from_slice(extra);
    Fixture::with_config(config(&vars))
}

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

const EDGE: &str = "https://edge.example";

#[test]
fn uploads_are_forwarded_and_come_back_to_the_edge() {
    let f = with_origin(&[]);
    f.origin_answers(|r| match (r.method().as_str(), r.uri().path()) {
        ("POST", "/v2/library/busybox/blobs/uploads/") => answer(
            202,
            &[
                (
                    "location",
                    "http://127.0.0.1:5000/v2/library/busybox/blobs/uploads/u1?_state=s1",
                ),
                ("docker-upload-uuid", "u1"),
                ("range", "0-0"),
                ("set-cookie", "origin-secret"),
            ],
            b"",
        ),
        ("PATCH", "/v2/library/busybox/blobs/uploads/u1") => answer(
            202,
            &[
                ("location", "/v2/library/busybox/blobs/uploads/u1?_state=s2"),
                ("range", "0-9"),
            ],
            b"",
        ),
        _ => answer(500, &[], b""),
    });
    let app = f.app();
    let r = send(
        &app,
        Method::POST,
        &format!("{EDGE}/v2/library/busybox/blobs/uploads/"),
        &[],
    );
    assert_eq!(r.status(), 202);
    let location = header(&r, "location").to_owned();
    assert!(
        location.starts_with(&format!(
            "{EDGE}/v2/library/busybox/blobs/uploads/u1?_state=s1&edge_offset=0&edge_sig="
        )),
        "{location}"
    );
    assert_eq!(header(&r, "docker-upload-uuid"), "u1");
    assert_eq!(header(&r, "oci-chunk-max-length"), (90 << 20).to_string());
    assert!(header(&r, "set-cookie").is_empty());
    let (method, uri, headers, body) = f.origin.sent.borrow()[0].clone();
    assert_eq!(
        (method, uri.as_str(), body),
        (
            Method::POST,
            "http://127.0.0.1:5000/v2/library/busybox/blobs/uploads/",
            OriginBody::Empty
        )
    );
    assert!(!headers.contains_key("authorization"));

    // In order: streamed to the origin, edge parameters stripped, new offset signed.
    let r = send(
        &app,
        Method::PATCH,
        &location,
        &[("content-range", "0-9"), ("content-length", "10")],
    );
    assert_eq!(r.status(), 202);
    let (_, uri, _, body) = f.origin.sent.borrow()[1].clone();
    assert_eq!(
        uri,
        "http://127.0.0.1:5000/v2/library/busybox/blobs/uploads/u1?_state=s1"
    );
    assert_eq!(body, OriginBody::Client);
    let next = header(&r, "location").to_owned();
    assert!(
        next.contains("_state=s2&edge_offset=10&edge_sig="),
        "{next}"
    );

    // Out of order: 416 at the edge, nothing forwarded.
    let sent = f.origin.sent.borrow().len();
    let r = send(
        &app,
        Method::PATCH,
        &next,
        &[("content-range", "20-29"), ("content-length", "10")],
    );
    assert_eq!(r.status(), 416);
    assert_eq!(error_code(&r), "RANGE_INVALID");
    assert_eq!(header(&r, "range"), "0-9");
    assert_eq!(f.origin.sent.borrow().len(), sent);

    // A final PUT whose chunk does not start at the offset: 416 as well.
    let r = send(
        &app,
        Method::PUT,
        &format!("{next}&digest={}", f.layer_digest),
        &[("content-range", "20-29"), ("content-length", "10")],
    );
    assert_eq!(r.status(), 416);
    assert_eq!(f.origin.sent.borrow().len(), sent);

    // A session URL the edge did not hand out, or changed, never reaches the origin: a forged
    // offset, the seal stripped, a parameter added (a mount smuggled into a session), another
    // repository's path.
    let sent = f.origin.sent.borrow().len();
    let stripped = next.split("&edge_offset").next().unwrap().to_owned();
    for forged in [
        next.replace("edge_offset=10", "edge_offset=20"),
        stripped.clone(),
        format!("{stripped}&edge_offset=10"),
        format!("{next}&mount={}&from=private", f.private_digest),
        next.replace("_state=s2", "_state=s3"),
        next.replace("/library/busybox/", "/team/app/service/"),
    ] {
        let r = send(&app, Method::PATCH, &forged, &[("content-range", "20-29")]);
        assert_eq!(
            (r.status().as_u16(), error_code(&r).as_str()),
            (404, "BLOB_UPLOAD_INVALID"),
            "{forged}"
        );
    }
    assert_eq!(f.origin.sent.borrow().len(), sent);

    // The next offset is the one the origin reports, not the one the client claims: a chunk that
    // says 10-109 but carries 5 bytes leaves the upload at byte 15.
    f.origin_answers(|r| match r.method().as_str() {
        "PATCH" => answer(
            202,
            &[
                ("location", "/v2/library/busybox/blobs/uploads/u1?_state=s3"),
                ("range", "0-14"),
            ],
            b"",
        ),
        _ => answer(500, &[], b""),
    });
    let r = send(
        &app,
        Method::PATCH,
        &next,
        &[("content-range", "10-109"), ("content-length", "5")],
    );
    assert_eq!(r.status(), 202);
    let after = header(&r, "location").to_owned();
    assert!(
        after.contains("_state=s3&edge_offset=15&edge_sig="),
        "{after}"
    );
    let (_, _, headers, _) = f.origin.sent.borrow().last().unwrap().clone();
    assert_eq!(headers["content-range"], "10-109");
    assert!(!headers.contains_key("authorization"));

    // An origin that names the session on a refusal too: that Location is sealed as well, with
    // the origin's offset.
    f.origin_answers(|_| {
        answer(
            416,
            &[
                ("location", "/v2/library/busybox/blobs/uploads/u1?_state=s4"),
                ("range", "0-14"),
            ],
            b"",
        )
    });
    let r = send(&app, Method::PATCH, &after, &[("content-length", "5")]);
    assert_eq!(r.status(), 416);
    assert!(
        header(&r, "location").contains("_state=s4&edge_offset=15&edge_sig="),
        "{}",
        header(&r, "location")
    );
    // An upload location the edge cannot seal (another host, another repository) is a 502: the
    // client would leave the edge, or carry a session elsewhere.
    for location in [
        "http://uploads.example/v2/library/busybox/blobs/uploads/u1?_state=s5",
        "/v2/team/app/service/blobs/uploads/u1?_state=s5",
    ] {
        let location = location.to_owned();
        f.origin_answers(move |_| answer(202, &[("location", &location), ("range", "0-9")], b""));
        let r = send(&app, Method::PATCH, &after, &[("content-length", "5")]);
        assert_eq!(r.status(), 502);
        assert!(!String::from_utf8_lossy(r.body()).contains("uploads.example"));
    }
}

#[test]
fn malformed_writes_never_reach_the_origin() {
    let f = with_origin(&[]);
    let app = f.app();
    let cases = [
        (
            Method::POST,
            "/v2/library/busybox/blobs/uploads/?digest=sha256:nothex".to_owned(),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::POST,
            "/v2/library/busybox/blobs/uploads/?mount=md5:00&from=a".to_owned(),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::POST,
            format!(
                "/v2/library/busybox/blobs/uploads/?mount={}&from=../x",
                f.layer_digest
            ),
            400,
            "NAME_INVALID",
        ),
        (
            Method::PUT,
            "/v2/library/busybox/blobs/uploads/u1?_state=s".to_owned(),
            404,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            Method::POST,
            format!(
                "/v2/library/busybox/blobs/uploads/?mount={0}&from=private&from=library/busybox",
                f.private_digest
            ),
            400,
            "BAD_REQUEST",
        ),
        (
            Method::PUT,
            "/v2/library/busybox/blobs/uploads/u1?digest=sha256:12".to_owned(),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            "/v2/Bad/manifests/latest".to_owned(),
            400,
            "NAME_INVALID",
        ),
        (
            Method::PUT,
            "/v2/library/busybox/manifests/latest".to_owned(),
            400,
            "MANIFEST_INVALID",
        ),
        (
            Method::PUT,
            format!("/v2/library/busybox/manifests/{}", f.manifest_digest),
            400,
            "DIGEST_INVALID",
        ),
    ];
    for (method, uri, status, code) in cases {
        let r = send_body(&app, method.clone(), &uri, &[], b"not json");
        assert_eq!(
            (r.status().as_u16(), error_code(&r).as_str()),
            (status, code),
            "{method} {uri}"
        );
    }
    assert!(f.origin.sent.borrow().is_empty());
    let big = vec![b' '; super::manifests::MANIFEST_MAX_BYTES + 1];
    let r = send_body(
        &app,
        Method::PUT,
        "/v2/library/busybox/manifests/latest",
        &[],
        &big,
    );
    assert_eq!(r.status(), 413);
    assert!(f.origin.sent.borrow().is_empty());
}

#[test]
fn manifest_put_is_visible_at_once_and_emits_an_event() {
    let f = with_origin(&[]);
    let app = f.app();
    let uri = "/v2/library/busybox/manifests/latest";
    assert_eq!(
        header(&get(&app, uri), "docker-content-digest"),
        f.manifest_digest.to_string()
    );

    // The origin writes a new manifest to storage and answers 201, as distribution does.
    let new = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#.to_vec();
    let new_digest = Digest::sha256(&new);
    let layout = Layout::new(ROOT);
    let name = "library/busybox".parse().unwrap();
    f.store.put(layout.blob_data(&new_digest), new.clone());
    f.store.put(
        layout.manifest_revision_link(&name, &new_digest),
        new_digest.to_string(),
    );
    f.store.put(
        layout.tag_current_link(&name, &"latest".parse().unwrap()),
        new_digest.to_string(),
    );
    let location = format!("http://127.0.0.1:5000/v2/library/busybox/manifests/{new_digest}");
    let d = new_digest.to_string();
    f.origin_answers(move |_| {
        answer(
            201,
            &[("location", &location), ("docker-content-digest", &d)],
            b"",
        )
    });
    let r = send_body(
        &app,
        Method::PUT,
        uri,
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &new,
    );
    assert_eq!(r.status(), 201);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/library/busybox/manifests/{new_digest}")
    );
    let (_, _, headers, body) = f.origin.sent.borrow()[0].clone();
    assert_eq!(body, OriginBody::Bytes(new.clone()));
    assert_eq!(headers["content-length"], new.len().to_string().as_str());
    // Read-your-writes: no waiting for the tag TTL.
    assert_eq!(
        header(&get(&app, uri), "docker-content-digest"),
        new_digest.to_string()
    );
    let events = f.events.0.borrow();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.action, e.repository.as_str(), e.tag.as_deref()),
        (
            crate::events::Action::Push,
            "library/busybox",
            Some("latest")
        )
    );
    assert_eq!(e.digest.as_deref(), Some(new_digest.to_string().as_str()));
    assert_eq!(
        e.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(e.size, Some(new.len() as u64));
    assert_eq!(e.actor, "admin:admin", "the event names who pushed");
}

#[test]
fn manifest_delete_is_visible_at_once() {
    let f = with_origin(&[]);
    let app = f.app();
    let uri = format!("/v2/library/busybox/manifests/{}", f.manifest_digest);
    assert_eq!(get(&app, &uri).status(), 200);
    let layout = Layout::new(ROOT);
    f.store.remove(
        &layout.manifest_revision_link(&"library/busybox".parse().unwrap(), &f.manifest_digest),
    );
    f.origin_answers(|_| answer(202, &[], b""));
    assert_eq!(send(&app, Method::DELETE, &uri, &[]).status(), 202);
    assert_eq!(get(&app, &uri).status(), 404);
    assert_eq!(
        get(&app, "/v2/library/busybox/manifests/latest").status(),
        404
    );
    assert_eq!(f.events.0.borrow()[0].action, crate::events::Action::Delete);
}

/// A session URL as the edge hands it out.
fn sealed(app: &App<Test<'_>>, name: &str, upload_id: &str) -> String {
    let session = super::uploads::Session {
        origin_params: vec![("_state".into(), "s".into())],
        offset: Some(0),
    };
    app.sealed_path(&name.parse().unwrap(), upload_id, &session)
}

#[test]
fn origin_errors_keep_their_codes_and_lose_internals() {
    let f = with_origin(&[]);
    let body = br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry","detail":"u9"}]}"#;
    f.origin_answers(move |_| {
        answer(
            404,
            &[("content-type", "application/json; charset=utf-8")],
            body,
        )
    });
    let app = f.app();
    let uri = sealed(&app, "library/busybox", "u9");
    let r = send(&app, Method::GET, &uri, &[]);
    assert_eq!(r.status(), 404);
    assert_eq!(
        json_body(&r),
        serde_json::from_slice::<Value>(body).unwrap()
    );
    assert_eq!(
        header(&r, "content-type"),
        "application/json; charset=utf-8"
    );
    // What distribution's s3 driver puts in a detail never reaches the client.
    f.origin_answers(|_| {
        answer(
            404,
            &[],
            br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry","detail":{"Path":"/docker/registry/v2/repositories/library/busybox/_uploads/u9/data","DriverName":"s3aws"}}]}"#,
        )
    });
    let r = send(&app, Method::GET, &uri, &[]);
    assert_eq!(error_code(&r), "BLOB_UPLOAD_UNKNOWN");
    let text = String::from_utf8_lossy(r.body()).into_owned();
    assert!(
        !text.contains("docker/registry") && !text.contains("s3aws"),
        "{text}"
    );
}

#[test]
fn unreachable_and_slow_origins_are_502_and_504() {
    let f = with_origin(&[]);
    f.origin_answers(|_| Err(OriginError::Unreachable("connection refused".into())));
    let r = send(
        &f.app(),
        Method::POST,
        "/v2/library/busybox/blobs/uploads/",
        &[],
    );
    assert_eq!(
        (r.status().as_u16(), error_code(&r).as_str()),
        (502, "UPSTREAM_UNREACHABLE")
    );
    assert!(
        json_body(&r)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    f.origin_answers(|_| Err(OriginError::Timeout));
    let r = send(
        &f.app(),
        Method::POST,
        "/v2/library/busybox/blobs/uploads/",
        &[],
    );
    assert_eq!(
        (r.status().as_u16(), error_code(&r).as_str()),
        (504, "UPSTREAM_TIMEOUT")
    );
    assert!(
        json_body(&r)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("30 s")
    );
}

#[test]
fn the_edge_answers_the_origins_bearer_challenge() {
    let f = with_origin(&[("ORIGIN_USERNAME", "edge"), ("ORIGIN_PASSWORD", "pw")]);
    f.origin_answers(|r| {
        let auth = r
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        match (r.uri().path(), auth.as_deref()) {
            ("/token", Some("Basic ZWRnZTpwdw==")) => {
                let query = r.uri().query().unwrap();
                assert!(
                    query.contains("service=origin")
                        && query.contains("scope=repository%3Alibrary%2Fbusybox%3Apull%2Cpush"),
                    "{query}"
                );
                answer(200, &[], br#"{"token":"t0k","expires_in":300}"#)
            }
            (_, Some("Bearer t0k")) => answer(
                202,
                &[("location", "/v2/library/busybox/blobs/uploads/u")],
                b"",
            ),
            _ => answer(
                401,
                &[(
                    "www-authenticate",
                    r#"Bearer realm="http://127.0.0.1:5001/token",service="origin""#,
                )],
                b"",
            ),
        }
    });
    let app = f.app();
    for _ in 0..2 {
        let r = send(
            &app,
            Method::POST,
            "/v2/library/busybox/blobs/uploads/",
            &[("authorization", ADMIN_BASIC)],
        );
        assert_eq!(r.status(), 202);
    }
    let sent: Vec<String> = f
        .origin
        .sent
        .borrow()
        .iter()
        .map(|(m, u, _, _)| format!("{m} {}", u.split('?').next().unwrap()))
        .collect();
    assert_eq!(
        sent,
        [
            "GET http://127.0.0.1:5000/v2/",
            "GET http://127.0.0.1:5001/token",
            "POST http://127.0.0.1:5000/v2/library/busybox/blobs/uploads/",
            "POST http://127.0.0.1:5000/v2/library/busybox/blobs/uploads/",
        ],
        "challenge learned once, token reused"
    );
}

#[test]
fn basic_origins_and_refused_credentials() {
    let f = with_origin(&[("ORIGIN_USERNAME", "edge"), ("ORIGIN_PASSWORD", "wrong")]);
    f.origin_answers(|r| {
        match r
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap())
        {
            Some("Basic ZWRnZTpwdw==") => answer(202, &[], b""),
            _ => answer(401, &[("www-authenticate", r#"Basic realm="origin""#)], b""),
        }
    });
    let r = send(
        &f.app(),
        Method::POST,
        "/v2/library/busybox/blobs/uploads/",
        &[],
    );
    assert_eq!(r.status(), 502);
    assert!(
        json_body(&r)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ORIGIN_USERNAME")
    );
    assert!(header(&r, "www-authenticate").is_empty());
}

#[path = "auth_tests.rs"]
mod auth_tests;

#[test]
fn events_say_where_the_request_arrived() {
    let f = with_origin(&[]);
    f.origin_answers(|_| answer(202, &[], b""));
    let app = f.app();
    let mut request = Request::builder()
        .method(Method::DELETE)
        .uri(format!(
            "/v2/library/busybox/manifests/{}",
            f.manifest_digest
        ))
        .header("authorization", ADMIN_BASIC)
        .body(Vec::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(crate::platform::RequestLocation {
            colo: Some("SYD".into()),
            ..Default::default()
        });
    let r = futures::executor::block_on(app.handle(request));
    assert_eq!(r.status(), 202);
    assert_eq!(f.events.0.borrow()[0].colo.as_deref(), Some("SYD"));
    // Without a location, the field is left out of the event's JSON.
    let e = crate::events::Event {
        colo: None,
        ..f.events.0.borrow()[0].clone()
    };
    assert!(serde_json::to_value(&e).unwrap().get("colo").is_none());
}
