//! `GET|HEAD /v2/<name>/manifests/<reference>`: by tag or digest, from the repository's links,
//! bytes verified against the digest, served with their media type.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::json;

use super::links::Link;
use crate::app::App;
use crate::cache::EdgeCache;
use crate::error::{Error, ErrorCode, Result};
use crate::media;
use crate::platform::Clock;
use crate::reference::{Name, Reference};
use crate::storage::ObjectStore;

pub const IMMUTABLE_CACHE_CONTROL: &str = "max-age=31536000, immutable";

impl<S: ObjectStore, C: EdgeCache, K: Clock> App<S, C, K> {
    pub async fn get_manifest(
        &self,
        name: &Name,
        reference: &Reference,
        headers: &HeaderMap,
    ) -> Result<Response<Vec<u8>>> {
        let unknown = || json!({ "name": name.as_str(), "reference": reference.to_string() });
        let digest = match reference {
            Reference::Digest(digest) => digest.clone(),
            Reference::Tag(tag) => match self.resolve_tag(name, tag).await? {
                Some(digest) => digest,
                None => {
                    return Err(self
                        .not_found(name, ErrorCode::ManifestUnknown, unknown())
                        .await);
                }
            },
        };
        if !self.is_linked(Link::Revision, name, &digest).await? {
            return Err(self
                .not_found(name, ErrorCode::ManifestUnknown, unknown())
                .await);
        }
        let Some(bytes) = self.manifest_bytes(&digest).await? else {
            return Err(Error::new(ErrorCode::ManifestUnknown)
                .with_message("manifest is linked in the repository but its content is missing")
                .with_detail(unknown()));
        };
        let media_type = media::manifest_media_type(&bytes)
            .ok_or_else(|| Error::internal(format!("stored manifest {digest} is not JSON")))?;
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok());
        if !media::acceptable(&media_type, accept) {
            let what = if media_type == media::OCI_INDEX {
                "OCI index"
            } else {
                "OCI manifest"
            };
            return Err(Error::new(ErrorCode::ManifestUnknown)
                .with_message(format!(
                    "{what} found, but accept header does not support {what}s"
                ))
                .with_detail(unknown()));
        }

        let etag = format!("\"{digest}\"");
        let cache_control = match reference {
            Reference::Digest(_) => IMMUTABLE_CACHE_CONTROL,
            Reference::Tag(_) => "no-cache",
        };
        let not_modified = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|candidate| candidate.trim() == etag || candidate.trim() == "*");
        let (status, body) = if not_modified {
            (StatusCode::NOT_MODIFIED, Vec::new())
        } else {
            (StatusCode::OK, bytes)
        };
        let length = body.len();
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, header_value(&media_type)?);
        if !not_modified {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        h.insert("docker-content-digest", header_value(&digest.to_string())?);
        h.insert(header::ETAG, header_value(&etag)?);
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        Ok(response)
    }
}

pub(crate) fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s)
        .map_err(|_| Error::internal(format!("not a valid header value: {s:?}")))
}
