//! What one `/v2/` request asks for, parsed once: `Operation::parse(method, path, query)` reads the
//! route (`Route::parse`), the method and the query parameters the edge acts on. Everything else
//! the edge decides about a request comes from the operation, each in one place here: the
//! permission it needs (and so the challenge's scope), the lock it checks, whether it writes, and
//! the scopes the edge asks of the origin. Dispatch (`App::dispatch`) is one match on it: a new
//! endpoint is one arm here and its handler.

use http::Method;

use crate::auth::records::Lock;
use crate::auth::{Need, Permission};
use crate::error::{Error, ErrorCode, Result};
use crate::query::Query;
use crate::reference::{Digest, Name, Reference, Tag};
use crate::route::{Page, Route};

/// The `name` of an operation's repository, as `Some(&name)` or `Some(&mut name)` after `self`.
macro_rules! repository_name {
    ($operation:expr) => {{
        use Operation::*;
        match $operation {
            ApiVersion | Catalog { .. } => None,
            ListTags { name, .. }
            | GetManifest { name, .. }
            | PutManifest { name, .. }
            | DeleteManifest { name, .. }
            | HeadBlob { name, .. }
            | GetBlob { name, .. }
            | DeleteBlob { name, .. }
            | StartUpload { name, .. }
            | Upload { name, .. }
            | Referrers { name, .. } => Some(name),
        }
    }};
}

/// One request of the registry API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `GET|HEAD /v2/`
    ApiVersion,
    Catalog {
        page: Page,
    },
    ListTags {
        name: Name,
        page: Page,
    },
    /// `GET|HEAD` (HEAD answers the GET's headers without the body).
    GetManifest {
        name: Name,
        reference: Reference,
    },
    /// `tags`: the `?tag=` parameters of a push by digest (OCI distribution spec 1.1+), each
    /// applied as a tag of the manifest; empty otherwise.
    PutManifest {
        name: Name,
        reference: Reference,
        tags: Vec<Tag>,
    },
    DeleteManifest {
        name: Name,
        reference: Reference,
    },
    HeadBlob {
        name: Name,
        digest: Digest,
    },
    GetBlob {
        name: Name,
        digest: Digest,
    },
    DeleteBlob {
        name: Name,
        digest: Digest,
    },
    StartUpload {
        name: Name,
        start: StartUpload,
    },
    /// A request on an upload session (`PATCH`, `PUT`, `GET`, `DELETE`); the session itself (the
    /// origin's parameters, the offset, the seal) is opened by the uploads handler.
    Upload {
        name: Name,
        upload_id: String,
        step: UploadStep,
    },
    Referrers {
        name: Name,
        digest: Digest,
        artifact_type: Option<String>,
    },
}

/// What `POST /v2/<name>/blobs/uploads/` asks for, as parsed from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartUpload {
    Plain,
    /// `?digest=`: the whole blob in the POST's body.
    Monolithic(Digest),
    /// `?mount=&from=`: link a blob of another repository.
    Mount {
        digest: Digest,
        from: Name,
    },
}

impl StartUpload {
    /// Parses the query once. `mount` without `from` is a plain upload: the edge forwards no
    /// mount it has not checked a source for (an origin could pick any repository itself).
    pub fn parse(query: &Query) -> Result<StartUpload> {
        let digest = query
            .single("digest")?
            .map(str::parse::<Digest>)
            .transpose()?;
        let mount = query
            .single("mount")?
            .map(str::parse::<Digest>)
            .transpose()?;
        let from = query.single("from")?.map(str::parse::<Name>).transpose()?;
        Ok(match (digest, mount, from) {
            (Some(_), Some(_), _) => {
                return Err(Error::new(ErrorCode::BadRequest)
                    .with_message("an upload takes ?digest= or ?mount=, not both"));
            }
            (Some(digest), None, _) => StartUpload::Monolithic(digest),
            (None, Some(digest), Some(from)) => StartUpload::Mount { digest, from },
            (None, _, _) => StartUpload::Plain,
        })
    }
}

/// The step of an upload session a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStep {
    /// `PATCH`: a chunk.
    Chunk,
    /// `PUT ?digest=`: the last chunk, if any, and the end.
    Finish,
    /// `GET`: where the upload is.
    Status,
    /// `DELETE`: the upload is abandoned.
    Cancel,
}

/// What a lock check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockTarget {
    Repository,
    Tag(crate::reference::Tag),
    /// A manifest, however it is reached (by digest, as a blob, as a referrers subject).
    Manifest(Digest),
}

impl Operation {
    /// Parses a request of the `/v2` surface. An unknown path is a 404, a method the endpoint
    /// does not have a 405, a malformed name, reference or parameter a 400.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Operation> {
        let route = Route::parse(path)?;
        let read = method == Method::GET || method == Method::HEAD;
        let query = Query::parse(query);
        Ok(match (route, method.clone()) {
            (Route::Base, _) if read => Operation::ApiVersion,
            (Route::Catalog, _) if read => Operation::Catalog {
                page: Page::from_query(&query)?,
            },
            (Route::Tags { name }, _) if read => Operation::ListTags {
                name,
                page: Page::from_query(&query)?,
            },
            (Route::Manifest { name, reference }, m) => match m {
                Method::GET | Method::HEAD => Operation::GetManifest { name, reference },
                Method::PUT => {
                    let tags = push_tags(&query, &reference)?;
                    Operation::PutManifest {
                        name,
                        reference,
                        tags,
                    }
                }
                Method::DELETE => Operation::DeleteManifest { name, reference },
                m => return Err(not_allowed(&m)),
            },
            (Route::Blob { name, digest }, m) => match m {
                Method::HEAD => Operation::HeadBlob { name, digest },
                Method::GET => Operation::GetBlob { name, digest },
                Method::DELETE => Operation::DeleteBlob { name, digest },
                m => return Err(not_allowed(&m)),
            },
            (Route::BlobUploads { name }, Method::POST) => Operation::StartUpload {
                name,
                start: StartUpload::parse(&query)?,
            },
            (Route::BlobUpload { name, upload_id }, m) => {
                let step = match m {
                    Method::PATCH => UploadStep::Chunk,
                    Method::PUT => UploadStep::Finish,
                    Method::GET => UploadStep::Status,
                    Method::DELETE => UploadStep::Cancel,
                    m => return Err(not_allowed(&m)),
                };
                Operation::Upload {
                    name,
                    upload_id,
                    step,
                }
            }
            (Route::Referrers { name, digest }, _) if read => Operation::Referrers {
                name,
                digest,
                artifact_type: query.single("artifactType")?.map(str::to_owned),
            },
            (_, m) => return Err(not_allowed(&m)),
        })
    }

    /// The repository the operation addresses, if any.
    pub fn name(&self) -> Option<&Name> {
        repository_name!(self)
    }

    /// The repository the operation addresses, to be renamed (containerd's `?ns=`, Docker Hub's
    /// short names), before anything is checked.
    pub fn name_mut(&mut self) -> Option<&mut Name> {
        repository_name!(self)
    }

    /// What the caller must hold. The challenge's scope is this need's (`Need::scope`).
    pub fn need(&self) -> Need {
        use Operation::*;
        let permission = match self {
            ApiVersion => return Need::Nothing,
            Catalog { .. } => return Need::Catalog,
            ListTags { .. } => Permission::MetadataRead,
            GetManifest { .. } | HeadBlob { .. } | GetBlob { .. } | Referrers { .. } => {
                Permission::ContentRead
            }
            PutManifest { .. } | StartUpload { .. } | Upload { .. } => Permission::ContentWrite,
            DeleteManifest { .. } | DeleteBlob { .. } => Permission::ContentDelete,
        };
        Need::Repository {
            name: self
                .name()
                .expect("repository operations have a name")
                .clone(),
            permission,
        }
    }

    /// The lock the operation is subject to, and what it is checked on (besides the repository,
    /// whose lock always applies): one target, or for a push by digest with tags the manifest
    /// and each tag. A tag's target manifest is checked again once the tag is resolved
    /// (`get_manifest`).
    pub fn lock(&self) -> Option<(Lock, Vec<LockTarget>)> {
        let (lock, target) = self.lock_target()?;
        let mut targets = vec![target];
        if let Operation::PutManifest { tags, .. } = self {
            targets.extend(tags.iter().cloned().map(LockTarget::Tag));
        }
        Some((lock, targets))
    }

    fn lock_target(&self) -> Option<(Lock, LockTarget)> {
        use Operation::*;
        let manifest = |reference: &Reference| match reference {
            Reference::Tag(tag) => LockTarget::Tag(tag.clone()),
            Reference::Digest(digest) => LockTarget::Manifest(digest.clone()),
        };
        Some(match self {
            ApiVersion | Catalog { .. } => return None,
            ListTags { .. } => (Lock::List, LockTarget::Repository),
            GetManifest { reference, .. } => (Lock::Read, manifest(reference)),
            HeadBlob { digest, .. } | GetBlob { digest, .. } | Referrers { digest, .. } => {
                (Lock::Read, LockTarget::Manifest(digest.clone()))
            }
            PutManifest { reference, .. } => (Lock::Write, manifest(reference)),
            DeleteManifest { reference, .. } => (Lock::Delete, manifest(reference)),
            DeleteBlob { digest, .. } => (Lock::Delete, LockTarget::Manifest(digest.clone())),
            StartUpload { .. } | Upload { .. } => (Lock::Write, LockTarget::Repository),
        })
    }

    /// Whether the operation changes the registry (and so goes to the origin).
    pub fn is_write(&self) -> bool {
        use Operation::*;
        matches!(
            self,
            PutManifest { .. }
                | DeleteManifest { .. }
                | DeleteBlob { .. }
                | StartUpload { .. }
                | Upload { .. }
        )
    }

    /// The token scopes the edge asks of the origin to forward the operation: the target's, and a
    /// mount's source (the operation as authorized: a mount the caller may not make is a plain
    /// upload by then).
    pub fn origin_scopes(&self) -> Vec<String> {
        use Operation::*;
        match self {
            PutManifest { name, .. } | Upload { name, .. } => {
                vec![format!("repository:{name}:pull,push")]
            }
            StartUpload { name, start } => {
                let mut scopes = vec![format!("repository:{name}:pull,push")];
                if let self::StartUpload::Mount { from, .. } = start {
                    scopes.push(format!("repository:{from}:pull"));
                }
                scopes
            }
            DeleteManifest { name, .. } | DeleteBlob { name, .. } => {
                vec![format!("repository:{name}:delete")]
            }
            _ => Vec::new(),
        }
    }
}

/// Most tags one push by digest may name: each is a request to the origin.
pub const MAX_PUSH_TAGS: usize = 16;

/// The `?tag=` parameters of a manifest push: valid tags, each once, only on a push by digest.
fn push_tags(query: &Query, reference: &Reference) -> Result<Vec<Tag>> {
    let mut tags: Vec<Tag> = Vec::new();
    for value in query.all("tag") {
        let tag: Tag = value.parse()?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        return Ok(tags);
    }
    match reference {
        Reference::Tag(tag) => {
            return Err(Error::new(ErrorCode::BadRequest)
                .with_message("?tag= applies to a push by digest, not to a push by tag")
                .with_detail(serde_json::json!({ "reference": tag.as_str() })));
        }
        // Each tag is pushed as such, and the origin keeps the manifest under its sha256
        // digest: a manifest pushed by another digest would not be found by it afterwards.
        Reference::Digest(digest) if digest.algorithm() != crate::reference::Algorithm::Sha256 => {
            return Err(Error::new(ErrorCode::BadRequest)
                .with_message("a push with ?tag= names the manifest by its sha256 digest")
                .with_detail(serde_json::json!({ "reference": digest.to_string() })));
        }
        Reference::Digest(_) => {}
    }
    if tags.len() > MAX_PUSH_TAGS {
        return Err(Error::new(ErrorCode::BadRequest)
            .with_message(format!(
                "a push names at most {MAX_PUSH_TAGS} tags, this one {}",
                tags.len()
            ))
            .with_detail(serde_json::json!({ "tags": tags.len() })));
    }
    Ok(tags)
}

fn not_allowed(method: &Method) -> Error {
    Error::new(ErrorCode::Unsupported)
        .with_message(format!("method {method} is not allowed on this endpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Every route × method: the operation, or the refusal's status.
    #[test]
    fn every_route_and_method() {
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ];
        let paths = [
            "/v2/".to_owned(),
            "/v2/_catalog".to_owned(),
            "/v2/a/tags/list".to_owned(),
            "/v2/a/manifests/v1".to_owned(),
            format!("/v2/a/manifests/{D}"),
            format!("/v2/a/blobs/{D}"),
            "/v2/a/blobs/uploads/".to_owned(),
            "/v2/a/blobs/uploads/u1".to_owned(),
            format!("/v2/a/referrers/{D}"),
        ];
        // (path index, method) -> the operation's kind, or 405.
        let expected: &[(&str, [&str; 7])] = &[
            (
                "/v2/",
                ["version", "version", "405", "405", "405", "405", "405"],
            ),
            (
                "catalog",
                ["catalog", "catalog", "405", "405", "405", "405", "405"],
            ),
            ("tags", ["tags", "tags", "405", "405", "405", "405", "405"]),
            (
                "manifest tag",
                ["get-m", "get-m", "put-m", "405", "405", "del-m", "405"],
            ),
            (
                "manifest digest",
                ["get-m", "get-m", "put-m", "405", "405", "del-m", "405"],
            ),
            (
                "blob",
                ["get-b", "head-b", "405", "405", "405", "del-b", "405"],
            ),
            (
                "uploads",
                ["405", "405", "405", "start", "405", "405", "405"],
            ),
            (
                "upload",
                ["status", "405", "finish", "405", "chunk", "cancel", "405"],
            ),
            (
                "referrers",
                ["refs", "refs", "405", "405", "405", "405", "405"],
            ),
        ];
        for (path, (what, row)) in paths.iter().zip(expected) {
            for (method, want) in methods.iter().zip(row) {
                let got = match Operation::parse(method, path, None) {
                    Ok(op) => kind(&op).to_owned(),
                    Err(e) => e.status().as_u16().to_string(),
                };
                assert_eq!(&got, want, "{method} {path} ({what})");
                if let Ok(op) = Operation::parse(method, path, None) {
                    // Writes and only writes ask the origin for scopes; every repository
                    // operation needs a permission and checks a lock.
                    assert_eq!(op.is_write(), !op.origin_scopes().is_empty(), "{op:?}");
                    assert_eq!(op.name().is_some(), op.lock().is_some(), "{op:?}");
                    if op.name().is_some() {
                        assert!(matches!(op.need(), Need::Repository { .. }));
                    }
                }
            }
        }
    }

    fn kind(op: &Operation) -> &'static str {
        use Operation::*;
        match op {
            ApiVersion => "version",
            Catalog { .. } => "catalog",
            ListTags { .. } => "tags",
            GetManifest { .. } => "get-m",
            PutManifest { .. } => "put-m",
            DeleteManifest { .. } => "del-m",
            HeadBlob { .. } => "head-b",
            GetBlob { .. } => "get-b",
            DeleteBlob { .. } => "del-b",
            StartUpload { .. } => "start",
            Upload { step, .. } => match step {
                UploadStep::Chunk => "chunk",
                UploadStep::Finish => "finish",
                UploadStep::Status => "status",
                UploadStep::Cancel => "cancel",
            },
            Referrers { .. } => "refs",
        }
    }

    #[test]
    fn needs_locks_and_origin_scopes() {
        let op = |m: Method, p: &str, q: Option<&str>| Operation::parse(&m, p, q).unwrap();
        let pull = |n: &str| Need::Repository {
            name: n.parse().unwrap(),
            permission: Permission::ContentRead,
        };
        let get = op(Method::GET, "/v2/a/b/manifests/v1", None);
        assert_eq!(get.need(), pull("a/b"));
        assert_eq!(
            get.lock(),
            Some((Lock::Read, vec![LockTarget::Tag("v1".parse().unwrap())]))
        );
        let blob = op(Method::GET, &format!("/v2/a/blobs/{D}"), None);
        assert_eq!(
            blob.lock(),
            Some((Lock::Read, vec![LockTarget::Manifest(D.parse().unwrap())]))
        );
        let delete = op(Method::DELETE, &format!("/v2/a/manifests/{D}"), None);
        assert_eq!(delete.origin_scopes(), ["repository:a:delete"]);
        assert_eq!(delete.lock().unwrap().0, Lock::Delete);
        let mount = op(
            Method::POST,
            "/v2/a/blobs/uploads/",
            Some(&format!("mount={D}&from=b/c")),
        );
        assert_eq!(
            mount.origin_scopes(),
            ["repository:a:pull,push", "repository:b/c:pull"]
        );
        assert_eq!(
            op(Method::GET, "/v2/a/tags/list", Some("n=2&last=x")),
            Operation::ListTags {
                name: "a".parse().unwrap(),
                page: Page {
                    n: Some(2),
                    last: Some("x".into())
                }
            }
        );
        // Repeated parameters the operation acts on are refused.
        for (m, p, q) in [
            (Method::GET, "/v2/a/tags/list", "n=1&n=2"),
            (Method::GET, "/v2/_catalog", "last=a&last=b"),
            (
                Method::GET,
                &format!("/v2/a/referrers/{D}") as &str,
                "artifactType=x&artifactType=y",
            ),
            (
                Method::POST,
                "/v2/a/blobs/uploads/",
                "from=a&from=b&mount=sha256:00",
            ),
        ] {
            let e = Operation::parse(&m, p, Some(q)).unwrap_err();
            assert_eq!(e.status(), 400, "{m} {p}?{q}");
        }
    }

    #[test]
    fn start_queries() {
        let parse = |q: &str| StartUpload::parse(&Query::parse(Some(q)));
        assert_eq!(parse("").unwrap(), StartUpload::Plain);
        assert_eq!(
            parse(&format!("digest={D}")).unwrap(),
            StartUpload::Monolithic(D.parse().unwrap())
        );
        assert_eq!(
            parse(&format!("mount={D}&from=a/b")).unwrap(),
            StartUpload::Mount {
                digest: D.parse().unwrap(),
                from: "a/b".parse().unwrap()
            }
        );
        // A mount without a source is a plain upload; `from` alone means nothing.
        assert_eq!(parse(&format!("mount={D}")).unwrap(), StartUpload::Plain);
        assert_eq!(parse("from=a").unwrap(), StartUpload::Plain);
        for bad in [
            format!("mount={D}&from=a&from=b"),
            format!("mount={D}&mount={D}&from=a"),
            format!("digest={D}&digest={D}"),
            format!("digest={D}&mount={D}&from=a"),
            "mount=md5:00&from=a".to_owned(),
            format!("mount={D}&from=../x"),
        ] {
            assert_eq!(parse(&bad).unwrap_err().status(), 400, "{bad}");
        }
    }
}
