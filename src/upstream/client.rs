//! Talking to one upstream registry as Docker Hub expects a well-behaved client to:
//! - credentials (Basic, from the entry's secrets) go to the upstream's own host, and to a token
//!   realm only when `Upstream::realm_allowed` admits its host: a challenge naming any other host
//!   is refused before anything is sent there;
//! - a token (anonymous or not) is fetched once per repository and kept until it expires, never
//!   per request; the challenge is remembered, so a new repository's first request goes out
//!   with its token instead of collecting a 401 first;
//! - a `429` is respected: until its `Retry-After` has passed, nothing is sent to the upstream
//!   and reads fall back to what the edge knows;
//! - every request is built here from parsed values (the repository's name there, a tag or a
//!   digest): nothing of the client's request is copied into it.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use url::Url;

use super::Upstream;
use crate::cache::{EdgeCache, key};
use crate::error::{Error, ErrorCode, Result};
use crate::origin::{Challenge, OriginError, TokenAnswer, basic_authorization, parse_challenge};
use crate::platform::UpstreamHttp;

/// How long an upstream's challenge (its token realm) is remembered.
const CHALLENGE_SECONDS: u64 = 3600;
/// The wait after a `429` without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: u64 = 60;
/// The longest wait a `Retry-After` is taken for.
const MAX_RETRY_AFTER: u64 = 3600;
/// Largest token answer read.
const TOKEN_MAX_BYTES: usize = 64 << 10;

/// One upstream, as seen by one request.
pub struct Client<'a, H, C> {
    pub upstream: &'a Upstream,
    pub http: &'a H,
    pub cache: &'a C,
    /// Unix seconds.
    pub now: u64,
}

/// Whether a failure is the upstream's passing trouble (unreachable, slow, 5xx, rate limited),
/// after which what the edge already knows may be served.
pub fn is_transient(error: &Error) -> bool {
    matches!(
        error.code,
        ErrorCode::UpstreamUnreachable
            | ErrorCode::UpstreamTimeout
            | ErrorCode::UpstreamUnavailable
    )
}

impl<H: UpstreamHttp, C: EdgeCache> Client<'_, H, C> {
    fn key(&self, kind: &str, rest: &str) -> String {
        key::upstream(&self.upstream.prefix, kind, rest)
    }

    /// Sends `method path` for the repository `name` (its name at the upstream), with `headers`,
    /// authorized as the upstream asks. A 5xx or 429 answer is an error (`is_transient`); any
    /// other status is the caller's to read, except a 401 that persists, which is `DENIED`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        name: &str,
        headers: &[(header::HeaderName, HeaderValue)],
    ) -> Result<Response<H::Body>> {
        self.check_backoff().await?;
        let url = self
            .upstream
            .url
            .join(path)
            .map_err(|e| Error::internal(format!("upstream URL for {path}: {e}")))?;
        let mut fresh_token = false;
        for _ in 0..2 {
            let authorization = self.authorization(name, &mut fresh_token).await?;
            let mut request = Request::builder().method(method.clone()).uri(url.as_str());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let request = request
                .body(())
                .map_err(|e| Error::internal(format!("upstream request: {e}")))?;
            let answer = self
                .http
                .send(request, self.upstream.timeout)
                .await
                .map_err(|e| self.transport_error(e))?;
            match answer.status() {
                StatusCode::UNAUTHORIZED => {
                    let challenge = answer
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    self.discard(answer);
                    self.cache.delete(&self.key("token", name)).await;
                    if fresh_token || challenge.is_empty() {
                        // A token fetched just now was refused, or there is no way to get one.
                        return Err(self.denied(name));
                    }
                    self.cache
                        .put(
                            &self.key("challenge", ""),
                            challenge.as_bytes(),
                            CHALLENGE_SECONDS,
                        )
                        .await;
                }
                StatusCode::TOO_MANY_REQUESTS => return Err(self.back_off(answer).await),
                status if status.is_server_error() => {
                    self.discard(answer);
                    return Err(
                        Error::new(ErrorCode::UpstreamUnavailable).with_message(format!(
                            "the upstream registry {} answered {}",
                            self.upstream.label(),
                            status.as_u16()
                        )),
                    );
                }
                _ => return Ok(answer),
            }
        }
        Err(self.denied(name))
    }

    /// Reads a small answer's body (at most `limit` bytes).
    pub async fn read(&self, body: H::Body, limit: usize, what: &str) -> Result<Vec<u8>> {
        self.http
            .read(body, limit, self.upstream.timeout)
            .await
            .map_err(|e| self.transport_error(e))?
            .ok_or_else(|| {
                Error::new(ErrorCode::UpstreamError).with_message(format!(
                    "the upstream registry {} sent {what} larger than {limit} bytes",
                    self.upstream.label()
                ))
            })
    }

    /// Lets go of an answer the edge does not read.
    pub fn discard(&self, answer: Response<H::Body>) {
        self.http.discard(answer.into_body());
    }

    /// After a `429` (of the registry or its token service): nothing is sent to the upstream
    /// until its `Retry-After` has passed.
    async fn back_off(&self, answer: Response<H::Body>) -> Error {
        let seconds = retry_after(answer.headers()).unwrap_or(DEFAULT_RETRY_AFTER);
        self.discard(answer);
        let until = self.now + seconds;
        self.cache
            .put_number(&self.key("backoff", ""), until, seconds)
            .await;
        self.rate_limited(seconds)
    }

    /// Refuses to ask while a `429`'s `Retry-After` runs.
    async fn check_backoff(&self) -> Result<()> {
        let until = self.cache.get_number(&self.key("backoff", "")).await;
        match until {
            Some(until) if until > self.now => Err(self.rate_limited(until - self.now)),
            _ => Ok(()),
        }
    }

    fn rate_limited(&self, seconds: u64) -> Error {
        Error::new(ErrorCode::UpstreamUnavailable)
            .with_message(format!(
                "the upstream registry {} limits the edge's requests: retry after {seconds} s",
                self.upstream.label()
            ))
            .with_retry_after(seconds)
    }

    fn denied(&self, name: &str) -> Error {
        Error::new(ErrorCode::Denied).with_message(format!(
            "the upstream registry {} refused access to {name}: it does not exist there, or it \
             needs credentials the edge does not have",
            self.upstream.label()
        ))
    }

    pub(crate) fn transport_error(&self, error: OriginError) -> Error {
        let label = self.upstream.label();
        match error {
            OriginError::Unreachable(why) => Error::new(ErrorCode::UpstreamUnreachable)
                .with_message(format!("the upstream registry {label} is unreachable"))
                .with_log(why),
            OriginError::Timeout => Error::new(ErrorCode::UpstreamTimeout).with_message(format!(
                "the upstream registry {label} did not answer within {} s",
                self.upstream.timeout.as_secs()
            )),
        }
    }

    /// The `Authorization` for a request about `name`: its cached token; else, when the
    /// upstream's challenge is known, a token fetched for it (`fresh` says so); else Basic
    /// credentials, if the upstream has any.
    async fn authorization(&self, name: &str, fresh: &mut bool) -> Result<Option<String>> {
        if let Some(token) = self.cache.get(&self.key("token", name)).await {
            return Ok(Some(format!("Bearer {}", String::from_utf8_lossy(&token))));
        }
        let challenge = self
            .cache
            .get(&self.key("challenge", ""))
            .await
            .and_then(|c| parse_challenge(&String::from_utf8_lossy(&c)));
        let basic = self
            .upstream
            .credentials
            .as_ref()
            .map(|c| basic_authorization(&c.username, &c.password));
        match challenge {
            Some(Challenge::Bearer { realm, service }) => {
                let fetched = self
                    .fetch_token(&realm, service.as_deref(), name, basic)
                    .await;
                let token = match fetched {
                    Ok(token) => token,
                    Err(error) => {
                        // Learnt again on the next read: an upstream whose token service moved
                        // (or was misconfigured) is not refused for the challenge's lifetime.
                        self.cache.delete(&self.key("challenge", "")).await;
                        return Err(error);
                    }
                };
                *fresh = true;
                Ok(Some(format!("Bearer {token}")))
            }
            Some(Challenge::Basic) | None => Ok(basic),
        }
    }

    /// A token for pulling `name`, from the realm of the upstream's challenge: with the
    /// upstream's credentials when it has any, anonymous otherwise. A realm on a host the
    /// upstream does not vouch for is never asked.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        name: &str,
        basic: Option<String>,
    ) -> Result<String> {
        let label = self.upstream.label();
        let mut url = Url::parse(realm).map_err(|_| {
            Error::new(ErrorCode::UpstreamError).with_message(format!(
                "the upstream registry {label} named a token realm that is not a URL"
            ))
        })?;
        if !self.upstream.realm_allowed(&url) {
            // distribution's proxy sent its credentials to whatever realm a challenge named
            // (CVE-2026-33540). Here the realm gets nothing, not even an anonymous request.
            return Err(Error::new(ErrorCode::UpstreamError)
                .with_message(format!(
                    "the upstream registry {label} named a token realm that is neither its own \
                     origin nor one of the entry's realm_hosts: the edge sends it nothing"
                ))
                .with_log(format!(
                    "refused the token realm {realm} of {}",
                    self.upstream.url
                )));
        }
        url.query_pairs_mut()
            .extend_pairs(service.map(|s| ("service", s)))
            .append_pair("scope", &format!("repository:{name}:pull"));
        let mut request = Request::builder().method(Method::GET).uri(url.as_str());
        if let Some(basic) = basic {
            request = request.header(header::AUTHORIZATION, basic);
        }
        let request = request
            .body(())
            .map_err(|e| Error::internal(format!("upstream token request: {e}")))?;
        let answer = self
            .http
            .send(request, self.upstream.timeout)
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = answer.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.back_off(answer).await);
        }
        if status.is_server_error() {
            self.discard(answer);
            return Err(
                Error::new(ErrorCode::UpstreamUnavailable).with_message(format!(
                    "the token service of the upstream registry {label} answered {}",
                    status.as_u16()
                )),
            );
        }
        if status != StatusCode::OK {
            self.discard(answer);
            return Err(Error::new(ErrorCode::UpstreamError).with_message(format!(
                "the token service of the upstream registry {label} answered {} to the edge's \
                 credentials",
                status.as_u16()
            )));
        }
        let body = self
            .read(answer.into_body(), TOKEN_MAX_BYTES, "a token answer")
            .await?;
        let parsed: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            Error::new(ErrorCode::UpstreamError).with_message(format!(
                "the token service of the upstream registry {label} sent no token"
            ))
        })?;
        let Some(token) = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty() && HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
        else {
            return Err(Error::new(ErrorCode::UpstreamError).with_message(format!(
                "the token service of the upstream registry {label} sent no token"
            )));
        };
        // Docker's token spec: 60 s when the answer does not say. Kept a little less long than
        // it lives.
        let lifetime = parsed.expires_in.unwrap_or(60);
        let ttl = lifetime.saturating_sub(lifetime / 10 + 5);
        self.cache
            .put(&self.key("token", name), token.as_bytes(), ttl)
            .await;
        Ok(token)
    }
}

/// `Retry-After` in seconds (an HTTP date counts as the default wait), at most an hour.
fn retry_after(headers: &http::HeaderMap) -> Option<u64> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds = value.parse::<u64>().ok().unwrap_or(DEFAULT_RETRY_AFTER);
    Some(seconds.clamp(1, MAX_RETRY_AFTER))
}

/// The `Accept` the edge sends for manifests: every manifest type it serves.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";
