//! The parsers on generated and mutated input (proptest, a bounded number of cases per run):
//! route and name parsing, references and digests, `Content-Range`, scopes, the `Authorization`
//! header, JWT decoding, query strings. None may panic, and every refusal is an OCI error with a
//! client-error status. The whole-request properties (token service queries, management bodies,
//! what reaches the origin) are in `handlers::tests::properties`.

use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::auth::Scope;
use crate::auth::jwt::TokenKeys;
use crate::auth::secret::parse_authorization;
use crate::error::Error;
use crate::origin::parse_content_range;
use crate::reference::{Digest, Name, Reference, Tag};
use crate::route::{Page, Route};

const CASES: u32 = 512;

/// A refusal as a client sees it: OCI error JSON with a 4xx status.
fn is_client_refusal(e: &Error) -> bool {
    let body: serde_json::Value = match serde_json::from_slice(&e.body()) {
        Ok(body) => body,
        Err(_) => return false,
    };
    e.status().is_client_error()
        && body["errors"][0]["code"].is_string()
        && body["errors"][0]["message"].is_string()
}

/// Strings made of the characters the API's grammars care about, often near-valid.
fn api_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._/-]{0,40}",
        "[a-zA-Z0-9._/:%+=-]{0,80}",
        ".{0,60}",
        Just("sha256:".to_owned() + &"a".repeat(64)),
        "sha(256|512):[0-9a-f]{0,130}",
        "(\\.\\.|%2[fF]|%2[eE]|//|/\\./)[a-z/]{0,10}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("manifests/"),
        Just("blobs/"),
        Just("blobs/uploads/"),
        Just("tags/"),
        Just("referrers/"),
        Just(""),
    ];
    prop_oneof![
        (api_text(), kind, api_text()).prop_map(|(n, k, r)| format!("/v2/{n}/{k}{r}")),
        api_text().prop_map(|s| format!("/v2/{s}")),
        ".{0,80}",
    ]
}

proptest! {
    #![proptest_config(Config { cases: CASES, failure_persistence: None, ..Config::default() })]

    #[test]
    fn routes_parse_or_refuse(p in path()) {
        match Route::parse(&p) {
            Ok(route) => {
                // What was accepted is valid through and through: the name re-parses.
                if let Some(name) = route.name() {
                    prop_assert!(name.as_str().parse::<Name>().is_ok());
                    prop_assert!(!name.as_str().contains(".."));
                    prop_assert!(!name.as_str().contains('%'));
                }
            }
            Err(e) => prop_assert!(is_client_refusal(&e), "{p:?}: {e}"),
        }
    }

    #[test]
    fn references_round_trip_or_refuse(s in api_text()) {
        for result in [
            s.parse::<Name>().map(|v| v.to_string()),
            s.parse::<Tag>().map(|v| v.to_string()),
            s.parse::<Digest>().map(|v| v.to_string()),
            s.parse::<Reference>().map(|v| v.to_string()),
        ] {
            match result {
                Ok(shown) => prop_assert_eq!(&shown, &s),
                Err(e) => prop_assert!(is_client_refusal(&e), "{s:?}: {e}"),
            }
        }
    }

    #[test]
    fn content_ranges_parse_or_refuse(s in "(bytes[ =])?[0-9 +-]{0,24}(/[0-9*]{0,5})?|.{0,30}") {
        match parse_content_range(&s) {
            Ok((start, end)) => prop_assert!(start <= end),
            Err(e) => prop_assert!(is_client_refusal(&e), "{s:?}: {e}"),
        }
    }

    #[test]
    fn scopes_parse_or_refuse(s in "(repository(\\(plugin\\))?|registry|x)?:[a-z0-9/._:-]{0,30}:[a-z,*]{0,20}|.{0,40}") {
        match Scope::parse(&s) {
            Ok(Some(Scope::Repository { name, .. })) => {
                prop_assert!(name.as_str().parse::<Name>().is_ok());
            }
            Ok(_) => {}
            Err(e) => prop_assert!(is_client_refusal(&e), "{s:?}: {e}"),
        }
    }

    #[test]
    fn authorization_headers_never_panic(
        scheme in "(Basic|Bearer|basic|bearer|Digest)?",
        sep in "( |  |)",
        rest in "[A-Za-z0-9+/=._~:-]{0,60}|.{0,40}",
    ) {
        let _ = parse_authorization(format!("{scheme}{sep}{rest}").as_bytes());
    }

    #[test]
    fn page_queries_parse_or_refuse(q in "((n|last|x)=[0-9a-z%/-]{0,8}&?){0,4}|.{0,40}") {
        if let Err(e) = Page::from_query(&crate::query::Query::parse(Some(&q))) {
            prop_assert!(is_client_refusal(&e), "{q:?}: {e}");
        }
    }
}

/// Garbage and mutated tokens never verify and never panic; only the real token does.
#[test]
fn tokens_refuse_every_mutation() {
    use crate::auth::Principal;
    let keys = TokenKeys::from_pem(crate::auth::jwt::test_pem(), "registry-edge").unwrap();
    let now = 1_800_000_000;
    let token = keys
        .issue_access(
            &Principal::Token("fuzzed".into()),
            "g",
            Vec::new(),
            "registry-edge",
            now,
            300,
        )
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let mutation = (0..token.len(), any::<u8>(), 0..3usize);
    runner
        .run(&mutation, |(at, byte, how)| {
            let mut bytes = token.clone().into_bytes();
            match how {
                0 => bytes[at] = b"ABCxyz019-_."[byte as usize % 12],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte % 94 + 33),
            }
            let Ok(mutated) = String::from_utf8(bytes) else {
                return Ok(());
            };
            if mutated != token {
                prop_assert!(keys.verify_access(&mutated, "registry-edge", now).is_err());
                prop_assert!(keys.verify_refresh(&mutated, "registry-edge", now).is_err());
            }
            Ok(())
        })
        .unwrap();
    runner
        .run(&".{0,200}", |garbage| {
            prop_assert!(keys.verify_access(&garbage, "registry-edge", now).is_err());
            Ok(())
        })
        .unwrap();
    assert!(keys.verify_access(&token, "registry-edge", now).is_ok());
}
