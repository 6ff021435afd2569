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
