//! What the edge needs from object storage, as one small trait: read a small object, learn an
//! object's size, list the "directories" under a prefix, and write or delete a small object (the
//! links and manifests a mirror fill writes). Implemented over the S3 API
//! (`s3::S3Store`, signed HTTP through any `HttpClient`) and, on Cloudflare, over the R2 binding (in
//! the platform adapter). Blob bytes never pass through here: downloads are redirected to a
//! presigned URL (`presign`). `MemoryStore` serves unit tests, and `suite` is the one test suite
//! every backend must pass.

#[cfg(test)]
pub mod memory;
pub mod presign;
pub mod s3;
#[cfg(any(test, feature = "storage-suite"))]
pub mod suite;

use std::fmt;

/// A failure to talk to the store (not a missing object: that is `Ok(None)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// How a store's failure is told apart: no answer in time is a 504, anything else a 500.
pub const TIMEOUT: &str = "no answer within the storage timeout";

impl StoreError {
    pub fn timeout(after: std::time::Duration) -> StoreError {
        StoreError(format!("{TIMEOUT} ({} s)", after.as_secs()))
    }

    pub fn timed_out(&self) -> bool {
        self.0.starts_with(TIMEOUT)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "object storage: {}", self.0)
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        if e.timed_out() {
            crate::error::Error::new(crate::error::ErrorCode::StorageTimeout)
                .with_log(e.to_string())
        } else {
            crate::error::Error::internal(e.to_string())
        }
    }
}

/// What a conditional write expects to find at its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// No object.
    Absent,
    /// The object at this version (an etag `get_versioned` returned).
    Version(&'a str),
}

/// Object storage. Keys are full keys (`Layout` builds them). No `Send` bound: the worker is
/// single-threaded.
#[allow(async_fn_in_trait)]
pub trait ObjectStore {
    /// The bytes of a small object (links, manifests), or `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The size of an object, or `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError>;

    /// The names of the immediate children of `prefix` (which ends with `/`) that have children
    /// themselves ("directories"), all pages read, in no particular order.
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Writes a small object (a link, a manifest), whole, over any object at `key`.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// The bytes of a small object and its version (the store's etag), for a conditional write
    /// back (`put_if`); `None` when it does not exist.
    async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError>;

    /// Writes a small object only if the object at `key` is still what `expect` says (the version
    /// `get_versioned` read, or none at all): `Ok(false)` when it is not, and nothing was written.
    /// What lets concurrent writers of one index object never lose each other's entries: S3's
    /// `If-Match`/`If-None-Match: *` and R2's `onlyIf`.
    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expect: Expect<'_>,
    ) -> Result<bool, StoreError>;

    /// Deletes the object at `key`; deleting what does not exist succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// A URL a client can download `key` from without credentials, valid for `expires` from
    /// `now` (Unix seconds), when the backend can sign one: each backend decides its own redirect
    /// (S3 and R2's S3 API presign it). `None`: the store has no such URL.
    fn download_url(
        &self,
        _key: &str,
        _expires: std::time::Duration,
        _now: u64,
    ) -> Option<url::Url> {
        None
    }
}

/// Writes a large object from a stream the core never reads (an upstream's blob): a multipart
/// upload whose parts are bodies of the platform's own kind, with the sha256 of everything they
/// held computed by the runtime as the bytes go by (`crypto.DigestStream` on Workers). The object
/// exists only once `commit` is called, so a copy that fails or does not verify leaves nothing
/// behind: S3 and R2 both keep an uncompleted upload out of sight.
#[allow(async_fn_in_trait)]
pub trait BlobSink {
    /// A body streamed from elsewhere.
    type Body;
    /// An upload in progress, with the running sha256 of its parts.
    type Upload;

    /// Starts an upload of the object `key`.
    async fn begin(&self, key: &str) -> Result<Self::Upload, StoreError>;

    /// Uploads the next part: `body`, which holds `length` bytes (a body that ends early or runs
    /// over fails the part).
    async fn part(
        &self,
        upload: &mut Self::Upload,
        body: Self::Body,
        length: u64,
    ) -> Result<(), StoreError>;

    /// The sha256 (lowercase hex) of every byte the parts held, in order; after the last part.
    async fn sha256(&self, upload: &mut Self::Upload) -> Result<String, StoreError>;

    /// Completes the upload: the object exists, whole.
    async fn commit(&self, upload: Self::Upload) -> Result<(), StoreError>;

    /// Gives the upload up: no object appears. Failures are the store's to clean up (S3's and R2's
    /// lifecycle rules end abandoned uploads), so none is returned.
    async fn abort(&self, upload: Self::Upload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_out_read_is_a_504_and_other_failures_a_500() {
        let timeout: crate::error::Error =
            StoreError::timeout(std::time::Duration::from_secs(10)).into();
        assert_eq!(timeout.status(), 504);
        assert_eq!(timeout.code, crate::error::ErrorCode::StorageTimeout);
        let failed: crate::error::Error =
            StoreError("GET origin/docker/registry/v2/x: HTTP 503".into()).into();
        assert_eq!(failed.status(), 500);
        assert!(
            !String::from_utf8(failed.body())
                .unwrap()
                .contains("docker/registry")
        );
    }
}
