//! `HEAD /v2/<name>/blobs/<digest>` is answered at the edge (size from storage, cached);
//! `GET` answers `307` to a presigned object-storage URL (or the configured CDN base URL): blob
//! bytes never pass through the edge. Both only for blobs the repository links. `DELETE` is
//! forwarded to the origin.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use super::links::Link;
use super::manifests::{IMMUTABLE_CACHE_CONTROL, header_value};
use crate::app::App;
use crate::cache::EdgeCache;
use crate::error::{Error, ErrorCode, Result};
use crate::platform::Clock;
use crate::platform::Platform;
use crate::reference::{Digest, Name};
use crate::storage::presign::Method;

impl<P: Platform> App<P> {
    /// The size of a blob `name` links, or `BLOB_UNKNOWN` (`NAME_UNKNOWN` for no repository).
    async fn linked_blob_size(&self, name: &Name, digest: &Digest) -> Result<u64> {
        let unknown = || json!({ "name": name.as_str(), "digest": digest.to_string() });
        if !self.is_linked(Link::Layer, name, digest).await? {
            return Err(self
                .not_found(name, ErrorCode::BlobUnknown, unknown())
                .await);
        }
        self.blob_size(digest).await?.ok_or_else(|| {
            Error::new(ErrorCode::BlobUnknown)
                .with_message("blob is linked in the repository but its content is missing")
                .with_detail(unknown())
        })
    }

    pub async fn head_blob(&self, name: &Name, digest: &Digest) -> Result<Response<Vec<u8>>> {
        let size = self.linked_blob_size(name, digest).await?;
        let mut response = Response::new(Vec::new());
        let h = response.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert("docker-content-digest", header_value(&digest.to_string())?);
        h.insert(header::ETAG, header_value(&format!("\"{digest}\""))?);
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(IMMUTABLE_CACHE_CONTROL),
        );
        Ok(response)
    }

    pub async fn get_blob(&self, name: &Name, digest: &Digest) -> Result<Response<Vec<u8>>> {
        self.linked_blob_size(name, digest).await?;
        let key = self.config.layout.blob_data(digest);
        let (location, cache_control) = match (&self.config.blob_base_url, &self.presigner) {
            (Some(base), _) => {
                let base = base.as_str().trim_end_matches('/');
                (format!("{base}/{key}"), IMMUTABLE_CACHE_CONTROL)
            }
            (None, Some(presigner)) => {
                let expires = Duration::from_secs(self.config.presign_seconds);
                let url = presigner.object_url(Method::Get, &key, expires, self.clock.now());
                // The URL expires: nobody may keep the redirect.
                (url.to_string(), "no-store")
            }
            (None, None) => {
                return Err(Error::internal(
                    "no presigner and no BLOB_BASE_URL configured",
                ));
            }
        };
        let mut response = Response::new(Vec::new());
        *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        let h = response.headers_mut();
        h.insert(header::LOCATION, header_value(&location)?);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert("docker-content-digest", header_value(&digest.to_string())?);
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        Ok(response)
    }
}

impl<P: Platform> App<P> {
    /// `DELETE /v2/<name>/blobs/<digest>`: forwarded; on success the repository's link to the
    /// blob is forgotten here too.
    pub async fn delete_blob<B>(
        &self,
        name: &Name,
        digest: &Digest,
        request: &http::Request<B>,
        scopes: Vec<String>,
    ) -> Result<Response<Vec<u8>>> {
        let response = self
            .forward(super::forward::Forward {
                method: http::Method::DELETE,
                path: crate::origin::OriginPath::blob(name, digest),
                query: Vec::new(),
                headers: crate::origin::RequestHeaders::default(),
                body: crate::origin::OriginBody::Empty,
                scopes,
                public_base: self.public_base(request),
            })
            .await?;
        if response.status() == StatusCode::ACCEPTED {
            self.cache
                .delete(&crate::cache::key::layer(name, digest))
                .await;
        }
        Ok(response)
    }
}
