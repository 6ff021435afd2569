//! Tag lists: sorted, paginated with a `Link` to the next page, and refused for unknown
//! repositories and bad page sizes.

use serde_json::json;

use super::*;

#[test]
fn tags_paginate() {
    let f = Fixture::new();
    let app = f.app();
    let next =
        |last: &str| format!("</v2/library/busybox/tags/list?last={last}&n=2>; rel=\"next\"");
    let pages = [
        (
            "/v2/library/busybox/tags/list",
            json!(["1.0", "a", "b", "c", "latest"]),
            String::new(),
        ),
        (
            "/v2/library/busybox/tags/list?n=2",
            json!(["1.0", "a"]),
            next("a"),
        ),
        (
            "/v2/library/busybox/tags/list?n=2&last=a",
            json!(["b", "c"]),
            next("c"),
        ),
        (
            "/v2/library/busybox/tags/list?n=2&last=c",
            json!(["latest"]),
            String::new(),
        ),
    ];
    for (uri, tags, link) in pages {
        let r = get(&app, uri);
        assert_eq!(
            json_body(&r),
            json!({"name": "library/busybox", "tags": tags}),
            "{uri}"
        );
        assert_eq!(header(&r, "link"), link, "{uri}");
    }
    let refusals = [
        ("/v2/nope/tags/list", 404, "NAME_UNKNOWN"),
        (
            "/v2/library/busybox/tags/list?n=x",
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
    ];
    for (uri, status, code) in refusals {
        let r = get(&app, uri);
        assert_eq!(
            (r.status().as_u16(), error_code(&r).as_str()),
            (status, code),
            "{uri}"
        );
    }
}
