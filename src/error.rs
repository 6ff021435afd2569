//! Errors of the OCI Distribution API, defined once: each code with its one HTTP status and its
//! default message (as distribution's `errcode` registers them), written in one place as the OCI
//! error JSON `{"errors":[{"code","message","detail"}]}`. Handlers only return `Error`s; they never
//! build error bodies themselves, and never choose a status: where the edge needs another status,
//! it has a code of its own.

use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

/// The error codes of the OCI Distribution Spec v1.1, spelt as the spec spells them, plus
/// distribution's `UNKNOWN`, `TAG_INVALID` and `PAGINATION_NUMBER_INVALID`, and the edge's own
/// (after `Unknown`) for statuses the spec's codes do not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    PaginationNumberInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Toomanyrequests,
    Unknown,
    // The edge's own.
    /// A request the edge cannot take as it is (a repeated parameter, a malformed header or body).
    BadRequest,
    /// No such endpoint, or no such management record.
    NotFound,
    /// The request conflicts with what the registry holds (a scope map still in use).
    Conflict,
    /// A body over the edge's limit (manifests: 4 MiB).
    TooLarge,
    /// A body of a type the endpoint does not take.
    UnsupportedMediaType,
    /// A chunk that does not start where the upload is, or a malformed `Content-Range`.
    RangeInvalid,
    /// The origin (or an upstream) answered, but not usefully: refused the edge's credentials, or
    /// handed out something the edge cannot use.
    UpstreamError,
    /// No connection to the origin (or an upstream).
    UpstreamUnreachable,
    /// An upstream registry answered that it cannot serve now (a 5xx, or a 429 rate limit).
    UpstreamUnavailable,
    /// The origin (or an upstream) did not answer in time.
    UpstreamTimeout,
    /// Object storage did not answer in time (`STORAGE_TIMEOUT_SECONDS`).
    StorageTimeout,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            // distribution registers BLOB_UPLOAD_INVALID as a 404: the session is not one it knows.
            BlobUnknown | BlobUploadInvalid | BlobUploadUnknown | ManifestUnknown | NameUnknown => {
                StatusCode::NOT_FOUND
            }
            DigestInvalid
            | ManifestBlobUnknown
            | ManifestInvalid
            | NameInvalid
            | SizeInvalid
            | TagInvalid
            | PaginationNumberInvalid => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Denied => StatusCode::FORBIDDEN,
            Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Toomanyrequests => StatusCode::TOO_MANY_REQUESTS,
            Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            BadRequest => StatusCode::BAD_REQUEST,
            NotFound => StatusCode::NOT_FOUND,
            Conflict => StatusCode::CONFLICT,
            TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            UpstreamError | UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamTimeout | StorageTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The default message, as distribution words it.
    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "blob unknown to registry",
            BlobUploadInvalid => "blob upload invalid",
            BlobUploadUnknown => "blob upload unknown to registry",
            DigestInvalid => "provided digest did not match uploaded content",
            ManifestBlobUnknown => "blob unknown to registry",
            ManifestInvalid => "manifest invalid",
            ManifestUnknown => "manifest unknown",
            NameInvalid => "invalid repository name",
            NameUnknown => "repository name not known to registry",
            SizeInvalid => "provided length did not match content length",
            TagInvalid => "manifest tag did not match URI",
            PaginationNumberInvalid => "invalid number of results requested",
            Unauthorized => "authentication required",
            Denied => "requested access to the resource is denied",
            Unsupported => "The operation is unsupported.",
            Toomanyrequests => "too many requests",
            Unknown => "unknown error",
            BadRequest => "the request is not valid",
            NotFound => "not found",
            Conflict => "the request conflicts with the registry's state",
            TooLarge => "the request body is too large",
            UnsupportedMediaType => "the request body's media type is not supported here",
            RangeInvalid => "the requested range is not satisfiable",
            UpstreamError => "the origin registry's answer could not be used",
            UpstreamUnreachable => "the origin registry is unreachable",
            UpstreamUnavailable => "the upstream registry cannot serve this now",
            UpstreamTimeout => "the origin registry did not answer in time",
            StorageTimeout => "the registry's storage did not answer in time",
        }
    }
}

/// One API error: a code, an optional message overriding the default, and a detail (both seen by
/// the client), plus what only the operator's log sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: Option<String>,
    pub detail: Value,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<String>,
    /// `Retry-After` seconds (an upstream's rate limit, passed on).
    pub retry_after: Option<u32>,
    /// For the log only, never for the client: storage keys, origin and storage URLs, driver
    /// messages. `Display` shows it; `body` never does.
    pub log: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a client is told of an internal failure.
pub const INTERNAL_MESSAGE: &str =
    "the registry could not answer this request; its operator's log has the details";

impl Error {
    pub fn new(code: ErrorCode) -> Self {
        Error {
            code,
            message: None,
            detail: Value::Null,
            challenge: None,
            retry_after: None,
            log: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<Value>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        let seconds = u32::try_from(seconds).unwrap_or(u32::MAX);
        self.retry_after = Some(seconds);
        self
    }

    /// The code's status: one per code.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// A failure of the edge's own storage or configuration: 500 `UNKNOWN`. What went wrong goes
    /// to the log (it may name storage keys or URLs); the client gets a plain sentence.
    pub fn internal(log: impl Into<String>) -> Self {
        Error::new(ErrorCode::Unknown)
            .with_message(INTERNAL_MESSAGE)
            .with_log(log)
    }

    /// Adds what only the log may see.
    pub fn with_log(mut self, log: impl Into<String>) -> Self {
        self.log = Some(log.into());
        self
    }

    /// The OCI error body.
    pub fn body(&self) -> Vec<u8> {
        let mut entry = json!({
            "code": self.code,
            "message": self.message.as_deref().unwrap_or(self.code.message()),
        });
        if !self.detail.is_null() {
            entry["detail"] = self.detail.clone();
        }
        serde_json::to_vec(&json!({ "errors": [entry] })).expect("error body serializes")
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.message.as_deref().unwrap_or(self.code.message());
        write!(f, "{} {:?}: {}", self.status().as_u16(), self.code, message)?;
        if !self.detail.is_null() {
            write!(f, " ({})", self.detail)?;
        }
        if let Some(log) = &self.log {
            write!(f, ": {log}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_spec_statuses_and_names() {
        let cases = [
            (ErrorCode::BlobUnknown, 404, "BLOB_UNKNOWN"),
            (ErrorCode::DigestInvalid, 400, "DIGEST_INVALID"),
            (ErrorCode::ManifestUnknown, 404, "MANIFEST_UNKNOWN"),
            (ErrorCode::NameInvalid, 400, "NAME_INVALID"),
            (ErrorCode::NameUnknown, 404, "NAME_UNKNOWN"),
            (ErrorCode::Unsupported, 405, "UNSUPPORTED"),
            (ErrorCode::Toomanyrequests, 429, "TOOMANYREQUESTS"),
            (
                ErrorCode::PaginationNumberInvalid,
                400,
                "PAGINATION_NUMBER_INVALID",
            ),
            (ErrorCode::Unknown, 500, "UNKNOWN"),
            (ErrorCode::BadRequest, 400, "BAD_REQUEST"),
            (ErrorCode::RangeInvalid, 416, "RANGE_INVALID"),
            (
                ErrorCode::UnsupportedMediaType,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (ErrorCode::UpstreamUnreachable, 502, "UPSTREAM_UNREACHABLE"),
            (ErrorCode::UpstreamTimeout, 504, "UPSTREAM_TIMEOUT"),
            (ErrorCode::UpstreamUnavailable, 503, "UPSTREAM_UNAVAILABLE"),
        ];
        for (code, status, name) in cases {
            assert_eq!(code.status().as_u16(), status, "{name}");
            assert_eq!(serde_json::to_value(code).unwrap(), name);
        }
    }

    #[test]
    fn body_is_oci_error_json() {
        let err = Error::new(ErrorCode::NameInvalid).with_detail(json!({"name": "A/b"}));
        let body: Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(
            body,
            json!({"errors": [{"code": "NAME_INVALID", "message": "invalid repository name", "detail": {"name": "A/b"}}]})
        );
        let plain: Value = serde_json::from_slice(&Error::new(ErrorCode::Unknown).body()).unwrap();
        assert_eq!(plain["errors"][0].get("detail"), None);
    }

    #[test]
    fn internal_details_reach_the_log_only() {
        let key = "origin/docker/registry/v2/repositories/a/_layers/sha512/ab/link";
        let err = Error::internal(format!("link {key} does not hold sha512:ab"));
        let body = String::from_utf8(err.body()).unwrap();
        assert!(!body.contains(key), "{body}");
        assert!(body.contains(INTERNAL_MESSAGE));
        assert!(err.to_string().contains(key), "the log keeps it");
    }
}
