//! `GET /v2/<name>/referrers/<digest>[?artifactType=]`: the manifests of `name` whose `subject` is
//! `digest`, as an OCI image index. The layout keeps no referrers index, so the edge reads the
//! repository's revisions (their bytes are immutable and cached) and keeps the answer for
//! `TAG_CACHE_SECONDS`.

use futures::future::try_join_all;
use http::{HeaderValue, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::to_json;
use crate::app::{App, json_response};
use crate::auth::records::{Lock, RepositoryAttributes};
use crate::cache::{EdgeCache, key};
use crate::error::{ErrorCode, Result};
use crate::media;
use crate::platform::Platform;
use crate::reference::{Algorithm, Digest, Name};
use crate::storage::ObjectStore;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Referrer {
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    subject: Option<Descriptor>,
    annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: Option<String>,
}

impl<P: Platform> App<P> {
    pub async fn get_referrers(
        &self,
        name: &Name,
        subject: &Digest,
        artifact_type: Option<&str>,
        attributes: &RepositoryAttributes,
    ) -> Result<Response<Vec<u8>>> {
        let cache_key = key::referrers(name, subject);
        let all: Vec<Value> = match self
            .cache
            .get(&cache_key)
            .await
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(cached) => cached,
            None => {
                let found = self.find_referrers(name, subject).await?;
                self.cache
                    .put(
                        &cache_key,
                        &to_json(&json!(found)),
                        self.config.tag_cache_seconds,
                    )
                    .await;
                found
            }
        };
        // A read-locked manifest is not listed: its descriptor would tell what it is.
        let manifests: Vec<&Value> = all
            .iter()
            .filter(|d| artifact_type.is_none_or(|t| d["artifactType"] == t))
            .filter(|d| {
                // Descriptors the edge wrote itself: their digests parse.
                d["digest"]
                    .as_str()
                    .and_then(|digest| digest.parse::<Digest>().ok())
                    .is_some_and(|digest| attributes.manifest(&digest, Lock::Read))
            })
            .collect();
        let body =
            json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests });
        let mut response = json_response(StatusCode::OK, to_json(&body));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(media::OCI_INDEX),
        );
        if artifact_type.is_some() {
            response.headers_mut().insert(
                "oci-filters-applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        Ok(response)
    }

    async fn find_referrers(&self, name: &Name, subject: &Digest) -> Result<Vec<Value>> {
        let mut digests = Vec::new();
        for algorithm in Algorithm::ALL {
            let dir = self.config.layout.manifest_revisions_dir(name, algorithm);
            let hexes = self.store.list_dirs(&dir).await?;
            digests.extend(
                hexes
                    .iter()
                    .filter_map(|hex| Digest::from_parts(algorithm, hex).ok()),
            );
        }
        if digests.is_empty() {
            return Err(self
                .not_found(
                    name,
                    ErrorCode::NameUnknown,
                    json!({ "name": name.as_str() }),
                )
                .await);
        }
        let manifests = try_join_all(digests.iter().map(|d| self.manifest(d))).await?;
        let subject = subject.to_string();
        let mut found = Vec::new();
        for (digest, bytes) in digests.iter().zip(manifests) {
            let Some(super::links::Manifest {
                media_type: stored_type,
                bytes,
            }) = bytes
            else {
                continue;
            };
            let Ok(m) = serde_json::from_slice::<Referrer>(&bytes) else {
                continue;
            };
            if m.subject.as_ref().and_then(|s| s.digest.as_deref()) != Some(subject.as_str()) {
                continue;
            }
            let media_type = m.media_type.unwrap_or(stored_type);
            let artifact_type = m
                .artifact_type
                .or_else(|| m.config.and_then(|c| c.media_type));
            let mut descriptor = json!({
                "mediaType": media_type,
                "digest": digest.to_string(),
                "size": bytes.len(),
            });
            if let Some(t) = artifact_type {
                descriptor["artifactType"] = json!(t);
            }
            if let Some(a) = m.annotations.filter(|a| !a.is_empty()) {
                descriptor["annotations"] = Value::Object(a);
            }
            found.push(descriptor);
        }
        Ok(found)
    }
}
