//! Sending a write to the origin with the edge's own credentials: the origin's challenge is learned
//! once (a `GET /v2/` probe) and cached; Basic credentials are sent as they are, Bearer tokens are
//! fetched from the origin's token service for the scopes a request needs and cached until they
//! expire. A request whose body is the client's stream cannot be sent twice, so its credentials are
//! ready before it leaves.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::app::App;
use crate::cache::{EdgeCache, key};
use crate::config::OriginConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::origin::{
    Challenge, Origin, OriginBody, OriginPath, RequestHeaders, TokenAnswer, basic_authorization,
    client_response, parse_challenge, token_request, transport_error,
};
use crate::platform::Platform;

/// One request for the origin, before credentials. Every part is built from what the edge parsed
/// and checked: the path from parsed names and references, the query from parsed values, the
/// headers from parsed numbers and media types. There is no field a raw client header or query
/// string could travel in.
pub(crate) struct Forward {
    pub method: Method,
    pub path: OriginPath,
    /// Query parameters, encoded here.
    pub query: Vec<(String, String)>,
    pub headers: RequestHeaders,
    pub body: OriginBody,
    /// Token scopes the request needs (`repository:<name>:pull,push`, ...).
    pub scopes: Vec<String>,
    /// Where `Location`s are rewritten to: the edge's public URL, or empty for path-only.
    pub public_base: String,
}

const CHALLENGE_SECONDS: u64 = 3600;

pub(crate) fn writes_disabled() -> Error {
    Error::new(ErrorCode::Unsupported).with_message(
        "this registry edge serves reads only: no origin registry is configured; set ORIGIN_URL \
         for it to take pushes",
    )
}

impl<P: Platform> App<P> {
    fn origin_parts(&self) -> Result<(&P::Origin, &OriginConfig)> {
        match (&self.origin, &self.config.origin) {
            (Some(origin), Some(config)) => Ok((origin, config)),
            _ => Err(writes_disabled()),
        }
    }

    /// Sends `f` to the origin and returns the answer as the client should see it.
    pub(crate) async fn forward(&self, f: Forward) -> Result<Response<Vec<u8>>> {
        let (origin, config) = self.origin_parts()?;
        let path_and_query =
            match crate::query::encode(f.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Some(query) => format!("{}?{query}", f.path.as_str()),
                None => f.path.as_str().to_owned(),
            };
        let url = config
            .url
            .join(&path_and_query)
            .map_err(|e| Error::internal(format!("origin URL for {path_and_query}: {e}")))?;
        let headers = f.headers.to_header_map();
        let streamed = f.body == OriginBody::Client;
        let timeout = if streamed {
            config.upload_timeout
        } else {
            config.timeout
        };
        for attempt in 0..2 {
            let authorization = self.origin_authorization(&f.scopes).await?;
            let mut request = Request::builder()
                .method(f.method.clone())
                .uri(url.as_str());
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let request = request
                .body(f.body.clone())
                .map_err(|e| Error::internal(format!("origin request: {e}")))?;
            let answer = origin
                .send(request, timeout)
                .await
                .map_err(|e| transport_error(e, timeout))?;
            if answer.status() != StatusCode::UNAUTHORIZED {
                let (response, original) = client_response(answer, &config.url, &f.public_base);
                if let Some(original) = original {
                    (self.log)(&format!(
                        "origin answered {} {} with {}: {}",
                        f.method,
                        f.path.as_str(),
                        response.status().as_u16(),
                        original.chars().take(1024).collect::<String>()
                    ));
                }
                return Ok(response);
            }
            // The origin's challenge changed, or a cached token was revoked: learn it again and
            // retry once, when the body can be sent again.
            self.forget_origin_credentials(&f.scopes).await;
            if let Some(challenge) = challenge_of(&answer) {
                self.cache
                    .put(
                        &key::origin_challenge(),
                        challenge.as_bytes(),
                        CHALLENGE_SECONDS,
                    )
                    .await;
            }
            if streamed || attempt == 1 || config.credentials.is_none() {
                break;
            }
        }
        Err(Error::new(ErrorCode::UpstreamError).with_message(
            "the origin registry refused the edge's credentials (ORIGIN_USERNAME / ORIGIN_PASSWORD)",
        ))
    }

    /// The `Authorization` value for the origin, if it wants one.
    async fn origin_authorization(&self, scopes: &[String]) -> Result<Option<HeaderValue>> {
        let (origin, config) = self.origin_parts()?;
        let Some(credentials) = &config.credentials else {
            return Ok(None);
        };
        let basic = basic_authorization(&credentials.username, &credentials.password);
        let challenge = match self.cache.get(&key::origin_challenge()).await {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                let probe = Request::builder()
                    .method(Method::GET)
                    .uri(
                        config
                            .url
                            .join("/v2/")
                            .map_err(|e| Error::internal(e.to_string()))?
                            .as_str(),
                    )
                    .body(OriginBody::Empty)
                    .map_err(|e| Error::internal(e.to_string()))?;
                let answer = origin
                    .send(probe, config.timeout)
                    .await
                    .map_err(|e| transport_error(e, config.timeout))?;
                let challenge = challenge_of(&answer).unwrap_or_default();
                self.cache
                    .put(
                        &key::origin_challenge(),
                        challenge.as_bytes(),
                        CHALLENGE_SECONDS,
                    )
                    .await;
                challenge
            }
        };
        let value = match parse_challenge(&challenge) {
            None => return Ok(None),
            Some(Challenge::Basic) => basic,
            Some(Challenge::Bearer { realm, service }) => {
                let token_key = key::origin_token(scopes);
                if let Some(token) = self.cache.get(&token_key).await {
                    format!("Bearer {}", String::from_utf8_lossy(&token))
                } else {
                    let request = token_request(&realm, service.as_deref(), scopes, &basic)?;
                    let answer = origin
                        .send(request, config.timeout)
                        .await
                        .map_err(|e| transport_error(e, config.timeout))?;
                    if answer.status() != StatusCode::OK {
                        return Err(Error::new(ErrorCode::UpstreamError).with_message(format!(
                            "the origin's token service answered {} to the edge's credentials",
                            answer.status().as_u16()
                        )));
                    }
                    let token: TokenAnswer = serde_json::from_slice(answer.body())
                        .map_err(|e| Error::internal(format!("origin token answer: {e}")))?;
                    let token = token
                        .token
                        .or(token.access_token)
                        .zip(Some(token.expires_in.unwrap_or(60)));
                    let Some((token, expires_in)) = token else {
                        return Err(Error::internal("origin token answer holds no token"));
                    };
                    // Keep it a little less long than it lives.
                    let ttl = expires_in.saturating_sub(expires_in / 10 + 5);
                    self.cache.put(&token_key, token.as_bytes(), ttl).await;
                    format!("Bearer {token}")
                }
            }
        };
        HeaderValue::from_str(&value)
            .map(Some)
            .map_err(|_| Error::internal("origin credentials are not a valid header value"))
    }

    async fn forget_origin_credentials(&self, scopes: &[String]) {
        self.cache.delete(&key::origin_challenge()).await;
        self.cache.delete(&key::origin_token(scopes)).await;
    }
}

fn challenge_of(answer: &Response<Vec<u8>>) -> Option<String> {
    if answer.status() != StatusCode::UNAUTHORIZED {
        return None;
    }
    answer
        .headers()
        .get(header::WWW_AUTHENTICATE)?
        .to_str()
        .ok()
        .map(str::to_owned)
}
