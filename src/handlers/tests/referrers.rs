//! Referrers: the manifests whose subject is a digest, filtered by artifact type, per repository.

use http::Method;
use serde_json::json;

use super::*;

#[test]
fn referrers() {
    let f = Fixture::new();
    let (sbom, sbom_digest) = f.put_referrer();
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
        json!([sbom_descriptor(&sbom, &sbom_digest)])
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

/// A registry that serves the referrers API must not answer 404 to it (spec 1.1): an unknown
/// subject, or a repository with no manifests, has an empty index. Auth still applies.
#[test]
fn referrers_are_never_a_404() {
    let f = Fixture::new();
    let app = f.app();
    let unknown = Digest::sha256(b"no such subject");
    for repo in ["library/busybox", "no/such/repository"] {
        let r = get(&app, &format!("/v2/{repo}/referrers/{unknown}"));
        assert_eq!(r.status(), 200, "{repo}");
        assert_eq!(
            json_body(&r),
            json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}),
            "{repo}"
        );
    }
    let r = anonymous(
        &app,
        Method::GET,
        &format!("/v2/no/such/repository/referrers/{unknown}"),
    );
    assert_eq!(r.status(), 401);
}
