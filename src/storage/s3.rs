//! `ObjectStore` over the S3 API, through any `HttpClient`. Each request is presigned (SigV4 query
//! signing, `presign::Presigner`) with a short lifetime, which every S3-compatible server accepts
//! and which keeps signing in one place.

use std::rc::Rc;
use std::time::Duration;

use http::{Method as HttpMethod, Request, StatusCode};

use super::presign::{Method, Multipart, Presigner};
use super::{ObjectStore, StoreError};
use crate::platform::{Clock, HttpClient};

/// Lifetime of the signatures on the edge's own requests.
const REQUEST_EXPIRY: Duration = Duration::from_secs(60);

pub struct S3Store<H, K> {
    presigner: Rc<Presigner>,
    http: H,
    clock: K,
}

impl<H: HttpClient, K: Clock> S3Store<H, K> {
    pub fn new(presigner: Rc<Presigner>, http: H, clock: K) -> Self {
        S3Store {
            presigner,
            http,
            clock,
        }
    }

    async fn send(
        &self,
        method: HttpMethod,
        url: url::Url,
    ) -> Result<http::Response<Vec<u8>>, StoreError> {
        self.send_body(method, url, Vec::new()).await
    }

    async fn send_body(
        &self,
        method: HttpMethod,
        url: url::Url,
        body: Vec<u8>,
    ) -> Result<http::Response<Vec<u8>>, StoreError> {
        self.send_with(method, url, body, None).await
    }

    /// With one more header (a precondition: not an `x-amz-` header, so it needs no signature).
    async fn send_with(
        &self,
        method: HttpMethod,
        url: url::Url,
        body: Vec<u8>,
        header: Option<(http::header::HeaderName, String)>,
    ) -> Result<http::Response<Vec<u8>>, StoreError> {
        let mut request = Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(http::header::CONTENT_LENGTH, body.len());
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let request = request
            .body(body)
            .map_err(|e| StoreError(format!("building request: {e}")))?;
        self.http.send(request).await.map_err(StoreError)
    }
}

/// The steps of a multipart upload around its parts, whose bodies are streams the platform sends
/// itself (to `part_url`).
impl<H: HttpClient, K: Clock> S3Store<H, K> {
    /// Starts a multipart upload of `key`; its upload id.
    pub async fn start_multipart(&self, key: &str) -> Result<String, StoreError> {
        let url =
            self.presigner
                .multipart_url(Multipart::Create, key, REQUEST_EXPIRY, self.clock.now());
        let response = self.send(HttpMethod::POST, url).await?;
        if response.status() != StatusCode::OK {
            return Err(unexpected("CreateMultipartUpload", key, &response));
        }
        let text = String::from_utf8_lossy(response.body());
        rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map(|r| r.upload_id().to_owned())
            .map_err(|e| StoreError(format!("CreateMultipartUpload {key}: {e}")))
    }

    /// Where part `number` of the upload goes (a `PUT` of exactly the part's bytes), signed for
    /// `expires`.
    pub fn part_url(&self, key: &str, upload_id: &str, number: u16, expires: Duration) -> url::Url {
        self.presigner.multipart_url(
            Multipart::Part { upload_id, number },
            key,
            expires,
            self.clock.now(),
        )
    }

    /// Completes the upload with the parts' ETags, in order.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), StoreError> {
        let url = self.presigner.multipart_url(
            Multipart::Complete { upload_id },
            key,
            REQUEST_EXPIRY,
            self.clock.now(),
        );
        let body = self.presigner.complete_body(key, upload_id, etags);
        let response = self
            .send_body(HttpMethod::POST, url, body.into_bytes())
            .await?;
        // S3 may answer 200 and put the failure in the body.
        let failed = String::from_utf8_lossy(response.body()).contains("<Error>");
        if response.status() != StatusCode::OK || failed {
            return Err(unexpected("CompleteMultipartUpload", key, &response));
        }
        Ok(())
    }

    /// Aborts the upload; its parts are dropped.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let url = self.presigner.multipart_url(
            Multipart::Abort { upload_id },
            key,
            REQUEST_EXPIRY,
            self.clock.now(),
        );
        let response = self.send(HttpMethod::DELETE, url).await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(unexpected("AbortMultipartUpload", key, &response)),
        }
    }
}

fn unexpected(op: &str, key: &str, response: &http::Response<Vec<u8>>) -> StoreError {
    let body = String::from_utf8_lossy(response.body());
    let body: String = body.chars().take(300).collect();
    StoreError(format!(
        "{op} {key}: HTTP {} {}",
        response.status().as_u16(),
        body.trim()
    ))
}

impl<H: HttpClient, K: Clock> ObjectStore for S3Store<H, K> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let url = self
            .presigner
            .object_url(Method::Get, key, REQUEST_EXPIRY, self.clock.now());
        let response = self.send(HttpMethod::GET, url).await?;
        match response.status() {
            StatusCode::OK => Ok(Some(response.into_body())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected("GET", key, &response)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let url = self
            .presigner
            .object_url(Method::Head, key, REQUEST_EXPIRY, self.clock.now());
        let response = self.send(HttpMethod::HEAD, url).await?;
        match response.status() {
            StatusCode::OK => response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map(Some)
                .ok_or_else(|| StoreError(format!("HEAD {key}: no Content-Length"))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected("HEAD", key, &response)),
        }
    }

    fn download_url(&self, key: &str, expires: Duration, now: u64) -> Option<url::Url> {
        Some(self.presigner.object_url(Method::Get, key, expires, now))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let url = self
            .presigner
            .object_url(Method::Put, key, REQUEST_EXPIRY, self.clock.now());
        let response = self.send_body(HttpMethod::PUT, url, bytes).await?;
        match response.status() {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(()),
            _ => Err(unexpected("PUT", key, &response)),
        }
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let url = self
            .presigner
            .object_url(Method::Get, key, REQUEST_EXPIRY, self.clock.now());
        let response = self.send(HttpMethod::GET, url).await?;
        match response.status() {
            StatusCode::OK => {
                let etag = response
                    .headers()
                    .get(http::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| StoreError(format!("GET {key}: no ETag")))?;
                Ok(Some((response.into_body(), etag)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected("GET", key, &response)),
        }
    }

    /// `If-Match: <etag>` or `If-None-Match: *`: 412 when the object is not as expected, 409
    /// when S3 saw a conflicting conditional write in flight, 404 for `If-Match` on a deleted
    /// key (all mean "read again").
    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expect: super::Expect<'_>,
    ) -> Result<bool, StoreError> {
        let url = self
            .presigner
            .object_url(Method::Put, key, REQUEST_EXPIRY, self.clock.now());
        let header = match expect {
            super::Expect::Absent => (http::header::IF_NONE_MATCH, "*".to_owned()),
            super::Expect::Version(etag) => (http::header::IF_MATCH, etag.to_owned()),
        };
        let response = self
            .send_with(HttpMethod::PUT, url, bytes, Some(header))
            .await?;
        match response.status() {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(true),
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => Ok(false),
            // AWS answers `If-Match` on a key that is gone with NoSuchKey.
            StatusCode::NOT_FOUND if matches!(expect, super::Expect::Version(_)) => Ok(false),
            _ => Err(unexpected("PUT", key, &response)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let url = self
            .presigner
            .object_url(Method::Delete, key, REQUEST_EXPIRY, self.clock.now());
        let response = self.send(HttpMethod::DELETE, url).await?;
        match response.status() {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(unexpected("DELETE", key, &response)),
        }
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut dirs = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let url = self.presigner.list_url(
                prefix,
                continuation.as_deref(),
                REQUEST_EXPIRY,
                self.clock.now(),
            );
            let response = self.send(HttpMethod::GET, url).await?;
            if response.status() != StatusCode::OK {
                return Err(unexpected("LIST", prefix, &response));
            }
            let text = std::str::from_utf8(response.body())
                .map_err(|_| StoreError(format!("LIST {prefix}: response is not UTF-8")))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(text)
                .map_err(|e| StoreError(format!("LIST {prefix}: {e}")))?;
            dirs.extend(page.common_prefixes.into_iter().filter_map(|p| {
                p.prefix
                    .strip_prefix(prefix)?
                    .strip_suffix('/')
                    .map(str::to_owned)
            }));
            match page.next_continuation_token {
                Some(token) => continuation = Some(token),
                None => return Ok(dirs),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::S3Config;
    use crate::platform::FixedClock;
    use crate::storage::memory::MemoryStore;

    /// A tiny S3 server in memory, answering presigned path-style requests the way S3 does:
    /// enough to run the shared storage suite through the real request building and XML parsing.
    struct FakeS3 {
        objects: MemoryStore,
        page_size: usize,
        requests: RefCell<Vec<String>>,
    }

    impl HttpClient for &FakeS3 {
        async fn send(&self, request: Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, String> {
            let url = url::Url::parse(&request.uri().to_string()).unwrap();
            self.requests
                .borrow_mut()
                .push(format!("{} {}", request.method(), url.path()));
            let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
            assert_eq!(query["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
            assert!(query.contains_key("X-Amz-Signature"));
            let key = url.path().strip_prefix("/registry/").unwrap_or("");
            let key = percent_decode(key);
            let ok = |body: Vec<u8>| Ok(http::Response::builder().status(200).body(body).unwrap());
            if query.get("list-type").map(String::as_str) == Some("2") {
                return ok(self.list(&query).await.into_bytes());
            }
            if request.method() == HttpMethod::PUT {
                let current = self.objects.get(&key).await.unwrap().map(|b| etag(&b));
                let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
                let refused = match (header("if-match"), header("if-none-match")) {
                    (Some(want), _) => current.as_deref() != Some(want),
                    (None, Some("*")) => current.is_some(),
                    _ => false,
                };
                if refused {
                    return Ok(http::Response::builder()
                        .status(412)
                        .body(b"<Error><Code>PreconditionFailed</Code></Error>".to_vec())
                        .unwrap());
                }
                self.objects.put(key, request.body().clone());
                return ok(Vec::new());
            }
            if request.method() == HttpMethod::DELETE {
                self.objects.remove(&key);
                return Ok(http::Response::builder()
                    .status(204)
                    .body(Vec::new())
                    .unwrap());
            }
            match self.objects.get(&key).await.unwrap() {
                None => Ok(http::Response::builder()
                    .status(404)
                    .body(b"<Error><Code>NoSuchKey</Code></Error>".to_vec())
                    .unwrap()),
                Some(body) if request.method() == HttpMethod::HEAD => Ok(http::Response::builder()
                    .status(200)
                    .header("content-length", body.len())
                    .body(Vec::new())
                    .unwrap()),
                Some(body) => Ok(http::Response::builder()
                    .status(200)
                    .header("etag", etag(&body))
                    .body(body)
                    .unwrap()),
            }
        }
    }

    impl FakeS3 {
        async fn list(&self, query: &BTreeMap<String, String>) -> String {
            let prefix = &query["prefix"];
            let dirs = self.objects.list_dirs(prefix).await.unwrap();
            let start: usize = query
                .get("continuation-token")
                .map(|t| t.parse().unwrap())
                .unwrap_or(0);
            let end = (start + self.page_size).min(dirs.len());
            let mut xml = String::from(
                r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>registry</Name>"#,
            );
            xml.push_str(&format!(
                "<Prefix>{prefix}</Prefix><EncodingType>url</EncodingType>"
            ));
            xml.push_str(&format!("<IsTruncated>{}</IsTruncated>", end < dirs.len()));
            if end < dirs.len() {
                xml.push_str(&format!(
                    "<NextContinuationToken>{end}</NextContinuationToken>"
                ));
            }
            for d in &dirs[start..end] {
                xml.push_str(&format!(
                    "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                    url_encode(&format!("{prefix}{d}/"))
                ));
            }
            xml.push_str("</ListBucketResult>");
            xml
        }
    }

    /// As S3 quotes it (S3's is an MD5; any hash of the bytes does here).
    fn etag(bytes: &[u8]) -> String {
        use sha2::Digest as _;
        format!("\"{}\"", hex::encode(sha2::Sha256::digest(bytes)))
    }

    fn percent_decode(s: &str) -> String {
        url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    fn url_encode(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace("%2F", "/")
    }

    fn config() -> S3Config {
        S3Config {
            endpoint: "http://127.0.0.1:9000".parse().unwrap(),
            bucket: "registry".into(),
            region: "us-east-1".into(),
            virtual_host: false,
            access_key_id: "key".into(),
            secret_access_key: "secret".into(),
        }
    }

    #[test]
    fn passes_the_storage_suite_with_paginated_lists() {
        let fake = FakeS3 {
            objects: MemoryStore::default(),
            page_size: 2,
            requests: RefCell::default(),
        };
        crate::storage::suite::load(&fake.objects);
        let clock = FixedClock::at(1_700_000_000);
        let store = S3Store::new(Rc::new(Presigner::new(&config()).unwrap()), &fake, &clock);
        futures::executor::block_on(crate::storage::suite::run(&store)).unwrap();
        futures::executor::block_on(crate::storage::suite::run_writes(&store)).unwrap();
        assert!(
            fake.requests
                .borrow()
                .iter()
                .any(|r| r.starts_with("HEAD /registry/"))
        );
    }

    #[test]
    fn server_errors_are_errors_not_missing_objects() {
        struct Broken;
        impl HttpClient for Broken {
            async fn send(&self, _: Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, String> {
                Ok(http::Response::builder()
                    .status(403)
                    .body(b"<Error><Code>AccessDenied</Code></Error>".to_vec())
                    .unwrap())
            }
        }
        let store = S3Store::new(
            Rc::new(Presigner::new(&config()).unwrap()),
            Broken,
            FixedClock::at(0),
        );
        let err = futures::executor::block_on(store.get("a/b")).unwrap_err();
        assert!(
            err.0.contains("HTTP 403") && err.0.contains("AccessDenied"),
            "{err}"
        );
        assert!(futures::executor::block_on(store.head("a")).is_err());
        assert!(futures::executor::block_on(store.list_dirs("a/")).is_err());
    }
}
