//! Reads through upstream registries (`UPSTREAMS`): the token dance and its cache, tags within
//! and after their lifetime, stale answers when the upstream fails, 429s, verification, realms
//! on foreign hosts, blob redirects and streams, read-only namespaces, `?ns=`, and the default
//! upstream after the edge's own repositories.

use std::rc::Rc;

use http::{Method, Request, Response};

use super::*;

/// `hub.test` (Docker-token auth, realm on auth.example), `basic.test` (Basic credentials,
/// unprefixed names after the edge's own), `evil.test` (realm on a host it does not vouch for).
const UPSTREAMS: &str = r#"[
  {"prefix": "hub.test", "url": "https://registry.example", "realm_hosts": ["auth.example"], "tag_ttl_seconds": 60},
  {"prefix": "basic.test", "url": "http://basic.example", "username_secret": "BASIC_USER", "password_secret": "BASIC_PASSWORD", "default": true},
  {"prefix": "evil.test", "url": "https://evil.example", "username_secret": "BASIC_USER", "password_secret": "BASIC_PASSWORD"},
  {"prefix": "allow.test", "url": "https://registry.example", "allow": ["acme/*"]},
  {"prefix": "docker.io", "url": "https://registry-1.docker.io"}
]"#;

const CONFIG: &[(&str, &str)] = &[
    ("UPSTREAMS", UPSTREAMS),
    ("BASIC_USER", "puller"),
    ("BASIC_PASSWORD", "pull-secret"),
];

/// A manifest the fake upstreams hold, and its digest.
fn upstream_manifest() -> (Vec<u8>, Digest) {
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "c".repeat(64)), "size": 2},
        "layers": [],
    }))
    .unwrap();
    let digest = Digest::sha256(&bytes);
    (bytes, digest)
}

/// How the fake upstreams behave, changed by the tests as they go.
#[derive(Clone)]
struct Behaviour {
    /// Answer every registry request with this status (and `Retry-After: 120` for a 429).
    fail: Option<u16>,
    /// The manifest bytes served for the digest (tampered with when they differ).
    served: Vec<u8>,
    /// Send `Docker-Content-Digest` on manifest answers.
    digest_header: bool,
}

/// The fake registries behind `UPSTREAMS`, with `behaviour`.
fn registries(
    behaviour: Rc<RefCell<Behaviour>>,
) -> impl Fn(&Request<()>) -> Result<Response<Vec<u8>>, OriginError> {
    let (_, digest) = upstream_manifest();
    move |request| {
        let b = behaviour.borrow().clone();
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or("");
        let path = uri.path();
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        match host {
            "auth.example" => {
                return answer(200, JSON, br#"{"token": "hub-token", "expires_in": 300}"#);
            }
            "evil.example" if path.starts_with("/v2/") => {
                return answer(
                    401,
                    &[(
                        "www-authenticate",
                        r#"Bearer realm="https://collector.example/token",service="evil""#,
                    )],
                    b"",
                );
            }
            "collector.example" => return answer(200, JSON, br#"{"token": "x"}"#),
            "cdn.example" => return answer(200, &[("content-length", "7")], b""),
            _ => {}
        }
        if let Some(status) = b.fail {
            let headers: &[(&str, &str)] = if status == 429 {
                &[("retry-after", "120")]
            } else {
                &[]
            };
            return answer(status, headers, b"");
        }
        let authorized = match host {
            "registry.example" => auth == "Bearer hub-token",
            "basic.example" => auth == basic("puller", "pull-secret"),
            "origin.example" => true,
            _ => false,
        };
        if !authorized {
            let challenge = if host == "registry.example" {
                r#"Bearer realm="https://auth.example/token",service="registry.example""#
            } else {
                r#"Basic realm="basic""#
            };
            return answer(401, &[("www-authenticate", challenge)], b"");
        }
        let digest_text = digest.to_string();
        let manifest_headers: Vec<(&str, &str)> = if b.digest_header {
            vec![
                ("content-type", "application/vnd.oci.image.manifest.v1+json"),
                ("docker-content-digest", &digest_text),
            ]
        } else {
            vec![("content-type", "application/vnd.oci.image.manifest.v1+json")]
        };
        let known = |p: &str| {
            ["/v2/acme/app/", "/v2/library/alpine/"]
                .iter()
                .find_map(|prefix| p.strip_prefix(prefix))
                .map(str::to_owned)
        };
        match known(path).as_deref() {
            Some("manifests/v1") => answer(200, &manifest_headers, &b.served),
            Some(p) if p == format!("manifests/{digest}") => {
                answer(200, &manifest_headers, &b.served)
            }
            Some("tags/list") if uri.query().unwrap_or("").contains("last=v1") => {
                answer(200, JSON, br#"{"name": "acme/app", "tags": ["v2"]}"#)
            }
            Some("tags/list") => answer(
                200,
                &[
                    ("content-type", "application/json"),
                    (
                        "link",
                        "</v2/acme/app/tags/list?last=v1&n=1000>; rel=\"next\"",
                    ),
                ],
                br#"{"name": "acme/app", "tags": ["v1", "Bad Tag", "v0"]}"#,
            ),
            Some(p) if p.starts_with("blobs/sha256:aaaa") => {
                answer(307, &[("location", "https://cdn.example/blob?sig=1")], b"")
            }
            Some(p) if p.starts_with("blobs/sha256:bbbb") => {
                let range = request.headers().get("range").map(|v| v.to_str().unwrap());
                match range {
                    Some("bytes=2-") => answer(
                        206,
                        &[("content-length", "3"), ("content-range", "bytes 2-4/5")],
                        b"llo",
                    ),
                    _ => answer(200, &[("content-length", "5")], b"hello"),
                }
            }
            Some(p) if p.starts_with("referrers/sha256:eeee") => {
                let d = |c: &str| format!("sha256:{}", c.repeat(64));
                let page = |digest: String| {
                    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1}]}))
                    .unwrap()
                };
                let query = uri.query().unwrap_or("");
                if query.contains("last=2") {
                    // A Link to the same path on another origin is not followed.
                    let elsewhere =
                        format!("<https://evil.example/v2/acme/app/{p}?last=3>; rel=\"next\"");
                    answer(200, &[("link", &elsewhere)], &page(d("2")))
                } else if query.contains("last=1") {
                    let next = format!("</v2/acme/app/{p}?last=2&n=1>; rel=\"next\"");
                    answer(200, &[("link", &next)], &page(d("1")))
                } else {
                    let next =
                        format!("<https://registry.example/v2/acme/app/{p}?last=1>; rel=\"next\"");
                    answer(200, &[("link", &next)], &page(d("0")))
                }
            }
            Some(p) if p.starts_with("referrers/") => answer(404, JSON, b"{}"),
            _ => answer(404, JSON, br#"{"errors": [{"code": "MANIFEST_UNKNOWN"}]}"#),
        }
    }
}

fn fixture() -> (Fixture, Rc<RefCell<Behaviour>>) {
    let f = Fixture::new().with(CONFIG);
    let (manifest, _) = upstream_manifest();
    let behaviour = Rc::new(RefCell::new(Behaviour {
        fail: None,
        served: manifest,
        digest_header: true,
    }));
    f.upstream_answers(registries(behaviour.clone()));
    (f, behaviour)
}

fn hosts(f: &Fixture) -> Vec<String> {
    f.upstream
        .sent
        .borrow()
        .iter()
        .map(|(m, u, _)| format!("{m} {}", u.split('?').next().unwrap()))
        .collect()
}

#[test]
fn a_tag_through_a_token_upstream_costs_one_dance_then_nothing() {
    let (f, _) = fixture();
    let app = f.app();
    let (manifest, digest) = upstream_manifest();
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(r.body(), &manifest);
    assert_headers(
        &r,
        &[
            ("docker-content-digest", &digest.to_string()),
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
        ],
    );
    // Nothing known of the tag: one GET by tag brings the digest and the manifest.
    assert_eq!(
        hosts(&f),
        [
            "GET https://registry.example/v2/acme/app/manifests/v1",
            "GET https://auth.example/token",
            "GET https://registry.example/v2/acme/app/manifests/v1",
        ]
    );
    // By digest now: the edge has it.
    assert_eq!(
        get(&app, &format!("/v2/hub.test/acme/app/manifests/{digest}")).status(),
        200
    );
    assert_eq!(hosts(&f).len(), 3);
    let (_, token_request, token_headers) = f.upstream.sent.borrow()[1].clone();
    assert!(
        token_headers.get("authorization").is_none(),
        "an anonymous token: the entry has no credentials"
    );
    assert!(
        token_request.contains("service=registry.example")
            && token_request.contains("scope=repository%3Aacme%2Fapp%3Apull"),
        "{token_request}"
    );
    // Within the tag's lifetime: nothing is asked.
    f.upstream.sent.borrow_mut().clear();
    for _ in 0..3 {
        assert_eq!(
            get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
            200
        );
    }
    assert!(hosts(&f).is_empty(), "{:?}", hosts(&f));
    // After it: one HEAD with the cached token.
    f.clock.advance(61);
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    assert_eq!(
        hosts(&f),
        ["HEAD https://registry.example/v2/acme/app/manifests/v1"]
    );
    assert_eq!(
        f.upstream.sent.borrow()[0].2.get("authorization").unwrap(),
        "Bearer hub-token"
    );
}

#[test]
fn one_revalidation_at_a_time() {
    use crate::cache::EdgeCache;
    let (f, _) = fixture();
    let app = f.app();
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    f.clock.advance(61);
    f.upstream.sent.borrow_mut().clear();
    // Another request of this isolate is revalidating the tag: the known digest is the answer.
    let marker = crate::cache::key::upstream("hub.test", "revalidating", "acme/app:v1");
    futures::executor::block_on(app.cache.put_local(&marker, b"1", 11));
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "warning"), "");
    assert!(hosts(&f).is_empty(), "{:?}", hosts(&f));
    // Once it is done (the marker gone), the next read past the lifetime revalidates, once.
    futures::executor::block_on(app.cache.delete_local(&marker));
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    assert_eq!(hosts(&f).len(), 1);
    assert!(futures::executor::block_on(app.cache.get_local(&marker)).is_none());
}

#[test]
fn a_failing_upstream_serves_the_last_known_digest_with_a_warning() {
    let (f, behaviour) = fixture();
    let app = f.app();
    let (manifest, _) = upstream_manifest();
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    f.clock.advance(61);
    for status in [503, 500] {
        behaviour.borrow_mut().fail = Some(status);
        f.upstream.sent.borrow_mut().clear();
        let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
        assert_eq!(r.status(), 200, "{status}");
        assert_eq!(r.body(), &manifest);
        let warning = header(&r, "warning");
        assert!(
            warning.starts_with("299 - \"") && warning.contains("may be stale"),
            "{warning}"
        );
        assert!(warning.contains(&format!("answered {status}")), "{warning}");
        // For a while the stale answer stands, warning and all, without asking again: a failing
        // upstream costs one attempt per STALE_RETRY_SECONDS, not one per request.
        let again = send(
            &app,
            Method::HEAD,
            "/v2/hub.test/acme/app/manifests/v1",
            &[("accept", OCI_ACCEPT)],
        );
        assert_eq!(again.status(), 200);
        assert_eq!(header(&again, "warning"), warning);
        assert_eq!(hosts(&f).len(), 1, "{:?}", hosts(&f));
        f.clock
            .advance(crate::upstream::content::STALE_RETRY_SECONDS + 1);
    }
    // Unreachable: the same.
    f.upstream_answers(|_| Err(OriginError::Unreachable("connection refused".into())));
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "warning").contains("is unreachable"));
    // What the edge never saw: a clear 502 in OCI JSON.
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v2");
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(&r), "UPSTREAM_UNREACHABLE");
    assert!(
        error_message(&r).contains("hub.test"),
        "{}",
        error_message(&r)
    );
}

#[test]
fn a_rate_limit_is_waited_out_and_stale_content_served() {
    let (f, behaviour) = fixture();
    let app = f.app();
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    f.clock.advance(61);
    behaviour.borrow_mut().fail = Some(429);
    f.upstream.sent.borrow_mut().clear();
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert!(
        header(&r, "warning").contains("retry after 120 s"),
        "{}",
        header(&r, "warning")
    );
    assert_eq!(hosts(&f).len(), 1, "one HEAD, answered 429");
    // Until Retry-After has passed the upstream is not asked at all, even when it has recovered.
    behaviour.borrow_mut().fail = None;
    f.clock.advance(60);
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 200);
    let unknown = get(&app, "/v2/hub.test/acme/app/manifests/v9");
    assert_eq!(unknown.status(), 503);
    assert_eq!(error_code(&unknown), "UPSTREAM_UNAVAILABLE");
    let retry: u64 = header(&unknown, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(hosts(&f).len(), 1, "{:?}", hosts(&f));
    f.clock.advance(61);
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(header(&r, "warning"), "");
    assert_eq!(hosts(&f).len(), 2);
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused_and_not_kept() {
    let (f, behaviour) = fixture();
    let app = f.app();
    let (_, digest) = upstream_manifest();
    behaviour.borrow_mut().served = b"{\"schemaVersion\": 2, \"tampered\": true}".to_vec();
    let uri = format!("/v2/hub.test/acme/app/manifests/{digest}");
    let r = get(&app, &uri);
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(&r), "UPSTREAM_ERROR");
    assert!(error_message(&r).contains("do not match"));
    let by_tag = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(by_tag.status(), 502, "a tag leads to the same refusal");
    // Nothing was kept: once the upstream serves the right bytes, they are served.
    let (manifest, _) = upstream_manifest();
    behaviour.borrow_mut().served = manifest.clone();
    let r = get(&app, &uri);
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), &manifest);
}

#[test]
fn a_realm_on_a_foreign_host_gets_nothing() {
    let (f, _) = fixture();
    let app = f.app();
    let r = get(&app, "/v2/evil.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 502);
    assert!(
        error_message(&r).contains("neither its own origin nor one of the entry's realm_hosts"),
        "{}",
        error_message(&r)
    );
    assert!(
        !error_message(&r).contains("collector.example"),
        "the realm is for the log"
    );
    let sent = f.upstream.sent.borrow();
    assert!(
        sent.iter()
            .all(|(_, url, _)| !url.contains("collector.example")),
        "nothing was sent to the foreign realm: {:?}",
        hosts(&f)
    );
    drop(sent);
    // The refused challenge is not kept: once the upstream names an acceptable realm, reads work.
    let (f, _) = fixture();
    let app = f.app();
    f.upstream_answers(|request| {
        let bearer = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer"));
        if request.uri().host() == Some("evil.example") && !bearer {
            return answer(
                401,
                &[(
                    "www-authenticate",
                    r#"Bearer realm="https://collector.example/t""#,
                )],
                b"",
            );
        }
        answer(404, JSON, b"{}")
    });
    assert_eq!(
        get(&app, "/v2/evil.test/acme/app/manifests/v1").status(),
        502
    );
    f.upstream.sent.borrow_mut().clear();
    f.upstream_answers(|_| answer(404, JSON, b"{}"));
    let r = get(&app, "/v2/evil.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 404, "{}", String::from_utf8_lossy(r.body()));
}

#[test]
fn basic_credentials_go_to_the_upstream_only() {
    let (f, _) = fixture();
    let app = f.app();
    let r = get(&app, "/v2/basic.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    let sent = f.upstream.sent.borrow();
    assert!(!sent.is_empty());
    for (_, url, headers) in sent.iter() {
        assert!(url.starts_with("http://basic.example/"), "{url}");
        assert_eq!(
            headers.get("authorization").unwrap(),
            &basic("puller", "pull-secret"),
            "sent at once, no 401 first"
        );
    }
}

#[test]
fn blobs_redirect_to_the_upstreams_url_or_stream_untouched() {
    let (f, _) = fixture();
    let app = f.app();
    let redirected = format!("sha256:{}", "a".repeat(64));
    let r = get(&app, &format!("/v2/hub.test/acme/app/blobs/{redirected}"));
    assert_eq!(r.status(), 307);
    assert_headers(
        &r,
        &[
            ("location", "https://cdn.example/blob?sig=1"),
            ("cache-control", "no-store"),
            ("docker-content-digest", &redirected),
        ],
    );
    assert!(f.upstream.passed.borrow().is_none());

    let streamed = format!("sha256:{}", "b".repeat(64));
    let r = get(&app, &format!("/v2/hub.test/acme/app/blobs/{streamed}"));
    assert_eq!(r.status(), 200);
    assert_headers(
        &r,
        &[
            ("content-length", "5"),
            ("docker-content-digest", &streamed),
        ],
    );
    assert!(r.body().is_empty(), "the core never holds the bytes");
    assert_eq!(f.upstream.passed.borrow_mut().take().unwrap(), b"hello");

    let r = send(
        &app,
        Method::GET,
        &format!("/v2/hub.test/acme/app/blobs/{streamed}"),
        &[("range", "bytes=2-")],
    );
    assert_eq!(r.status(), 206);
    assert_headers(
        &r,
        &[("content-range", "bytes 2-4/5"), ("content-length", "3")],
    );
    assert_eq!(f.upstream.passed.borrow_mut().take().unwrap(), b"llo");

    let missing = format!("sha256:{}", "d".repeat(64));
    let r = get(&app, &format!("/v2/hub.test/acme/app/blobs/{missing}"));
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");
    // Other algorithms are not fetched from upstreams (locks are kept under sha256).
    f.upstream.sent.borrow_mut().clear();
    let r = get(
        &app,
        &format!("/v2/hub.test/acme/app/blobs/sha512:{}", "b".repeat(128)),
    );
    assert_eq!(r.status(), 404);
    assert!(hosts(&f).is_empty(), "{:?}", hosts(&f));
    // A HEAD the upstream redirects (distribution presigns HEADs too): the size is asked where
    // the redirect leads, without the upstream's credentials.
    let r = send(
        &app,
        Method::HEAD,
        &format!("/v2/hub.test/acme/app/blobs/{redirected}"),
        &[],
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(header(&r, "content-length"), "7");
    let sent = f.upstream.sent.borrow();
    let (_, cdn, headers) = sent.last().unwrap();
    assert_eq!(cdn, "https://cdn.example/blob?sig=1");
    assert!(headers.get("authorization").is_none());
}

#[test]
fn mirror_namespaces_are_read_only() {
    let f = Fixture::new().with_origin().with(CONFIG);
    let app = f.app();
    for (method, uri) in [
        (Method::POST, "/v2/hub.test/acme/app/blobs/uploads/"),
        (Method::PUT, "/v2/hub.test/acme/app/manifests/v1"),
        (Method::DELETE, "/v2/hub.test/acme/app/manifests/v1"),
    ] {
        let r = send(&app, method.clone(), uri, &[]);
        assert_eq!(r.status(), 403, "{method} {uri}");
        assert_eq!(error_code(&r), "DENIED");
        assert!(
            error_message(&r).contains("the namespace hub.test mirrors an upstream registry"),
            "{}",
            error_message(&r)
        );
    }
    // A name under the namespace that the allow list leaves out is still not the edge's own.
    let r = send(
        &app,
        Method::POST,
        "/v2/allow.test/other/tool/blobs/uploads/",
        &[],
    );
    assert_eq!(r.status(), 403);
    let r = get(&app, "/v2/allow.test/other/tool/manifests/v1");
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    assert!(f.upstream.sent.borrow().is_empty(), "not asked for");
    assert!(f.origin.sent.borrow().is_empty());
    // Unprefixed names are the edge's own, default upstream or not: pushes go to the origin.
    f.origin_answers(|_| {
        answer(
            202,
            &[("location", "/v2/library/busybox/blobs/uploads/u")],
            b"",
        )
    });
    let r = send(
        &app,
        Method::POST,
        "/v2/library/busybox/blobs/uploads/",
        &[],
    );
    assert_eq!(r.status(), 202, "{}", String::from_utf8_lossy(r.body()));
}

#[test]
fn containerd_namespaces_address_the_mirror() {
    let (f, _) = fixture();
    let app = f.app();
    let r = get(&app, "/v2/acme/app/manifests/v1?ns=hub.test");
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(header(&r, "oci-namespace"), "hub.test");
    assert!(hosts(&f)[0].starts_with("GET https://registry.example/v2/acme/app/"));
    // Authorized as the mirror's repository: a token for `acme/app` alone does not reach it.
    manage(
        &app,
        Method::PUT,
        "/api/v1/anonymous-pull",
        json!({"repositories": ["hub.test/*"]}),
    );
    let r = anonymous(&app, Method::GET, "/v2/acme/app/manifests/v1?ns=hub.test");
    assert_eq!(r.status(), 200);
    let r = anonymous(&app, Method::GET, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(
        r.status(),
        200,
        "anonymous pull by pattern covers the mirror"
    );
    let r = anonymous(&app, Method::GET, "/v2/acme/app/manifests/v1");
    assert_eq!(r.status(), 401, "without ?ns= it is another repository");
    // A namespace no upstream serves: nothing here (containerd then asks the registry itself),
    // never the edge's own repository or another upstream's of the same name.
    let r = get(&app, "/v2/library/busybox/manifests/latest?ns=quay.io");
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    // The edge's own host as the namespace: its own repository.
    let r = get(
        &app,
        "/v2/library/busybox/manifests/latest?ns=registry-edge",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "oci-namespace"), "");
    // Writes through ?ns= land in the mirror's namespace, which is read-only.
    let f = Fixture::new().with_origin().with(CONFIG);
    let app = f.app();
    let r = send(
        &app,
        Method::POST,
        "/v2/acme/app/blobs/uploads/?ns=hub.test",
        &[],
    );
    assert_eq!(r.status(), 403);
    assert!(f.origin.sent.borrow().is_empty());
}

#[test]
fn the_default_upstream_serves_after_the_edges_own_repositories() {
    let (f, _) = fixture();
    let app = f.app();
    let r = get(&app, "/v2/library/busybox/manifests/latest");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), &f.manifest, "the edge's own");
    assert!(hosts(&f).is_empty());
    let r = get(&app, "/v2/library/alpine/manifests/v1");
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert!(hosts(&f)[0].starts_with("GET http://basic.example/v2/library/alpine/"));
}

#[test]
fn tag_lists_and_referrers_come_from_the_upstream() {
    let (f, _) = fixture();
    let app = f.app();
    let r = get(&app, "/v2/hub.test/acme/app/tags/list");
    assert_eq!(r.status(), 200);
    assert_eq!(
        json_body(&r),
        json!({"name": "hub.test/acme/app", "tags": ["v0", "v1", "v2"]}),
        "every page (its Link followed), sorted, invalid tags dropped, the edge's name"
    );
    let (_, digest) = upstream_manifest();
    let r = get(&app, &format!("/v2/hub.test/acme/app/referrers/{digest}"));
    assert_eq!(r.status(), 200);
    assert_eq!(json_body(&r)["manifests"], json!([]));
    // The catalog lists what the edge stores, not the upstream.
    let r = get(&app, "/v2/_catalog");
    assert!(!String::from_utf8_lossy(r.body()).contains("hub.test"));
}

#[test]
fn a_tag_without_a_digest_header_is_read_from_the_manifest() {
    let (f, behaviour) = fixture();
    behaviour.borrow_mut().digest_header = false;
    let app = f.app();
    let (manifest, digest) = upstream_manifest();
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    // A revalidation whose HEAD names no digest: the manifest by tag says it.
    f.clock.advance(61);
    f.upstream.sent.borrow_mut().clear();
    let r = get(&app, "/v2/hub.test/acme/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), &manifest);
    assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
    assert_eq!(
        hosts(&f),
        [
            "HEAD https://registry.example/v2/acme/app/manifests/v1",
            "GET https://registry.example/v2/acme/app/manifests/v1",
        ]
    );
}

#[test]
fn a_fronted_origin_serves_what_storage_lacks_and_writes_refresh_it() {
    let f = Fixture::new().with_origin().with(&[(
        "UPSTREAMS",
        r#"[{"prefix": "", "url": "http://origin.example", "tag_ttl_seconds": 300}]"#,
    )]);
    let (manifest, _) = upstream_manifest();
    let behaviour = Rc::new(RefCell::new(Behaviour {
        fail: None,
        served: manifest.clone(),
        digest_header: true,
    }));
    f.upstream_answers(registries(behaviour));
    let app = f.app();
    // What storage holds is read there; what it lacks comes from the origin's API.
    assert_eq!(
        get(&app, "/v2/library/busybox/manifests/latest").status(),
        200
    );
    assert!(hosts(&f).is_empty());
    let r = get(&app, "/v2/acme/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), &manifest);
    assert_eq!(hosts(&f).len(), 1, "{:?}", hosts(&f));
    assert_eq!(get(&app, "/v2/acme/app/manifests/v1").status(), 200);
    assert_eq!(hosts(&f).len(), 1, "kept for tag_ttl_seconds");
    // The fronted registry's address is never in an answer.
    f.upstream_answers(|_| Err(OriginError::Unreachable("connection refused".into())));
    let r = get(&app, "/v2/acme/app/manifests/v9");
    assert_eq!(r.status(), 502);
    assert!(!String::from_utf8_lossy(r.body()).contains("origin.example"));
    assert!(
        error_message(&r).contains("this edge fronts"),
        "{}",
        error_message(&r)
    );
    f.upstream_answers(registries(Rc::new(RefCell::new(Behaviour {
        fail: None,
        served: upstream_manifest().0,
        digest_header: true,
    }))));
    f.upstream.sent.borrow_mut().clear();
    // A push of the tag through the edge: the next read asks again.
    f.origin_answers(|_| answer(201, &[("docker-content-digest", "sha256:00")], b""));
    let pushed = send_body(
        &app,
        Method::PUT,
        "/v2/acme/app/manifests/v1",
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &manifest,
    );
    assert_eq!(
        pushed.status(),
        201,
        "{}",
        String::from_utf8_lossy(pushed.body())
    );
    assert_eq!(get(&app, "/v2/acme/app/manifests/v1").status(), 200);
    assert_eq!(
        hosts(&f)[0],
        "GET http://origin.example/v2/acme/app/manifests/v1"
    );
}

#[test]
fn tokens_are_fetched_again_when_they_expire() {
    let (f, _) = fixture();
    let app = f.app();
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    let tokens = |f: &Fixture| {
        hosts(f)
            .iter()
            .filter(|l| l.contains("auth.example"))
            .count()
    };
    assert_eq!(tokens(&f), 1);
    // expires_in 300: kept 300 - 35 s. Within that, the tag's revalidations reuse it.
    f.clock.advance(200);
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    assert_eq!(tokens(&f), 1);
    f.clock.advance(100);
    assert_eq!(
        get(&app, "/v2/hub.test/acme/app/manifests/v1").status(),
        200
    );
    assert_eq!(tokens(&f), 2, "{:?}", hosts(&f));
}

#[test]
fn one_repository_one_set_of_locks_whatever_its_name() {
    let f = Fixture::new().with(CONFIG);
    f.upstream_answers(|_| answer(404, JSON, b"{}"));
    let app = f.app();
    manage(
        &app,
        Method::PATCH,
        "/api/v1/repositories/docker.io/library/nginx",
        json!({"readEnabled": false}),
    );
    // Docker Hub's short name is the same repository.
    let r = get(&app, "/v2/docker.io/nginx/manifests/1");
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(r.body()));
    assert!(error_message(&r).contains("docker.io/library/nginx is locked"));
    // A default upstream's repository, unprefixed: its namespace's locks hold too.
    manage(
        &app,
        Method::PATCH,
        "/api/v1/repositories/basic.test/acme/app",
        json!({"readEnabled": false}),
    );
    let r = get(&app, "/v2/acme/app/manifests/v1");
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(r.body()));
    assert!(f.upstream.sent.borrow().is_empty());
}

#[test]
fn writes_drop_what_the_edge_kept_of_a_fronted_repository() {
    let f = Fixture::new().with_origin().with(&[(
        "UPSTREAMS",
        r#"[{"prefix": "", "url": "http://origin.example"}]"#,
    )]);
    let (manifest, digest) = upstream_manifest();
    let behaviour = Rc::new(RefCell::new(Behaviour {
        fail: None,
        served: manifest,
        digest_header: true,
    }));
    f.upstream_answers(registries(behaviour));
    let app = f.app();
    let uri = format!("/v2/acme/app/manifests/{digest}");
    assert_eq!(get(&app, &uri).status(), 200);
    let blob = format!("sha256:{}", "b".repeat(64));
    let head = |app: &App<Test<'_>>| {
        send(
            app,
            Method::HEAD,
            &format!("/v2/acme/app/blobs/{blob}"),
            &[],
        )
        .status()
    };
    assert_eq!(head(&app), 200);
    let count = hosts(&f).len();
    assert_eq!(get(&app, &uri).status(), 200);
    assert_eq!(head(&app), 200);
    assert_eq!(hosts(&f).len(), count, "kept");
    f.origin_answers(|_| answer(202, &[], b""));
    assert_eq!(send(&app, Method::DELETE, &uri, &[]).status(), 202);
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &format!("/v2/acme/app/blobs/{blob}"),
            &[]
        )
        .status(),
        202
    );
    // Asked again: the origin says what is there now.
    assert_eq!(get(&app, &uri).status(), 200);
    assert_eq!(head(&app), 200);
    assert_eq!(hosts(&f).len(), count + 2, "{:?}", hosts(&f));
}

#[test]
fn referrers_pages_are_followed_on_the_upstream_only() {
    let (f, _) = fixture();
    let app = f.app();
    let subject = format!("sha256:{}", "e".repeat(64));
    let r = get(&app, &format!("/v2/hub.test/acme/app/referrers/{subject}"));
    assert_eq!(r.status(), 200);
    let digests: Vec<String> = json_body(&r)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap()[7..8].to_owned())
        .collect();
    assert_eq!(digests, ["0", "1", "2"]);
    assert!(hosts(&f).iter().all(|h| !h.contains("evil.example")));
    let pages: Vec<String> = f
        .upstream
        .sent
        .borrow()
        .iter()
        .filter(|(_, u, h)| u.contains("/referrers/") && h.get("authorization").is_some())
        .map(|(_, u, _)| u.clone())
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].ends_with("?last=2&n=1"), "{pages:?}");
}
