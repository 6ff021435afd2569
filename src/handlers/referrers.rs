//! `GET /v2/<name>/referrers/<digest>[?artifactType=]`: the manifests of `name` whose `subject` is
//! `digest`, as an OCI image index, from the content source, filtered by `artifactType` and by
//! read locks.

use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use super::to_json;
use crate::app::{App, json_response};
use crate::auth::records::{Lock, RepositoryAttributes};
use crate::content::Content;
use crate::error::Result;
use crate::media;
use crate::platform::Platform;
use crate::reference::{Digest, Name};

impl<P: Platform> App<P> {
    pub async fn get_referrers(
        &self,
        name: &Name,
        subject: &Digest,
        artifact_type: Option<&str>,
        attributes: &RepositoryAttributes,
    ) -> Result<Response<Vec<u8>>> {
        // Never a 404 (the spec: a registry that serves the referrers API must not answer one):
        // an unknown subject, or a repository with no manifests, has an empty list.
        let content = self.content();
        let all = content.referrers(name, subject).await?;
        let unindexed = content.own.unindexed.borrow_mut().take();
        let mut warnings = content.warnings();
        if let Some((why, corrupt)) = unindexed {
            let reason = if corrupt {
                (self.log)(&format!("referrers index: {why}"));
                "the referrers index failed its checks and is being rebuilt"
            } else {
                "the referrers index is not built yet"
            };
            self.ask_rebuild(reason).await;
            warnings.push(format!(
                "{reason}: this list comes from reading every manifest of the repository"
            ));
        }
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
        for text in warnings {
            response.headers_mut().append(
                http::header::WARNING,
                super::manifests::header_value(&super::manifests::warning(&text))?,
            );
        }
        if artifact_type.is_some() {
            response.headers_mut().insert(
                "oci-filters-applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        Ok(response)
    }
}
