//! Uploads: forwarded to the origin, their session URLs sealed and brought back to the edge,
//! offsets checked at the edge, and forged or unsealable sessions refused.

use http::Method;

use super::*;

/// The edge's own host, for a request sent to an absolute URL.
const EDGE: &str = "https://edge.example";

#[test]
fn uploads_are_forwarded_and_come_back_to_the_edge() {
    let f = Fixture::new().with_origin();
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

/// distribution answers a blob it created (a finished upload, a monolithic one) with the
/// canonical sha256 digest, also for a blob pushed as sha512; the client gets the digest it
/// named, which the repository now links, and the origin was asked for that digest.
#[test]
fn a_created_blob_names_the_clients_digest() {
    let f = Fixture::new().with_origin();
    let canonical = Digest::sha256(b"sha512 content");
    let location = format!("http://127.0.0.1:5000/v2/library/busybox/blobs/{canonical}");
    let c = canonical.to_string();
    f.origin_answers(move |_| {
        answer(
            201,
            &[("location", &location), ("docker-content-digest", &c)],
            b"",
        )
    });
    let app = f.app();
    let alias = sha512(b"sha512 content");
    let session = sealed(&app, "library/busybox", "u1");
    let cases = [
        ("finished", Method::PUT, format!("{session}&digest={alias}")),
        (
            "monolithic",
            Method::POST,
            format!("/v2/library/busybox/blobs/uploads/?digest={alias}"),
        ),
    ];
    for (i, (what, method, uri)) in cases.into_iter().enumerate() {
        let r = send_body(
            &app,
            method,
            &uri,
            &[("content-type", "application/octet-stream")],
            b"sha512 content",
        );
        assert_eq!(
            r.status(),
            201,
            "{what}: {}",
            String::from_utf8_lossy(r.body())
        );
        assert_eq!(
            header(&r, "docker-content-digest"),
            alias.to_string(),
            "{what}"
        );
        assert_eq!(
            header(&r, "location"),
            format!("/v2/library/busybox/blobs/{alias}"),
            "{what}"
        );
        let sent = f.origin.sent.borrow()[i].1.clone();
        let asked = format!("digest={}", alias.to_string().replace(':', "%3A"));
        assert!(sent.contains(&asked), "{what}: {sent}");
    }
}
