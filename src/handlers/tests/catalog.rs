//! The catalog: every repository in storage, sorted and paginated.

use serde_json::json;

use super::*;

#[test]
fn catalog_walks_and_paginates() {
    let f = Fixture::new();
    let app = f.app();
    let next = |last: &str| format!("</v2/_catalog?last={last}&n=2>; rel=\"next\"");
    let pages = [
        (
            "/v2/_catalog",
            json!([
                "a-b",
                "docker/v2s2",
                "library/busybox",
                "private",
                "team/app/service"
            ]),
            String::new(),
        ),
        (
            "/v2/_catalog?n=2",
            json!(["a-b", "docker/v2s2"]),
            next("docker%2Fv2s2"),
        ),
        (
            "/v2/_catalog?n=2&last=docker%2Fv2s2",
            json!(["library/busybox", "private"]),
            next("private"),
        ),
        (
            "/v2/_catalog?n=2&last=private",
            json!(["team/app/service"]),
            String::new(),
        ),
    ];
    for (uri, repositories, link) in pages {
        let r = get(&app, uri);
        assert_eq!(
            json_body(&r),
            json!({ "repositories": repositories }),
            "{uri}"
        );
        assert_eq!(header(&r, "link"), link, "{uri}");
    }
}
