//! SigV4 presigned URLs (query signing) for an S3-compatible endpoint: R2's S3 API, AWS S3, MinIO,
//! Ceph, garage, moto. Signing is a pure function of the request and the time, done by the sans-IO
//! `rusty-s3` crate; the tests below hold it to AWS's published example signatures.

use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use crate::config::S3Config;

/// Signs URLs for one bucket.
#[derive(Debug, Clone)]
pub struct Presigner {
    bucket: Bucket,
    credentials: Credentials,
}

/// Which request a presigned URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Delete,
}

impl Presigner {
    pub fn new(config: &S3Config) -> Result<Presigner, String> {
        let style = if config.virtual_host {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            config.endpoint.clone(),
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| format!("S3 bucket {:?} at {}: {e}", config.bucket, config.endpoint))?;
        let credentials = Credentials::new(&config.access_key_id, &config.secret_access_key);
        Ok(Presigner {
            bucket,
            credentials,
        })
    }

    /// A URL for `method` on `key`, valid for `expires` from `now` (Unix seconds).
    pub fn object_url(&self, method: Method, key: &str, expires: Duration, now: u64) -> Url {
        let time = timestamp(now);
        match method {
            Method::Get => self
                .bucket
                .get_object(Some(&self.credentials), key)
                .sign_with_time(expires, &time),
            Method::Head => self
                .bucket
                .head_object(Some(&self.credentials), key)
                .sign_with_time(expires, &time),
            Method::Put => self
                .bucket
                .put_object(Some(&self.credentials), key)
                .sign_with_time(expires, &time),
            Method::Delete => self
                .bucket
                .delete_object(Some(&self.credentials), key)
                .sign_with_time(expires, &time),
        }
    }

    /// A `ListObjectsV2` URL: `prefix`, `/` as delimiter, from `continuation` when given.
    pub fn list_url(
        &self,
        prefix: &str,
        continuation: Option<&str>,
        expires: Duration,
        now: u64,
    ) -> Url {
        let mut list = self.bucket.list_objects_v2(Some(&self.credentials));
        list.with_prefix(prefix);
        list.with_delimiter("/");
        if let Some(token) = continuation {
            list.with_continuation_token(token);
        }
        list.sign_with_time(expires, &timestamp(now))
    }
}

/// A step of a multipart upload, for `Presigner::multipart_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multipart<'a> {
    /// `POST ?uploads`: starts one; the answer names its upload id.
    Create,
    /// `PUT ?partNumber=N&uploadId=ID`: one part (numbered from 1).
    Part { upload_id: &'a str, number: u16 },
    /// `POST ?uploadId=ID`, with the parts' ETags as the body (`complete_body`).
    Complete { upload_id: &'a str },
    /// `DELETE ?uploadId=ID`.
    Abort { upload_id: &'a str },
}

impl Presigner {
    /// A URL for one step of a multipart upload of `key`.
    pub fn multipart_url(
        &self,
        step: Multipart<'_>,
        key: &str,
        expires: Duration,
        now: u64,
    ) -> Url {
        let time = timestamp(now);
        let credentials = Some(&self.credentials);
        match step {
            Multipart::Create => self
                .bucket
                .create_multipart_upload(credentials, key)
                .sign_with_time(expires, &time),
            Multipart::Part { upload_id, number } => self
                .bucket
                .upload_part(credentials, key, number, upload_id)
                .sign_with_time(expires, &time),
            Multipart::Complete { upload_id } => self
                .bucket
                .complete_multipart_upload(credentials, key, upload_id, std::iter::empty())
                .sign_with_time(expires, &time),
            Multipart::Abort { upload_id } => self
                .bucket
                .abort_multipart_upload(credentials, key, upload_id)
                .sign_with_time(expires, &time),
        }
    }

    /// The body of a `Complete`: the parts' ETags, in part order.
    pub fn complete_body(&self, key: &str, upload_id: &str, etags: &[String]) -> String {
        self.bucket
            .complete_multipart_upload(
                Some(&self.credentials),
                key,
                upload_id,
                etags.iter().map(String::as_str),
            )
            .body()
    }
}

fn timestamp(unix_seconds: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(unix_seconds as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's example credentials and bucket from "Authenticating Requests: Using Query Parameters
    /// (AWS Signature Version 4)", S3 API reference.
    fn aws_example() -> Presigner {
        Presigner::new(&S3Config {
            endpoint: "https://s3.amazonaws.com".parse().unwrap(),
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            virtual_host: true,
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        })
        .unwrap()
    }

    /// 20130524T000000Z
    const EXAMPLE_TIME: u64 = 1_369_353_600;

    #[test]
    fn presigned_get_matches_aws_published_example() {
        let url = aws_example().object_url(
            Method::Get,
            "test.txt",
            Duration::from_secs(86400),
            EXAMPLE_TIME,
        );
        assert_eq!(
            url.as_str(),
            "https://examplebucket.s3.amazonaws.com/test.txt\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    /// Every URL botocore presigns for the fixture's cases (tests/support/presign_vectors.py
    /// writes it; the end-to-end suite checks it is still botocore's), made here the same.
    #[test]
    fn presigned_urls_match_botocore() {
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/presign-vectors.json"))
                .unwrap();
        assert!(vectors.len() >= 90);
        for v in &vectors {
            let text = |k: &str| v[k].as_str().unwrap().to_owned();
            let presigner = Presigner::new(&S3Config {
                endpoint: text("endpoint").parse().unwrap(),
                bucket: text("bucket"),
                region: text("region"),
                virtual_host: text("style") == "virtual-host",
                access_key_id: text("access_key_id"),
                secret_access_key: text("secret_access_key"),
            })
            .unwrap();
            let expires = Duration::from_secs(v["expires"].as_u64().unwrap());
            let time = v["time"].as_u64().unwrap();
            let ours = match v["method"].as_str().unwrap() {
                "GET" => presigner.object_url(Method::Get, &text("key"), expires, time),
                "HEAD" => presigner.object_url(Method::Head, &text("key"), expires, time),
                _ => presigner.list_url(&text("prefix"), v["continuation"].as_str(), expires, time),
            };
            let theirs = url::Url::parse(&text("url")).unwrap();
            // The same request signed the same: scheme, host, path, and every query parameter
            // (the signature among them), whatever their order.
            assert_eq!(
                (ours.scheme(), ours.host_str(), ours.path()),
                (theirs.scheme(), theirs.host_str(), theirs.path()),
                "{v}"
            );
            let sorted = |u: &url::Url| {
                let mut q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
                q.sort();
                q
            };
            assert_eq!(sorted(&ours), sorted(&theirs), "{v}");
        }
    }

    #[test]
    fn path_style_keys_keep_their_slashes() {
        let p = Presigner::new(&S3Config {
            endpoint: "http://127.0.0.1:9000".parse().unwrap(),
            bucket: "registry".into(),
            region: "us-east-1".into(),
            virtual_host: false,
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
        })
        .unwrap();
        let url = p.object_url(
            Method::Head,
            "origin/docker/registry/v2/blobs/sha256/ab/abc/data",
            Duration::from_secs(60),
            EXAMPLE_TIME,
        );
        assert_eq!(
            url.path(),
            "/registry/origin/docker/registry/v2/blobs/sha256/ab/abc/data"
        );
        assert!(url.query().unwrap().contains("X-Amz-Expires=60"));
        let list = p.list_url(
            "a/b/",
            Some("tok en"),
            Duration::from_secs(60),
            EXAMPLE_TIME,
        );
        let query: Vec<(String, String)> = list.query_pairs().into_owned().collect();
        assert!(query.contains(&("prefix".into(), "a/b/".into())));
        assert!(query.contains(&("delimiter".into(), "/".into())));
        assert!(query.contains(&("continuation-token".into(), "tok en".into())));
        assert!(query.contains(&("list-type".into(), "2".into())));
    }
}
