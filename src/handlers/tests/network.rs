//! Network rules: requests from addresses the rules do not allow are refused.

use http::{Method, Request};
use serde_json::json;

use super::*;
use crate::platform::ClientAddress;

#[test]
fn network_rules_refuse_other_addresses() {
    let f = Fixture::new();
    let app = f.app();
    manage(
        &app,
        Method::PUT,
        "/api/v1/network-rules",
        json!({"defaultAction": "Deny", "ipRules": ["10.0.0.0/8"]}),
    );
    let from = |ip: &str| {
        let mut request = Request::builder()
            .uri("/v2/library/busybox/manifests/latest")
            .header("authorization", ADMIN_BASIC)
            .header("accept", OCI_ACCEPT)
            .body(Vec::new())
            .unwrap();
        request
            .extensions_mut()
            .insert(ClientAddress(ip.parse().unwrap()));
        futures::executor::block_on(app.handle(request))
    };
    assert_eq!(from("10.1.2.3").status(), 200);
    let r = from("192.0.2.1");
    assert_eq!(r.status(), 403);
    assert!(error_message(&r).contains("192.0.2.1 is not allowed"));
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/network-rules",
        JSON,
        br#"{"defaultAction": "Deny", "ipRules": ["10.0.0.0/99"]}"#,
    );
    assert_eq!(r.status(), 400);
}
