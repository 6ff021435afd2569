//! An in-memory `ObjectStore` for unit tests and for loading fixtures.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::{ObjectStore, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    objects: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Every call, as `"<op> <key>"`, so tests can count round trips.
    pub calls: RefCell<Vec<String>>,
    /// Signs download URLs as an S3 endpoint would, when set.
    pub presigner: Option<super::presign::Presigner>,
    /// Runs once, just before the next conditional write is judged: another writer, for tests
    /// of concurrent updates.
    #[allow(clippy::type_complexity)]
    pub before_put_if: RefCell<Option<Box<dyn FnOnce(&MemoryStore, &str)>>>,
}

/// An object's version, as S3 makes its etag: from the bytes.
fn version(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl MemoryStore {
    pub fn put(&self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.objects.borrow_mut().insert(key.into(), value.into());
    }

    pub fn remove(&self, key: &str) {
        self.objects.borrow_mut().remove(key);
    }

    pub fn call_count(&self) -> usize {
        self.calls.borrow().len()
    }
}

/// An upload in progress: the parts so far.
#[derive(Debug)]
pub struct MemoryUpload {
    key: String,
    bytes: Vec<u8>,
}

/// Uploads of byte vectors; a part that is not `length` bytes fails, as the runtime's would.
impl super::BlobSink for MemoryStore {
    type Body = Vec<u8>;
    type Upload = MemoryUpload;

    async fn begin(&self, key: &str) -> Result<MemoryUpload, StoreError> {
        self.calls.borrow_mut().push(format!("begin {key}"));
        Ok(MemoryUpload {
            key: key.to_owned(),
            bytes: Vec::new(),
        })
    }

    async fn part(
        &self,
        upload: &mut MemoryUpload,
        body: Vec<u8>,
        length: u64,
    ) -> Result<(), StoreError> {
        self.calls.borrow_mut().push(format!("part {}", upload.key));
        if body.len() as u64 != length {
            return Err(StoreError(format!(
                "part of {}: {} bytes where {length} were due",
                upload.key,
                body.len()
            )));
        }
        upload.bytes.extend_from_slice(&body);
        Ok(())
    }

    async fn sha256(&self, upload: &mut MemoryUpload) -> Result<String, StoreError> {
        use sha2::Digest as _;
        Ok(hex::encode(sha2::Sha256::digest(&upload.bytes)))
    }

    async fn commit(&self, upload: MemoryUpload) -> Result<(), StoreError> {
        self.calls
            .borrow_mut()
            .push(format!("commit {}", upload.key));
        self.objects.borrow_mut().insert(upload.key, upload.bytes);
        Ok(())
    }

    async fn abort(&self, upload: MemoryUpload) {
        self.calls
            .borrow_mut()
            .push(format!("abort {}", upload.key));
    }
}

impl ObjectStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.calls.borrow_mut().push(format!("get {key}"));
        Ok(self.objects.borrow().get(key).cloned())
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.calls.borrow_mut().push(format!("head {key}"));
        Ok(self.objects.borrow().get(key).map(|v| v.len() as u64))
    }

    fn download_url(&self, key: &str, expires: std::time::Duration, now: u64) -> Option<url::Url> {
        let presigner = self.presigner.as_ref()?;
        Some(presigner.object_url(super::presign::Method::Get, key, expires, now))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.calls.borrow_mut().push(format!("put {key}"));
        self.objects.borrow_mut().insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.calls.borrow_mut().push(format!("get {key}"));
        Ok(self
            .objects
            .borrow()
            .get(key)
            .map(|bytes| (bytes.clone(), version(bytes))))
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expect: super::Expect<'_>,
    ) -> Result<bool, StoreError> {
        self.calls.borrow_mut().push(format!("put {key}"));
        let hook = self.before_put_if.borrow_mut().take();
        if let Some(hook) = hook {
            hook(self, key);
        }
        let mut objects = self.objects.borrow_mut();
        let current = objects.get(key).map(|b| version(b));
        let matches = match expect {
            super::Expect::Absent => current.is_none(),
            super::Expect::Version(v) => current.as_deref() == Some(v),
        };
        if matches {
            objects.insert(key.to_owned(), bytes);
        }
        Ok(matches)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.calls.borrow_mut().push(format!("delete {key}"));
        self.objects.borrow_mut().remove(key);
        Ok(())
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.calls.borrow_mut().push(format!("list {prefix}"));
        let objects = self.objects.borrow();
        let mut dirs: Vec<String> = objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, _)| k[prefix.len()..].split_once('/').map(|(d, _)| d.to_owned()))
            .collect();
        dirs.sort();
        dirs.dedup();
        Ok(dirs)
    }
}
