//! Webhooks: management, events queued after the origin's success only, signed ACR payloads,
//! scopes, and the delivery policy (retries, refusals, `Retry-After`, the log, the last attempt).

use http::Method;

use super::*;
use crate::jobs::{Job, Outcome};
use crate::platform::HookAnswer;

/// A fixture with an origin that accepts pushes and deletes, http receivers allowed.
fn hooked() -> Fixture {
    let f = Fixture::new()
        .with_origin()
        .with(&[("WEBHOOK_ALLOW_HTTP", "true")]);
    f.origin_answers(|r| match *r.method() {
        Method::PUT => answer(201, &[], b""),
        Method::DELETE => answer(202, &[], b""),
        _ => answer(404, &[], b""),
    });
    f
}

fn create(app: &App<Test<'_>>, name: &str, body: Value) -> Value {
    manage(app, Method::PUT, &format!("/api/v1/webhooks/{name}"), body)
}

fn push(app: &App<Test<'_>>, repo: &str, tag: &str, manifest: &[u8]) -> Response<Vec<u8>> {
    send_body(
        app,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        &[
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
            ("user-agent", "skopeo/1.13"),
        ],
        manifest,
    )
}

/// The webhook deliveries queued so far (a push queues its index update too).
fn hook_jobs(f: &Fixture) -> Vec<Job> {
    f.jobs
        .take()
        .into_iter()
        .filter(|j| matches!(j, Job::DeliverWebhook { .. }))
        .collect()
}

/// Runs the queued deliveries once each (attempt 1); their outcomes.
fn deliver(f: &Fixture, app: &App<Test<'_>>) -> Vec<Outcome> {
    hook_jobs(f)
        .iter()
        .map(|job| futures::executor::block_on(app.run_job(job, 1, false)))
        .collect()
}

#[test]
fn a_push_delivers_a_signed_acr_payload() {
    let f = hooked();
    let app = f.app();
    let created = create(
        &app,
        "build1",
        json!({"serviceUri": "http://127.0.0.1:9/hook?key=s3cret", "actions": ["push"],
               "customHeaders": {"Authorization": "Bearer abc"}}),
    );
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 40);
    // The URI's path and query and the headers' values are never listed back.
    assert_eq!(created["serviceUri"], "http://127.0.0.1:9/...");
    let shown = manage(&app, Method::GET, "/api/v1/webhooks/build1", Value::Null);
    assert!(shown.get("secret").is_none());
    assert_eq!(shown["customHeaders"], json!(["Authorization"]));
    assert!(!shown.to_string().contains("Bearer abc") && !shown.to_string().contains("s3cret"));
    let config = manage(
        &app,
        Method::GET,
        "/api/v1/webhooks/build1/config",
        Value::Null,
    );
    assert_eq!(
        config,
        json!({"serviceUri": "http://127.0.0.1:9/hook?key=s3cret", "customHeaders": ["Authorization"]})
    );

    let r = push(&app, "team/app", "v1", &f.manifest);
    assert_eq!(r.status(), 201, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(deliver(&f, &app), [Outcome::Done]);
    let posts = f.receiver.posts.borrow();
    let (url, headers, body) = &posts[0];
    assert_eq!(url, "http://127.0.0.1:9/hook?key=s3cret");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization").as_deref(), Some("Bearer abc"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let signed = header("x-registry-signature").unwrap();
    let t: u64 = signed
        .strip_prefix("t=")
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(signed, crate::webhooks::signature(&secret, t, body));
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["action"], "push");
    assert_eq!(
        payload["target"],
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": f.manifest.len(),
               "digest": f.manifest_digest.to_string(), "length": f.manifest.len(),
               "repository": "team/app", "tag": "v1"})
    );
    assert_eq!(payload["request"]["method"], "PUT");
    assert_eq!(payload["request"]["useragent"], "skopeo/1.13");
    assert_eq!(payload["actor"]["name"], "admin:admin");
    drop(posts);
    let log = manage(
        &app,
        Method::GET,
        "/api/v1/webhooks/build1/events",
        Value::Null,
    );
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["eventId"], payload["id"]);
    assert_eq!(log[0]["response"], "ok");
}

#[test]
fn actions_scopes_and_status_choose_the_webhooks() {
    let f = hooked();
    let app = f.app();
    create(
        &app,
        "teama",
        json!({"serviceUri": "http://r/a", "actions": ["push"], "scope": "team-a/*:*"}),
    );
    create(
        &app,
        "deletes",
        json!({"serviceUri": "http://r/d", "actions": ["delete"]}),
    );
    create(
        &app,
        "paused",
        json!({"serviceUri": "http://r/p", "actions": ["push", "delete"], "status": "disabled"}),
    );
    push(&app, "team-b/app", "1", &f.manifest);
    assert!(hook_jobs(&f).is_empty(), "no webhook covers team-b");
    push(&app, "team-a/app", "1", &f.manifest);
    assert_eq!(hook_jobs(&f).len(), 1);
    let r = send(
        &app,
        Method::DELETE,
        &format!("/v2/team-a/app/manifests/{}", f.manifest_digest),
        &[],
    );
    assert_eq!(r.status(), 202);
    let jobs = hook_jobs(&f);
    assert_eq!(jobs.len(), 1);
    let Job::DeliverWebhook { webhook, event, .. } = &jobs[0] else {
        panic!()
    };
    assert_eq!(webhook, "deletes");
    let event: Value = serde_json::from_str(event).unwrap();
    assert_eq!(event["action"], "delete");
    assert_eq!(
        event["target"],
        json!({"digest": f.manifest_digest.to_string(), "repository": "team-a/app"})
    );
}

#[test]
fn a_refused_or_failed_write_delivers_nothing() {
    let f = hooked();
    let app = f.app();
    create(
        &app,
        "every1",
        json!({"serviceUri": "http://r/", "actions": ["push", "delete"]}),
    );
    // A lock refuses the push before the origin sees it.
    manage(
        &app,
        Method::PATCH,
        "/api/v1/repositories/locked/app",
        json!({"writeEnabled": false}),
    );
    assert_eq!(push(&app, "locked/app", "1", &f.manifest).status(), 403);
    // The origin fails the push.
    f.origin_answers(|_| answer(500, &[], b""));
    assert_ne!(push(&app, "open/app", "1", &f.manifest).status(), 201);
    assert!(hook_jobs(&f).is_empty());
}

#[test]
fn a_helm_chart_is_a_chart_push() {
    let f = hooked();
    let app = f.app();
    create(
        &app,
        "charts",
        json!({"serviceUri": "http://r/", "actions": ["chart_push"]}),
    );
    let chart = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": format!("sha256:{}", "a".repeat(64)), "size": 2},
        "layers": [],
    }))
    .unwrap();
    push(&app, "charts/mychart", "0.1.0", &chart);
    let jobs = hook_jobs(&f);
    let Job::DeliverWebhook { event, .. } = &jobs[0] else {
        panic!()
    };
    let event: Value = serde_json::from_str(event).unwrap();
    assert_eq!(event["action"], "chart_push");
    assert_eq!(event["target"]["name"], "mychart");
    assert_eq!(event["target"]["version"], "0.1.0");
}

#[test]
fn deliveries_are_retried_refused_or_given_up_as_the_answer_says() {
    let f = hooked();
    let app = f.app();
    create(
        &app,
        "flaky",
        json!({"serviceUri": "http://r/", "actions": ["push"]}),
    );
    push(&app, "x/y", "1", &f.manifest);
    let job = hook_jobs(&f).remove(0);
    let calls = Rc::new(RefCell::new(0));
    let counted = calls.clone();
    *f.receiver.handler.borrow_mut() = Box::new(move |_| {
        *counted.borrow_mut() += 1;
        let status = if *counted.borrow() <= 3 { 503 } else { 204 };
        HookAnswer {
            status: Some(status),
            elapsed_ms: 5,
            ..Default::default()
        }
    });
    let outcomes: Vec<Outcome> = (1..=4)
        .map(|attempt| futures::executor::block_on(app.run_job(&job, attempt, false)))
        .collect();
    assert!(
        matches!(
            outcomes[..3],
            [Outcome::Retry(_), Outcome::Retry(_), Outcome::Retry(_)]
        ),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[3], Outcome::Done);
    let log = manage(
        &app,
        Method::GET,
        "/api/v1/webhooks/flaky/events",
        Value::Null,
    );
    let attempts: Vec<(u64, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(4, 204), (3, 503), (2, 503), (1, 503)]);

    // A 429 waits for its Retry-After; a 4xx is the receiver's refusal; no answer is retried;
    // the last attempt is logged as given up (to the dead-letter queue).
    let answers: Vec<(Option<u16>, Option<&str>)> =
        vec![(Some(429), Some("30")), (Some(404), None), (None, None)];
    let expected = ["RetryIn30", "Failed", "Retry"];
    for ((status, retry_after), want) in answers.into_iter().zip(expected) {
        let retry_after = retry_after.map(str::to_owned);
        *f.receiver.handler.borrow_mut() = Box::new(move |_| HookAnswer {
            status,
            retry_after: retry_after.clone(),
            error: status.is_none().then(|| "connection refused".to_owned()),
            ..Default::default()
        });
        let got = match futures::executor::block_on(app.run_job(&job, 1, false)) {
            Outcome::RetryIn(_, s) => format!("RetryIn{s}"),
            Outcome::Failed(_) => "Failed".into(),
            Outcome::Retry(_) => "Retry".into(),
            Outcome::Done => "Done".into(),
        };
        assert_eq!(got, want);
    }
    futures::executor::block_on(app.run_job(&job, 6, true));
    let log = manage(
        &app,
        Method::GET,
        "/api/v1/webhooks/flaky/events",
        Value::Null,
    );
    assert_eq!(log[0]["gaveUp"], true);
    assert_eq!(log[0]["error"], "connection refused");
    assert!(log[1].get("gaveUp").is_none());
}

#[test]
fn webhooks_are_checked_and_managed() {
    let f = Fixture::new();
    let app = f.app();
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/webhooks/plain1",
        JSON,
        json!({"serviceUri": "http://r/", "actions": ["push"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status(), 400);
    assert!(
        error_message(&r).contains("must be https"),
        "{}",
        error_message(&r)
    );
    for (name, body, why) in [
        (
            "ab",
            json!({"serviceUri": "https://hooks.example/", "actions": ["push"]}),
            "5 to 50 letters",
        ),
        (
            "noacts",
            json!({"serviceUri": "https://hooks.example/", "actions": []}),
            "at least one action",
        ),
        (
            "badact",
            json!({"serviceUri": "https://hooks.example/", "actions": ["pusj"]}),
            "unknown variant",
        ),
        (
            "forged",
            json!({"serviceUri": "https://hooks.example/", "actions": ["push"], "customHeaders": {"X-Registry-Signature": "x"}}),
            "the edge's own",
        ),
        (
            "creds1",
            json!({"serviceUri": "https://u:p@hooks.example/", "actions": ["push"]}),
            "carries credentials",
        ),
        (
            "extra1",
            json!({"serviceUri": "https://hooks.example/", "actions": ["push"], "secret": "mine"}),
            "unknown field",
        ),
    ] {
        let r = send_body(
            &app,
            Method::PUT,
            &format!("/api/v1/webhooks/{name}"),
            JSON,
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status(), 400, "{name}");
        assert!(
            error_message(&r).contains(why),
            "{name}: {}",
            error_message(&r)
        );
    }
    create(
        &app,
        "hooked",
        json!({"serviceUri": "https://hooks.example/", "actions": ["push"]}),
    );
    let r = send_body(
        &app,
        Method::PUT,
        "/api/v1/webhooks/hooked",
        JSON,
        json!({"serviceUri": "https://hooks.example/", "actions": ["push"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status(), 409);
    let updated = manage(
        &app,
        Method::PATCH,
        "/api/v1/webhooks/hooked",
        json!({"status": "disabled", "actions": ["delete", "push", "push"]}),
    );
    assert_eq!(updated["status"], "disabled");
    assert_eq!(updated["actions"], json!(["push", "delete"]));
    assert_eq!(
        manage(&app, Method::GET, "/api/v1/webhooks", Value::Null)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = send_body(
        &app,
        Method::POST,
        "/api/v1/webhooks/hooked/ping",
        JSON,
        b"{}",
    );
    assert_eq!(r.status(), 202);
    let Job::DeliverWebhook { event, .. } = &hook_jobs(&f)[0] else {
        panic!()
    };
    assert!(event.contains(r#""action":"ping""#));
    let r = send(&app, Method::DELETE, "/api/v1/webhooks/hooked", &[]);
    assert_eq!(r.status(), 204);
    let r = send(&app, Method::GET, "/api/v1/webhooks/hooked", &[]);
    assert_eq!(r.status(), 404);
    // A token may not manage webhooks.
    let password = token_with(&app, "builder", &["repositories/*/content/read"]);
    let r = send(
        &app,
        Method::GET,
        "/api/v1/webhooks",
        &[("authorization", &basic("builder", &password))],
    );
    assert_eq!(r.status(), 403);
}

#[test]
fn pulls_are_counted_and_sent_in_batches() {
    let f = hooked().with(&[("PULL_EVENT_BATCH", "3"), ("PULL_EVENT_SECONDS", "60")]);
    let app = f.app();
    create(
        &app,
        "pulls",
        json!({"serviceUri": "http://r/", "actions": ["pull"]}),
    );
    create(
        &app,
        "pushes",
        json!({"serviceUri": "http://r/", "actions": ["push"]}),
    );
    let uri = "/v2/library/busybox/manifests/latest";
    let pull = || send(&app, Method::GET, uri, &[("accept", OCI_ACCEPT)]);
    for _ in 0..7 {
        assert_eq!(pull().status(), 200);
    }
    // A HEAD is no pull.
    assert_eq!(
        send(&app, Method::HEAD, uri, &[("accept", OCI_ACCEPT)]).status(),
        200
    );
    let counts = |jobs: Vec<Job>| -> Vec<(String, u64)> {
        jobs.iter()
            .map(|j| {
                let Job::DeliverWebhook { webhook, event, .. } = j else {
                    panic!()
                };
                let e: Value = serde_json::from_str(event).unwrap();
                assert_eq!(e["action"], "pull");
                assert_eq!(e["target"]["repository"], "library/busybox");
                assert_eq!(e["target"]["digest"], f.manifest_digest.to_string());
                (webhook.clone(), e["target"]["count"].as_u64().unwrap())
            })
            .collect()
    };
    assert_eq!(
        counts(hook_jobs(&f)),
        [("pulls".to_owned(), 3), ("pulls".to_owned(), 3)]
    );
    // The seventh pull is sent with the next one after the interval.
    f.clock.advance(61);
    assert_eq!(pull().status(), 200);
    assert_eq!(counts(hook_jobs(&f)), [("pulls".to_owned(), 2)]);
}

#[test]
fn events_queued_for_a_webhook_deleted_and_created_again_are_not_its() {
    let f = hooked();
    let app = f.app();
    create(
        &app,
        "reborn",
        json!({"serviceUri": "http://r/old", "actions": ["push"]}),
    );
    push(&app, "x/y", "1", &f.manifest);
    let queued = hook_jobs(&f);
    assert_eq!(queued.len(), 1);
    assert_eq!(
        send(&app, Method::DELETE, "/api/v1/webhooks/reborn", &[]).status(),
        204
    );
    f.clock.advance(5);
    create(
        &app,
        "reborn",
        json!({"serviceUri": "http://r/new", "actions": ["push"]}),
    );
    assert_eq!(
        futures::executor::block_on(app.run_job(&queued[0], 1, false)),
        Outcome::Done
    );
    assert!(
        f.receiver.posts.borrow().is_empty(),
        "the new webhook never asked for it"
    );
}
