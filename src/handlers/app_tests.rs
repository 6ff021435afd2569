//! The handlers end to end over an in-memory store laid out as distribution writes it.

use std::rc::Rc;

use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::app::App;
use crate::cache::MemoryCache;
use crate::config::Config;
use crate::layout::Layout;
use crate::platform::FixedClock;
use crate::reference::Digest;
use crate::storage::memory::MemoryStore;
use crate::storage::presign::Presigner;

const ROOT: &str = "origin";
const NOW: u64 = 1_700_000_000;

struct Fixture {
    store: MemoryStore,
    clock: FixedClock,
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
        let store = MemoryStore::default();
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
            clock: FixedClock::at(NOW),
            config: Rc::new(config),
            manifest,
            manifest_digest,
            layer_digest: layer,
            private_digest: private,
        }
    }

    fn app(&self) -> App<&MemoryStore, MemoryCache<&FixedClock>, &FixedClock> {
        App {
            presigner: self
                .config
                .s3
                .as_ref()
                .map(|s| Rc::new(Presigner::new(s).unwrap())),
            config: self.config.clone(),
            store: &self.store,
            cache: MemoryCache::new(&self.clock, 1 << 20),
            clock: &self.clock,
            log: |_| {},
        }
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
}

const OCI_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

fn send<S, C, K>(
    app: &App<S, C, K>,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> Response<Vec<u8>>
where
    S: crate::storage::ObjectStore,
    C: crate::cache::EdgeCache,
    K: crate::platform::Clock,
{
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    futures::executor::block_on(app.handle(&request.body(()).unwrap()))
}

fn get<S, C, K>(app: &App<S, C, K>, uri: &str) -> Response<Vec<u8>>
where
    S: crate::storage::ObjectStore,
    C: crate::cache::EdgeCache,
    K: crate::platform::Clock,
{
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

#[test]
fn referrers() {
    let f = Fixture::new();
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
fn writes_and_unknown_methods_are_refused() {
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
