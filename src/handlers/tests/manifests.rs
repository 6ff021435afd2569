//! Manifests: by tag and digest, not found, content negotiation, integrity, conditional and
//! cached reads, and writes seen at once.

use http::{Method, StatusCode};

use super::*;

#[test]
fn manifest_by_tag_and_digest() {
    let f = Fixture::new();
    let app = f.app();
    let digest = f.manifest_digest.to_string();
    let length = f.manifest.len().to_string();
    let by_tag = get(&app, "/v2/library/busybox/manifests/latest");
    assert_eq!(by_tag.status(), 200);
    assert_eq!(by_tag.body(), &f.manifest);
    assert_headers(
        &by_tag,
        &[
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
            ("docker-content-digest", &digest),
            ("content-length", &length),
            ("etag", &format!("\"{digest}\"")),
            ("cache-control", "no-cache"),
        ],
    );

    let by_digest = get(&app, &format!("/v2/team/app/service/manifests/{digest}"));
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
    assert_headers(
        &head,
        &[
            ("content-length", &length),
            ("docker-content-digest", &digest),
        ],
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
    let other = b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"layers\":[]}";
    let other_digest = f.put_manifest("library/busybox", other, &["latest"]);
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
fn manifest_put_is_visible_at_once_and_emits_an_event() {
    let f = Fixture::new().with_origin();
    let app = f.app();
    let uri = "/v2/library/busybox/manifests/latest";
    assert_eq!(
        header(&get(&app, uri), "docker-content-digest"),
        f.manifest_digest.to_string()
    );

    // The origin writes a new manifest to storage and answers 201, as distribution does.
    let new = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#.to_vec();
    let new_digest = f.put_manifest("library/busybox", &new, &["latest"]);
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
    let f = Fixture::new().with_origin();
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

/// A manifest revision linked by a sha512 digest (an alias of the canonical sha256 one) is
/// served by the digest asked for, and only if its bytes hash to it.
#[test]
fn sha512_revision_links_are_followed() {
    let f = Fixture::new();
    let layout = Layout::new(ROOT);
    let busybox: crate::reference::Name = "library/busybox".parse().unwrap();
    let alias = sha512(&f.manifest);
    f.store.put(
        layout.manifest_revision_link(&busybox, &alias),
        f.manifest_digest.to_string(),
    );
    let r = get(&f.app(), &format!("/v2/library/busybox/manifests/{alias}"));
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(r.body(), &f.manifest);
    assert_eq!(header(&r, "docker-content-digest"), alias.to_string());
    // An alias whose canonical content is other bytes: never served under the alias.
    let wrong = sha512(b"other bytes");
    f.store.put(
        layout.manifest_revision_link(&busybox, &wrong),
        f.manifest_digest.to_string(),
    );
    let r = get(&f.app(), &format!("/v2/library/busybox/manifests/{wrong}"));
    assert_eq!(r.status(), 500);
    // Not linked in a repository that does not link the canonical revision.
    let nobody: crate::reference::Name = "docker/v2s2".parse().unwrap();
    f.store.put(
        layout.manifest_revision_link(&nobody, &alias),
        f.manifest_digest.to_string(),
    );
    let r = get(&f.app(), &format!("/v2/docker/v2s2/manifests/{alias}"));
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r), "MANIFEST_UNKNOWN");
}

/// A manifest with a `subject` for pushing, and its digest.
fn referrer_manifest(f: &Fixture) -> (Vec<u8>, Digest) {
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::sha256(b"{}").to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f.manifest_digest.to_string(), "size": f.manifest.len()},
    }))
    .unwrap();
    let digest = Digest::sha256(&body);
    (body, digest)
}

/// distribution 2.8 does not answer `OCI-Subject`; the edge does, since it serves referrers.
#[test]
fn a_push_with_a_subject_is_answered_with_oci_subject() {
    let f = Fixture::new().with_origin();
    let (body, digest) = referrer_manifest(&f);
    let location = format!("http://127.0.0.1:5000/v2/library/busybox/manifests/{digest}");
    f.origin_answers(move |_| answer(201, &[("location", &location)], b""));
    let app = f.app();
    let push = |uri: &str, body: &[u8]| {
        send_body(
            &app,
            Method::PUT,
            uri,
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            body,
        )
    };
    let r = push(&format!("/v2/library/busybox/manifests/{digest}"), &body);
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "oci-subject"), f.manifest_digest.to_string());
    let r = push("/v2/library/busybox/manifests/plain", &f.manifest);
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("oci-subject").is_none());
}

/// `PUT /manifests/<digest>?tag=a&tag=b`: one origin push per tag, one `OCI-Tag` per tag; a
/// failure after some tags names those that were applied.
#[test]
fn several_tags_in_one_push() {
    let f = Fixture::new().with_origin();
    let digest = f.manifest_digest.clone();
    let location = format!("http://127.0.0.1:5000/v2/library/busybox/manifests/{digest}");
    let d = digest.to_string();
    f.origin_answers(move |request| {
        if request.uri().path().ends_with("/manifests/broken") {
            return answer(
                400,
                JSON,
                br#"{"errors":[{"code":"TAG_INVALID","message":"no","detail":"x"}]}"#,
            );
        }
        answer(
            201,
            &[("location", &location), ("docker-content-digest", &d)],
            b"",
        )
    });
    let app = f.app();
    let push = |query: &str| {
        send_body(
            &app,
            Method::PUT,
            &format!("/v2/library/busybox/manifests/{digest}?{query}"),
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            &f.manifest,
        )
    };
    let sent = || {
        f.origin
            .sent
            .borrow()
            .iter()
            .map(|(m, u, _, _)| format!("{m} {u}"))
            .collect::<Vec<_>>()
    };
    let tags_of = |r: &Response<Vec<u8>>| {
        r.headers()
            .get_all("oci-tag")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let r = push("tag=a&tag=b&tag=a");
    assert_eq!(r.status(), 201);
    assert_eq!(tags_of(&r), ["a", "b"]);
    assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
    let base = "PUT http://127.0.0.1:5000/v2/library/busybox/manifests";
    assert_eq!(sent(), [format!("{base}/a"), format!("{base}/b")]);
    let events = f.events.0.borrow().len();
    assert_eq!(events, 2, "one push event per tag");

    // The second tag fails at the origin: its error, naming the tag applied before it.
    let r = push("tag=c&tag=broken&tag=d");
    assert_eq!(r.status(), 400);
    assert_eq!(tags_of(&r), ["c"]);
    let detail = &json_body(&r)["errors"][0]["detail"];
    assert_eq!(detail["applied"], json!(["c"]));
    assert_eq!(detail["failed"], "broken");
    assert_eq!(detail["cause"], "x");
    assert_eq!(sent().len(), 4, "nothing after the failed tag");
    // The first tag fails: the origin's answer as it is.
    let r = push("tag=broken&tag=e");
    assert_eq!(r.status(), 400);
    assert!(tags_of(&r).is_empty());
    assert_eq!(json_body(&r)["errors"][0]["detail"], "x");

    // Refused before anything is sent: a bad tag, tags on a push by tag, too many tags.
    let before = sent().len();
    let too_many: Vec<String> = (0..17).map(|i| format!("tag=t{i}")).collect();
    for (query, code) in [
        ("tag=ok&tag=-bad".to_owned(), "TAG_INVALID"),
        (too_many.join("&"), "BAD_REQUEST"),
    ] {
        let r = push(&query);
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(error_code(&r), code, "{query}");
    }
    let r = send_body(
        &app,
        Method::PUT,
        "/v2/library/busybox/manifests/latest?tag=other",
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &f.manifest,
    );
    assert_eq!(
        (r.status().as_u16(), error_code(&r).as_str()),
        (400, "BAD_REQUEST")
    );
    // With tags, the manifest is named by its sha256 digest (the origin keeps it under that).
    let r = send_body(
        &app,
        Method::PUT,
        &format!(
            "/v2/library/busybox/manifests/{}?tag=x",
            sha512(&f.manifest)
        ),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &f.manifest,
    );
    assert_eq!(
        (r.status().as_u16(), error_code(&r).as_str()),
        (400, "BAD_REQUEST")
    );
    // A write-locked tag among them refuses the whole push.
    manage(
        &app,
        Method::PATCH,
        "/api/v1/repositories/library/busybox?tag=frozen",
        json!({"writeEnabled": false}),
    );
    let r = push("tag=fine&tag=frozen");
    assert_eq!(r.status(), 403);
    assert!(error_message(&r).contains("tag library/busybox:frozen is locked"));
    assert_eq!(sent().len(), before, "no refused push reached the origin");
}
