//! Writes the edge refuses itself, before any origin sees them: every write when no origin is
//! configured, and malformed ones when one is.

use http::Method;

use super::*;

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

#[test]
fn malformed_writes_never_reach_the_origin() {
    let f = Fixture::new().with_origin();
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
    let big = vec![b' '; crate::handlers::manifests::MANIFEST_MAX_BYTES + 1];
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
