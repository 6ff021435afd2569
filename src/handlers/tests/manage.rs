//! The management API: only the admin (or a token holding the repository's metadata/write) may
//! use it, JSON bodies only, and the admin user's own switches.

use http::Method;
use serde_json::json;

use super::*;

#[test]
fn management_needs_the_admin() {
    let f = Fixture::new();
    let app = f.app();
    let r = send(&app, Method::GET, "/api/v1/tokens", &[("anonymous", "1")]);
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").starts_with("Basic"));
    let password = token_with(
        &app,
        "team-admin",
        &["repositories/team/*/metadata/write", TEAM_PULL],
    );
    let creds = basic("team-admin", &password);
    let r = send(
        &app,
        Method::GET,
        "/api/v1/tokens",
        &[("authorization", &creds)],
    );
    assert_eq!(r.status(), 403);
    let r = send_body(
        &app,
        Method::PATCH,
        "/api/v1/repositories/team/app/service",
        &[("authorization", &creds), JSON[0]],
        br#"{"writeEnabled": false}"#,
    );
    assert_eq!(r.status(), 200);
    assert_eq!(json_body(&r)["writeEnabled"], false);
    let r = send_body(
        &app,
        Method::PATCH,
        "/api/v1/repositories/private",
        &[("authorization", &creds), JSON[0]],
        br#"{"writeEnabled": false}"#,
    );
    assert_eq!(r.status(), 403);
    // A body that is not declared JSON (a cross-site form a browser could send) is refused.
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/anonymous-pull",
        &[("content-type", "text/plain")],
        br#"{"enabled": true, "x": "="}"#,
    );
    assert_eq!(r.status(), 415);
    assert_eq!(
        manage(&app, Method::GET, "/api/v1/anonymous-pull", json!(null))["enabled"],
        false
    );
    // Tokens list without secrets; a scope map in use cannot be deleted.
    let tokens = manage(&app, Method::GET, "/api/v1/tokens", json!(null));
    assert!(!tokens.to_string().contains("sha256:"));
    let r = send(
        &app,
        Method::DELETE,
        "/api/v1/scope-maps/team-admin-map",
        &[],
    );
    assert_eq!(r.status(), 409);
    manage(
        &app,
        Method::DELETE,
        "/api/v1/tokens/team-admin",
        json!(null),
    );
    manage(
        &app,
        Method::DELETE,
        "/api/v1/scope-maps/team-admin-map",
        json!(null),
    );
    let r = send(&app, Method::GET, "/v2/", &[("authorization", &creds)]);
    assert_eq!(r.status(), 401, "a deleted token signs nobody in");
    // The admin user off: its generated password stops working, the deployment's one still
    // reaches the management API only.
    let generated = manage(
        &app,
        Method::POST,
        "/api/v1/admin/passwords",
        json!({"name": "password2"}),
    );
    let admin2 = basic("admin", generated["password"].as_str().unwrap());
    assert_eq!(
        send(&app, Method::GET, "/v2/", &[("authorization", &admin2)]).status(),
        200
    );
    manage(
        &app,
        Method::PATCH,
        "/api/v1/admin",
        json!({"enabled": false}),
    );
    assert_eq!(
        send(&app, Method::GET, "/v2/", &[("authorization", &admin2)]).status(),
        401
    );
    assert_eq!(get(&app, "/v2/").status(), 401);
    assert_eq!(send(&app, Method::GET, "/api/v1/admin", &[]).status(), 200);
    let refused_tokens = [
        (
            "/api/v1/tokens/admin",
            r#"{"scopeMap": "_repositories_pull"}"#,
            409,
            "no token may take the admin's name",
        ),
        (
            "/api/v1/tokens/newtoken",
            r#"{"scopeMap": "missing-map"}"#,
            400,
            "no such scope map",
        ),
        (
            "/api/v1/tokens/newtoken",
            r#"{"scopeMap": "x", "bogus": 1}"#,
            400,
            "an unknown field",
        ),
    ];
    for (path, body, status, why) in refused_tokens {
        let r = send_body(&app, Method::PUT, path, JSON, body.as_bytes());
        assert_eq!(r.status(), status, "PUT {path} {body}: {why}");
    }
}
