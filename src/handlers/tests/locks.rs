//! Repository, tag and manifest locks: refused before the origin, on every way to a manifest.

use http::Method;
use serde_json::json;

use super::*;

#[test]
fn locks_refuse_before_the_origin() {
    let f = Fixture::new().with_origin();
    let app = f.app();
    manage(
        &app,
        Method::PATCH,
        "/api/v1/repositories/library/busybox?tag=latest",
        json!({"writeEnabled": false, "listEnabled": false, "deleteEnabled": false}),
    );
    let r = send_body(
        &app,
        Method::PUT,
        "/v2/library/busybox/manifests/latest",
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &f.manifest,
    );
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r), "DENIED");
    assert!(
        error_message(&r).contains("tag library/busybox:latest is locked: writeEnabled is false")
    );
    let r = send(
        &app,
        Method::DELETE,
        "/v2/library/busybox/manifests/latest",
        &[],
    );
    assert_eq!(r.status(), 403);
    let tags = json_body(&get(&app, "/v2/library/busybox/tags/list"));
    assert!(!tags["tags"].as_array().unwrap().contains(&json!("latest")));
    assert_eq!(
        get(&app, "/v2/library/busybox/manifests/latest").status(),
        200
    );
    manage(
        &app,
        Method::PATCH,
        &format!(
            "/api/v1/repositories/library/busybox?manifest={}",
            f.manifest_digest
        ),
        json!({"deleteEnabled": false}),
    );
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v2/library/busybox/manifests/{}", f.manifest_digest),
        &[],
    );
    assert_eq!(r.status(), 403);
    manage(
        &app,
        Method::PATCH,
        "/api/v1/repositories/private",
        json!({"readEnabled": false, "listEnabled": false, "writeEnabled": false}),
    );
    for uri in [
        "/v2/private/manifests/secret".to_owned(),
        format!("/v2/private/blobs/{}", f.private_digest),
        "/v2/private/tags/list".to_owned(),
    ] {
        assert_eq!(get(&app, &uri).status(), 403, "{uri}");
    }
    assert_eq!(
        send(&app, Method::POST, "/v2/private/blobs/uploads/", &[]).status(),
        403
    );
    assert!(
        f.origin.sent.borrow().is_empty(),
        "nothing reached the origin"
    );
    let all = manage(&app, Method::GET, "/api/v1/repositories", json!(null));
    assert!(
        all.get("private").is_some(),
        "listed (and the listing cached)"
    );
    // Unlocked again.
    manage(
        &app,
        Method::DELETE,
        "/api/v1/repositories/private",
        json!(null),
    );
    assert_eq!(get(&app, "/v2/private/manifests/secret").status(), 200);
    let all = manage(&app, Method::GET, "/api/v1/repositories", json!(null));
    assert!(all.get("library/busybox").is_some() && all.get("private").is_none());
}

#[test]
fn a_manifest_lock_covers_every_way_to_the_manifest() {
    let f = Fixture::new().with_origin();
    let (_, sbom_digest) = f.put_referrer();
    let app = f.app();
    let d = f.manifest_digest.to_string();
    let by_tag = "/v2/library/busybox/manifests/latest";
    let by_digest = format!("/v2/library/busybox/manifests/{d}");
    let as_blob = format!("/v2/library/busybox/blobs/{d}");
    let referrers = format!("/v2/library/busybox/referrers/{d}");
    // Controls: unlocked, each way works.
    for uri in [by_tag, &by_digest, &referrers] {
        assert_eq!(get(&app, uri).status(), 200, "{uri}");
    }
    assert_eq!(get(&app, &as_blob).status(), 307);
    assert_eq!(
        json_body(&get(&app, &referrers))["manifests"][0]["digest"],
        sbom_digest.to_string()
    );
    manage(
        &app,
        Method::PATCH,
        &format!("/api/v1/repositories/library/busybox?manifest={d}"),
        json!({"readEnabled": false}),
    );
    let head = send(&app, Method::HEAD, by_tag, &[("accept", OCI_ACCEPT)]);
    for r in [
        get(&app, by_tag),
        head,
        get(&app, &by_digest),
        get(&app, &as_blob),
        get(&app, &referrers),
    ] {
        assert_eq!(r.status(), 403);
        assert!(r.body().is_empty() || error_code(&r) == "DENIED");
    }
    assert!(
        String::from_utf8_lossy(get(&app, by_tag).body()).contains(&format!(
            "manifest library/busybox@{d} is locked: readEnabled is false"
        ))
    );
    // Nor is it mounted out of the repository (its bytes are linked there as a blob too): the
    // upload starts plainly, with no mount forwarded.
    f.origin_answers(|_| answer(202, &[("location", "/v2/team/x/blobs/uploads/u1")], b""));
    let r = send(
        &app,
        Method::POST,
        &format!("/v2/team/x/blobs/uploads/?mount={d}&from=library/busybox"),
        &[],
    );
    assert_eq!(r.status(), 202);
    let forwarded = f.origin.sent.borrow().last().unwrap().1.clone();
    assert!(!forwarded.contains("mount"), "{forwarded}");
    f.origin.sent.borrow_mut().clear();
    // The same manifest in another repository is that repository's business.
    assert_eq!(get(&app, "/v2/team/app/service/manifests/v1").status(), 200);
    // A read-locked referrer is left out of its subject's referrers list.
    manage(
        &app,
        Method::DELETE,
        &format!("/api/v1/repositories/library/busybox?manifest={d}"),
        json!(null),
    );
    assert_eq!(get(&app, by_tag).status(), 200);
    manage(
        &app,
        Method::PATCH,
        &format!("/api/v1/repositories/library/busybox?manifest={sbom_digest}"),
        json!({"readEnabled": false}),
    );
    assert_eq!(json_body(&get(&app, &referrers))["manifests"], json!([]));
    assert!(f.origin.sent.borrow().is_empty());
}

/// A sha512 alias (distribution's link to the canonical sha256 digest) never reaches what a lock
/// on the manifest closes, and a lock set on an alias is kept under the canonical digest, so it
/// covers both ways to the content.
#[test]
fn locks_cover_sha512_aliases() {
    let f = Fixture::new().with_origin();
    let layout = Layout::new(ROOT);
    let busybox: crate::reference::Name = "library/busybox".parse().unwrap();
    let alias = sha512(&f.manifest);
    for key in [
        layout.manifest_revision_link(&busybox, &alias),
        layout.layer_link(&busybox, &alias),
    ] {
        f.store.put(key, f.manifest_digest.to_string());
    }
    let app = f.app();
    let paths = [
        format!("/v2/library/busybox/manifests/{alias}"),
        format!("/v2/library/busybox/blobs/{alias}"),
        format!("/v2/library/busybox/manifests/{}", f.manifest_digest),
        format!("/v2/library/busybox/blobs/{}", f.manifest_digest),
    ];
    for path in &paths {
        let status = get(&app, path).status();
        assert!(
            status == 200 || status == 307,
            "{path} before the lock: {status}"
        );
    }
    // Locked by its canonical digest: closed through the alias too.
    let lock = |digest: &Digest, read: bool| {
        manage(
            &app,
            Method::PATCH,
            &format!("/api/v1/repositories/library/busybox?manifest={digest}"),
            json!({ "readEnabled": read }),
        )
    };
    lock(&f.manifest_digest, false);
    for path in &paths {
        let r = get(&app, path);
        assert_eq!(
            r.status(),
            403,
            "{path} under a lock on the canonical digest"
        );
        assert_eq!(error_code(&r), "DENIED", "{path}");
    }
    // A mount of the alias from the locked repository is a plain upload.
    f.origin_answers(|_| {
        answer(
            202,
            &[("location", "/v2/team/app/service/blobs/uploads/u1")],
            b"",
        )
    });
    let r = send(
        &app,
        Method::POST,
        &format!("/v2/team/app/service/blobs/uploads/?mount={alias}&from=library/busybox"),
        &[],
    );
    assert_eq!(r.status(), 202);
    assert!(!f.origin.sent.borrow()[0].1.contains("mount"));
    // Unlocked, then locked by the alias: stored under the canonical digest, closing both.
    lock(&f.manifest_digest, true);
    let view = lock(&alias, false);
    assert_eq!(view["readEnabled"], false);
    for path in &paths {
        assert_eq!(
            get(&app, path).status(),
            403,
            "{path} under a lock set on the alias"
        );
    }
    let all = manage(
        &app,
        Method::GET,
        "/api/v1/repositories/library/busybox",
        json!(null),
    );
    assert!(
        all.to_string().contains(&f.manifest_digest.to_string())
            && !all.to_string().contains(&alias.to_string()),
        "{all}"
    );
}
