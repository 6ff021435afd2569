//! The `/v2` surface as one enum. `Route::parse` reads a request path once, from the right, because
//! repository names contain `/`: `/v2/<name>/<kind>/<reference>`. Every name, tag and digest in a
//! route is already validated; an invalid one is an `Error` (400 `NAME_INVALID`, `DIGEST_INVALID`,
//! `TAG_INVALID`), an unknown path a 404. The path is taken as sent: never percent-decoded, so
//! `%2F` cannot smuggle a slash into a name.

use crate::error::{Error, ErrorCode};
use crate::reference::{Digest, Name, Reference};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: Name },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: Name, reference: Reference },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: Name, digest: Digest },
    /// `/v2/<name>/blobs/uploads/`: starts an upload.
    BlobUploads { name: Name },
    /// `/v2/<name>/blobs/uploads/<upload_id>`
    BlobUpload { name: Name, upload_id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: Name, digest: Digest },
}

impl Route {
    pub fn parse(path: &str) -> Result<Route, Error> {
        let rest = match path {
            "/v2" | "/v2/" => return Ok(Route::Base),
            _ => path.strip_prefix("/v2/").ok_or_else(not_found)?,
        };
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads/") {
            return Ok(Route::BlobUploads {
                name: name.parse()?,
            });
        }
        let (head, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
        let (name, kind) = head.rsplit_once('/').ok_or_else(not_found)?;
        match kind {
            "manifests" => Ok(Route::Manifest {
                name: name.parse()?,
                reference: last.parse()?,
            }),
            "blobs" => Ok(Route::Blob {
                name: name.parse()?,
                digest: last.parse()?,
            }),
            "tags" if last == "list" => Ok(Route::Tags {
                name: name.parse()?,
            }),
            "referrers" => Ok(Route::Referrers {
                name: name.parse()?,
                digest: last.parse()?,
            }),
            "uploads" => match name.strip_suffix("/blobs") {
                Some(name) if is_upload_id(last) => Ok(Route::BlobUpload {
                    name: name.parse()?,
                    upload_id: last.to_owned(),
                }),
                _ => Err(not_found()),
            },
            _ => Err(not_found()),
        }
    }

    /// The repository the route addresses, if any.
    pub fn name(&self) -> Option<&Name> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::BlobUploads { name }
            | Route::BlobUpload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }
}

/// Upload ids are opaque to clients but minted by registries as UUIDs or URL-safe tokens.
fn is_upload_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b))
}

fn not_found() -> Error {
    Error::new(ErrorCode::NotFound).with_message("no such endpoint in the registry API")
}

/// `n` and `last` of a paginated list (`tags/list`, `_catalog`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub n: Option<usize>,
    pub last: Option<String>,
}

impl Page {
    pub fn from_query(query: &crate::query::Query) -> Result<Page, Error> {
        let n = match query.single("n")? {
            None => None,
            Some(value) => Some(value.parse::<usize>().map_err(|_| {
                Error::new(ErrorCode::PaginationNumberInvalid)
                    .with_detail(serde_json::json!({ "n": value }))
            })?),
        };
        let last = query
            .single("last")?
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        Ok(Page { n, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_route() {
        let d: Digest = D.parse().unwrap();
        let cases: Vec<(String, Route)> = vec![
            ("/v2/".into(), Route::Base),
            ("/v2".into(), Route::Base),
            ("/v2/_catalog".into(), Route::Catalog),
            ("/v2/a/tags/list".into(), Route::Tags { name: name("a") }),
            (
                "/v2/team/app/service/manifests/v1".into(),
                Route::Manifest {
                    name: name("team/app/service"),
                    reference: "v1".parse().unwrap(),
                },
            ),
            (
                format!("/v2/a/b/manifests/{D}"),
                Route::Manifest {
                    name: name("a/b"),
                    reference: Reference::Digest(d.clone()),
                },
            ),
            (
                format!("/v2/a/blobs/{D}"),
                Route::Blob {
                    name: name("a"),
                    digest: d.clone(),
                },
            ),
            // Names may contain the words the router looks for.
            (
                format!("/v2/blobs/manifests/blobs/{D}"),
                Route::Blob {
                    name: name("blobs/manifests"),
                    digest: d.clone(),
                },
            ),
            (
                "/v2/tags/list/tags/list".into(),
                Route::Tags {
                    name: name("tags/list"),
                },
            ),
            (
                "/v2/a/b/blobs/uploads/".into(),
                Route::BlobUploads { name: name("a/b") },
            ),
            (
                "/v2/a/blobs/uploads/0f6e-44_x=".into(),
                Route::BlobUpload {
                    name: name("a"),
                    upload_id: "0f6e-44_x=".into(),
                },
            ),
            (
                format!("/v2/a/referrers/{D}"),
                Route::Referrers {
                    name: name("a"),
                    digest: d,
                },
            ),
        ];
        for (path, want) in cases {
            assert_eq!(Route::parse(&path).unwrap(), want, "{path}");
        }
    }

    #[test]
    fn rejects_invalid_parts() {
        let cases = [
            ("/v2/A/b/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a//b/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a/../b/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a/%2e%2e/b/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a%2Fb/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a%2fb/tags/list", ErrorCode::NameInvalid),
            ("/v2/a/manifests/sha256:abc", ErrorCode::DigestInvalid),
            ("/v2/a/blobs/latest", ErrorCode::DigestInvalid),
            ("/v2/a/manifests/-bad", ErrorCode::TagInvalid),
            ("/v2/a/manifests/a%2fb", ErrorCode::TagInvalid),
        ];
        for (path, code) in cases {
            let err = Route::parse(path).unwrap_err();
            assert_eq!(err.code, code, "{path}");
            assert_eq!(err.status(), 400, "{path}");
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/",
            "/v1/",
            "/v2/a",
            "/v2/a/unknown/x",
            "/v2/a/tags/other",
            "/v2/a/blobs/uploads/a/b",
            "/v2x/",
        ] {
            let err = Route::parse(path).unwrap_err();
            assert_eq!(err.status(), 404, "{path}");
        }
    }

    #[test]
    fn pages() {
        let from_query = |q: Option<&str>| Page::from_query(&crate::query::Query::parse(q));
        assert_eq!(from_query(None).unwrap(), Page::default());
        assert_eq!(
            from_query(Some("n=2&last=b%2Fc")).unwrap(),
            Page {
                n: Some(2),
                last: Some("b/c".into())
            }
        );
        assert_eq!(
            from_query(Some("n=-1")).unwrap_err().code,
            ErrorCode::PaginationNumberInvalid
        );
        assert_eq!(
            from_query(Some("n=x")).unwrap_err().code,
            ErrorCode::PaginationNumberInvalid
        );
        for repeated in ["n=1&n=1000", "last=a&last=b"] {
            assert_eq!(from_query(Some(repeated)).unwrap_err().status(), 400);
        }
    }
}
