//! Blob uploads, forwarded to the origin with the client's body streamed through untouched:
//! `POST /v2/<name>/blobs/uploads/` (plain, `?digest=` monolithic, `?mount=&from=`), `PATCH`
//! chunks, `PUT ?digest=` to finish, `GET` status and `DELETE` of an upload.
//!
//! The edge is stricter than distribution 2.8 where it can be without a round trip: digests and
//! names are checked before anything is forwarded, and a chunk whose `Content-Range` does not start
//! at the upload's offset is refused with 416 (distribution answers 202). The offset travels in the
//! upload `Location` the edge hands out, signed with `EDGE_SECRET` (`edge_offset`, `edge_sig`), and
//! those parameters never reach the origin.

use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;
use sha2::Sha256;

use super::forward::Forward;
use super::manifests::header_value;
use crate::app::App;
use crate::auth::Caller;
use crate::error::{Error, ErrorCode, Result};
use crate::origin::{OriginBody, forwarded_headers};
use crate::platform::Platform;
use crate::reference::{Digest, Name};

const OFFSET_PARAM: &str = "edge_offset";
const SIGNATURE_PARAM: &str = "edge_sig";

impl<P: Platform> App<P> {
    /// A mount (`?mount=&from=`) needs pull on the source as well as push on the target; without
    /// it the mount parameters are dropped and the upload starts plainly (202), as the spec says.
    pub async fn start_upload<B>(
        &self,
        name: &Name,
        request: &Request<B>,
        caller: &Caller,
    ) -> Result<Response<Vec<u8>>> {
        let (mut query, _) = edge_query(request.uri().query());
        let mut scopes = vec![push_scope(name)];
        let mut streamed = false;
        let mut source = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "digest" => {
                    value.parse::<Digest>()?;
                    streamed = true;
                }
                "mount" => {
                    value.parse::<Digest>()?;
                }
                "from" => source = Some(value.parse::<Name>()?),
                _ => {}
            }
        }
        if let Some(source) = source {
            if self.may_mount_from(caller, &source).await? {
                scopes.push(format!("repository:{source}:pull"));
            } else {
                query = without_mount(&query);
            }
        }
        let has_body = content_length(request.headers()).is_some_and(|n| n > 0);
        let body = if streamed || has_body {
            OriginBody::Client
        } else {
            OriginBody::Empty
        };
        let mut response = self
            .forward(Forward {
                method: Method::POST,
                path_and_query: with_query(request.uri().path(), &query),
                headers: forwarded_headers(request.headers()),
                body,
                scopes,
                public_base: self.public_base(request),
            })
            .await?;
        if response.status() == StatusCode::ACCEPTED {
            self.sign_location(&mut response, Some(0));
            if let Some(config) = &self.config.origin {
                response.headers_mut().insert(
                    "oci-chunk-max-length",
                    HeaderValue::from(config.chunk_max_length),
                );
            }
        }
        Ok(response)
    }

    pub async fn patch_upload<B>(
        &self,
        name: &Name,
        request: &Request<B>,
    ) -> Result<Response<Vec<u8>>> {
        let (query, offset) = self.upload_offset(request);
        let range = match request.headers().get(header::CONTENT_RANGE) {
            Some(value) => Some(parse_content_range(value)?),
            None => None,
        };
        if let (Some((start, _)), Some(offset)) = (range, offset)
            && start != offset
        {
            let mut response = crate::app::error_response(
                &Error::new(ErrorCode::BlobUploadInvalid)
                    .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .with_message(format!(
                        "chunk starts at byte {start}, the upload is at byte {offset}"
                    ))
                    .with_detail(json!({ "offset": offset, "start": start })),
            );
            let h = response.headers_mut();
            h.insert(
                header::RANGE,
                header_value(&format!("0-{}", offset.saturating_sub(1)))?,
            );
            h.insert(header::LOCATION, header_value(&request_location(request))?);
            return Ok(response);
        }
        let length = content_length(request.headers());
        let mut response = self
            .forward(self.upload_forward(
                Method::PATCH,
                name,
                request,
                &query,
                OriginBody::Client,
                true,
            ))
            .await?;
        if response.status() == StatusCode::ACCEPTED {
            // The new offset: what the client said it sent, else the origin's Range (whose "0-0"
            // means zero or one byte, so it is trusted only past that).
            let next = match (range, offset, length) {
                (Some((_, end)), _, _) => Some(end + 1),
                (None, Some(offset), Some(length)) => Some(offset + length),
                _ => origin_offset(response.headers()),
            };
            self.sign_location(&mut response, next);
        }
        Ok(response)
    }

    pub async fn finish_upload<B>(
        &self,
        name: &Name,
        request: &Request<B>,
    ) -> Result<Response<Vec<u8>>> {
        let (query, _) = self.upload_offset(request);
        let digest = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "digest")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| {
                Error::new(ErrorCode::DigestInvalid)
                    .with_message("the final PUT of an upload needs ?digest=")
            })?;
        digest.parse::<Digest>()?;
        let has_body = content_length(request.headers()).is_none_or(|n| n > 0);
        self.forward(self.upload_forward(
            Method::PUT,
            name,
            request,
            &query,
            if has_body {
                OriginBody::Client
            } else {
                OriginBody::Empty
            },
            true,
        ))
        .await
    }

    pub async fn upload_status<B>(
        &self,
        name: &Name,
        request: &Request<B>,
    ) -> Result<Response<Vec<u8>>> {
        let (query, offset) = self.upload_offset(request);
        let mut response = self
            .forward(self.upload_forward(
                Method::GET,
                name,
                request,
                &query,
                OriginBody::Empty,
                false,
            ))
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            let next = origin_offset(response.headers()).or(offset);
            self.sign_location(&mut response, next);
        }
        Ok(response)
    }

    pub async fn cancel_upload<B>(
        &self,
        name: &Name,
        request: &Request<B>,
    ) -> Result<Response<Vec<u8>>> {
        let (query, _) = edge_query(request.uri().query());
        self.forward(self.upload_forward(
            Method::DELETE,
            name,
            request,
            &query,
            OriginBody::Empty,
            false,
        ))
        .await
    }

    /// An upload request for the origin: same path, the origin's part of the query, the client's
    /// API headers when `with_headers` (requests that carry a body).
    fn upload_forward<B>(
        &self,
        method: Method,
        name: &Name,
        request: &Request<B>,
        query: &str,
        body: OriginBody,
        with_headers: bool,
    ) -> Forward {
        Forward {
            method,
            path_and_query: with_query(request.uri().path(), query),
            headers: if with_headers {
                forwarded_headers(request.headers())
            } else {
                HeaderMap::new()
            },
            body,
            scopes: vec![push_scope(name)],
            public_base: self.public_base(request),
        }
    }

    /// The origin's query of an upload request, and the upload's offset when the edge signed it.
    fn upload_offset<B>(&self, request: &Request<B>) -> (String, Option<u64>) {
        let (query, signed) = edge_query(request.uri().query());
        let offset = match (signed, &self.config.edge_secret) {
            (Some((offset, signature)), Some(secret))
                if sign(secret, request.uri().path(), offset) == signature =>
            {
                Some(offset)
            }
            _ => None,
        };
        (query, offset)
    }

    /// Adds the signed offset to the answer's upload `Location`.
    fn sign_location(&self, response: &mut Response<Vec<u8>>, offset: Option<u64>) {
        let (Some(offset), Some(secret)) = (offset, &self.config.edge_secret) else {
            return;
        };
        let Some(location) = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let (path, query) = location.split_once('?').unwrap_or((location, ""));
        let upload_path = match url::Url::parse(path) {
            Ok(url) => url.path().to_owned(),
            Err(_) => path.to_owned(),
        };
        let mut query = url::form_urlencoded::Serializer::new(query.to_owned());
        query.append_pair(OFFSET_PARAM, &offset.to_string());
        query.append_pair(SIGNATURE_PARAM, &sign(secret, &upload_path, offset));
        if let Ok(value) = HeaderValue::from_str(&format!("{path}?{}", query.finish())) {
            response.headers_mut().insert(header::LOCATION, value);
        }
    }
}

/// `query` without its `mount` and `from` parameters.
fn without_mount(query: &str) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "mount" && k != "from")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

fn push_scope(name: &Name) -> String {
    format!("repository:{name}:pull,push")
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Splits the edge's own parameters off a query: the rest (for the origin), and the signed offset.
fn edge_query(query: Option<&str>) -> (String, Option<(u64, String)>) {
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    let (mut offset, mut signature) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            OFFSET_PARAM => offset = value.parse::<u64>().ok(),
            SIGNATURE_PARAM => signature = Some(value.into_owned()),
            _ => {
                rest.append_pair(&key, &value);
            }
        }
    }
    (rest.finish(), offset.zip(signature))
}

fn sign(secret: &str, upload_path: &str, offset: u64) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{upload_path}\n{offset}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `Content-Range: <start>-<end>` (inclusive; a `bytes ` or `bytes=` prefix is tolerated).
fn parse_content_range(value: &HeaderValue) -> Result<(u64, u64)> {
    let invalid = || {
        Error::new(ErrorCode::BlobUploadInvalid)
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_message("Content-Range must be <start>-<end>")
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let (start, end): (u64, u64) = (
        start.trim().parse().map_err(|_| invalid())?,
        end.trim().parse().map_err(|_| invalid())?,
    );
    if end < start {
        return Err(invalid());
    }
    Ok((start, end))
}

/// The offset an origin reports in `Range: 0-<last byte>`; "0-0" is ambiguous (empty or one byte).
fn origin_offset(headers: &HeaderMap) -> Option<u64> {
    let range = headers.get(header::RANGE)?.to_str().ok()?;
    let end: u64 = range.trim().strip_prefix("0-")?.parse().ok()?;
    (end > 0).then_some(end + 1)
}

/// The URL the client used, as the `Location` of a refused chunk (it stays valid).
fn request_location<B>(request: &Request<B>) -> String {
    match request.uri().query() {
        Some(q) => format!("{}?{q}", request.uri().path()),
        None => request.uri().path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_parameters_stay_at_the_edge() {
        let (rest, signed) = edge_query(Some(
            "_state=abc%3D&edge_offset=10&edge_sig=ff&digest=sha256%3A00",
        ));
        assert_eq!(rest, "_state=abc%3D&digest=sha256%3A00");
        assert_eq!(signed, Some((10, "ff".to_owned())));
        assert_eq!(edge_query(None), (String::new(), None));
    }

    #[test]
    fn signatures_bind_offset_and_upload() {
        let a = sign("k", "/v2/a/blobs/uploads/1", 10);
        assert_eq!(a.len(), 64);
        assert_ne!(a, sign("k", "/v2/a/blobs/uploads/1", 11));
        assert_ne!(a, sign("k", "/v2/a/blobs/uploads/2", 10));
        assert_ne!(a, sign("other", "/v2/a/blobs/uploads/1", 10));
    }

    #[test]
    fn content_ranges() {
        let parse = |s: &'static str| parse_content_range(&HeaderValue::from_static(s));
        assert_eq!(parse("0-1023").unwrap(), (0, 1023));
        assert_eq!(parse("bytes 10-19/100").unwrap(), (10, 19));
        assert_eq!(parse("bytes=10-19").unwrap(), (10, 19));
        for bad in ["", "10", "a-b", "20-10"] {
            assert_eq!(parse(bad).unwrap_err().status, 416, "{bad}");
        }
    }

    #[test]
    fn origin_ranges() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_static(v));
            m
        };
        assert_eq!(origin_offset(&h("0-99")), Some(100));
        assert_eq!(origin_offset(&h("0-0")), None);
        assert_eq!(origin_offset(&HeaderMap::new()), None);
    }
}
