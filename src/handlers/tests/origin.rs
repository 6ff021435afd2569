//! The edge and its origin: the origin's errors passed on without its internals, an unreachable
//! or slow origin, and the credentials the edge signs in to the origin with.

use http::Method;
use serde_json::Value;

use super::*;

#[test]
fn origin_errors_keep_their_codes_and_lose_internals() {
    let f = Fixture::new().with_origin();
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
    let f = Fixture::new().with_origin();
    let cases = [
        (
            OriginError::Unreachable("connection refused".into()),
            502,
            "UPSTREAM_UNREACHABLE",
            "unreachable",
        ),
        (OriginError::Timeout, 504, "UPSTREAM_TIMEOUT", "30 s"),
    ];
    for (error, status, code, message) in cases {
        f.origin_answers(move |_| Err(error.clone()));
        let r = send(
            &f.app(),
            Method::POST,
            "/v2/library/busybox/blobs/uploads/",
            &[],
        );
        assert_eq!(
            (r.status().as_u16(), error_code(&r).as_str()),
            (status, code),
            "{code}"
        );
        assert!(
            error_message(&r).contains(message),
            "{code}: {}",
            error_message(&r)
        );
    }
}

#[test]
fn the_edge_answers_the_origins_bearer_challenge() {
    let f = Fixture::new()
        .with_origin()
        .with(&[("ORIGIN_USERNAME", "edge"), ("ORIGIN_PASSWORD", "pw")]);
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
    let f = Fixture::new()
        .with_origin()
        .with(&[("ORIGIN_USERNAME", "edge"), ("ORIGIN_PASSWORD", "wrong")]);
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
    assert!(error_message(&r).contains("ORIGIN_USERNAME"));
    assert!(header(&r, "www-authenticate").is_empty());
}
