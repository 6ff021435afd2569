//! Access control end to end over the in-memory fixture: the token service, principals and scope
//! maps, anonymous pull, locks, network rules and the management API.

use http::{Method, Request};
use serde_json::{Value, json};

use super::*;
use crate::platform::ClientAddress;

const TEAM_PULL: &str = "repositories/team/*/content/read";
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

fn anonymous<P: Platform>(app: &App<P>, method: Method, uri: &str) -> Response<Vec<u8>> {
    send(
        app,
        method,
        uri,
        &[("anonymous", "1"), ("accept", OCI_ACCEPT)],
    )
}

fn as_bearer<P: Platform>(
    app: &App<P>,
    method: Method,
    uri: &str,
    token: &str,
) -> Response<Vec<u8>> {
    send(
        app,
        method,
        uri,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("accept", OCI_ACCEPT),
        ],
    )
}

/// `POST /oauth2/token` with a form, without credentials in a header.
fn post_token<P: Platform>(app: &App<P>, form: &[u8]) -> Response<Vec<u8>> {
    send_body(
        app,
        Method::POST,
        "/oauth2/token",
        &[("anonymous", "1")],
        form,
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn manage<P: Platform>(app: &App<P>, method: Method, path: &str, body: Value) -> Value {
    let r = send_body(app, method.clone(), path, JSON, body.to_string().as_bytes());
    assert!(
        r.status().is_success(),
        "{method} {path}: {} {}",
        r.status(),
        String::from_utf8_lossy(r.body())
    );
    if r.body().is_empty() {
        Value::Null
    } else {
        json_body(&r)
    }
}

/// Creates a scope map and a token on it; returns the token's password.
fn token_with<P: Platform>(app: &App<P>, name: &str, actions: &[&str]) -> String {
    manage(
        app,
        Method::PUT,
        &format!("/api/v1/scope-maps/{name}-map"),
        json!({ "actions": actions }),
    );
    let created = manage(
        app,
        Method::PUT,
        &format!("/api/v1/tokens/{name}"),
        json!({ "scopeMap": format!("{name}-map") }),
    );
    created["credentials"]["passwords"][0]["password"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A token from the token service for `scopes`, signed in as `authorization` (or anonymous).
fn fetch_token<P: Platform>(app: &App<P>, authorization: Option<&str>, scopes: &[&str]) -> Value {
    let mut uri = "/oauth2/token?service=registry-edge".to_owned();
    for s in scopes {
        uri.push_str(&format!(
            "&scope={}",
            s.replace('/', "%2F").replace(':', "%3A")
        ));
    }
    let r = match authorization {
        Some(a) => send(app, Method::GET, &uri, &[("authorization", a)]),
        None => anonymous(app, Method::GET, &uri),
    };
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    json_body(&r)
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

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
    assert!(
        json_body(&r)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid username or password")
    );
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
fn bearer_tokens_grant_what_was_asked_and_held() {
    let f = Fixture::new();
    let app = f.app();
    let password = token_with(
        &app,
        "team-reader",
        &[TEAM_PULL, "repositories/team/*/metadata/read"],
    );
    let creds = basic("team-reader", &password);
    let answer = fetch_token(
        &app,
        Some(&creds),
        &[
            "repository:team/app/service:pull,push",
            "repository:library/busybox:pull",
        ],
    );
    assert_eq!(answer["expires_in"], 300);
    assert_eq!(answer["token"], answer["access_token"]);
    assert!(
        answer["issued_at"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T")
    );
    assert!(answer.get("refresh_token").is_none());
    let token = answer["token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["sub"], "team-reader");
    assert_eq!(c["aud"], "registry-edge");
    assert_eq!(c["iss"], "registry-edge");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
    assert!(c["jti"].is_string() && c["nbf"].is_u64());
    assert_eq!(
        c["access"],
        json!([{"type": "repository", "name": "team/app/service", "actions": ["pull", "metadata_read"]}])
    );
    assert_eq!(
        as_bearer(
            &app,
            Method::GET,
            "/v2/team/app/service/manifests/v1",
            token
        )
        .status(),
        200
    );
    assert_eq!(
        as_bearer(&app, Method::GET, "/v2/team/app/service/tags/list", token).status(),
        200
    );
    // Repository A's token on repository B, and a write with a read token.
    let r = as_bearer(
        &app,
        Method::GET,
        "/v2/library/busybox/manifests/latest",
        token,
    );
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").contains(r#"error="insufficient_scope""#));
    let r = as_bearer(
        &app,
        Method::DELETE,
        &format!("/v2/team/app/service/manifests/{}", f.manifest_digest),
        token,
    );
    assert_eq!(r.status(), 401);
    // The same credentials as Basic: the same rules.
    let r = send(
        &app,
        Method::GET,
        "/v2/library/busybox/manifests/latest",
        &[("authorization", &creds)],
    );
    assert_eq!(r.status(), 401);
    assert!(
        json_body(&r)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("token team-reader may not content/read library/busybox")
    );
    // The catalog shows only what the token may see.
    let t = fetch_token(&app, Some(&creds), &["registry:catalog:*"]);
    let r = as_bearer(
        &app,
        Method::GET,
        "/v2/_catalog",
        t["token"].as_str().unwrap(),
    );
    assert_eq!(json_body(&r)["repositories"], json!(["team/app/service"]));
    let r = send(
        &app,
        Method::GET,
        "/v2/_catalog",
        &[("authorization", &creds)],
    );
    assert_eq!(json_body(&r)["repositories"], json!(["team/app/service"]));
    assert_eq!(
        json_body(&get(&app, "/v2/_catalog"))["repositories"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // A disabled token's access tokens stop at once, and work again when it is enabled.
    let pull = || {
        as_bearer(
            &app,
            Method::GET,
            "/v2/team/app/service/manifests/v1",
            token,
        )
    };
    let enable = |enabled: bool| {
        let path = "/api/v1/tokens/team-reader";
        manage(&app, Method::PATCH, path, json!({ "enabled": enabled }))
    };
    enable(false);
    let r = pull();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").contains("disabled or deleted"));
    enable(true);
    assert_eq!(pull().status(), 200);
    // An expired token.
    f.clock.advance(300 + crate::auth::jwt::LEEWAY_SECONDS + 1);
    let r = pull();
    assert_eq!(r.status(), 401);
    assert!(
        header(&r, "www-authenticate")
            .contains(r#"error="invalid_token",error_description="token has expired""#)
    );
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
    let r = as_bearer(
        &app,
        Method::GET,
        "/v2/library/busybox/manifests/latest",
        &wrong_aud,
    );
    assert_eq!(r.status(), 401);
    let other = crate::auth::jwt::TokenKeys::from_pem(
        &crate::auth::jwt::TokenKeys::generate_pem().unwrap(),
        "registry-edge",
    )
    .unwrap();
    let foreign = other
        .issue_access(&admin, "", access, "registry-edge", NOW, 300)
        .unwrap();
    let r = as_bearer(
        &app,
        Method::GET,
        "/v2/library/busybox/manifests/latest",
        &foreign,
    );
    assert_eq!(r.status(), 401);
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
fn anonymous_pull_by_pattern() {
    let f = Fixture::new();
    let app = f.app();
    manage(
        &app,
        Method::PUT,
        "/api/v1/anonymous-pull",
        json!({"repositories": ["team/*"]}),
    );
    assert_eq!(
        anonymous(&app, Method::GET, "/v2/team/app/service/manifests/v1").status(),
        200
    );
    assert_eq!(
        anonymous(&app, Method::GET, "/v2/library/busybox/manifests/latest").status(),
        401
    );
    assert_eq!(anonymous(&app, Method::GET, "/v2/").status(), 401);
    assert_eq!(
        anonymous(&app, Method::GET, "/v2/_catalog").status(),
        401,
        "anonymous callers never list"
    );
    let t = fetch_token(
        &app,
        None,
        &[
            "repository:team/app/service:pull,push",
            "repository:private:pull",
            "registry:catalog:*",
        ],
    );
    assert_eq!(
        claims(t["token"].as_str().unwrap())["access"],
        json!([{"type": "repository", "name": "team/app/service", "actions": ["pull", "metadata_read"]}])
    );
    assert!(t.get("refresh_token").is_none());
    // A private repository's blob through the public one: not linked there, so unknown.
    let r = anonymous(
        &app,
        Method::GET,
        &format!("/v2/team/app/service/blobs/{}", f.private_digest),
    );
    assert_eq!(r.status(), 404);
    // Anonymous callers never write.
    assert_eq!(
        anonymous(&app, Method::POST, "/v2/team/app/service/blobs/uploads/").status(),
        401
    );
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/anonymous-pull",
        JSON,
        br#"{"repositories": ["Bad Name"]}"#,
    );
    assert_eq!(r.status(), 400);
}

#[test]
fn locks_refuse_before_the_origin() {
    let f = with_origin(&[]);
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
        json_body(&r)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tag library/busybox:latest is locked: writeEnabled is false")
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
    assert_eq!(get(&app, "/v2/private/manifests/secret").status(), 403);
    assert_eq!(
        get(&app, &format!("/v2/private/blobs/{}", f.private_digest)).status(),
        403
    );
    assert_eq!(get(&app, "/v2/private/tags/list").status(), 403);
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
fn mounts_need_pull_on_the_source() {
    let f = with_origin(&[]);
    f.origin_answers(|_| {
        answer(
            202,
            &[("location", "/v2/team/app/service/blobs/uploads/u1")],
            b"",
        )
    });
    let app = f.app();
    let password = token_with(
        &app,
        "team-pusher",
        &[TEAM_PULL, "repositories/team/*/content/write"],
    );
    let creds = basic("team-pusher", &password);
    let uri = |from: &str| {
        format!(
            "/v2/team/app/service/blobs/uploads/?mount={}&from={from}",
            f.layer_digest
        )
    };
    let r = send(
        &app,
        Method::POST,
        &uri("private"),
        &[("authorization", &creds)],
    );
    assert_eq!(r.status(), 202);
    let r = send(
        &app,
        Method::POST,
        &uri("team/other"),
        &[("authorization", &creds)],
    );
    assert_eq!(r.status(), 202);
    let sent = f.origin.sent.borrow();
    let forwarded: Vec<&str> = sent
        .iter()
        .map(|(_, u, _, _)| u.as_str())
        .filter(|u| u.contains("uploads"))
        .collect();
    assert!(
        !forwarded[0].contains("mount") && !forwarded[0].contains("from"),
        "{}",
        forwarded[0]
    );
    assert!(
        forwarded[1].contains("mount=") && forwarded[1].contains("from=team%2Fother"),
        "{}",
        forwarded[1]
    );
}

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
    assert!(
        json_body(&r)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("192.0.2.1 is not allowed")
    );
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/network-rules",
        JSON,
        br#"{"defaultAction": "Deny", "ipRules": ["10.0.0.0/99"]}"#,
    );
    assert_eq!(r.status(), 400);
}

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
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/tokens/admin",
        JSON,
        br#"{"scopeMap": "_repositories_pull"}"#,
    );
    assert_eq!(r.status(), 409, "no token may take the admin's name");
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/tokens/newtoken",
        JSON,
        br#"{"scopeMap": "missing-map"}"#,
    );
    assert_eq!(r.status(), 400);
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/tokens/newtoken",
        JSON,
        br#"{"scopeMap": "x", "bogus": 1}"#,
    );
    assert_eq!(r.status(), 400);
}

#[test]
fn a_manifest_lock_covers_every_way_to_the_manifest() {
    let f = with_origin(&[]);
    let (_, sbom_digest) = put_referrer(&f);
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

/// Generated requests against every write route, through the whole App, signed in as a token that
/// may push and pull `team/*` only. Whatever the parser accepts, what reaches the origin carries
/// only what authorization saw: the path's repository (one the token may push to), a mount source
/// the token may pull, the session parameters the origin handed out, and parsed headers.
#[test]
fn nothing_reaches_the_origin_that_authorization_did_not_see() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let f = with_origin(&[]);
    f.origin_answers(|r| {
        let path = r.uri().path().to_owned();
        match r.method().as_str() {
            "POST" => answer(
                202,
                &[
                    ("location", &format!("{path}u-prop?_state=handed-out")),
                    ("range", "0-0"),
                ],
                b"",
            ),
            "PATCH" => answer(
                202,
                &[
                    ("location", &format!("{path}?_state=handed-out")),
                    ("range", "0-9"),
                ],
                b"",
            ),
            "GET" => answer(204, &[("range", "0-9")], b""),
            "PUT" => answer(201, &[], b""),
            _ => answer(202, &[], b""),
        }
    });
    let app = f.app();
    let password = token_with(
        &app,
        "prop-pusher",
        &[
            TEAM_PULL,
            "repositories/team/*/content/write",
            "repositories/team/*/content/delete",
        ],
    );
    let creds = basic("prop-pusher", &password);
    let names = [
        "team/app/service",
        "team/other",
        "private",
        "library/busybox",
    ];
    let digests = [
        f.layer_digest.to_string(),
        f.private_digest.to_string(),
        f.manifest_digest.to_string(),
        "sha256:zz".to_owned(),
    ];
    let values: Vec<String> = digests
        .iter()
        .cloned()
        .chain(
            [
                "team/other",
                "private",
                "library/busybox",
                "handed-out",
                "evil",
                "0",
            ]
            .map(String::from),
        )
        .collect();
    let keys = [
        "digest",
        "mount",
        "from",
        "_state",
        "edge_sig",
        "edge_offset",
        "tag",
        "x",
    ];
    let sealed: Vec<String> = names
        .iter()
        .map(|n| {
            let session = crate::handlers::uploads::Session {
                origin_params: vec![("_state".into(), "handed-out".into())],
                offset: Some(0),
            };
            app.sealed_path(&n.parse().unwrap(), "u-prop", &session)
        })
        .collect();
    let headers: [(&str, &str); 9] = [
        ("content-type", "application/octet-stream"),
        ("content-type", "a/b\"x"),
        ("content-length", "10"),
        ("content-length", "ten"),
        ("content-range", "0-9"),
        ("content-range", "5-9"),
        ("x-forwarded-for", "10.0.0.1"),
        ("user-agent", "client/1"),
        ("cookie", "session=1"),
    ];

    let request = (
        0..names.len(),
        0..10usize,
        proptest::collection::vec((0..keys.len(), 0..values.len()), 0..5),
        proptest::collection::vec(0..headers.len(), 0..4),
    );
    // A fixed seed: the same 400 requests on every run, so the coverage floor below holds.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 400,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    runner
        .run(&request, |(n, kind, pairs, hs)| {
            let name = names[n];
            let extra: Vec<(&str, &str)> = pairs
                .iter()
                .map(|&(k, v)| (keys[k], values[v].as_str()))
                .collect();
            let extra_query = crate::query::encode(extra.iter().copied()).unwrap_or_default();
            let join = |base: &str| {
                if extra_query.is_empty() {
                    base.to_owned()
                } else if base.contains('?') {
                    format!("{base}&{extra_query}")
                } else {
                    format!("{base}?{extra_query}")
                }
            };
            let (method, uri, body) = match kind {
                0 => (
                    Method::POST,
                    join(&format!("/v2/{name}/blobs/uploads/")),
                    Vec::new(),
                ),
                1 => (Method::PATCH, join(&sealed[n]), b"0123456789".to_vec()),
                2 => (Method::PUT, join(&sealed[n]), Vec::new()),
                3 => (Method::GET, join(&sealed[n]), Vec::new()),
                4 => (Method::DELETE, join(&sealed[n]), Vec::new()),
                5 => (
                    Method::PATCH,
                    join(&format!("/v2/{name}/blobs/uploads/u-prop")),
                    Vec::new(),
                ),
                6 => (
                    Method::PUT,
                    join(&format!("/v2/{name}/manifests/latest")),
                    f.manifest.clone(),
                ),
                7 => (
                    Method::DELETE,
                    join(&format!("/v2/{name}/blobs/{}", f.layer_digest)),
                    Vec::new(),
                ),
                // Mounts, from each source, with whatever else the generator adds (a second
                // `from`, a `digest`...).
                _ => (
                    Method::POST,
                    join(&format!(
                        "/v2/{name}/blobs/uploads/?mount={}&from={}",
                        digests[pairs.len() % 3],
                        names[(n + pairs.len()) % names.len()]
                    )),
                    Vec::new(),
                ),
            };
            let mut sent_headers: Vec<(&str, &str)> = hs.iter().map(|&h| headers[h]).collect();
            sent_headers.push(("authorization", &creds));
            let before = f.origin.sent.borrow().len();
            let r = send_body(&app, method.clone(), &uri, &sent_headers, &body);
            prop_assert!(
                !r.status().is_server_error(),
                "{method} {uri}: {}",
                r.status()
            );
            for (m, url, h, _) in f.origin.sent.borrow()[before..].iter() {
                let url = url::Url::parse(url).unwrap();
                let route = crate::route::Route::parse(url.path())
                    .map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
                let forwarded = route.name().unwrap().as_str();
                prop_assert_eq!(forwarded, name, "the path's repository is the one checked");
                prop_assert!(
                    name.starts_with("team/"),
                    "{m} {url}: not the token's to push"
                );
                let q = crate::query::Query::parse(url.query());
                let allowed: &[&str] = match (m.as_str(), &route) {
                    ("POST", crate::route::Route::BlobUploads { .. }) => {
                        &["digest", "mount", "from"]
                    }
                    ("PUT", crate::route::Route::BlobUpload { .. }) => &["_state", "digest"],
                    (_, crate::route::Route::BlobUpload { .. }) => &["_state"],
                    _ => &[],
                };
                for (k, v) in q.pairs() {
                    prop_assert!(allowed.contains(&k.as_str()), "{m} {url}: {k} forwarded");
                    prop_assert!(q.single(k).is_ok(), "{m} {url}: {k} twice");
                    if k == "_state" {
                        prop_assert_eq!(v, "handed-out", "only what the origin handed out");
                    }
                }
                if let Some(from) = q.single("from").unwrap() {
                    prop_assert!(q.contains("mount"));
                    prop_assert!(from.starts_with("team/"), "{url}: mount from {from}");
                }
                for (header_name, value) in h {
                    prop_assert!(
                        ["content-type", "content-length", "content-range"]
                            .contains(&header_name.as_str()),
                        "{m} {url}: header {header_name} forwarded"
                    );
                    prop_assert_eq!(h.get_all(header_name).iter().count(), 1);
                    if header_name == "content-length" {
                        prop_assert!(value.to_str().unwrap().parse::<u64>().is_ok());
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    // The generator reached the origin, or the property says nothing.
    assert!(
        f.origin.sent.borrow().len() > 50,
        "{}",
        f.origin.sent.borrow().len()
    );
}

/// Generated token-service queries and management bodies: never a 5xx, and every refusal is OCI
/// error JSON.
#[test]
fn token_queries_and_management_bodies_parse_or_refuse() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let f = Fixture::new();
    let app = f.app();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let refusal_is_oci = |r: &Response<Vec<u8>>| -> bool {
        r.status().is_success()
            || (r.status().is_client_error()
                && serde_json::from_slice::<Value>(r.body())
                    .is_ok_and(|b| b["errors"][0]["code"].is_string()))
    };
    let query = "((service|scope|offline_token|grant_type|account|client_id)=[a-z0-9:/,*%-]{0,20}&?){0,6}|.{0,50}";
    runner
        .run(&query, |q| {
            let uri = format!("/oauth2/token?{q}");
            // A URI the http types refuse never reaches the core (the adapter answers 400).
            if http::Uri::try_from(uri.as_str()).is_ok() {
                let r = send(&app, Method::GET, &uri, &[]);
                prop_assert!(refusal_is_oci(&r), "{q}: {}", r.status());
            }
            let r = post_token(&app, q.as_bytes());
            prop_assert!(refusal_is_oci(&r), "POST {q}: {}", r.status());
            Ok(())
        })
        .unwrap();
    let field = prop_oneof![
        Just("enabled"),
        Just("repositories"),
        Just("defaultAction"),
        Just("default_action"),
        Just("ipRules"),
        Just("readEnabled"),
        Just("scopeMap"),
        Just("actions"),
        Just("x"),
    ];
    let value = prop_oneof![
        Just(json!(true)),
        Just(json!("Deny")),
        Just(json!(["10.0.0.0/8"])),
        Just(json!(["repositories/a/content/read"])),
        Just(json!(["Bad Name"])),
        Just(json!(null)),
        Just(json!(7)),
        Just(json!({"nested": 1})),
    ];
    let endpoint = prop_oneof![
        Just((Method::PUT, "/api/v1/anonymous-pull")),
        Just((Method::PUT, "/api/v1/network-rules")),
        Just((Method::PATCH, "/api/v1/repositories/team/app/service")),
        Just((Method::PATCH, "/api/v1/admin")),
        Just((Method::PUT, "/api/v1/tokens/fuzzed-token")),
        Just((Method::PUT, "/api/v1/scope-maps/fuzzed-map")),
    ];
    let body = (
        endpoint,
        proptest::collection::btree_map(field, value, 0..4),
        any::<bool>(),
    );
    runner
        .run(&body, |((method, path), fields, garbage)| {
            let bytes = if garbage {
                b"{\"enabled\": tru".to_vec()
            } else {
                serde_json::to_vec(&fields).unwrap()
            };
            let r = send_body(&app, method.clone(), path, JSON, &bytes);
            prop_assert!(
                refusal_is_oci(&r),
                "{method} {path} {fields:?}: {}",
                r.status()
            );
            // Whatever was sent, the admin can still manage the registry and the network rules
            // were never left open by a misspelt field.
            if fields.contains_key("default_action") {
                prop_assert!(!r.status().is_success());
            }
            Ok(())
        })
        .unwrap();
}
