//! The API base, `/v2/`.

use super::*;

#[test]
fn version_check() {
    let f = Fixture::new();
    let r = get(&f.app(), "/v2/");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), b"{}");
    assert_headers(
        &r,
        &[
            ("docker-distribution-api-version", "registry/2.0"),
            ("content-type", "application/json; charset=utf-8"),
        ],
    );
}
