//! Manifests. `GET|HEAD /v2/<name>/manifests/<reference>`: by tag or digest, from the repository's
//! links, bytes verified against the digest, served with their media type. `PUT` and `DELETE` are
//! forwarded to the origin; after a success the edge drops what it cached about the manifest (so
//! the next read through this edge sees the write) and emits an event.

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;

use super::forward::Forward;
use crate::app::App;
use crate::auth::Principal;
use crate::auth::records::{Lock, RepositoryAttributes};
use crate::auth::service::locked;
use crate::cache::EdgeCache;
use crate::cache::key;
use crate::content::{Content, IMMUTABLE_CACHE_CONTROL, Manifest};
use crate::error::{Error, ErrorCode, Result};
use crate::events::{Action, Event, EventSink};
use crate::media;
use crate::origin::{OriginBody, OriginPath, RequestHeaders};
use crate::platform::ClientBody;
use crate::platform::Clock;
use crate::platform::{Platform, RequestLocation};
use crate::reference::{Digest, Name, Reference, Tag};

impl<P: Platform> App<P> {
    /// A manifest's read lock is checked here, after a tag is resolved: it covers the manifest
    /// however the client names it.
    pub async fn get_manifest(
        &self,
        name: &Name,
        reference: &Reference,
        headers: &HeaderMap,
        attributes: &RepositoryAttributes,
    ) -> Result<Response<Vec<u8>>> {
        let unknown = || json!({ "name": name.as_str(), "reference": reference.to_string() });
        let content = self.content();
        let digest = match reference {
            Reference::Digest(digest) => digest.clone(),
            Reference::Tag(tag) => match content.resolve_tag(name, tag).await? {
                Some(digest) => digest,
                None => {
                    return Err(self
                        .not_found(name, ErrorCode::ManifestUnknown, unknown())
                        .await);
                }
            },
        };
        if !attributes.is_default() {
            for digest in self.lock_digests(name, &digest).await? {
                if !attributes.manifest(&digest, Lock::Read) {
                    return Err(locked(&format!("manifest {name}@{digest}"), Lock::Read));
                }
            }
        }
        let Some(Manifest { media_type, bytes }) = content.manifest(name, &digest).await? else {
            return Err(self
                .not_found(name, ErrorCode::ManifestUnknown, unknown())
                .await);
        };
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
        for text in content.warnings() {
            h.append(header::WARNING, header_value(&warning(&text))?);
        }
        Ok(response)
    }
}

/// A registry warning (`299 - "<text>"`, as the distribution spec has registries send them).
pub(crate) fn warning(text: &str) -> String {
    let text: String = text
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    format!("299 - \"{text}\"")
}

pub(crate) fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s)
        .map_err(|_| Error::internal(format!("not a valid header value: {s:?}")))
}

/// Largest manifest the edge accepts, as distribution's default.
pub const MANIFEST_MAX_BYTES: usize = 4 << 20;

impl<P: Platform> App<P> {
    /// `PUT /v2/<name>/manifests/<reference>`: read (bounded), checked against a digest
    /// reference, forwarded; on success the edge forgets what it cached about the tag and emits a
    /// push event.
    ///
    /// A push by digest with `?tag=` parameters (spec 1.1+; distribution 2.8 ignores them) is
    /// given to the origin as one push per tag, through this same path, and answered with one
    /// `OCI-Tag` per tag. When a tag fails after others were applied, the answer is the failure,
    /// naming the applied tags (in `OCI-Tag` and in the error's detail): the origin cannot take a
    /// tag back.
    ///
    /// `OCI-Subject` is answered for a manifest with a `subject` when the origin does not: the
    /// edge serves the referrers API itself.
    pub async fn put_manifest<B: ClientBody>(
        &self,
        name: &Name,
        reference: &Reference,
        tags: &[Tag],
        request: &Request<B>,
        scopes: Vec<String>,
        actor: &Principal,
    ) -> Result<Response<Vec<u8>>> {
        let body = request
            .body()
            .read(MANIFEST_MAX_BYTES)
            .await
            .map_err(|e| {
                Error::new(ErrorCode::ManifestInvalid)
                    .with_message(format!("reading the manifest: {e}"))
            })?
            .ok_or_else(|| {
                Error::new(ErrorCode::TooLarge)
                    .with_message(format!("manifest larger than {MANIFEST_MAX_BYTES} bytes"))
            })?;
        let digest = Digest::sha256(&body);
        if let Reference::Digest(expected) = reference
            && !expected.verifies(&body)
        {
            return Err(Error::new(ErrorCode::DigestInvalid).with_detail(
                json!({ "reference": expected.to_string(), "content": digest.to_string() }),
            ));
        }
        let parsed: ManifestHead = serde_json::from_slice(&body).map_err(|e| {
            Error::new(ErrorCode::ManifestInvalid)
                .with_message(format!("manifest is not valid JSON: {e}"))
        })?;
        let chart = parsed.is_chart();
        let subject = parsed
            .subject
            .and_then(|s| s.digest?.parse::<Digest>().ok());
        let client = RequestHeaders::from_client(request.headers())?;
        let headers = RequestHeaders {
            content_type: client.content_type,
            content_length: Some(body.len() as u64),
            content_range: None,
        };
        let media_type = headers.content_type.clone().or(parsed.media_type);
        let size = body.len() as u64;
        let targets: Vec<Reference> = if tags.is_empty() {
            vec![reference.clone()]
        } else {
            tags.iter().cloned().map(Reference::Tag).collect()
        };
        let mut applied: Vec<&Tag> = Vec::new();
        let mut last = None;
        for target in &targets {
            let forwarded = self
                .forward(Forward {
                    method: Method::PUT,
                    path: OriginPath::manifest(name, target),
                    query: Vec::new(),
                    headers: headers.clone(),
                    body: OriginBody::Bytes(body.clone()),
                    scopes: scopes.clone(),
                    public_base: self.public_base(request),
                })
                .await;
            let response = match forwarded {
                Ok(response) if response.status() == StatusCode::CREATED => response,
                // Nothing applied yet: the failure as it is.
                failed if applied.is_empty() => return failed,
                failed => return partial_push(name, &applied, target, failed),
            };
            self.forget_manifest(name, target, &digest, subject.as_ref(), false)
                .await;
            if applied.is_empty() {
                self.queue_index(name, &digest, subject.as_ref()).await;
            }
            let event = self.emit(
                Action::Push,
                (actor, request.extensions().get::<RequestLocation>()),
                name,
                target,
                &digest,
                Some((media_type.clone(), size)),
            );
            self.notify_webhooks(request, &event, chart).await;
            if let Reference::Tag(tag) = target
                && !tags.is_empty()
            {
                applied.push(tag);
            }
            last = Some(response);
        }
        let mut response = last.expect("a push has at least one target");
        let h = response.headers_mut();
        for tag in &applied {
            h.append("oci-tag", header_value(tag.as_str())?);
        }
        if let Some(subject) = &subject
            && !h.contains_key("oci-subject")
        {
            h.insert("oci-subject", header_value(&subject.to_string())?);
        }
        Ok(response)
    }

    /// `DELETE /v2/<name>/manifests/<reference>`: forwarded; on success the edge forgets the
    /// manifest's links and tag and emits a delete event.
    pub async fn delete_manifest<B>(
        &self,
        name: &Name,
        reference: &Reference,
        request: &Request<B>,
        scopes: Vec<String>,
        actor: &Principal,
    ) -> Result<Response<Vec<u8>>> {
        // What the manifest refers to, if the edge holds its bytes, so its referrers list is
        // dropped too.
        let known = match reference {
            Reference::Digest(d) => self.content().cached_manifest(d).await,
            Reference::Tag(_) => None,
        };
        let head = known.and_then(|m| serde_json::from_slice::<ManifestHead>(&m.bytes).ok());
        let chart = head.as_ref().is_some_and(ManifestHead::is_chart);
        let subject = head.and_then(|m| m.subject?.digest?.parse::<Digest>().ok());
        let response = self
            .forward(Forward {
                method: Method::DELETE,
                path: OriginPath::manifest(name, reference),
                query: Vec::new(),
                headers: RequestHeaders::default(),
                body: OriginBody::Empty,
                scopes,
                public_base: self.public_base(request),
            })
            .await?;
        if response.status() == StatusCode::ACCEPTED {
            let digest = match reference {
                Reference::Digest(d) => Some(d.clone()),
                Reference::Tag(_) => None,
            };
            if let Some(d) = &digest {
                self.forget_manifest(name, reference, d, subject.as_ref(), true)
                    .await;
                self.queue_index(name, d, subject.as_ref()).await;
            } else if let Reference::Tag(tag) = reference {
                self.cache.delete(&key::tag(name, tag)).await;
                self.cache.delete(&key::tags(name)).await;
                self.forget_upstream(name, Some(tag), None, None).await;
            }
            let event_digest = digest.unwrap_or_else(|| Digest::sha256(b""));
            let by = (actor, request.extensions().get::<RequestLocation>());
            let event = self.emit(Action::Delete, by, name, reference, &event_digest, None);
            self.notify_webhooks(request, &event, chart).await;
        }
        Ok(response)
    }

    /// Drops what the edge cached about a manifest that just changed in `name`.
    async fn forget_manifest(
        &self,
        name: &Name,
        reference: &Reference,
        digest: &Digest,
        subject: Option<&Digest>,
        deleted: bool,
    ) {
        if let Reference::Tag(tag) = reference {
            self.cache.delete(&key::tag(name, tag)).await;
        }
        self.cache.delete(&key::tags(name)).await;
        self.cache.delete(&key::catalog()).await;
        self.cache.delete(&key::revision(name, digest)).await;
        self.cache.delete(&key::layer(name, digest)).await;
        if let Some(subject) = subject {
            self.cache.delete(&key::referrers(name, subject)).await;
        }
        let tag = match reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        };
        self.forget_upstream(name, tag, deleted.then_some(digest), subject)
            .await;
    }

    /// Drops what the edge kept from the upstream behind `name` (the fronted origin), which the
    /// write just changed.
    async fn forget_upstream(
        &self,
        name: &Name,
        tag: Option<&Tag>,
        deleted: Option<&Digest>,
        subject: Option<&Digest>,
    ) {
        let keys =
            crate::upstream::written_keys(&self.config.upstreams, name, tag, deleted, subject);
        for key in keys {
            self.cache.delete(&key).await;
        }
    }

    /// `by`: who, and where the request arrived; `pushed`: the manifest's media type (if known)
    /// and size, for a push. Returns the event, for the webhooks.
    fn emit(
        &self,
        action: Action,
        (actor, location): (&Principal, Option<&RequestLocation>),
        name: &Name,
        reference: &Reference,
        digest: &Digest,
        pushed: Option<(Option<String>, u64)>,
    ) -> Event {
        let (media_type, size) = match pushed {
            Some((media_type, size)) => (media_type, Some(size)),
            None => (None, None),
        };
        let tag = match reference {
            Reference::Tag(t) => Some(t.to_string()),
            Reference::Digest(_) => None,
        };
        let digest = match (action, reference) {
            (Action::Delete, Reference::Tag(_)) => None,
            _ => Some(digest.to_string()),
        };
        let event = Event {
            action,
            repository: name.to_string(),
            tag,
            digest,
            media_type,
            size,
            actor: actor.actor(),
            timestamp: self.clock.now(),
            colo: location.and_then(|l| l.colo.clone()),
        };
        self.events.emit(event.clone());
        event
    }
}

/// The parts of a manifest the edge looks at when it is written.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestHead {
    media_type: Option<String>,
    subject: Option<SubjectHead>,
    config: Option<ConfigHead>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigHead {
    media_type: Option<String>,
}

impl ManifestHead {
    /// A Helm chart: its config is Helm's.
    fn is_chart(&self) -> bool {
        self.config.as_ref().and_then(|c| c.media_type.as_deref())
            == Some(crate::webhooks::HELM_CONFIG)
    }
}

#[derive(serde::Deserialize)]
struct SubjectHead {
    digest: Option<String>,
}

/// The answer to a push by digest whose tag `failed` failed after the tags `applied` were: the
/// failure (the origin's answer, or the edge's error), its errors' details naming both, and one
/// `OCI-Tag` per applied tag.
fn partial_push(
    name: &Name,
    applied: &[&Tag],
    failed: &Reference,
    outcome: Result<Response<Vec<u8>>>,
) -> Result<Response<Vec<u8>>> {
    let applied_names: Vec<&str> = applied.iter().map(|t| t.as_str()).collect();
    let mut response = match outcome {
        Ok(mut response) => {
            let body: Option<serde_json::Value> = serde_json::from_slice(response.body()).ok();
            if let Some(mut body) = body
                && let Some(errors) = body.get_mut("errors").and_then(|e| e.as_array_mut())
            {
                for error in errors {
                    let cause = error.get("detail").cloned().unwrap_or(json!(null));
                    error["detail"] = json!({
                        "name": name.as_str(),
                        "applied": applied_names,
                        "failed": failed.to_string(),
                        "cause": cause,
                    });
                }
                let bytes = serde_json::to_vec(&body).expect("JSON serializes");
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                *response.body_mut() = bytes;
            }
            response
        }
        Err(error) => {
            let cause = error.detail.clone();
            let message = error.message.clone();
            let mut error = error.with_detail(json!({
                "name": name.as_str(),
                "applied": applied_names,
                "failed": failed.to_string(),
                "cause": cause,
            }));
            error.message = Some(format!(
                "{} (tags {} were applied before {failed} failed)",
                message.unwrap_or_else(|| error.code.message().to_owned()),
                applied_names.join(", ")
            ));
            crate::app::error_response(&error)
        }
    };
    for tag in applied {
        response
            .headers_mut()
            .append("oci-tag", header_value(tag.as_str())?);
    }
    Ok(response)
}
