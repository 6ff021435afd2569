//! What the edge needs from object storage, as one small trait: read a small object, learn an
//! object's size, list the "directories" under a prefix. Implemented over the S3 API
//! (`s3::S3Store`, signed HTTP through any `HttpClient`) and, on Cloudflare, over the R2 binding (in
//! the platform adapter). Blob bytes never pass through here: downloads are redirected to a
//! presigned URL (`presign`). `MemoryStore` serves unit tests, and `suite` is the one test suite
//! every backend must pass.

pub mod memory;
pub mod presign;
pub mod s3;
#[cfg(test)]
pub mod suite;

use std::fmt;

/// A failure to talk to the store (not a missing object: that is `Ok(None)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "object storage: {}", self.0)
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        crate::error::Error::internal(e.to_string())
    }
}

/// Object storage, read side. Keys are full keys (`Layout` builds them). No `Send` bound: the
/// worker is single-threaded.
#[allow(async_fn_in_trait)]
pub trait ObjectStore {
    /// The bytes of a small object (links, manifests), or `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The size of an object, or `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError>;

    /// The names of the immediate children of `prefix` (which ends with `/`) that have children
    /// themselves ("directories"), all pages read, in no particular order.
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}
