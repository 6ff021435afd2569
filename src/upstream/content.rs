//! Reads through an upstream registry: the content source beside the storage layout, for the
//! names `UPSTREAMS` maps to an upstream. What it fetches it keeps in the edge cache, per
//! upstream and repository there (never shared between repositories: one repository's content
//! is not another's just because the edge saw it):
//! - manifests by digest: fetched once, verified against the digest before anything is served or
//!   kept, then kept as immutable;
//! - tags: answered from the edge within the entry's `tag_ttl_seconds`; after that, one `HEAD`
//!   (which Docker Hub does not count as a pull) revalidates the tag; when the upstream cannot
//!   answer (5xx, 429, timeout, unreachable) the last known digest is served with a `Warning`;
//! - blob sizes (`HEAD`), tag lists and referrers, kept for the tag lifetime;
//! - blob downloads: the upstream's redirect to a URL that needs no credentials goes to the
//!   client as it is; bytes the upstream streams itself are handed to the client untouched.
//!
//! Only sha256 content is fetched: other digests would open a way around locks, which are kept
//! under canonical digests.

use std::cell::RefCell;

use http::{HeaderValue, Method, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::client::{Client, MANIFEST_ACCEPT, is_transient};
use super::{Target, Upstream, resolve};
use crate::cache::{EdgeCache, IMMUTABLE_SECONDS};
use crate::content::{BlobLocation, Content, Download, Manifest};
use crate::error::{Error, ErrorCode, Result};
use crate::media;
use crate::platform::UpstreamHttp;
use crate::reference::{Algorithm, Digest, Name, Tag};

/// A tag's last known digest is kept this long past its lifetime, to be served when the upstream
/// cannot be asked.
pub const STALE_SECONDS: u64 = 7 * 24 * 3600;
/// After an upstream failed to revalidate a tag, how long the stale answer stands before it is
/// asked again (at most the tag's lifetime).
pub const STALE_RETRY_SECONDS: u64 = 30;
/// Largest manifest fetched (as the edge accepts on push).
const MANIFEST_MAX_BYTES: usize = crate::handlers::manifests::MANIFEST_MAX_BYTES;
/// Largest tag list or referrers answer read, per page.
const LIST_MAX_BYTES: usize = 4 << 20;
/// Tag-list pages followed.
const MAX_TAG_PAGES: usize = 20;
/// Referrers pages followed.
const MAX_REFERRER_PAGES: usize = 10;

/// The upstreams, as one request reads them.
pub struct UpstreamContent<'a, H, C> {
    pub upstreams: &'a [Upstream],
    pub http: &'a H,
    pub cache: &'a C,
    /// Unix seconds.
    pub now: u64,
    pub warnings: RefCell<Vec<String>>,
}

impl<'a, H: UpstreamHttp, C: EdgeCache> UpstreamContent<'a, H, C> {
    /// The upstream repository `name` is, when the entry's allow list lets the edge serve it.
    pub(crate) fn target(&self, name: &Name) -> Option<Target<'a>> {
        resolve(self.upstreams, name, None).filter(|t| t.allowed)
    }

    fn client(&self, upstream: &'a Upstream) -> Client<'a, H, C> {
        Client {
            upstream,
            http: self.http,
            cache: self.cache,
            now: self.now,
        }
    }

    fn key(target: &Target<'_>, kind: &str, rest: &str) -> String {
        crate::cache::key::upstream(&target.upstream.prefix, kind, rest)
    }

    /// The upstream's answer to something it should have: the body for a 2xx, `None` for a 404,
    /// an error otherwise.
    fn unexpected(target: &Target<'_>, status: StatusCode, what: &str) -> Error {
        let code = match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => ErrorCode::Denied,
            _ => ErrorCode::UpstreamError,
        };
        Error::new(code).with_message(format!(
            "the upstream registry {} answered {} for {what} of {}",
            target.upstream.label(),
            status.as_u16(),
            target.name
        ))
    }

    /// The manifest `reference` (a tag or digest) of `target`, fetched and read; `None` for a
    /// 404. The digest is the upstream's `Docker-Content-Digest` when it sends one (checked
    /// against the bytes by the caller), else the bytes' sha256.
    async fn fetch_manifest(
        &self,
        target: &Target<'a>,
        reference: &str,
    ) -> Result<Option<(Manifest, Option<Digest>)>> {
        let client = self.client(target.upstream);
        let answer = client
            .send(
                Method::GET,
                &format!("/v2/{}/manifests/{reference}", target.name),
                &target.name,
                &[(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT))],
            )
            .await?;
        match answer.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                self.http.discard(answer.into_body());
                return Ok(None);
            }
            status => {
                self.http.discard(answer.into_body());
                return Err(Self::unexpected(target, status, "a manifest"));
            }
        }
        let said = content_digest(&answer);
        let content_type = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
        let bytes = client
            .read(answer.into_body(), MANIFEST_MAX_BYTES, "a manifest")
            .await?;
        let from_bytes =
            media::manifest_media_type(&bytes).ok_or_else(|| garbled(target, "a manifest"))?;
        // The upstream's type when it names a manifest type, as the client would have seen it.
        let media_type = content_type
            .filter(|t| media::is_manifest_type(t))
            .unwrap_or(from_bytes);
        Ok(Some((Manifest { media_type, bytes }, said)))
    }

    /// The manifest `digest` of `target`, verified, through the cache.
    async fn manifest_of(&self, target: &Target<'a>, digest: &Digest) -> Result<Option<Manifest>> {
        if digest.algorithm() != Algorithm::Sha256 {
            return Ok(None);
        }
        let cache_key = Self::key(target, "manifest", &format!("{}@{digest}", target.name));
        if let Some(manifest) = self.cache.get(&cache_key).await.and_then(Manifest::decode) {
            return Ok(Some(manifest));
        }
        let Some((manifest, _)) = self.fetch_manifest(target, &digest.to_string()).await? else {
            return Ok(None);
        };
        if !digest.verifies(&manifest.bytes) {
            // Refused, and nothing kept: the next read asks again.
            return Err(mismatch(target, digest, &manifest));
        }
        self.cache
            .put(&cache_key, &manifest.encode(), IMMUTABLE_SECONDS)
            .await;
        Ok(Some(manifest))
    }

    /// Asks the upstream what `tag` of `target` is now (one `HEAD`), and keeps the answer; when
    /// it cannot answer, `known` (with a warning), if anything is known.
    async fn revalidate(
        &self,
        target: &Target<'a>,
        tag: &Tag,
        cache_key: &str,
        known: Option<(Digest, u64)>,
    ) -> Result<Option<Digest>> {
        let upstream = target.upstream;
        if known.is_none() {
            // Nothing known: one GET by tag brings the digest and the manifest the client asks
            // for next (a HEAD first would cost a round trip more, and the GET counts against
            // Docker Hub's limits either way).
            return match self.fetch_manifest(target, tag.as_str()).await? {
                Some((manifest, said)) => {
                    let digest = Digest::sha256(&manifest.bytes);
                    if let Some(said) = said
                        && said.algorithm() == Algorithm::Sha256
                        && said != digest
                    {
                        return Err(mismatch(target, &said, &manifest));
                    }
                    let key = Self::key(target, "manifest", &format!("{}@{digest}", target.name));
                    self.cache
                        .put(&key, &manifest.encode(), IMMUTABLE_SECONDS)
                        .await;
                    self.keep_tag(cache_key, &digest, upstream).await;
                    Ok(Some(digest))
                }
                None => Ok(None),
            };
        }
        let client = self.client(upstream);
        let path = format!("/v2/{}/manifests/{tag}", target.name);
        let checked = client
            .send(
                Method::HEAD,
                &path,
                &target.name,
                &[(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT))],
            )
            .await;
        let digest = match checked {
            Ok(answer) if answer.status() == StatusCode::OK => {
                let said = content_digest(&answer);
                client.discard(answer);
                match said {
                    Some(digest) => digest,
                    // No digest in the answer: the manifest itself says it.
                    None => match self.fetch_manifest(target, tag.as_str()).await {
                        Ok(Some((manifest, _))) => {
                            let digest = Digest::sha256(&manifest.bytes);
                            let key =
                                Self::key(target, "manifest", &format!("{}@{digest}", target.name));
                            self.cache
                                .put(&key, &manifest.encode(), IMMUTABLE_SECONDS)
                                .await;
                            digest
                        }
                        Ok(None) => {
                            self.cache.delete(cache_key).await;
                            return Ok(None);
                        }
                        Err(error) => return self.stale(target, tag, known, error),
                    },
                }
            }
            Ok(answer) if answer.status() == StatusCode::NOT_FOUND => {
                client.discard(answer);
                self.cache.delete(cache_key).await;
                return Ok(None);
            }
            Ok(answer) => {
                let status = answer.status();
                client.discard(answer);
                return Err(Self::unexpected(target, status, "a tag"));
            }
            Err(error) => return self.stale(target, tag, known, error),
        };
        self.keep_tag(cache_key, &digest, upstream).await;
        Ok(Some(digest))
    }

    /// Keeps what a tag is now, as of now: answered for its lifetime, and as the last known
    /// digest for `STALE_SECONDS` past it.
    async fn keep_tag(&self, cache_key: &str, digest: &Digest, upstream: &Upstream) {
        let entry = format!("{digest} {}", self.now);
        self.cache
            .put(
                cache_key,
                entry.as_bytes(),
                upstream.tag_ttl_seconds + STALE_SECONDS,
            )
            .await;
    }

    /// The answer when the upstream could not say what `tag` is: the last digest known, with a
    /// warning, when the failure is the upstream's passing trouble; the error otherwise.
    fn stale(
        &self,
        target: &Target<'_>,
        tag: &Tag,
        known: Option<(Digest, u64)>,
        error: Error,
    ) -> Result<Option<Digest>> {
        let (true, Some((digest, _))) = (is_transient(&error), known) else {
            return Err(error);
        };
        self.warn(format!(
            "the upstream registry {} could not be asked about {}:{tag} ({}); this is the last \
             digest known for the tag, which may be stale",
            target.upstream.label(),
            target.name,
            error.message.as_deref().unwrap_or(error.code.message())
        ));
        Ok(Some(digest))
    }

    /// Where an upstream's redirect for `path` leads: an http(s) URL on another origin than the
    /// upstream's (a redirect within the upstream would need its credentials, which never reach
    /// a client or a URL the edge did not build).
    fn redirect<B>(&self, target: &Target<'_>, path: &str, answer: &Response<B>) -> Result<Url> {
        let location = answer
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| target.upstream.url.join(path).ok()?.join(l).ok())
            .filter(|u| matches!(u.scheme(), "https" | "http"));
        let Some(location) = location else {
            return Err(Self::unexpected(target, answer.status(), "a blob"));
        };
        if same_origin(&location, &target.upstream.url) {
            return Err(Error::new(ErrorCode::UpstreamError).with_message(format!(
                "the upstream registry {} redirected a blob download to itself",
                target.upstream.label()
            )));
        }
        Ok(location)
    }

    /// The answer where the upstream's redirect `answer` for `path` leads (its body let go),
    /// asked by `method` with `headers` and without credentials: they are the upstream's only.
    async fn follow(
        &self,
        target: &Target<'_>,
        path: &str,
        answer: Response<H::Body>,
        method: Method,
        headers: &[(header::HeaderName, HeaderValue)],
    ) -> Result<Response<H::Body>> {
        let location = self.redirect(target, path, &answer);
        self.http.discard(answer.into_body());
        let mut request = http::Request::builder()
            .method(method)
            .uri(location?.as_str());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(())
            .map_err(|e| Error::internal(format!("upstream redirect: {e}")))?;
        self.http
            .send(request, target.upstream.timeout)
            .await
            .map_err(|e| self.client(target.upstream).transport_error(e))
    }

    /// The bodies of a paginated list at `base` (`?query` on the first page), each next page
    /// where the answer's `Link` says (on the upstream only), at most `max` pages; none for a
    /// 404.
    async fn pages(
        &self,
        target: &Target<'a>,
        base: &str,
        query: &str,
        max: usize,
        what: &str,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let client = self.client(target.upstream);
        let mut path = if query.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{query}")
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..max {
            seen.insert(path.clone());
            let answer = client.send(Method::GET, &path, &target.name, &[]).await?;
            match answer.status() {
                StatusCode::OK => {}
                // None at all (a 404 on a later page is a list cut short: an error).
                StatusCode::NOT_FOUND if seen.len() == 1 => {
                    client.discard(answer);
                    break;
                }
                status => {
                    client.discard(answer);
                    return Err(Self::unexpected(target, status, what));
                }
            }
            let next = next_page(&answer, &target.upstream.url, base);
            // Each page is read, parsed and let go before the next is asked for.
            each(
                &client
                    .read(answer.into_body(), LIST_MAX_BYTES, what)
                    .await?,
            )?;
            match next {
                Some(next) if !seen.contains(&next) => path = next,
                _ => break,
            }
        }
        Ok(())
    }

    /// Bytes `start..end` of the blob `digest` of `target` (whose size is `size`), as the
    /// upstream's body, for a mirror's copy: asked by `Range` unless it is the whole blob, through
    /// the upstream's redirect (followed without credentials) when it sends one. The answer must
    /// hold exactly those bytes, or (`true`) the whole blob when the first part's `Range` is
    /// answered with all of it (a server that ignores ranges); a length that is not the part's,
    /// or an encoded body, is refused.
    pub(crate) async fn blob_part(
        &self,
        target: &Target<'a>,
        digest: &Digest,
        (start, end): (u64, u64),
        size: u64,
    ) -> Result<(H::Body, bool)> {
        let whole = start == 0 && end == size;
        let mut headers = vec![(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        )];
        if !whole {
            let range = HeaderValue::from_str(&format!("bytes={start}-{}", end - 1))
                .map_err(|e| Error::internal(format!("range header: {e}")))?;
            headers.push((header::RANGE, range));
        }
        let path = format!("/v2/{}/blobs/{digest}", target.name);
        let mut answer = self
            .client(target.upstream)
            .send(Method::GET, &path, &target.name, &headers)
            .await?;
        if answer.status().is_redirection() {
            answer = self
                .follow(target, &path, answer, Method::GET, &headers)
                .await?;
        }
        let status = answer.status();
        // All of it, to the first part's Range: copied in one part.
        let all = !whole && start == 0 && status == StatusCode::OK;
        let expected = if whole || all {
            StatusCode::OK
        } else {
            StatusCode::PARTIAL_CONTENT
        };
        let (start, end) = if all { (0, size) } else { (start, end) };
        if status != expected {
            self.http.discard(answer.into_body());
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(
                    Error::new(ErrorCode::UpstreamUnavailable).with_message(format!(
                        "the upstream registry {} answered {} for a blob of {}",
                        target.upstream.label(),
                        status.as_u16(),
                        target.name
                    )),
                );
            }
            return Err(Self::unexpected(target, status, "a part of a blob"));
        }
        let encoded = answer
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|e| e.as_bytes() != b"identity");
        let length = answer
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if encoded || length.is_some_and(|n| n != end - start) {
            self.http.discard(answer.into_body());
            return Err(Error::new(ErrorCode::UpstreamError).with_message(format!(
                "the upstream registry {} sent a part of {}@{digest} that is not bytes \
                 {start}-{} as asked",
                target.upstream.label(),
                target.name,
                end - 1
            )));
        }
        Ok((answer.into_body(), whole || all))
    }

    fn warn(&self, text: String) {
        self.warnings.borrow_mut().push(text);
    }
}

/// The refusal of an answer that is not what it should be (a manifest that is not JSON, a tag
/// list or referrers index that does not parse).
fn garbled(target: &Target<'_>, what: &str) -> Error {
    Error::new(ErrorCode::UpstreamError).with_message(format!(
        "the upstream registry {} sent {what} of {} that the edge cannot read",
        target.upstream.label(),
        target.name
    ))
}

/// The refusal of a manifest whose bytes are not the digest it was fetched by (or said to be).
fn mismatch(target: &Target<'_>, digest: &Digest, manifest: &Manifest) -> Error {
    Error::new(ErrorCode::UpstreamError)
        .with_message(format!(
            "the upstream registry {} sent a manifest for {}@{digest} whose bytes do not match \
             that digest",
            target.upstream.label(),
            target.name
        ))
        .with_detail(serde_json::json!({
            "digest": digest.to_string(),
            "content": Digest::sha256(&manifest.bytes).to_string(),
        }))
}

/// `Docker-Content-Digest`, when it is a digest.
fn content_digest<B>(answer: &Response<B>) -> Option<Digest> {
    answer
        .headers()
        .get("docker-content-digest")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A tag's last known digest and when it was learnt: `<digest> <unix seconds>`.
fn decode_tag(entry: &[u8]) -> Option<(Digest, u64)> {
    let text = std::str::from_utf8(entry).ok()?;
    let (digest, at) = text.split_once(' ')?;
    Some((digest.parse().ok()?, at.parse().ok()?))
}

#[derive(Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ReferrersIndex {
    manifests: Option<Vec<Value>>,
}

impl<H: UpstreamHttp, C: EdgeCache> Content for UpstreamContent<'_, H, C> {
    async fn resolve_tag(&self, name: &Name, tag: &Tag) -> Result<Option<Digest>> {
        let Some(target) = self.target(name) else {
            return Ok(None);
        };
        let upstream = target.upstream;
        let cache_key = Self::key(&target, "tag", &format!("{}:{tag}", target.name));
        let known = self
            .cache
            .get(&cache_key)
            .await
            .and_then(|e| decode_tag(&e));
        if let Some((digest, at)) = &known
            && self.now < at + upstream.tag_ttl_seconds
        {
            return Ok(Some(digest.clone()));
        }
        // One revalidation at a time in this isolate: the requests that arrive while it is in
        // flight are answered with the digest known until now, so a hot tag costs one HEAD per
        // tag_ttl_seconds, not one per request.
        // After a failed one, the stale answer (and its warning) stands for a while: a hung
        // upstream costs one timeout per STALE_RETRY_SECONDS (or tag lifetime), not one per
        // request.
        let marker = Self::key(&target, "revalidating", &format!("{}:{tag}", target.name));
        if let Some((digest, _)) = &known {
            if let Some(state) = self.cache.get_local(&marker).await {
                if let Some(warning) = state.strip_prefix(b"stale:") {
                    self.warn(String::from_utf8_lossy(warning).into_owned());
                }
                return Ok(Some(digest.clone()));
            }
            // A revalidation may take a token, a HEAD and a manifest: a few timeouts.
            let ttl = 4 * upstream.timeout.as_secs() + 1;
            self.cache.put_local(&marker, b"1", ttl).await;
        }
        let before = self.warnings.borrow().len();
        let revalidated = self.revalidate(&target, tag, &cache_key, known).await;
        let stale = self.warnings.borrow().get(before).cloned();
        match stale {
            Some(warning) => {
                let state = format!("stale:{warning}");
                let retry = STALE_RETRY_SECONDS.min(upstream.tag_ttl_seconds).max(1);
                self.cache.put_local(&marker, state.as_bytes(), retry).await;
            }
            None => self.cache.delete_local(&marker).await,
        }
        revalidated
    }

    async fn manifest(&self, name: &Name, digest: &Digest) -> Result<Option<Manifest>> {
        let Some(target) = self.target(name) else {
            return Ok(None);
        };
        self.manifest_of(&target, digest).await
    }

    /// The cache by digest alone is not an upstream's: every read names its repository.
    async fn cached_manifest(&self, _digest: &Digest) -> Option<Manifest> {
        None
    }

    async fn blob_size(&self, name: &Name, digest: &Digest) -> Result<Option<u64>> {
        let Some(target) = self.target(name) else {
            return Ok(None);
        };
        if digest.algorithm() != Algorithm::Sha256 {
            return Ok(None);
        }
        let cache_key = Self::key(&target, "size", &format!("{}@{digest}", target.name));
        if let Some(size) = self.cache.get_number(&cache_key).await {
            return Ok(Some(size));
        }
        let answer = self
            .client(target.upstream)
            .send(
                Method::HEAD,
                &format!("/v2/{}/blobs/{digest}", target.name),
                &target.name,
                &[],
            )
            .await?;
        let path = format!("/v2/{}/blobs/{digest}", target.name);
        let answer = match answer.status() {
            StatusCode::OK => answer,
            // distribution presigns HEADs too: the size is where the redirect leads, asked
            // without credentials (they are the upstream's only).
            status if status.is_redirection() => {
                let followed = self
                    .follow(&target, &path, answer, Method::HEAD, &[])
                    .await?;
                if followed.status() != StatusCode::OK {
                    let status = followed.status();
                    self.http.discard(followed.into_body());
                    return Err(Self::unexpected(&target, status, "a blob's redirect"));
                }
                followed
            }
            StatusCode::NOT_FOUND => {
                self.http.discard(answer.into_body());
                return Ok(None);
            }
            status => {
                self.http.discard(answer.into_body());
                return Err(Self::unexpected(&target, status, "a blob"));
            }
        };
        let size = answer
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Error::new(ErrorCode::UpstreamError).with_message(format!(
                    "the upstream registry {} gave no size for {}@{digest}",
                    target.upstream.label(),
                    target.name
                ))
            })?;
        self.http.discard(answer.into_body());
        self.cache
            .put_number(&cache_key, size, IMMUTABLE_SECONDS)
            .await;
        Ok(Some(size))
    }

    async fn blob_download(
        &self,
        name: &Name,
        digest: &Digest,
        range: Option<&str>,
    ) -> Result<Option<Download>> {
        let Some(target) = self.target(name) else {
            return Ok(None);
        };
        if digest.algorithm() != Algorithm::Sha256 {
            return Ok(None);
        }
        let mut headers = vec![(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        )];
        if let Some(range) = range.and_then(|r| HeaderValue::from_str(r).ok()) {
            headers.push((header::RANGE, range));
        }
        let path = format!("/v2/{}/blobs/{digest}", target.name);
        let answer = self
            .client(target.upstream)
            .send(Method::GET, &path, &target.name, &headers)
            .await?;
        let status = answer.status();
        if status.is_redirection() {
            let location = self.redirect(&target, &path, &answer);
            self.http.discard(answer.into_body());
            let location = location?;
            return Ok(Some(Download::Redirect(BlobLocation {
                url: location.to_string(),
                cache_control: "no-store",
            })));
        }
        match status {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE => {}
            StatusCode::NOT_FOUND => {
                self.http.discard(answer.into_body());
                return Ok(None);
            }
            status => {
                self.http.discard(answer.into_body());
                return Err(Self::unexpected(&target, status, "a blob"));
            }
        }
        let (parts, body) = answer.into_parts();
        let mut response = Response::new(Vec::new());
        *response.status_mut() = status;
        let h = response.headers_mut();
        // The runtime decodes a content-encoded answer as it streams: its length is not the
        // upstream's then. Lengths and ranges are numbers, rebuilt from what was parsed.
        let encoded = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|e| e.as_bytes() != b"identity");
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if let Some(length) = length.filter(|_| !encoded) {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        if let Some(range) = parts
            .headers
            .get(header::CONTENT_RANGE)
            .and_then(|v| content_range(v.to_str().ok()?))
            .and_then(|r| HeaderValue::from_str(&r).ok())
        {
            h.insert(header::CONTENT_RANGE, range);
        }
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        // Not kept by caches in front of the edge: these bytes are the upstream's, unchecked
        // (the client checks them against the digest).
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.http.pass_through(body);
        Ok(Some(Download::Streamed(response)))
    }

    async fn tags(&self, name: &Name) -> Result<Vec<String>> {
        let Some(target) = self.target(name) else {
            return Ok(Vec::new());
        };
        let cache_key = Self::key(&target, "tags", &target.name);
        if let Some(cached) = self.cache.get(&cache_key).await
            && let Some(tags) = crate::handlers::decode_lines(&cached)
        {
            return Ok(tags);
        }
        let base = format!("/v2/{}/tags/list", target.name);
        let mut tags: Vec<String> = Vec::new();
        self.pages(
            &target,
            &base,
            "n=1000",
            MAX_TAG_PAGES,
            "a tag list",
            |body| {
                let page: TagList =
                    serde_json::from_slice(body).map_err(|_| garbled(&target, "a tag list"))?;
                tags.extend(
                    page.tags
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|t| t.parse::<Tag>().is_ok()),
                );
                Ok(())
            },
        )
        .await?;
        tags.sort();
        tags.dedup();
        self.cache
            .put(
                &cache_key,
                &crate::handlers::encode_lines(&tags),
                target.upstream.tag_ttl_seconds,
            )
            .await;
        Ok(tags)
    }

    /// The catalog lists what the edge stores: an upstream's repositories are not listed.
    async fn repositories(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn referrers(&self, name: &Name, subject: &Digest) -> Result<Vec<Value>> {
        let Some(target) = self.target(name) else {
            return Ok(Vec::new());
        };
        if subject.algorithm() != Algorithm::Sha256 {
            return Ok(Vec::new());
        }
        let cache_key = Self::key(&target, "referrers", &format!("{}@{subject}", target.name));
        if let Some(cached) = self
            .cache
            .get(&cache_key)
            .await
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
        {
            return Ok(cached);
        }
        let base = format!("/v2/{}/referrers/{subject}", target.name);
        let mut found = Vec::new();
        // An upstream without the referrers API (a 404) has none to tell.
        self.pages(
            &target,
            &base,
            "",
            MAX_REFERRER_PAGES,
            "referrers",
            |body| {
                let index: ReferrersIndex =
                    serde_json::from_slice(body).map_err(|_| garbled(&target, "referrers"))?;
                found.extend(index.manifests.unwrap_or_default().into_iter().filter(|d| {
                    d.get("digest")
                        .and_then(Value::as_str)
                        .is_some_and(|d| d.parse::<Digest>().is_ok())
                }));
                Ok(())
            },
        )
        .await?;
        self.cache
            .put(
                &cache_key,
                &serde_json::to_vec(&found).expect("JSON serializes"),
                target.upstream.tag_ttl_seconds,
            )
            .await;
        Ok(found)
    }

    /// Whether the upstream has the repository is its to say on each read: the not-found answers
    /// name the manifest or blob.
    async fn repository_exists(&self, name: &Name) -> Result<bool> {
        Ok(self.target(name).is_some())
    }

    async fn canonical(&self, _name: &Name, _digest: &Digest) -> Result<Option<Digest>> {
        Ok(None)
    }

    fn warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.warnings.borrow_mut())
    }
}

/// The next page of `base` an answer's `Link: <...>; rel="next"` names: the same path on the
/// upstream, with its query rebuilt from the parsed pairs; `None` for anything else.
fn next_page<B>(answer: &Response<B>, upstream: &Url, base: &str) -> Option<String> {
    let target = answer
        .headers()
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(link_values)
        .find(|(_, rels)| rels.iter().any(|r| r.eq_ignore_ascii_case("next")))?
        .0;
    let url = upstream.join(base).ok()?.join(&target).ok()?;
    if url.origin() != upstream.origin() || url.path() != base {
        return None;
    }
    let query = crate::query::encode(
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect::<Vec<_>>()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    Some(format!("{base}?{query}"))
}

/// The link-values of one `Link` header (RFC 8288): each target, and its `rel` types.
fn link_values(header: &str) -> Vec<(String, Vec<String>)> {
    let mut values = Vec::new();
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let target = rest[start + 1..start + end].to_owned();
        let after = &rest[start + end + 1..];
        // The parameters run to the next link-value (a `,` before a `<`) or the end.
        let params_end = after
            .find('<')
            .map_or(after.len(), |i| after[..i].rfind(',').unwrap_or(i));
        let rels = after[..params_end]
            .split(';')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("rel")
                    .then(|| v.trim().trim_matches('"').to_owned())
            })
            .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        values.push((target, rels));
        rest = &after[params_end..];
    }
    values
}

#[cfg(test)]
#[test]
fn link_headers_name_their_next_page() {
    let answer = |links: &[&str]| {
        let mut r = Response::builder();
        for l in links {
            r = r.header(header::LINK, *l);
        }
        r.body(()).unwrap()
    };
    let upstream = Url::parse("https://r.example").unwrap();
    let base = "/v2/a/tags/list";
    let next = |links: &[&str]| next_page(&answer(links), &upstream, base);
    assert_eq!(
        next(&[
            r#"</v2/a/tags/list?last=a>; rel="prev", </v2/a/tags/list?last=c&n=2>; rel="next""#
        ]),
        Some("/v2/a/tags/list?last=c&n=2".into())
    );
    assert_eq!(
        next(&[
            r#"</v2/a/tags/list?last=a>; rel="prev""#,
            r#"<https://r.example/v2/a/tags/list?last=d>; REL="Next""#
        ]),
        Some("/v2/a/tags/list?last=d".into())
    );
    assert_eq!(next(&[r#"</v2/a/tags/list?last=a>; rel="prev""#]), None);
    assert_eq!(
        next(&[r#"<https://evil.example/v2/a/tags/list?last=a>; rel="next""#]),
        None,
        "another origin"
    );
    assert_eq!(
        next(&[r#"</v2/b/tags/list?last=a>; rel="next""#]),
        None,
        "another path"
    );
}

/// `bytes <start>-<end>/<size>` (or `*/<size>` for a 416), rebuilt from its numbers.
fn content_range(value: &str) -> Option<String> {
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, size) = spec.split_once('/')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let size = if size.trim() == "*" {
        "*".to_owned()
    } else {
        number(size)?.to_string()
    };
    if range.trim() == "*" {
        return Some(format!("bytes */{size}"));
    }
    let (start, end) = range.split_once('-')?;
    Some(format!("bytes {}-{}/{size}", number(start)?, number(end)?))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}
