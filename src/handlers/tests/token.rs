//! Signing in and the token service: the challenge an anonymous request gets, credentials that
//! do not parse, tokens the edge did not issue for itself, refresh tokens, and tokens that end
//! with their record.

use http::Method;
use serde_json::json;

use super::*;

#[test]
fn anonymous_requests_are_challenged() {
    let f = Fixture::new();
    let app = f.app();
    let r = anonymous(&app, Method::GET, "http://edge.test/v2/");
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "www-authenticate"),
        r#"Bearer realm="http://edge.test/oauth2/token",service="registry-edge""#
    );
    let r = anonymous(&app, Method::GET, "/v2/library/busybox/manifests/latest");
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    assert!(header(&r, "www-authenticate").ends_with(r#"scope="repository:library/busybox:pull""#));
    assert_eq!(json_body(&r)["errors"][0]["detail"][0]["Action"], "pull");
    let r = anonymous(&app, Method::POST, "/v2/library/busybox/blobs/uploads/");
    assert!(
        header(&r, "www-authenticate").contains(r#"scope="repository:library/busybox:pull,push""#)
    );
    let r = anonymous(&app, Method::GET, "/v2/_catalog");
    assert!(header(&r, "www-authenticate").contains(r#"scope="registry:catalog:*""#));
    // The admin's Basic credentials work on /v2/ directly; wrong ones are a 401.
    assert_eq!(get(&app, "/v2/").status(), 200);
    let r = send(
        &app,
        Method::GET,
        "/v2/",
        &[("authorization", &basic("admin", "wrong"))],
    );
    assert_eq!(r.status(), 401);
    assert!(error_message(&r).contains("invalid username or password"));
}

#[test]
fn malformed_authorization_is_refused_not_anonymous() {
    let f = Fixture::new();
    let app = f.app();
    manage(
        &app,
        Method::PUT,
        "/api/v1/anonymous-pull",
        json!({"enabled": true}),
    );
    assert_eq!(
        anonymous(&app, Method::GET, "/v2/library/busybox/tags/list").status(),
        200
    );
    for bad in [
        "Basic !!",
        "Basic dXNlcg==",
        "Bearer a\"b",
        "Digest x",
        "Bearer",
        "Bearer not.a.jwt",
    ] {
        let r = send(
            &app,
            Method::GET,
            "/v2/library/busybox/tags/list",
            &[("authorization", bad)],
        );
        assert_eq!(r.status(), 401, "{bad}");
        assert_eq!(error_code(&r), "UNAUTHORIZED");
    }
}

#[test]
fn wrong_audience_and_foreign_keys_are_refused() {
    let f = Fixture::new();
    let app = f.app();
    let access = vec![crate::auth::AccessEntry {
        kind: crate::auth::ResourceType::Repository,
        name: "library/busybox".into(),
        actions: vec!["pull".into()],
    }];
    let admin = crate::auth::Principal::Admin("admin".into());
    let keys = &f.config.auth.keys;
    let wrong_aud = keys
        .issue_access(&admin, "", access.clone(), "elsewhere", NOW, 300)
        .unwrap();
    let other = crate::auth::jwt::TokenKeys::from_pem(
        &crate::auth::jwt::TokenKeys::generate_pem().unwrap(),
        "registry-edge",
    )
    .unwrap();
    let foreign = other
        .issue_access(&admin, "", access, "registry-edge", NOW, 300)
        .unwrap();
    for (what, token) in [("another audience", wrong_aud), ("a foreign key", foreign)] {
        let r = as_bearer(
            &app,
            Method::GET,
            "/v2/library/busybox/manifests/latest",
            &token,
        );
        assert_eq!(r.status(), 401, "{what}");
    }
}

#[test]
fn refresh_tokens_end_with_their_token() {
    let f = Fixture::new();
    let app = f.app();
    let password = token_with(&app, "ci-puller", &["repositories/*/content/read"]);
    let form = format!(
        "grant_type=password&username=ci-puller&password={password}&service=registry-edge&client_id=docker&access_type=offline"
    );
    let r = post_token(&app, form.as_bytes());
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    let refresh = json_body(&r)["refresh_token"].as_str().unwrap().to_owned();
    let refresh_form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=registry-edge&scope=repository%3Aprivate%3Apull"
    );
    let r = post_token(&app, refresh_form.as_bytes());
    assert_eq!(r.status(), 200);
    let token = json_body(&r)["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&token)["access"][0]["name"], "private");
    // A refresh token is not an access token.
    assert_eq!(
        as_bearer(&app, Method::GET, "/v2/private/manifests/secret", &refresh).status(),
        401
    );
    // Disabled: its refresh token no longer works.
    manage(
        &app,
        Method::PATCH,
        "/api/v1/tokens/ci-puller",
        json!({"enabled": false}),
    );
    let r = post_token(&app, refresh_form.as_bytes());
    assert_eq!(r.status(), 401);
    // Re-enabled, but its password regenerated: still refused.
    manage(
        &app,
        Method::PATCH,
        "/api/v1/tokens/ci-puller",
        json!({"enabled": true}),
    );
    let r = post_token(&app, refresh_form.as_bytes());
    assert_eq!(r.status(), 200);
    manage(
        &app,
        Method::POST,
        "/api/v1/tokens/ci-puller/passwords",
        json!({"name": "password1"}),
    );
    let r = post_token(&app, refresh_form.as_bytes());
    assert_eq!(r.status(), 401);
    // Wrong password; unknown grant type.
    let bad = "grant_type=password&username=ci-puller&password=nope&service=registry-edge";
    let r = post_token(&app, bad.as_bytes());
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    let r = post_token(&app, b"grant_type=client_credentials");
    assert_eq!(r.status(), 400);
    let r = anonymous(&app, Method::GET, "/oauth2/token?service=other");
    assert_eq!(r.status(), 400);
    let r = anonymous(
        &app,
        Method::GET,
        "/oauth2/token?grant_type=password&username=ci-puller&password=x",
    );
    assert_eq!(r.status(), 400, "no passwords in URLs");
}

#[test]
fn tokens_never_outlive_their_record_or_grant_beyond_it() {
    let f = Fixture::new();
    let app = f.app();
    let uri = "/v2/library/busybox/manifests/latest";
    let password = token_with(&app, "reviver", &["repositories/*/content/read"]);
    let creds = basic("reviver", &password);
    let issued = fetch_token(&app, Some(&creds), &["repository:library/busybox:pull"]);
    let access = issued["token"].as_str().unwrap().to_owned();
    let form = format!(
        "grant_type=password&username=reviver&password={password}&service=registry-edge&access_type=offline"
    );
    let refresh = json_body(&post_token(&app, form.as_bytes()))["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh_form =
        format!("grant_type=refresh_token&refresh_token={refresh}&service=registry-edge");
    // Controls.
    assert_eq!(as_bearer(&app, Method::GET, uri, &access).status(), 200);
    assert_eq!(post_token(&app, refresh_form.as_bytes()).status(), 200);

    // Deleted and created again under the same name, on a map that grants the same: the old
    // token's access and refresh tokens stay dead.
    manage(&app, Method::DELETE, "/api/v1/tokens/reviver", json!(null));
    manage(
        &app,
        Method::PUT,
        "/api/v1/tokens/reviver",
        json!({"scopeMap": "reviver-map"}),
    );
    let r = as_bearer(&app, Method::GET, uri, &access);
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").contains("invalid_token"));
    assert_eq!(post_token(&app, refresh_form.as_bytes()).status(), 401);

    // Narrowing the scope map ends what issued tokens granted beyond it.
    let password = token_with(&app, "narrowed", &["repositories/*/content/read"]);
    let creds = basic("narrowed", &password);
    let issued = fetch_token(
        &app,
        Some(&creds),
        &["repository:library/busybox:pull", "repository:private:pull"],
    );
    let access = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(as_bearer(&app, Method::GET, uri, &access).status(), 200);
    let private = "/v2/private/manifests/secret";
    assert_eq!(as_bearer(&app, Method::GET, private, &access).status(), 200);
    manage(
        &app,
        Method::PUT,
        "/api/v1/scope-maps/narrowed-map",
        json!({"actions": ["repositories/library/*/content/read"]}),
    );
    assert_eq!(as_bearer(&app, Method::GET, uri, &access).status(), 200);
    let r = as_bearer(&app, Method::GET, private, &access);
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").contains("insufficient_scope"));
}
