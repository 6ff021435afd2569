//! `ObjectStore` over the R2 bucket binding.

use worker::Bucket;

use crate::storage::{ObjectStore, StoreError};

pub(crate) struct R2Store {
    bucket: Bucket,
}

impl R2Store {
    pub(crate) fn new(bucket: Bucket) -> Self {
        R2Store { bucket }
    }

    pub(crate) fn bucket(&self) -> &Bucket {
        &self.bucket
    }
}

fn r2_error(op: &str, key: &str, e: worker::Error) -> StoreError {
    StoreError(format!("R2 {op} {key}: {e}"))
}

impl ObjectStore for R2Store {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_versioned(key).await?.map(|(bytes, _)| bytes))
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let object = self
            .bucket
            .head(key)
            .await
            .map_err(|e| r2_error("head", key, e))?;
        Ok(object.map(|o| o.size()))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.bucket
            .put(key, bytes)
            .execute()
            .await
            .map(|_| ())
            .map_err(|e| r2_error("put", key, e))
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let Some(object) = self
            .bucket
            .get(key)
            .execute()
            .await
            .map_err(|e| r2_error("get", key, e))?
        else {
            return Ok(None);
        };
        let etag = object.etag();
        let bytes = match object.body() {
            Some(body) => body.bytes().await.map_err(|e| r2_error("read", key, e))?,
            None => Vec::new(),
        };
        Ok(Some((bytes, etag)))
    }

    /// `onlyIf`: `etagMatches` the version read, or `etagDoesNotMatch: "*"` for none at all; R2
    /// answers no object when the condition fails.
    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expect: crate::storage::Expect<'_>,
    ) -> Result<bool, StoreError> {
        let condition = match expect {
            crate::storage::Expect::Absent => worker::Conditional {
                etag_does_not_match: Some("*".into()),
                ..Default::default()
            },
            crate::storage::Expect::Version(etag) => worker::Conditional {
                etag_matches: Some(etag.into()),
                ..Default::default()
            },
        };
        self.bucket
            .put(key, bytes)
            .only_if(condition)
            .execute()
            .await
            .map(|object| object.is_some())
            .map_err(|e| r2_error("put", key, e))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket
            .delete(key)
            .await
            .map_err(|e| r2_error("delete", key, e))
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut dirs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut list = self.bucket.list().prefix(prefix).delimiter("/");
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list
                .execute()
                .await
                .map_err(|e| r2_error("list", prefix, e))?;
            dirs.extend(
                page.delimited_prefixes()
                    .into_iter()
                    .filter_map(|p| p.strip_prefix(prefix)?.strip_suffix('/').map(str::to_owned)),
            );
            match page.cursor() {
                Some(c) if page.truncated() => cursor = Some(c),
                _ => return Ok(dirs),
            }
        }
    }
}
