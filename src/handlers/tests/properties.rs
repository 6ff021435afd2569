//! Whole-request properties on generated input: what reaches the origin, token service queries and
//! management bodies. The parsers' own properties are in `crate::fuzz_tests`.

use http::{Method, Response};
use serde_json::{Value, json};

use super::*;

/// Generated requests against every write route, through the whole App, signed in as a token that
/// may push and pull `team/*` only. Whatever the parser accepts, what reaches the origin carries
/// only what authorization saw: the path's repository (one the token may push to), a mount source
/// the token may pull, the session parameters the origin handed out, and parsed headers.
#[test]
fn nothing_reaches_the_origin_that_authorization_did_not_see() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let f = Fixture::new().with_origin();
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
