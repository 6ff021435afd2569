//! Blobs: HEAD, the redirect to storage (presigned or under a base URL), and no blob read through
//! a repository that does not link it.

use http::{Method, StatusCode};

use super::*;

#[test]
fn blob_head_and_redirect() {
    let f = Fixture::new();
    let app = f.app();
    let digest = f.layer_digest.to_string();
    let uri = format!("/v2/library/busybox/blobs/{digest}");
    let head = send(&app, Method::HEAD, &uri, &[]);
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    assert_headers(
        &head,
        &[
            ("content-length", "11"),
            ("docker-content-digest", &digest),
            ("accept-ranges", "bytes"),
            ("content-type", "application/octet-stream"),
        ],
    );

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
    assert_headers(
        &r,
        &[
            ("docker-content-digest", &digest),
            ("cache-control", "no-store"),
        ],
    );
}

#[test]
fn blob_base_url_replaces_presigning() {
    let f = Fixture::new().with(&[("BLOB_BASE_URL", "https://cdn.example.com/reg/")]);
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

/// A blob pushed as sha512: distribution links the sha512 digest to the canonical sha256 one,
/// where the content lives. The edge follows the link and answers with the digest asked for.
#[test]
fn sha512_links_lead_to_the_canonical_blob() {
    let f = Fixture::new();
    let layout = Layout::new(ROOT);
    let busybox: crate::reference::Name = "library/busybox".parse().unwrap();
    let alias = sha512(b"layer bytes");
    f.store.put(
        layout.layer_link(&busybox, &alias),
        f.layer_digest.to_string(),
    );
    let app = f.app();
    let uri = format!("/v2/library/busybox/blobs/{alias}");
    let head = send(&app, Method::HEAD, &uri, &[]);
    assert_eq!(
        head.status(),
        200,
        "{}",
        String::from_utf8_lossy(head.body())
    );
    assert_headers(
        &head,
        &[
            ("content-length", "11"),
            ("docker-content-digest", &alias.to_string()),
        ],
    );
    let r = get(&app, &uri);
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&r, "docker-content-digest"), alias.to_string());
    let location = url::Url::parse(header(&r, "location")).unwrap();
    assert!(
        location.path().ends_with(&format!(
            "/blobs/sha256/{}/{}/data",
            &f.layer_digest.hex()[..2],
            f.layer_digest.hex()
        )),
        "{location}"
    );

    // What else a link may hold, each answered without a 500 where the content is not there.
    let other: crate::reference::Name = "a-b".parse().unwrap();
    let missing = Digest::sha256(b"never stored");
    let alias_of = sha512;
    let cases: Vec<(&str, Digest, Option<Digest>, u16, &str)> = vec![
        // The canonical digest is not linked in this repository (only in `private`).
        (
            "private",
            alias_of(b"private layer"),
            Some(f.private_digest.clone()),
            200,
            "linked where it is asked for",
        ),
        (
            "a-b",
            alias_of(b"private layer"),
            Some(f.private_digest.clone()),
            404,
            "the canonical digest is not linked in a-b",
        ),
        (
            "a-b",
            alias_of(b"never stored"),
            Some(missing.clone()),
            404,
            "the canonical digest is linked nowhere",
        ),
        ("a-b", alias_of(b"unlinked"), None, 404, "no link at all"),
    ];
    for (repo, digest, target, status, why) in cases {
        let name: crate::reference::Name = repo.parse().unwrap();
        if let Some(target) = &target {
            f.store
                .put(layout.layer_link(&name, &digest), target.to_string());
        }
        let r = send(
            &f.app(),
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
        );
        assert_eq!(r.status(), status, "{why}");
    }
    // A canonical link whose blob is gone from storage: a 404, never a 500.
    f.store
        .put(layout.layer_link(&other, &missing), missing.to_string());
    let gone = alias_of(b"gone");
    f.store
        .put(layout.layer_link(&other, &gone), missing.to_string());
    let r = get(&f.app(), &format!("/v2/a-b/blobs/{gone}"));
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");
    // A link naming another digest of its own algorithm is corrupt storage, not an alias.
    let odd = Digest::sha256(b"odd");
    f.store
        .put(layout.layer_link(&other, &odd), f.layer_digest.to_string());
    let r = send(&f.app(), Method::HEAD, &format!("/v2/a-b/blobs/{odd}"), &[]);
    assert_eq!(r.status(), 500);
}
