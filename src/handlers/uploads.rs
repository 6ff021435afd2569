//! Blob uploads, forwarded to the origin with the client's body streamed through untouched:
//! `POST /v2/<name>/blobs/uploads/` (plain, `?digest=` monolithic, `?mount=&from=`), `PATCH`
//! chunks, `PUT ?digest=` to finish, `GET` status and `DELETE` of an upload.
//!
//! Upload sessions are sealed. The `Location` the edge hands out carries the origin's own
//! parameters (distribution's `_state`), the upload's offset as the origin reported it
//! (`edge_offset`), and an HMAC over the upload's path, those parameters and the offset
//! (`edge_sig`, keyed by `EDGE_SECRET`, else by a key derived from the token signing key). A
//! request on a session whose seal does not verify is refused (404 `BLOB_UPLOAD_INVALID`) before
//! anything is forwarded; the origin gets exactly the parameters it handed out, plus the parsed
//! `digest` of a final `PUT`. So no client can move a session to another repository, add
//! parameters the origin would act on, or claim an offset.
//!
//! The edge is stricter than distribution 2.8 where it can be without a round trip: digests and
//! names are checked before anything is forwarded, and a chunk whose `Content-Range` does not start
//! at the upload's offset is refused with 416 (distribution answers 202).

use hmac::{KeyInit, Mac};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;
use sha2::Sha256;

use super::forward::Forward;
use super::manifests::header_value;
use crate::app::App;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::{StartUpload, UploadStep};
use crate::origin::{OriginBody, OriginPath, RequestHeaders};
use crate::platform::Platform;
use crate::query::Query;
use crate::reference::{Digest, Name};
use crate::route::Route;

const OFFSET_PARAM: &str = "edge_offset";
const SIGNATURE_PARAM: &str = "edge_sig";

/// An upload session the edge handed out and verified: the origin's parameters, and the offset
/// when the origin reported one the edge could trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub origin_params: Vec<(String, String)>,
    pub offset: Option<u64>,
}

impl<P: Platform> App<P> {
    /// `POST /v2/<name>/blobs/uploads/`, as authorized: a mount whose source the caller may not
    /// read arrives here as a plain upload (202, as the spec says), and no mount parameter is
    /// forwarded.
    pub async fn start_upload<B>(
        &self,
        name: &Name,
        start: &StartUpload,
        request: &Request<B>,
        scopes: Vec<String>,
    ) -> Result<Response<Vec<u8>>> {
        let client = RequestHeaders::from_client(request.headers())?;
        let mut query = Vec::new();
        let streamed = match start {
            StartUpload::Monolithic(digest) => {
                query.push(("digest".to_owned(), digest.to_string()));
                true
            }
            StartUpload::Mount { digest, from } => {
                query.push(("mount".to_owned(), digest.to_string()));
                query.push(("from".to_owned(), from.to_string()));
                false
            }
            StartUpload::Plain => client.content_length.is_some_and(|n| n > 0),
        };
        let (headers, body) = if streamed {
            (
                RequestHeaders {
                    content_range: None,
                    ..client
                },
                OriginBody::Client,
            )
        } else {
            (RequestHeaders::default(), OriginBody::Empty)
        };
        let mut response = self
            .forward(Forward {
                method: Method::POST,
                path: OriginPath::uploads(name),
                query,
                headers,
                body,
                scopes,
                public_base: self.public_base(request),
            })
            .await?;
        self.seal_answer(&mut response, name, Some(0), Some(0), request)?;
        if let StartUpload::Monolithic(digest) | StartUpload::Mount { digest, .. } = start {
            self.answer_clients_digest(&mut response, name, digest, request)?;
        }
        if response.status() == StatusCode::ACCEPTED
            && let Some(config) = &self.config.origin
        {
            response.headers_mut().insert(
                "oci-chunk-max-length",
                HeaderValue::from(config.chunk_max_length),
            );
        }
        Ok(response)
    }

    /// A request on an upload session.
    pub async fn upload<B>(
        &self,
        name: &Name,
        upload_id: &str,
        step: UploadStep,
        request: &Request<B>,
        scopes: Vec<String>,
    ) -> Result<Response<Vec<u8>>> {
        match step {
            UploadStep::Chunk => self.patch_upload(name, upload_id, request, scopes).await,
            UploadStep::Finish => self.finish_upload(name, upload_id, request, scopes).await,
            UploadStep::Status => self.upload_status(name, upload_id, request, scopes).await,
            UploadStep::Cancel => self.cancel_upload(name, upload_id, request, scopes).await,
        }
    }

    async fn patch_upload<B>(
        &self,
        name: &Name,
        upload_id: &str,
        request: &Request<B>,
        scopes: Vec<String>,
    ) -> Result<Response<Vec<u8>>> {
        let (session, _) = self.open_session(name, upload_id, request)?;
        let headers = RequestHeaders::from_client(request.headers())?;
        if let Some(refused) = self.out_of_order(name, upload_id, &session, &headers, request) {
            return refused;
        }
        let length = headers.content_length;
        let mut response = self
            .forward(self.upload_forward(
                (name, upload_id),
                Method::PATCH,
                request,
                (session.origin_params.clone(), headers, OriginBody::Client),
                scopes,
            ))
            .await?;
        self.seal_answer(&mut response, name, session.offset, length, request)?;
        Ok(response)
    }

    async fn finish_upload<B>(
        &self,
        name: &Name,
        upload_id: &str,
        request: &Request<B>,
        scopes: Vec<String>,
    ) -> Result<Response<Vec<u8>>> {
        let (session, digest) = self.open_session(name, upload_id, request)?;
        let digest = digest.ok_or_else(|| {
            Error::new(ErrorCode::DigestInvalid)
                .with_message("the final PUT of an upload needs ?digest=")
        })?;
        let headers = RequestHeaders::from_client(request.headers())?;
        if let Some(refused) = self.out_of_order(name, upload_id, &session, &headers, request) {
            return refused;
        }
        let body = if headers.content_length.is_none_or(|n| n > 0) {
            OriginBody::Client
        } else {
            OriginBody::Empty
        };
        let mut query = session.origin_params;
        query.push(("digest".to_owned(), digest.to_string()));
        let mut response = self
            .forward(self.upload_forward(
                (name, upload_id),
                Method::PUT,
                request,
                (query, headers, body),
                scopes,
            ))
            .await?;
        self.seal_answer(&mut response, name, session.offset, Some(0), request)?;
        self.answer_clients_digest(&mut response, name, &digest, request)?;
        Ok(response)
    }

    /// On a blob created (201: a finished upload, a monolithic upload or a mount), the digest the
    /// client named. distribution answers with the canonical (sha256) digest it stored the blob
    /// under, also for a blob pushed as sha512; the repository links the client's digest too
    /// (and the edge serves it, following the link).
    fn answer_clients_digest<B>(
        &self,
        response: &mut Response<Vec<u8>>,
        name: &Name,
        digest: &Digest,
        request: &Request<B>,
    ) -> Result<()> {
        if response.status() != StatusCode::CREATED {
            return Ok(());
        }
        let location = format!(
            "{}{}",
            self.public_base(request),
            OriginPath::blob(name, digest).as_str()
        );
        let h = response.headers_mut();
        h.insert("docker-content-digest", header_value(&digest.to_string())?);
        h.insert(header::LOCATION, header_value(&location)?);
        Ok(())
    }

    async fn upload_status<B>(
        &self,
        name: &Name,
        upload_id: &str,
        request: &Request<B>,
        scopes: Vec<String>,
    ) -> Result<Response<Vec<u8>>> {
        let (session, _) = self.open_session(name, upload_id, request)?;
        let mut response = self
            .forward(self.upload_forward(
                (name, upload_id),
                Method::GET,
                request,
                (
                    session.origin_params.clone(),
                    RequestHeaders::default(),
                    OriginBody::Empty,
                ),
                scopes,
            ))
            .await?;
        self.seal_answer(&mut response, name, session.offset, Some(0), request)?;
        Ok(response)
    }

    async fn cancel_upload<B>(
        &self,
        name: &Name,
        upload_id: &str,
        request: &Request<B>,
        scopes: Vec<String>,
    ) -> Result<Response<Vec<u8>>> {
        let (session, _) = self.open_session(name, upload_id, request)?;
        self.forward(self.upload_forward(
            (name, upload_id),
            Method::DELETE,
            request,
            (
                session.origin_params,
                RequestHeaders::default(),
                OriginBody::Empty,
            ),
            scopes,
        ))
        .await
    }

    /// A request on the session for the origin: the session's path, the given query and headers.
    fn upload_forward<B>(
        &self,
        (name, upload_id): (&Name, &str),
        method: Method,
        request: &Request<B>,
        (query, headers, body): (Vec<(String, String)>, RequestHeaders, OriginBody),
        scopes: Vec<String>,
    ) -> Forward {
        Forward {
            method,
            path: OriginPath::upload(name, upload_id),
            query,
            headers,
            body,
            scopes,
            public_base: self.public_base(request),
        }
    }

    /// The 416 for a chunk that does not start at the upload's offset, when the edge knows it.
    fn out_of_order<B>(
        &self,
        name: &Name,
        upload_id: &str,
        session: &Session,
        headers: &RequestHeaders,
        request: &Request<B>,
    ) -> Option<Result<Response<Vec<u8>>>> {
        let ((start, _), offset) = (headers.content_range?, session.offset?);
        if start == offset {
            return None;
        }
        let mut response = crate::app::error_response(
            &Error::new(ErrorCode::RangeInvalid)
                .with_message(format!(
                    "chunk starts at byte {start}, the upload is at byte {offset}"
                ))
                .with_detail(json!({ "offset": offset, "start": start })),
        );
        // The same session stays valid: the client may send the right chunk to it.
        let location = format!(
            "{}{}",
            self.public_base(request),
            self.sealed_path(name, upload_id, session)
        );
        let h = response.headers_mut();
        let range = format!("0-{}", offset.saturating_sub(1));
        match (header_value(&range), header_value(&location)) {
            (Ok(range), Ok(location)) => {
                h.insert(header::RANGE, range);
                h.insert(header::LOCATION, location);
                Some(Ok(response))
            }
            (Err(e), _) | (_, Err(e)) => Some(Err(e)),
        }
    }

    /// Verifies the seal of the session a request names; returns it, and the parsed `digest` of a
    /// final `PUT` (the one parameter a client adds to a session's URL).
    fn open_session<B>(
        &self,
        name: &Name,
        upload_id: &str,
        request: &Request<B>,
    ) -> Result<(Session, Option<Digest>)> {
        let query = Query::parse(request.uri().query());
        let digest = if request.method() == Method::PUT {
            query
                .single("digest")?
                .map(str::parse::<Digest>)
                .transpose()?
        } else {
            None
        };
        let unsealed = || {
            Error::new(ErrorCode::BlobUploadInvalid).with_message(
                "this upload URL was not handed out by this registry, or was changed: start the \
                 upload again",
            )
        };
        let signature = query.single(SIGNATURE_PARAM)?.ok_or_else(unsealed)?;
        let offset = match query.single(OFFSET_PARAM)? {
            None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| unsealed())?),
        };
        let origin_params: Vec<(String, String)> = query
            .pairs()
            .iter()
            .filter(|(k, _)| {
                k != SIGNATURE_PARAM && k != OFFSET_PARAM && !(digest.is_some() && k == "digest")
            })
            .cloned()
            .collect();
        let session = Session {
            origin_params,
            offset,
        };
        let path = OriginPath::upload(name, upload_id);
        if !verify(
            &self.config.upload_key.0,
            path.as_str(),
            &session,
            signature,
        ) {
            return Err(unsealed());
        }
        Ok((session, digest))
    }

    /// The edge's URL of a session: its path, the origin's parameters, the offset and the seal.
    pub(crate) fn sealed_path(&self, name: &Name, upload_id: &str, session: &Session) -> String {
        let path = OriginPath::upload(name, upload_id);
        let signature = seal(&self.config.upload_key.0, path.as_str(), session);
        let offset = session.offset.map(|o| o.to_string());
        let pairs = session
            .origin_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(offset.as_deref().map(|o| (OFFSET_PARAM, o)))
            .chain([(SIGNATURE_PARAM, signature.as_str())]);
        format!(
            "{}?{}",
            path.as_str(),
            crate::query::encode(pairs).unwrap_or_default()
        )
    }

    /// Seals the upload `Location` of an origin's answer, whatever its status (an origin may
    /// name the session on a 416 too), with the offset its `Range` reports: `previous` and
    /// `length` (the bytes this request carried) settle distribution's ambiguous "0-0".
    fn seal_answer<B>(
        &self,
        response: &mut Response<Vec<u8>>,
        name: &Name,
        previous: Option<u64>,
        length: Option<u64>,
        request: &Request<B>,
    ) -> Result<()> {
        let taken = if response.status().is_success() {
            length
        } else {
            Some(0)
        };
        let offset = next_offset(response, previous, taken);
        self.seal_location(response, name, offset, &self.public_base(request))
    }

    /// Seals an answer's `Location` (already rewritten to the edge's `public_base`) when it names
    /// an upload session of `name`; a blob's location (after the final PUT) stays as it is. An
    /// upload location the edge cannot seal (on another host, of another repository, with
    /// parameters that are not UTF-8) is a 502: the client must come back through the edge.
    fn seal_location(
        &self,
        response: &mut Response<Vec<u8>>,
        name: &Name,
        offset: Option<u64>,
        public_base: &str,
    ) -> Result<()> {
        let Some(location) = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return Ok(());
        };
        let unusable = || {
            Error::new(ErrorCode::UpstreamError)
                .with_message("the origin registry answered an upload with an unusable location")
                .with_log(format!(
                    "upload location {location:?} for {name} (is the origin's public URL \
                     ORIGIN_URL?)"
                ))
        };
        let (path, query) = location.split_once('?').unwrap_or((&location, ""));
        let Some(path) = path
            .strip_prefix(public_base)
            .filter(|p| p.starts_with('/'))
        else {
            return Err(unusable());
        };
        let upload_id = match Route::parse(path) {
            Ok(Route::BlobUpload { name: n, upload_id }) if n == *name => upload_id,
            Ok(Route::BlobUpload { .. }) => return Err(unusable()),
            _ => return Ok(()),
        };
        let origin_params = Query::parse(Some(query)).pairs().to_vec();
        // Decoding is lossy for escapes that are not UTF-8: such a parameter would not come back
        // to the origin as it was sent.
        if origin_params
            .iter()
            .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
        {
            return Err(unusable());
        }
        let session = Session {
            origin_params,
            offset,
        };
        let sealed = format!(
            "{public_base}{}",
            self.sealed_path(name, &upload_id, &session)
        );
        response
            .headers_mut()
            .insert(header::LOCATION, header_value(&sealed)?);
        Ok(())
    }
}

/// The seal of a session: HMAC-SHA256 over the upload path, the origin's parameters (sorted, so a
/// client that re-encodes the query keeps a valid URL) and the offset.
fn seal(key: &[u8], upload_path: &str, session: &Session) -> String {
    let mut params: Vec<(&str, &str)> = session
        .origin_params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    params.sort();
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"registry-edge upload session v1\n");
    mac.update(upload_path.as_bytes());
    mac.update(b"\n");
    mac.update(crate::query::encode(params).unwrap_or_default().as_bytes());
    mac.update(b"\n");
    match session.offset {
        Some(offset) => mac.update(offset.to_string().as_bytes()),
        None => mac.update(b"-"),
    }
    hex::encode(mac.finalize().into_bytes())
}

fn verify(key: &[u8], upload_path: &str, session: &Session, signature: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = seal(key, upload_path, session);
    expected.len() == signature.len() && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

/// The upload's offset after the origin's answer, from its `Range: 0-<last byte>`. distribution
/// writes "0-0" for both an empty upload and one byte; then the offset is trusted only when the
/// previous offset and the request's length (which the platform enforces) say the same.
fn next_offset(
    answer: &Response<Vec<u8>>,
    previous: Option<u64>,
    length: Option<u64>,
) -> Option<u64> {
    let range = answer.headers().get(header::RANGE)?.to_str().ok()?;
    let end: u64 = range.trim().strip_prefix("0-")?.parse().ok()?;
    if end > 0 {
        return end.checked_add(1);
    }
    let expected = previous?.checked_add(length?)?;
    (expected <= 1).then_some(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(params: &[(&str, &str)], offset: Option<u64>) -> Session {
        Session {
            origin_params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            offset,
        }
    }

    #[test]
    fn seals_bind_path_parameters_and_offset() {
        let path = "/v2/a/blobs/uploads/1";
        let s = session(&[("_state", "abc"), ("x", "1")], Some(10));
        let a = seal(b"k", path, &s);
        assert_eq!(a.len(), 64);
        assert!(verify(b"k", path, &s, &a));
        // Parameter order does not matter (clients re-encode queries)...
        let reordered = session(&[("x", "1"), ("_state", "abc")], Some(10));
        assert!(verify(b"k", path, &reordered, &a));
        // ...anything else does.
        for other in [
            session(&[("_state", "abc"), ("x", "1")], Some(11)),
            session(&[("_state", "abc"), ("x", "1")], None),
            session(&[("_state", "abd"), ("x", "1")], Some(10)),
            session(&[("_state", "abc"), ("x", "1"), ("mount", "m")], Some(10)),
            session(&[("_state", "abc")], Some(10)),
        ] {
            assert!(!verify(b"k", path, &other, &a), "{other:?}");
        }
        assert!(!verify(b"k", "/v2/b/blobs/uploads/1", &s, &a));
        assert!(!verify(b"other", path, &s, &a));
        assert!(!verify(b"k", path, &s, &a[..63]));
    }

    #[test]
    fn offsets_come_from_the_origin() {
        let answer = |range: Option<&str>| {
            let mut r = Response::new(Vec::new());
            if let Some(range) = range {
                r.headers_mut()
                    .insert(header::RANGE, HeaderValue::from_str(range).unwrap());
            }
            r
        };
        // What the client claimed does not matter: the origin's Range does.
        assert_eq!(
            next_offset(&answer(Some("0-4")), Some(0), Some(100)),
            Some(5)
        );
        assert_eq!(next_offset(&answer(Some("0-99")), None, None), Some(100));
        // "0-0": zero or one byte; trusted only when the request says which.
        assert_eq!(next_offset(&answer(Some("0-0")), Some(0), Some(1)), Some(1));
        assert_eq!(next_offset(&answer(Some("0-0")), Some(0), Some(0)), Some(0));
        assert_eq!(next_offset(&answer(Some("0-0")), Some(0), None), None);
        assert_eq!(next_offset(&answer(Some("0-0")), Some(5), Some(5)), None);
        assert_eq!(next_offset(&answer(None), Some(5), Some(5)), None);
        assert_eq!(next_offset(&answer(Some("bytes=0-9")), None, None), None);
    }
}
