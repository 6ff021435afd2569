//! Forwarding writes to the origin registry. The core decides *what* is sent (method, URL, which
//! headers, the edge's own credentials for the origin) and how the answer is rewritten (`Location`
//! back to the edge, only the headers the API defines); the platform sends it, attaching the
//! client's body stream untouched when asked (`OriginBody::Client`), so blob bytes never pass
//! through Rust. The origin's credentials never reach a client, and its URL never leaves the edge.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde::Deserialize;
use url::Url;

use crate::error::{Error, ErrorCode, Result};

/// What goes to the origin as the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginBody {
    Empty,
    /// Bytes the core read (manifests, token requests).
    Bytes(Vec<u8>),
    /// The client's request body, streamed by the platform as it arrives.
    Client,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginError {
    /// No connection, or the connection broke.
    Unreachable(String),
    /// No answer within the timeout.
    Timeout,
}

/// Sends one request to the origin. Redirects are not followed. The answer's body is read whole:
/// the write API's answers are small.
#[allow(async_fn_in_trait)]
pub trait Origin {
    async fn send(
        &self,
        request: Request<OriginBody>,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, OriginError>;
}

/// Headers of the client's request that reach the origin. Everything else stays at the edge:
/// hop-by-hop headers, `Expect` (an upstream `100 Continue` must not reach the platform), and the
/// client's own `Authorization`, which is the edge's business.
pub const REQUEST_HEADERS: [&str; 5] = [
    "accept",
    "content-type",
    "content-length",
    "content-range",
    "user-agent",
];

/// Headers of the origin's answer that reach the client (`Location` is rewritten first).
pub const RESPONSE_HEADERS: [&str; 7] = [
    "content-type",
    "location",
    "docker-upload-uuid",
    "range",
    "docker-content-digest",
    "oci-subject",
    "oci-chunk-min-length",
];

/// The client's headers that the origin should see.
pub fn forwarded_headers(client: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in REQUEST_HEADERS {
        for value in client.get_all(name) {
            headers.append(name, value.clone());
        }
    }
    headers
}

/// Rewrites an origin `Location` (absolute or relative) so the client's next request comes back to
/// the edge: a URL on the origin becomes the same path and query under `public_base` (empty for a
/// path-only answer). Anything that points elsewhere (a storage redirect) is left alone.
pub fn rewrite_location(location: &str, origin: &Url, public_base: &str) -> Option<String> {
    let resolved = origin.join(location).ok()?;
    if resolved.origin() != origin.origin() {
        return Some(location.to_owned());
    }
    let mut out = format!("{}{}", public_base.trim_end_matches('/'), resolved.path());
    if let Some(query) = resolved.query() {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

/// The origin's answer as the client sees it: same status and body, API headers only, `Location`
/// rewritten to the edge.
pub fn client_response(
    answer: Response<Vec<u8>>,
    origin: &Url,
    public_base: &str,
) -> Response<Vec<u8>> {
    let (parts, body) = answer.into_parts();
    let mut response = Response::new(body);
    *response.status_mut() = parts.status;
    for name in RESPONSE_HEADERS {
        for value in parts.headers.get_all(name) {
            let value = if name == "location" {
                match value
                    .to_str()
                    .ok()
                    .and_then(|l| rewrite_location(l, origin, public_base))
                {
                    Some(l) => match HeaderValue::from_str(&l) {
                        Ok(v) => v,
                        Err(_) => continue,
                    },
                    None => continue,
                }
            } else {
                value.clone()
            };
            response.headers_mut().append(name, value);
        }
    }
    if !response.headers().contains_key(header::CONTENT_TYPE) {
        // Every answer gets a type: the edge gzips untyped bodies for clients that accept it, and
        // Go clients then lose Content-Length.
        let value = if response.body().is_empty() {
            "application/octet-stream"
        } else {
            "text/plain; charset=utf-8"
        };
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
    }
    response
}

pub fn transport_error(error: OriginError, timeout: Duration) -> Error {
    match error {
        OriginError::Unreachable(why) => Error::new(ErrorCode::Unknown)
            .with_status(StatusCode::BAD_GATEWAY)
            .with_message(format!("the origin registry is unreachable: {why}")),
        OriginError::Timeout => Error::new(ErrorCode::Unknown)
            .with_status(StatusCode::GATEWAY_TIMEOUT)
            .with_message(format!(
                "the origin registry did not answer within {} s",
                timeout.as_secs()
            )),
    }
}

/// How the origin wants to be authenticated, from its `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses `Basic realm=".."` or `Bearer realm="..",service="..",scope=".."`.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, params) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for (key, value) in auth_params(params) {
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            _ => {}
        }
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

/// `key="value", key=value, ...` (quoted values may contain commas).
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (quoted[..end].to_owned(), &quoted[end + 1..]),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_owned(), &after[end..]),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',');
    }
    out
}

/// A token endpoint's answer (Docker token spec: `token`, or OAuth2's `access_token`).
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// The token request for `scopes` against a Bearer challenge.
pub fn token_request(
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    basic: &str,
) -> Result<Request<OriginBody>> {
    let mut url = Url::parse(realm)
        .map_err(|e| Error::internal(format!("origin token realm {realm:?}: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        for scope in scopes {
            query.append_pair("scope", scope);
        }
    }
    Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(header::AUTHORIZATION, basic)
        .body(OriginBody::Empty)
        .map_err(|e| Error::internal(format!("origin token request: {e}")))
}

/// `Basic <base64(user:password)>`.
pub fn basic_authorization(username: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Url {
        Url::parse("http://127.0.0.1:5000").unwrap()
    }

    #[test]
    fn locations_come_back_to_the_edge() {
        let cases = [
            (
                "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=x%3D",
                "https://edge.example",
                "https://edge.example/v2/a/blobs/uploads/u1?_state=x%3D",
            ),
            (
                "/v2/a/blobs/uploads/u1?_state=s",
                "https://edge.example/",
                "https://edge.example/v2/a/blobs/uploads/u1?_state=s",
            ),
            ("/v2/a/blobs/sha256:ab", "", "/v2/a/blobs/sha256:ab"),
            // Somewhere else (storage): untouched.
            (
                "http://127.0.0.1:9000/registry/x?X-Amz-Signature=1",
                "https://edge.example",
                "http://127.0.0.1:9000/registry/x?X-Amz-Signature=1",
            ),
        ];
        for (location, base, want) in cases {
            assert_eq!(
                rewrite_location(location, &origin(), base).unwrap(),
                want,
                "{location}"
            );
        }
    }

    #[test]
    fn answers_keep_only_api_headers() {
        let answer = Response::builder()
            .status(202)
            .header(
                "location",
                "http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=s",
            )
            .header("docker-upload-uuid", "u")
            .header("range", "0-0")
            .header("set-cookie", "secret")
            .header("www-authenticate", "Basic realm=origin")
            .header("server", "origin")
            .body(Vec::new())
            .unwrap();
        let response = client_response(answer, &origin(), "https://edge.example");
        assert_eq!(response.status(), 202);
        assert_eq!(
            response.headers()["location"],
            "https://edge.example/v2/a/blobs/uploads/u?_state=s"
        );
        assert_eq!(response.headers()["docker-upload-uuid"], "u");
        assert_eq!(response.headers()["range"], "0-0");
        for hidden in ["set-cookie", "www-authenticate", "server"] {
            assert!(!response.headers().contains_key(hidden), "{hidden}");
        }
    }

    #[test]
    fn client_headers_are_filtered() {
        let mut client = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/octet-stream"),
            ("content-length", "10"),
            ("content-range", "0-9"),
            ("authorization", "Bearer client"),
            ("expect", "100-continue"),
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("host", "edge.example"),
        ] {
            client.insert(k, HeaderValue::from_static(v));
        }
        let sent = forwarded_headers(&client);
        let mut names: Vec<_> = sent.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-length", "content-range", "content-type"]);
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"Registry Realm\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=https://auth.example/token"),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: None
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn token_requests_name_every_scope() {
        let scopes = vec![
            "repository:a:pull,push".to_owned(),
            "repository:b:pull".to_owned(),
        ];
        let r = token_request(
            "https://auth.example/token?x=1",
            Some("reg"),
            &scopes,
            &basic_authorization("u", "p"),
        )
        .unwrap();
        assert_eq!(
            r.uri().to_string(),
            "https://auth.example/token?x=1&service=reg&scope=repository%3Aa%3Apull%2Cpush&scope=repository%3Ab%3Apull"
        );
        assert_eq!(r.headers()["authorization"], "Basic dTpw");
    }
}
