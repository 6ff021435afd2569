//! The catalog and referrers indexes through the API: built by a rebuild in bounded steps, kept
//! by the jobs a write queues, read in a constant number of storage requests, and never trusted
//! when an object fails its checks.

use http::Method;
use serde_json::json;

use super::*;
use crate::jobs::{Job, Outcome};
use crate::reference::Name;

/// The storage requests of one request, on a cold edge cache.
fn cold_calls(f: &Fixture, uri: &str) -> (Response<Vec<u8>>, Vec<String>) {
    let app = f.app();
    f.store.calls.borrow_mut().clear();
    let r = get(&app, uri);
    (r, f.store.calls.borrow().clone())
}

/// Builds the indexes: a catalog read asks for the rebuild, whose steps then run.
fn rebuild(f: &Fixture) -> Vec<(Job, Outcome)> {
    let app = f.app();
    let r = send_body(&app, Method::POST, "/api/v1/indexes/rebuild", &[], b"");
    assert_eq!(r.status(), 202, "{}", String::from_utf8_lossy(r.body()));
    run_jobs(f, &app)
}

fn catalog(f: &Fixture) -> Value {
    json_body(&get(&f.app(), "/v2/_catalog"))["repositories"].clone()
}

const WALKED: [&str; 5] = [
    "a-b",
    "docker/v2s2",
    "library/busybox",
    "private",
    "team/app/service",
];

#[test]
fn without_an_index_the_catalog_walks_warns_and_asks_for_a_rebuild_once() {
    let f = Fixture::new();
    let app = f.app();
    let r = get(&app, "/v2/_catalog");
    assert_eq!(json_body(&r)["repositories"], json!(WALKED));
    assert!(
        header(&r, "warning").contains("catalog index is not built yet"),
        "{:?}",
        r.headers()
    );
    let jobs = f.jobs.take();
    assert!(matches!(jobs[..], [Job::RebuildIndex { .. }]), "{jobs:?}");
    // Asked once per location, not per read.
    get(&app, "/v2/_catalog");
    assert_eq!(f.jobs.take(), []);
}

#[test]
fn a_rebuild_runs_in_bounded_steps_then_pages_cost_two_reads_and_referrers_one() {
    // Lists not cached: each read's storage requests show.
    let f = Fixture::new().with(&[("INDEX_REBUILD_BUDGET", "10"), ("TAG_CACHE_SECONDS", "0")]);
    let (sbom, sbom_digest) = f.put_referrer();
    let app = f.app();
    f.store.calls.borrow_mut().clear();
    let done = rebuild(&f);
    assert!(done.iter().all(|(_, o)| *o == Outcome::Done), "{done:?}");
    let steps = done
        .iter()
        .filter(|(j, _)| matches!(j, Job::RebuildIndex { .. }))
        .count();
    assert!(steps >= 3, "{steps} steps");
    // Each step stays near its budget: its requests, the state's read and write, and at most one
    // unit of work beyond.
    let calls = f.store.calls.borrow().len();
    assert!(
        calls <= steps * (10 + 8),
        "{calls} requests in {steps} steps"
    );

    let status = json_body(&get(&app, "/api/v1/indexes"));
    assert_eq!(status["catalog"]["complete"], json!(true));
    assert_eq!(status["catalog"]["repositories"], json!(5));
    assert_eq!(status["rebuild"]["phase"], json!("done"));
    assert_eq!(status["rebuild"]["referrersFound"], json!(1));

    let (r, calls) = cold_calls(&f, "/v2/_catalog");
    assert_eq!(json_body(&r)["repositories"], json!(WALKED));
    assert!(!r.headers().contains_key("warning"));
    assert_eq!(calls.len(), 2, "the root and one shard: {calls:?}");
    let (r, calls) = cold_calls(&f, "/v2/_catalog?n=2&last=docker%2Fv2s2");
    assert_eq!(
        json_body(&r)["repositories"],
        json!(["library/busybox", "private"])
    );
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?last=private&n=2>; rel=\"next\""
    );
    assert_eq!(calls.len(), 2, "{calls:?}");

    let uri = format!("/v2/library/busybox/referrers/{}", f.manifest_digest);
    let (r, calls) = cold_calls(&f, &uri);
    assert_eq!(
        json_body(&r)["manifests"],
        json!([sbom_descriptor(&sbom, &sbom_digest)])
    );
    assert_eq!(
        calls.len(),
        2,
        "the subject's object, and the root for whether the index is complete: {calls:?}"
    );
    // Whether the index is complete is kept a minute: one object per read.
    let app = f.app();
    get(&app, &uri);
    f.store.calls.borrow_mut().clear();
    let r = get(&app, &uri);
    assert_eq!(
        json_body(&r)["manifests"][0]["digest"],
        json!(sbom_digest.to_string())
    );
    assert_eq!(f.store.call_count(), 1, "{:?}", f.store.calls.borrow());
    // A subject nobody refers to: no object, and the root says the index is complete.
    let (r, calls) = cold_calls(
        &f,
        &format!("/v2/team/app/service/referrers/{}", f.manifest_digest),
    );
    assert_eq!(json_body(&r)["manifests"], json!([]));
    assert!(!r.headers().contains_key("warning"));
    assert!(calls.len() <= 2, "{calls:?}");
}

#[test]
fn writes_queue_index_updates_that_follow_what_storage_holds() {
    let f = Fixture::new().with_origin();
    f.origin_answers(|request| {
        let status = if request.method() == Method::DELETE {
            202
        } else {
            201
        };
        Ok(Response::builder().status(status).body(Vec::new()).unwrap())
    });
    rebuild(&f);
    let app = f.app();
    // A signature pushed to a new repository (the origin stores it; the fake one cannot).
    let signature = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f.manifest_digest.to_string(), "size": f.manifest.len()},
    }))
    .unwrap();
    let digest = f.put_manifest("new/repo", &signature, &[]);
    let r = send_body(
        &app,
        Method::PUT,
        &format!("/v2/new/repo/manifests/{digest}"),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &signature,
    );
    assert_eq!(r.status(), 201, "{}", String::from_utf8_lossy(r.body()));
    let jobs = f.jobs.take();
    assert_eq!(
        jobs,
        [Job::IndexManifest {
            name: "new/repo".into(),
            digest: digest.to_string(),
            subject: Some(f.manifest_digest.to_string()),
        }]
    );
    // Delivered twice: the same index.
    for job in [&jobs[0], &jobs[0]] {
        assert_eq!(run(&app, job), Outcome::Done);
    }
    assert!(catalog(&f).as_array().unwrap().contains(&json!("new/repo")));
    let referrers = |f: &Fixture| {
        let uri = format!("/v2/new/repo/referrers/{}", f.manifest_digest);
        json_body(&get(&f.app(), &uri))["manifests"].clone()
    };
    assert_eq!(referrers(&f)[0]["digest"], json!(digest.to_string()));

    // Deleted: the origin removes the link; the job takes it off the referrers and, as the
    // repository's last manifest, off the catalog.
    let name: Name = "new/repo".parse().unwrap();
    f.store
        .remove(&Layout::new(ROOT).manifest_revision_link(&name, &digest));
    let r = send_body(
        &app,
        Method::DELETE,
        &format!("/v2/new/repo/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status(), 202);
    run_jobs(&f, &app);
    assert_eq!(referrers(&f), json!([]));
    assert_eq!(catalog(&f), json!(WALKED));
}

#[test]
fn a_job_that_arrives_late_leaves_the_index_as_storage_is() {
    let f = Fixture::new();
    rebuild(&f);
    let app = f.app();
    let name: Name = "late/repo".parse().unwrap();
    // The push's job arrives after the manifest was deleted again: nothing is listed.
    let digest = f.put_manifest("late/repo", &f.manifest, &[]);
    f.store
        .remove(&Layout::new(ROOT).manifest_revision_link(&name, &digest));
    let job = Job::IndexManifest {
        name: name.to_string(),
        digest: digest.to_string(),
        subject: None,
    };
    assert_eq!(run(&app, &job), Outcome::Done);
    assert_eq!(catalog(&f), json!(WALKED));
}

#[test]
fn a_repository_written_past_the_edge_appears_after_a_rebuild() {
    let f = Fixture::new();
    rebuild(&f);
    f.put_manifest("pushed/to/the/origin", &f.manifest, &["1"]);
    assert!(
        !catalog(&f)
            .as_array()
            .unwrap()
            .contains(&json!("pushed/to/the/origin"))
    );
    rebuild(&f);
    assert!(
        catalog(&f)
            .as_array()
            .unwrap()
            .contains(&json!("pushed/to/the/origin"))
    );
}

#[test]
fn a_corrupt_index_object_is_never_served_and_is_rebuilt() {
    let f = Fixture::new();
    let (_, sbom_digest) = f.put_referrer();
    rebuild(&f);
    let layout = Layout::new(ROOT);
    let root = layout.catalog_root();
    let bytes = futures::executor::block_on(crate::storage::ObjectStore::get(&f.store, &root))
        .unwrap()
        .unwrap();
    // A name slipped into the root's first shard entry, by hand.
    let edited = String::from_utf8(bytes)
        .unwrap()
        .replace("\"first\":\"a-b\"", "\"first\":\"a-a\"");
    f.store.put(root.clone(), edited);
    let app = f.app();
    let r = get(&app, "/v2/_catalog");
    assert_eq!(json_body(&r)["repositories"], json!(WALKED));
    assert!(header(&r, "warning").contains("failed its checks"));
    let jobs = run_jobs(&f, &app);
    assert!(
        jobs.iter()
            .any(|(j, _)| matches!(j, Job::RebuildIndex { .. }))
    );
    let r = get(&f.app(), "/v2/_catalog");
    assert!(!r.headers().contains_key("warning"), "{:?}", r.headers());
    assert_eq!(json_body(&r)["repositories"], json!(WALKED));

    // A referrers object edited by hand: the scan answers, and the rebuild mends it.
    let name: Name = "library/busybox".parse().unwrap();
    let key = layout.referrers_index(&name, &f.manifest_digest);
    f.store.put(
        key.clone(),
        format!(
            r#"{{"version":1,"subject":"{}","manifests":[],"sha256":"0"}}"#,
            f.manifest_digest
        ),
    );
    let app = f.app();
    let uri = format!("/v2/library/busybox/referrers/{}", f.manifest_digest);
    let r = get(&app, &uri);
    assert_eq!(
        json_body(&r)["manifests"][0]["digest"],
        json!(sbom_digest.to_string())
    );
    assert!(header(&r, "warning").contains("failed its checks"));
    run_jobs(&f, &app);
    let r = get(&f.app(), &uri);
    assert!(!r.headers().contains_key("warning"));
    assert_eq!(
        json_body(&r)["manifests"][0]["digest"],
        json!(sbom_digest.to_string())
    );
}

#[test]
fn a_rebuild_step_delivered_twice_advances_once_and_late_runs_do_nothing() {
    let f = Fixture::new().with(&[("INDEX_REBUILD_BUDGET", "10")]);
    let app = f.app();
    send_body(&app, Method::POST, "/api/v1/indexes/rebuild", &[], b"");
    let first = f.jobs.take();
    let Job::RebuildIndex { run: first_run } = first[0] else {
        panic!("{first:?}");
    };
    // A second rebuild supersedes the first: the first run's jobs do nothing.
    f.clock.0.set(f.clock.0.get() + 1);
    send_body(&app, Method::POST, "/api/v1/indexes/rebuild", &[], b"");
    let second = f.jobs.take();
    assert_eq!(run(&app, &first[0]), Outcome::Done);
    assert_eq!(f.jobs.take(), [], "a superseded run queues nothing");
    let state = |f: &Fixture| {
        let bytes = futures::executor::block_on(crate::storage::ObjectStore::get(
            &f.store,
            &Layout::new(ROOT).index_rebuild(),
        ))
        .unwrap()
        .unwrap();
        crate::handlers::index::parse_rebuild(&bytes)
    };
    assert_ne!(state(&f).run, first_run);
    // One step's job delivered twice (the second delivery after the first one ran): each runs
    // a step of its own from the saved state, and the chain goes on as one.
    assert_eq!(run(&app, &second[0]), Outcome::Done);
    assert_eq!(run(&app, &second[0]), Outcome::Done);
    assert_eq!(state(&f).steps, 2);
    run_jobs(&f, &app);
    assert_eq!(catalog(&f), json!(WALKED));
}

/// A filtered page that ends on a repository the caller may not see goes on from an opaque
/// cursor: the `Link` never names a hidden repository, and the pages hold exactly what it sees.
#[test]
fn a_filtered_catalog_never_names_a_hidden_repository() {
    let f = Fixture::new().with(&[("INDEX_REBUILD_BUDGET", "500")]);
    for i in 0..2_600 {
        f.put_manifest(&format!("hidden/repo{i:05}"), &f.manifest, &["1"]);
    }
    rebuild(&f);
    let app = f.app();
    let password = token_with(&app, "team-reader", &["repositories/team/*/metadata/read"]);
    let creds = basic("team-reader", &password);
    let mut seen = Vec::new();
    let mut uri = "/v2/_catalog?n=10".to_owned();
    let mut pages = 0;
    loop {
        let r = send(&app, Method::GET, &uri, &[("authorization", &creds)]);
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
        for name in json_body(&r)["repositories"].as_array().unwrap() {
            seen.push(name.as_str().unwrap().to_owned());
        }
        pages += 1;
        let link = header(&r, "link").to_owned();
        if link.is_empty() {
            break;
        }
        assert!(!link.contains("hidden"), "{link}");
        uri = link[1..link.find('>').unwrap()].to_owned();
    }
    assert_eq!(seen, ["team/app/service"]);
    assert!(pages >= 2, "the bound cut the walk: {pages} pages");
    // A cursor the edge did not make is refused.
    let r = send(
        &app,
        Method::GET,
        "/v2/_catalog?n=10&last=~bm90IGEgY3Vyc29y",
        &[("authorization", &creds)],
    );
    assert_eq!(r.status(), 400);
}
