//! Mirror fills (`"mode": "mirror"`): reads through the upstream queue copies, the jobs copy
//! manifests and blobs into storage (blobs in verified parts), and what was copied is then read
//! from storage, with the upstream gone.

use std::rc::Rc;

use http::{Method, Request, Response};

use super::*;
use crate::jobs::{Job, Outcome};

const UPSTREAMS: &str = r#"[
  {"prefix": "mirror.test", "url": "https://mirror.example", "mode": "mirror", "tag_ttl_seconds": 60, "part_bytes": 5242880},
  {"prefix": "proxy.test", "url": "https://mirror.example"}
]"#;

const MIRROR_PARTS: usize = 5 << 20;

/// What the fake upstream holds: an image (config, a small layer and one of three parts) under
/// `acme/app:1`, and how it misbehaves.
struct Held {
    manifest: Vec<u8>,
    blobs: Vec<(Digest, Vec<u8>)>,
    /// Every registry request fails as unreachable.
    down: bool,
    /// Blob bytes are served with this byte changed.
    tamper: bool,
    /// Parts are served one byte short.
    short: bool,
    /// `Range` is ignored: every blob answer is the whole blob.
    no_ranges: bool,
}

fn held() -> Held {
    let config = br#"{"architecture":"amd64"}"#.to_vec();
    let small = b"small layer".to_vec();
    let large: Vec<u8> = (0..(2 * MIRROR_PARTS + 1234))
        .map(|i| (i % 251) as u8)
        .collect();
    let blobs: Vec<(Digest, Vec<u8>)> = [config, small, large]
        .into_iter()
        .map(|b| (Digest::sha256(&b), b))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[0].0.to_string(), "size": blobs[0].1.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blobs[1].0.to_string(), "size": blobs[1].1.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blobs[2].0.to_string(), "size": blobs[2].1.len()},
        ],
    }))
    .unwrap();
    Held {
        manifest,
        blobs,
        down: false,
        tamper: false,
        short: false,
        no_ranges: false,
    }
}

fn registry(
    held: Rc<RefCell<Held>>,
) -> impl Fn(&Request<()>) -> Result<Response<Vec<u8>>, OriginError> {
    move |request| {
        let h = held.borrow();
        if h.down {
            return Err(OriginError::Unreachable("down".into()));
        }
        // Two repositories with the same image.
        let path = request
            .uri()
            .path()
            .replacen("/v2/acme/other/", "/v2/acme/app/", 1);
        let path = path.as_str();
        let manifest_digest = Digest::sha256(&h.manifest).to_string();
        if path == "/v2/acme/app/manifests/1"
            || path == format!("/v2/acme/app/manifests/{manifest_digest}")
        {
            return answer(
                200,
                &[
                    ("content-type", "application/vnd.oci.image.manifest.v1+json"),
                    ("docker-content-digest", &manifest_digest),
                ],
                &h.manifest,
            );
        }
        let Some(digest) = path.strip_prefix("/v2/acme/app/blobs/") else {
            return answer(404, &[], b"");
        };
        let Some((_, bytes)) = h.blobs.iter().find(|(d, _)| d.to_string() == digest) else {
            return answer(404, &[], b"");
        };
        let mut bytes = bytes.clone();
        if h.tamper {
            bytes[0] ^= 1;
        }
        let length = bytes.len().to_string();
        if request.method() == Method::HEAD {
            return answer(200, &[("content-length", &length)], b"");
        }
        let range = request.headers().get("range").filter(|_| !h.no_ranges);
        match range.map(|v| v.to_str().unwrap().to_owned()) {
            None => answer(200, &[("content-length", &length)], &bytes),
            Some(range) => {
                let (start, end) = range
                    .strip_prefix("bytes=")
                    .unwrap()
                    .split_once('-')
                    .unwrap();
                let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
                let mut part = bytes[start..=end].to_vec();
                if h.short {
                    part.pop();
                }
                let content_range = format!("bytes {start}-{end}/{}", bytes.len());
                answer(206, &[("content-range", &content_range)], &part)
            }
        }
    }
}

fn mirror() -> (Fixture, Rc<RefCell<Held>>) {
    let f = Fixture::new().with(&[("UPSTREAMS", UPSTREAMS)]);
    let held = Rc::new(RefCell::new(held()));
    f.upstream_answers(registry(held.clone()));
    (f, held)
}

/// How many store calls of `op` (`part`, `commit`, ...) were made.
fn calls(f: &Fixture, op: &str) -> usize {
    let prefix = format!("{op} ");
    f.store
        .calls
        .borrow()
        .iter()
        .filter(|c| c.starts_with(&prefix))
        .count()
}

fn stored(f: &Fixture, key: &str) -> Option<Vec<u8>> {
    futures::executor::block_on(crate::storage::ObjectStore::get(&f.store, key)).unwrap()
}

#[test]
fn a_read_through_a_mirror_queues_one_fill() {
    let (f, held) = mirror();
    let app = f.app();
    let digest = Digest::sha256(&held.borrow().manifest);
    let r = send(
        &app,
        Method::GET,
        "/v2/mirror.test/acme/app/manifests/1",
        &[("accept", OCI_ACCEPT)],
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(r.body(), &held.borrow().manifest);
    assert_eq!(
        f.jobs.take(),
        [Job::FillManifest {
            name: "mirror.test/acme/app".into(),
            digest: digest.to_string(),
            tag: Some("1".into()),
            seen: NOW,
        }]
    );
    // Hot: neither the tag nor the manifest by digest queues it again.
    for uri in [
        "/v2/mirror.test/acme/app/manifests/1".to_owned(),
        format!("/v2/mirror.test/acme/app/manifests/{digest}"),
    ] {
        let r = send(&app, Method::GET, &uri, &[("accept", OCI_ACCEPT)]);
        assert_eq!(r.status(), 200);
    }
    assert_eq!(f.jobs.take(), []);
    // A proxy of the same registry fills nothing.
    let r = send(
        &app,
        Method::GET,
        "/v2/proxy.test/acme/app/manifests/1",
        &[("accept", OCI_ACCEPT)],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(f.jobs.take(), []);
}

#[test]
fn fills_copy_an_image_and_storage_serves_it_with_the_upstream_gone() {
    let (f, held) = mirror();
    let app = f.app();
    let r = send(
        &app,
        Method::GET,
        "/v2/mirror.test/acme/app/manifests/1",
        &[("accept", OCI_ACCEPT)],
    );
    assert_eq!(r.status(), 200);
    let done = run_jobs(&f, &app);
    assert_eq!(done.len(), 4, "{done:?}");
    assert!(done.iter().all(|(_, o)| *o == Outcome::Done), "{done:?}");

    let layout = Layout::new(ROOT);
    let name: crate::reference::Name = "mirror.test/acme/app".parse().unwrap();
    let manifest_digest = Digest::sha256(&held.borrow().manifest);
    assert_eq!(
        stored(&f, &layout.blob_data(&manifest_digest)).unwrap(),
        held.borrow().manifest
    );
    assert_eq!(
        stored(&f, &layout.tag_current_link(&name, &"1".parse().unwrap())).unwrap(),
        manifest_digest.to_string().as_bytes()
    );
    for (digest, bytes) in &held.borrow().blobs {
        assert_eq!(stored(&f, &layout.blob_data(digest)).as_ref(), Some(bytes));
        assert!(stored(&f, &layout.layer_link(&name, digest)).is_some());
    }
    // The large layer went in three parts, each one Range request.
    let large = held.borrow().blobs[2].0.clone();
    let ranges: Vec<String> = f
        .upstream
        .sent
        .borrow()
        .iter()
        .filter(|(m, uri, _)| m == Method::GET && uri.ends_with(&large.to_string()))
        .map(|(_, _, h)| {
            h.get("range")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        })
        .collect();
    let end = 2 * MIRROR_PARTS + 1234 - 1;
    assert_eq!(
        ranges,
        [
            format!("bytes=0-{}", MIRROR_PARTS - 1),
            format!("bytes={MIRROR_PARTS}-{}", 2 * MIRROR_PARTS - 1),
            format!("bytes={}-{end}", 2 * MIRROR_PARTS),
        ]
    );

    // The upstream is gone; another location (a new cache) reads the mirror from storage.
    held.borrow_mut().down = true;
    let app = f.app();
    let r = send(
        &app,
        Method::GET,
        "/v2/mirror.test/acme/app/manifests/1",
        &[("accept", OCI_ACCEPT)],
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(r.body(), &held.borrow().manifest);
    assert!(
        header(&r, "warning").starts_with("299 - \""),
        "{:?}",
        r.headers()
    );
    for (digest, _) in &held.borrow().blobs {
        let r = get(&app, &format!("/v2/mirror.test/acme/app/blobs/{digest}"));
        assert_eq!(r.status(), 307);
        assert!(
            header(&r, "location").starts_with(
                "http://127.0.0.1:9000/registry/origin/docker/registry/v2/blobs/sha256/"
            )
        );
    }
    let r = get(&app, "/v2/mirror.test/acme/app/tags/list");
    assert_eq!(r.status(), 200);
    assert_eq!(json_body(&r)["tags"], json!(["1"]));
    let r = get(&app, "/v2/_catalog");
    assert!(
        json_body(&r)["repositories"]
            .as_array()
            .unwrap()
            .contains(&json!("mirror.test/acme/app"))
    );
    // Nothing more to fill: storage has it all (the catalog, walked, asked for its index).
    assert!(
        f.jobs
            .take()
            .iter()
            .all(|j| matches!(j, Job::RebuildIndex { .. }))
    );
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_not_kept() {
    let (f, held) = mirror();
    let app = f.app();
    held.borrow_mut().tamper = true;
    let (small, _) = held.borrow().blobs[1].clone();
    let (large, _) = held.borrow().blobs[2].clone();
    for digest in [&small, &large] {
        let job = Job::FillBlob {
            name: "mirror.test/acme/app".into(),
            digest: digest.to_string(),
        };
        let outcome = run(&app, &job);
        assert!(
            matches!(&outcome, Outcome::Failed(why) if why.contains("do not match")),
            "{outcome:?}"
        );
    }
    let layout = Layout::new(ROOT);
    let name = "mirror.test/acme/app".parse().unwrap();
    for digest in [&small, &large] {
        assert_eq!(stored(&f, &layout.blob_data(digest)), None);
        assert_eq!(stored(&f, &layout.layer_link(&name, digest)), None);
    }
    assert_eq!(calls(&f, "abort"), 2);
    assert_eq!(calls(&f, "commit"), 0);
}

#[test]
fn an_interrupted_copy_leaves_nothing_and_is_retried() {
    let (f, held) = mirror();
    let app = f.app();
    held.borrow_mut().short = true;
    let (large, bytes) = held.borrow().blobs[2].clone();
    let job = Job::FillBlob {
        name: "mirror.test/acme/app".into(),
        digest: large.to_string(),
    };
    let outcome = run(&app, &job);
    assert!(matches!(outcome, Outcome::Retry(_)), "{outcome:?}");
    let layout = Layout::new(ROOT);
    assert_eq!(stored(&f, &layout.blob_data(&large)), None);
    // The upstream is whole again: the retry copies it.
    held.borrow_mut().short = false;
    assert_eq!(run(&app, &job), Outcome::Done);
    assert_eq!(stored(&f, &layout.blob_data(&large)), Some(bytes));
    // And a stored blob is never copied twice: the job only links it.
    let parts = calls(&f, "part");
    assert_eq!(run(&app, &job), Outcome::Done);
    assert_eq!(calls(&f, "part"), parts);
}

#[test]
fn a_failed_fill_is_queued_again_by_the_next_read() {
    let (f, held) = mirror();
    let app = f.app();
    let (small, _) = held.borrow().blobs[1].clone();
    let uri = format!("/v2/mirror.test/acme/app/blobs/{small}");
    assert_eq!(get(&app, &uri).status(), 200);
    let jobs = f.jobs.take();
    assert_eq!(jobs.len(), 1);
    // Within the marker's lifetime, a read queues nothing more.
    assert_eq!(get(&app, &uri).status(), 200);
    assert_eq!(f.jobs.take(), []);
    held.borrow_mut().tamper = true;
    assert!(matches!(run(&app, &jobs[0]), Outcome::Failed(_)));
    held.borrow_mut().tamper = false;
    assert_eq!(get(&app, &uri).status(), 200);
    assert_eq!(f.jobs.take(), jobs);
}

#[test]
fn jobs_for_names_no_mirror_serves_do_nothing() {
    let (f, _) = mirror();
    let app = f.app();
    for job in [
        Job::FillBlob {
            name: "proxy.test/acme/app".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        },
        Job::FillManifest {
            name: "library/busybox".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            tag: None,
            seen: 0,
        },
    ] {
        assert_eq!(run(&app, &job), Outcome::Done);
    }
    for job in [
        Job::FillBlob {
            name: "../etc".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        },
        Job::FillBlob {
            name: "mirror.test/acme/app".into(),
            digest: format!("sha512:{}", "a".repeat(128)),
        },
    ] {
        assert!(matches!(run(&app, &job), Outcome::Failed(_)));
    }
    assert_eq!(calls(&f, "put"), 0);
    assert!(f.upstream.sent.borrow().is_empty());
}

#[test]
fn a_digest_an_upstream_names_never_links_content_it_did_not_supply() {
    // The attack: a manifest on the upstream names the digest of the edge's private blob (a
    // digest is no secret), and the upstream claims to have it. Storage holds that blob, so a
    // mirror that linked what storage holds would serve the private layer to its readers.
    let (f, held) = mirror();
    let app = f.app();
    let private = f.private_digest.clone();
    held.borrow_mut()
        .blobs
        .push((private.clone(), b"not the private bytes".to_vec()));
    let job = Job::FillBlob {
        name: "mirror.test/acme/app".into(),
        digest: private.to_string(),
    };
    let outcome = run(&app, &job);
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("do not match")),
        "{outcome:?}"
    );
    let layout = Layout::new(ROOT);
    let name = "mirror.test/acme/app".parse().unwrap();
    assert_eq!(stored(&f, &layout.layer_link(&name, &private)), None);
    assert_eq!(
        stored(&f, &layout.blob_data(&private)).unwrap(),
        b"private layer"
    );
    let r = get(&app, &format!("/v2/mirror.test/acme/app/blobs/{private}"));
    assert_ne!(r.status(), 307);

    // Content the upstream does supply, verified, is the mirror's from then on; a later fill of
    // it, in another repository of the mirror too, links it without copying again.
    let (small, _) = held.borrow().blobs[1].clone();
    for name in ["mirror.test/acme/app", "mirror.test/acme/other"] {
        let job = Job::FillBlob {
            name: name.into(),
            digest: small.to_string(),
        };
        assert_eq!(run(&app, &job), Outcome::Done);
    }
    let copies = calls(&f, "commit");
    assert_eq!(copies, 1);
    let other = "mirror.test/acme/other".parse().unwrap();
    assert!(stored(&f, &layout.layer_link(&other, &small)).is_some());
}

#[test]
fn the_tag_is_stored_last_and_never_goes_back() {
    let (f, held) = mirror();
    let app = f.app();
    let digest = Digest::sha256(&held.borrow().manifest);
    let layout = Layout::new(ROOT);
    let name: crate::reference::Name = "mirror.test/acme/app".parse().unwrap();
    let current = layout.tag_current_link(&name, &"1".parse().unwrap());
    let job = |seen| Job::FillManifest {
        name: name.to_string(),
        digest: digest.to_string(),
        tag: Some("1".into()),
        seen,
    };
    // Its layers are not stored yet: the manifest is, the tag waits.
    let outcome = run(&app, &job(NOW));
    assert!(
        matches!(&outcome, Outcome::Retry(why) if why.contains("waits")),
        "{outcome:?}"
    );
    assert!(stored(&f, &layout.manifest_revision_link(&name, &digest)).is_some());
    assert_eq!(stored(&f, &current), None);
    assert_eq!(f.jobs.0.borrow().len(), 3, "config and two layers queued");
    run_jobs(&f, &app);
    assert_eq!(run(&app, &job(NOW)), Outcome::Done);
    assert_eq!(stored(&f, &current).unwrap(), digest.to_string().as_bytes());
    // A fill of what an older read saw, delivered late, leaves the tag as it is.
    let other = f.put_manifest("elsewhere/x", b"{}", &[]);
    f.store.put(&current, other.to_string());
    assert_eq!(run(&app, &job(NOW - 10)), Outcome::Done);
    assert_eq!(stored(&f, &current).unwrap(), other.to_string().as_bytes());
}

#[test]
fn a_mark_of_another_upstream_vouches_for_nothing() {
    // The namespace once mirrored another registry (or account), which supplied the blob.
    let (f, held) = mirror();
    let app = f.app();
    let (small, bytes) = held.borrow().blobs[1].clone();
    let layout = Layout::new(ROOT);
    f.store.put(layout.blob_data(&small), bytes.clone());
    f.store.put(
        layout.mirrored("mirror.test", "0123456789abcdef", &small),
        small.to_string(),
    );
    let job = Job::FillBlob {
        name: "mirror.test/acme/app".into(),
        digest: small.to_string(),
    };
    assert_eq!(run(&app, &job), Outcome::Done);
    // Copied from this upstream, verified, before it was linked.
    assert_eq!(calls(&f, "commit"), 1);
}

#[test]
fn an_upstream_that_ignores_ranges_is_copied_in_one_part() {
    let (f, held) = mirror();
    let app = f.app();
    held.borrow_mut().no_ranges = true;
    let (large, bytes) = held.borrow().blobs[2].clone();
    let job = Job::FillBlob {
        name: "mirror.test/acme/app".into(),
        digest: large.to_string(),
    };
    assert_eq!(run(&app, &job), Outcome::Done);
    assert_eq!(
        stored(&f, &Layout::new(ROOT).blob_data(&large)),
        Some(bytes)
    );
    let parts = calls(&f, "part");
    assert_eq!(
        parts,
        1,
        "{:?} {:?}",
        f.store.calls.borrow(),
        f.upstream.sent.borrow()
    );
}

#[test]
fn an_empty_blob_is_stored_without_an_upload() {
    let (f, held) = mirror();
    let app = f.app();
    let empty = Digest::sha256(b"");
    held.borrow_mut().blobs.push((empty.clone(), Vec::new()));
    let job = Job::FillBlob {
        name: "mirror.test/acme/app".into(),
        digest: empty.to_string(),
    };
    assert_eq!(run(&app, &job), Outcome::Done);
    let layout = Layout::new(ROOT);
    assert_eq!(stored(&f, &layout.blob_data(&empty)), Some(Vec::new()));
    assert!(
        stored(
            &f,
            &layout.layer_link(&"mirror.test/acme/app".parse().unwrap(), &empty)
        )
        .is_some()
    );
    assert_eq!(calls(&f, "begin"), 0);
}
