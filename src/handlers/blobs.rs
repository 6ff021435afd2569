//! `HEAD /v2/<name>/blobs/<digest>` is answered at the edge (size from the content source,
//! cached); `GET` answers `307` to where the source sends downloads (a presigned object-storage
//! URL, or the configured CDN base URL): blob bytes never pass through the edge. Both only for
//! blobs the repository links. `DELETE` is forwarded to the origin.

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use super::manifests::header_value;
use crate::app::App;
use crate::cache::EdgeCache;
use crate::content::{Content, Download, IMMUTABLE_CACHE_CONTROL};
use crate::error::{ErrorCode, Result};
use crate::platform::Platform;
use crate::reference::{Digest, Name};

impl<P: Platform> App<P> {
    /// The size of a blob `name` links, or `BLOB_UNKNOWN` (`NAME_UNKNOWN` for no repository).
    async fn linked_blob_size(&self, name: &Name, digest: &Digest) -> Result<u64> {
        match self.content().blob_size(name, digest).await? {
            Some(size) => Ok(size),
            None => Err(self
                .not_found(
                    name,
                    ErrorCode::BlobUnknown,
                    json!({ "name": name.as_str(), "digest": digest.to_string() }),
                )
                .await),
        }
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

    /// A `307` to where the content source sends downloads (a signed storage URL, the CDN, an
    /// upstream's blob host), or the bytes an upstream streams, untouched.
    pub async fn get_blob(
        &self,
        name: &Name,
        digest: &Digest,
        headers: &http::HeaderMap,
    ) -> Result<Response<Vec<u8>>> {
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(byte_range);
        let download = self
            .content()
            .blob_download(name, digest, range.as_deref())
            .await?;
        let mut response = match download {
            None => {
                return Err(self
                    .not_found(
                        name,
                        ErrorCode::BlobUnknown,
                        json!({ "name": name.as_str(), "digest": digest.to_string() }),
                    )
                    .await);
            }
            Some(Download::Streamed(response)) => response,
            Some(Download::Redirect(location)) => {
                let mut response = Response::new(Vec::new());
                *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
                let h = response.headers_mut();
                h.insert(header::LOCATION, header_value(&location.url)?);
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                h.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(location.cache_control),
                );
                response
            }
        };
        response
            .headers_mut()
            .insert("docker-content-digest", header_value(&digest.to_string())?);
        Ok(response)
    }
}

/// A `Range` of one byte range (`bytes=<start>-<end>`, either bound may be left out), rebuilt
/// from its numbers; anything else is ignored, as RFC 9110 lets a server ignore a range.
fn byte_range(value: &str) -> Option<String> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            return Some(None);
        }
        if s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().map(Some)
    };
    match (number(start)?, number(end)?) {
        (None, None) => None,
        (Some(start), Some(end)) if end < start => None,
        (start, end) => Some(format!(
            "bytes={}-{}",
            start.map(|n| n.to_string()).unwrap_or_default(),
            end.map(|n| n.to_string()).unwrap_or_default()
        )),
    }
}

#[cfg(test)]
#[test]
fn byte_ranges_are_rebuilt_or_ignored() {
    let cases = [
        ("bytes=0-99", Some("bytes=0-99")),
        ("bytes=100-", Some("bytes=100-")),
        ("bytes=-5", Some("bytes=-5")),
        (" bytes= 1 - 2 ", Some("bytes=1-2")),
        ("bytes=1-2", Some("bytes=1-2")),
        ("bytes=2-1", None),
        ("bytes=-", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=0-1\r\nX: y", None),
    ];
    for (value, want) in cases {
        assert_eq!(byte_range(value).as_deref(), want, "{value}");
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
            for key in crate::upstream::deleted_blob_keys(&self.config.upstreams, name, digest) {
                self.cache.delete(&key).await;
            }
        }
        Ok(response)
    }
}
