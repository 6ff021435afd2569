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
use crate::reference::{Digest, Name, Reference};

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

/// A path on the origin, built only from parsed values (names, tags, digests, upload ids): no
/// byte of the client's raw path reaches the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPath(String);

impl OriginPath {
    pub fn manifest(name: &Name, reference: &Reference) -> OriginPath {
        OriginPath(format!("/v2/{name}/manifests/{reference}"))
    }

    pub fn blob(name: &Name, digest: &Digest) -> OriginPath {
        OriginPath(format!("/v2/{name}/blobs/{digest}"))
    }

    pub fn uploads(name: &Name) -> OriginPath {
        OriginPath(format!("/v2/{name}/blobs/uploads/"))
    }

    /// `upload_id` as `Route::parse` checked it (URL-safe characters only).
    pub fn upload(name: &Name, upload_id: &str) -> OriginPath {
        debug_assert!(
            upload_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b))
        );
        OriginPath(format!("/v2/{name}/blobs/uploads/{upload_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client's headers that the origin sees, each parsed and written anew: `Content-Type` (a
/// media type), `Content-Length` and `Content-Range` (numbers). Everything else stays at the edge:
/// hop-by-hop headers, `Expect` (an upstream `100 Continue` must not reach the platform), the
/// client's own `Authorization` (the edge's business), and anything no write needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    /// `<start>-<end>`, inclusive.
    pub content_range: Option<(u64, u64)>,
}

impl RequestHeaders {
    /// Parses the headers a write may carry; a malformed or repeated one is refused.
    pub fn from_client(headers: &HeaderMap) -> Result<RequestHeaders> {
        let one = |name: header::HeaderName| -> Result<Option<&str>> {
            let mut values = headers.get_all(&name).iter();
            let Some(first) = values.next() else {
                return Ok(None);
            };
            if values.next().is_some() {
                return Err(bad_header(&name, "appears more than once"));
            }
            first
                .to_str()
                .map(|v| Some(v.trim()))
                .map_err(|_| bad_header(&name, "is not ASCII"))
        };
        let content_type = match one(header::CONTENT_TYPE)? {
            None => None,
            Some(value) => Some(
                media_type(value)
                    .ok_or_else(|| bad_header(&header::CONTENT_TYPE, "is not a media type"))?,
            ),
        };
        let content_length = match one(header::CONTENT_LENGTH)? {
            None => None,
            Some(value) => Some(
                value
                    .parse::<u64>()
                    .map_err(|_| bad_header(&header::CONTENT_LENGTH, "is not a number"))?,
            ),
        };
        let content_range = match one(header::CONTENT_RANGE)? {
            None => None,
            Some(value) => Some(parse_content_range(value)?),
        };
        Ok(RequestHeaders {
            content_type,
            content_length,
            content_range,
        })
    }

    pub fn to_header_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(t) = self
            .content_type
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(header::CONTENT_TYPE, t);
        }
        if let Some(n) = self.content_length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        if let Some((start, end)) = self.content_range
            && let Ok(v) = HeaderValue::from_str(&format!("{start}-{end}"))
        {
            headers.insert(header::CONTENT_RANGE, v);
        }
        headers
    }
}

fn bad_header(name: &header::HeaderName, why: &str) -> Error {
    Error::new(ErrorCode::BadRequest).with_message(format!("the {name} header {why}"))
}

/// `type/subtype` with optional `; key=value` parameters, every part an RFC 9110 token (a quoted
/// parameter value is refused: no media type of the registry API needs one). Lower-cased type and
/// subtype, parameters as sent.
pub fn media_type(value: &str) -> Option<String> {
    fn token(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
    let mut parts = value.split(';');
    let essence = parts.next()?.trim();
    let (kind, subtype) = essence.split_once('/')?;
    if !token(kind) || !token(subtype) {
        return None;
    }
    let mut out = essence.to_ascii_lowercase();
    for param in parts {
        let (k, v) = param.trim().split_once('=')?;
        if !token(k.trim()) || !token(v.trim()) {
            return None;
        }
        out.push_str(&format!("; {}={}", k.trim(), v.trim()));
    }
    Some(out)
}

/// `Content-Range: <start>-<end>` (inclusive; a `bytes ` or `bytes=` prefix and a `/<size>` suffix
/// are tolerated).
pub fn parse_content_range(value: &str) -> Result<(u64, u64)> {
    let invalid =
        || Error::new(ErrorCode::RangeInvalid).with_message("Content-Range must be <start>-<end>");
    let text = value.trim();
    let text = text
        .strip_prefix("bytes")
        .unwrap_or(text)
        .trim_start_matches(['=', ' ']);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(start.trim()) || !digits(end.trim()) {
        return Err(invalid());
    }
    let (start, end): (u64, u64) = (
        start.trim().parse().map_err(|_| invalid())?,
        end.trim().parse().map_err(|_| invalid())?,
    );
    if end < start {
        return Err(invalid());
    }
    Ok((start, end))
}

/// Headers of the origin's answer that reach the client (`Location` is rewritten first; of
/// `Warning`, only the registry warnings, code 299).
pub const RESPONSE_HEADERS: [&str; 8] = [
    "content-type",
    "location",
    "docker-upload-uuid",
    "range",
    "docker-content-digest",
    "oci-subject",
    "oci-chunk-min-length",
    "warning",
];

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

/// The origin's answer as the client sees it: same status, API headers only, `Location` rewritten
/// to the edge. The body is rebuilt too: a success of the write API has none, and an error keeps
/// only its codes, and the messages and details that name none of the origin's internals (storage
/// paths, driver names, URLs). The second value is the origin's own error body when it was
/// rewritten, for the log.
pub fn client_response(
    answer: Response<Vec<u8>>,
    origin: &Url,
    public_base: &str,
) -> (Response<Vec<u8>>, Option<String>) {
    let (parts, body) = answer.into_parts();
    let (body, original) = if parts.status.is_client_error() || parts.status.is_server_error() {
        let rebuilt = error_body(&body, parts.status, origin);
        let original = (rebuilt != body).then(|| String::from_utf8_lossy(&body).into_owned());
        (rebuilt, original)
    } else {
        (Vec::new(), None)
    };
    let mut response = Response::new(body);
    *response.status_mut() = parts.status;
    for name in RESPONSE_HEADERS {
        if name == "content-type" {
            continue;
        }
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
            } else if name == "warning" {
                // The spec's registry warnings (`299 - "text"`); no other kind is the client's.
                // A runtime may join several into one comma-separated value.
                for warning in value.to_str().map(split_warnings).unwrap_or_default() {
                    if warning.starts_with("299 ")
                        && let Ok(v) = HeaderValue::from_str(warning)
                    {
                        response.headers_mut().append(name, v);
                    }
                }
                continue;
            } else {
                value.clone()
            };
            response.headers_mut().append(name, value);
        }
    }
    // Every answer gets a type: the edge gzips untyped bodies for clients that accept it, and Go
    // clients then lose Content-Length.
    let content_type = if response.body().is_empty() {
        "application/octet-stream"
    } else {
        "application/json; charset=utf-8"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (response, original)
}

/// The warnings of a `Warning` value: split at the commas outside quoted text (a warning's text
/// may hold commas of its own).
fn split_warnings(value: &str) -> Vec<&str> {
    let mut warnings = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                warnings.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    warnings.push(value[start..].trim());
    warnings.retain(|w| !w.is_empty());
    warnings
}

/// An origin's error body rebuilt as OCI error JSON: each error's code (when it is one), its
/// message and detail unless they name the origin's internals. A body that is not OCI error JSON
/// (a proxy's HTML page, a driver's text) becomes one `UNKNOWN` error naming the status.
fn error_body(body: &[u8], status: StatusCode, origin: &Url) -> Vec<u8> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<serde_json::Value>,
    }
    let host = origin.host_str().unwrap_or("");
    let clean = |v: &serde_json::Value| !names_internals(v, host);
    let mut out = Vec::new();
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        for e in parsed.errors {
            let Some(code) = e["code"]
                .as_str()
                .filter(|c| !c.is_empty() && c.len() <= 64)
                .filter(|c| c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            else {
                continue;
            };
            let mut entry = serde_json::json!({ "code": code });
            // An UNKNOWN error's message is the origin's own failure (a storage driver's words):
            // never the client's business.
            entry["message"] = match e.get("message") {
                Some(m) if m.is_string() && clean(m) && code != "UNKNOWN" => m.clone(),
                _ if code == "UNKNOWN" => serde_json::Value::from("the origin registry failed"),
                _ => serde_json::Value::from("the origin registry refused the request"),
            };
            if let Some(detail) = e.get("detail").filter(|d| !d.is_null() && clean(d)) {
                entry["detail"] = detail.clone();
            }
            out.push(entry);
        }
    }
    if out.is_empty() {
        out.push(serde_json::json!({
            "code": "UNKNOWN",
            "message": format!(
                "the origin registry answered {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ).trim_end(),
        }));
    }
    serde_json::to_vec(&serde_json::json!({ "errors": out })).expect("errors serialize")
}

/// Whether a value from an origin's error names its internals: a storage path, a driver, a URL or
/// the origin's host.
fn names_internals(value: &serde_json::Value, origin_host: &str) -> bool {
    match value {
        serde_json::Value::String(s) => {
            s.contains("/docker/registry/")
                || s.contains("://")
                || [
                    "s3aws",
                    "azure",
                    "gcs",
                    "filesystem",
                    "inmemory",
                    "oss",
                    "swift",
                ]
                .iter()
                .any(|driver| s.contains(&format!("{driver}:")))
                || s.contains("X-Amz-")
                || s.contains("_uploads/")
                || (!origin_host.is_empty() && s.contains(origin_host))
        }
        serde_json::Value::Array(items) => items.iter().any(|v| names_internals(v, origin_host)),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| {
            matches!(k.as_str(), "Path" | "DriverName" | "Driver")
                || names_internals(&serde_json::Value::String(k.clone()), origin_host)
                || names_internals(v, origin_host)
        }),
        _ => false,
    }
}

pub fn transport_error(error: OriginError, timeout: Duration) -> Error {
    match error {
        OriginError::Unreachable(why) => Error::new(ErrorCode::UpstreamUnreachable)
            .with_message("the origin registry is unreachable")
            .with_log(why),
        OriginError::Timeout => Error::new(ErrorCode::UpstreamTimeout).with_message(format!(
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
            .header("warning", r#"299 - "this repository is deprecated""#)
            .header("warning", r#"299 - "so is this tag""#)
            .header("warning", r#"199 proxy "a proxy's note""#)
            .header(
                "warning",
                r#"299 - "joined, by a runtime", 199 x "no", 299 - "say \"hi\", twice""#,
            )
            .body(Vec::new())
            .unwrap();
        let (response, _) = client_response(answer, &origin(), "https://edge.example");
        assert_eq!(response.status(), 202);
        // The registry's warnings (code 299) reach the client unchanged; no other kind does.
        let warnings: Vec<_> = response.headers().get_all("warning").iter().collect();
        assert_eq!(
            warnings,
            [
                r#"299 - "this repository is deprecated""#,
                r#"299 - "so is this tag""#,
                r#"299 - "joined, by a runtime""#,
                r#"299 - "say \"hi\", twice""#,
            ]
        );
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
    fn client_headers_are_parsed_and_rebuilt() {
        let mut client = HeaderMap::new();
        for (k, v) in [
            ("content-type", "Application/Octet-Stream"),
            ("content-length", "10"),
            ("content-range", "bytes 0-9/10"),
            ("authorization", "Bearer client"),
            ("expect", "100-continue"),
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("host", "edge.example"),
            ("x-forwarded-for", "10.0.0.1"),
            ("user-agent", "client"),
        ] {
            client.insert(k, HeaderValue::from_static(v));
        }
        let parsed = RequestHeaders::from_client(&client).unwrap();
        let sent = parsed.to_header_map();
        let mut names: Vec<_> = sent.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-length", "content-range", "content-type"]);
        assert_eq!(sent["content-type"], "application/octet-stream");
        assert_eq!(sent["content-range"], "0-9");
        for (name, bad) in [
            ("content-length", "10, 10"),
            ("content-length", "-1"),
            ("content-type", "text/plain\"x"),
            ("content-type", "no-slash"),
            ("content-type", "a/b; q=\"1\""),
            ("content-range", "0-9-10"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(bad).unwrap());
            assert!(RequestHeaders::from_client(&h).is_err(), "{name}: {bad}");
        }
        let mut twice = HeaderMap::new();
        twice.append("content-length", HeaderValue::from_static("1"));
        twice.append("content-length", HeaderValue::from_static("2"));
        assert_eq!(
            RequestHeaders::from_client(&twice).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-1023").unwrap(), (0, 1023));
        assert_eq!(parse_content_range("bytes 10-19/100").unwrap(), (10, 19));
        assert_eq!(parse_content_range("bytes=10-19").unwrap(), (10, 19));
        for bad in [
            "",
            "10",
            "a-b",
            "20-10",
            "+1-2",
            "1-99999999999999999999999",
        ] {
            assert_eq!(parse_content_range(bad).unwrap_err().status(), 416, "{bad}");
        }
    }

    #[test]
    fn origin_paths_come_from_parsed_values() {
        let name: Name = "team/app".parse().unwrap();
        let tag: Reference = "v1".parse().unwrap();
        assert_eq!(
            OriginPath::manifest(&name, &tag).as_str(),
            "/v2/team/app/manifests/v1"
        );
        assert_eq!(
            OriginPath::upload(&name, "u-1").as_str(),
            "/v2/team/app/blobs/uploads/u-1"
        );
        assert_eq!(
            OriginPath::uploads(&name).as_str(),
            "/v2/team/app/blobs/uploads/"
        );
    }

    #[test]
    fn origin_errors_lose_what_names_its_internals() {
        let cases: &[(&[u8], serde_json::Value)] = &[
            // distribution's s3 driver error, as it answers a broken upload.
            (
                br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry","detail":{"Path":"/docker/registry/v2/repositories/a/_uploads/u/data","DriverName":"s3aws"}}]}"#,
                serde_json::json!({"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}),
            ),
            (
                br#"{"errors":[{"code":"UNKNOWN","message":"s3aws: Get http://127.0.0.1:5000/x: refused"}]}"#,
                serde_json::json!({"errors":[{"code":"UNKNOWN","message":"the origin registry failed"}]}),
            ),
            (
                br#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"s3aws: NoSuchBucket: the bucket does not exist"}]}"#,
                serde_json::json!({"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"the origin registry refused the request"}]}),
            ),
            // Useful details stay.
            (
                br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#,
                serde_json::json!({"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}),
            ),
            (
                b"<html>502 Bad Gateway</html>",
                serde_json::json!({"errors":[{"code":"UNKNOWN","message":"the origin registry answered 502 Bad Gateway"}]}),
            ),
        ];
        for (body, want) in cases {
            let answer = Response::builder()
                .status(if body.starts_with(b"<") { 502 } else { 404 })
                .header("content-type", "text/html")
                .body(body.to_vec())
                .unwrap();
            let (r, _) = client_response(answer, &origin(), "");
            let got: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
            assert_eq!(&got, want);
            assert_eq!(
                r.headers()["content-type"],
                "application/json; charset=utf-8"
            );
        }
        let created = Response::builder()
            .status(201)
            .body(b"origin text".to_vec())
            .unwrap();
        assert!(client_response(created, &origin(), "").0.body().is_empty());
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
