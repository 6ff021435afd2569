//! Events: where the request arrived.

use http::{Method, Request};

use super::*;

#[test]
fn events_say_where_the_request_arrived() {
    let f = Fixture::new().with_origin();
    f.origin_answers(|_| answer(202, &[], b""));
    let app = f.app();
    let mut request = Request::builder()
        .method(Method::DELETE)
        .uri(format!(
            "/v2/library/busybox/manifests/{}",
            f.manifest_digest
        ))
        .header("authorization", ADMIN_BASIC)
        .body(Vec::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(crate::platform::RequestLocation {
            colo: Some("SYD".into()),
            ..Default::default()
        });
    let r = futures::executor::block_on(app.handle(request));
    assert_eq!(r.status(), 202);
    assert_eq!(f.events.0.borrow()[0].colo.as_deref(), Some("SYD"));
    // Without a location, the field is left out of the event's JSON.
    let e = crate::events::Event {
        colo: None,
        ..f.events.0.borrow()[0].clone()
    };
    assert!(serde_json::to_value(&e).unwrap().get("colo").is_none());
}
