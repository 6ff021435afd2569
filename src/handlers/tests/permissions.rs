//! What a principal may do: a bearer token's grant (what was asked and what its scope map holds),
//! anonymous pull by pattern, and mounts that need pull on their source.

use http::Method;
use serde_json::json;

use super::*;

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
    for uri in [
        "/v2/team/app/service/manifests/v1",
        "/v2/team/app/service/tags/list",
    ] {
        assert_eq!(
            as_bearer(&app, Method::GET, uri, token).status(),
            200,
            "{uri}"
        );
    }
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
    assert!(error_message(&r).contains("token team-reader may not content/read library/busybox"));
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
fn anonymous_pull_by_pattern() {
    let f = Fixture::new();
    let app = f.app();
    manage(
        &app,
        Method::PUT,
        "/api/v1/anonymous-pull",
        json!({"repositories": ["team/*"]}),
    );
    let private_blob = format!("/v2/team/app/service/blobs/{}", f.private_digest);
    let cases = [
        (Method::GET, "/v2/team/app/service/manifests/v1", 200, ""),
        (Method::GET, "/v2/library/busybox/manifests/latest", 401, ""),
        (Method::GET, "/v2/", 401, ""),
        (
            Method::GET,
            "/v2/_catalog",
            401,
            "anonymous callers never list",
        ),
        // A private repository's blob through the public one: not linked there, so unknown.
        (Method::GET, &private_blob, 404, ""),
        (
            Method::POST,
            "/v2/team/app/service/blobs/uploads/",
            401,
            "anonymous callers never write",
        ),
    ];
    for (method, uri, status, why) in cases {
        assert_eq!(
            anonymous(&app, method.clone(), uri).status(),
            status,
            "{method} {uri} {why}"
        );
    }
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
fn mounts_need_pull_on_the_source() {
    let f = Fixture::new().with_origin();
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

/// A bearer token without pull on a mount's source, whose principal may pull there: a 401 whose
/// challenge names both scopes (as distribution answers), so the client fetches a token with
/// both and the mount is made. A principal that cannot read the source gets a plain upload.
#[test]
fn a_mount_challenge_names_the_source_when_the_principal_could_read_it() {
    let f = Fixture::new().with_origin();
    f.origin_answers(|r| {
        let location = if r.uri().query().unwrap_or("").contains("mount=") {
            "/v2/team/app/service/blobs/sha256:00"
        } else {
            "/v2/team/app/service/blobs/uploads/u1"
        };
        let status = if location.contains("uploads") {
            202
        } else {
            201
        };
        answer(status, &[("location", location)], b"")
    });
    let app = f.app();
    let password = token_with(
        &app,
        "team-pusher",
        &[TEAM_PULL, "repositories/team/*/content/write"],
    );
    let creds = basic("team-pusher", &password);
    let target = "repository:team/app/service:pull,push";
    let mount = |from: &str| {
        format!(
            "/v2/team/app/service/blobs/uploads/?mount={}&from={from}",
            f.layer_digest
        )
    };
    let token_for = |scopes: &[&str]| {
        fetch_token(&app, Some(&creds), scopes)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let narrow = token_for(&[target]);
    let r = as_bearer(&app, Method::POST, &mount("team/other"), &narrow);
    assert_eq!(r.status(), 401);
    let challenge = header(&r, "www-authenticate");
    assert!(
        challenge.contains(
            r#"scope="repository:team/app/service:pull,push repository:team/other:pull""#
        ),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert_eq!(
        json_body(&r)["errors"][0]["detail"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let both = token_for(&[target, "repository:team/other:pull"]);
    let r = as_bearer(&app, Method::POST, &mount("team/other"), &both);
    assert_eq!(r.status(), 201);
    // `private` is out of the principal's reach whatever token it holds: a plain upload.
    let r = as_bearer(&app, Method::POST, &mount("private"), &narrow);
    assert_eq!(r.status(), 202);
    let sent = f.origin.sent.borrow();
    let forwarded: Vec<&str> = sent.iter().map(|(_, u, _, _)| u.as_str()).collect();
    assert_eq!(
        forwarded.len(),
        2,
        "the refused mount reached nothing: {forwarded:?}"
    );
    assert!(
        forwarded[0].contains("from=team%2Fother"),
        "{}",
        forwarded[0]
    );
    assert!(!forwarded[1].contains("mount"), "{}", forwarded[1]);
}
