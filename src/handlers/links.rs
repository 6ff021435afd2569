//! Reading the layout through the cache: tag resolution, repository links, manifest bytes (checked
//! against their digest) and blob sizes. Shared by the handlers.

use crate::app::App;
use crate::cache::{EdgeCache, IMMUTABLE_SECONDS, key};
use crate::error::{Error, Result};
use crate::layout::parse_link;
use crate::media;
use crate::platform::Platform;
use crate::reference::{Digest, Name, Tag};
use crate::storage::ObjectStore;

/// A stored manifest: its media type and its verified bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut entry = Vec::with_capacity(self.media_type.len() + 1 + self.bytes.len());
        entry.extend_from_slice(self.media_type.as_bytes());
        entry.push(b'\n');
        entry.extend_from_slice(&self.bytes);
        entry
    }

    fn decode(mut entry: Vec<u8>) -> Option<Manifest> {
        let newline = entry.iter().position(|b| *b == b'\n')?;
        let bytes = entry.split_off(newline + 1);
        entry.truncate(newline);
        Some(Manifest {
            media_type: String::from_utf8(entry).ok()?,
            bytes,
        })
    }
}

/// What a repository links: its manifests (`_manifests/revisions`) or its blobs (`_layers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Revision,
    Layer,
}

impl<P: Platform> App<P> {
    /// The digest a tag points at, or `None` for an unknown tag.
    pub(crate) async fn resolve_tag(&self, name: &Name, tag: &Tag) -> Result<Option<Digest>> {
        let cache_key = key::tag(name, tag);
        if let Some(cached) = self.cache.get(&cache_key).await
            && let Some(digest) = parse_link(&cached)
        {
            return Ok(Some(digest));
        }
        let link_key = self.config.layout.tag_current_link(name, tag);
        let Some(bytes) = self.store.get(&link_key).await? else {
            return Ok(None);
        };
        let digest = parse_link(&bytes)
            .ok_or_else(|| Error::internal(format!("corrupt tag link {link_key}")))?;
        self.cache
            .put(
                &cache_key,
                digest.to_string().as_bytes(),
                self.config.tag_cache_seconds,
            )
            .await;
        Ok(Some(digest))
    }

    /// Whether `name` links `digest`. Only linked content is served from a repository: that is
    /// what keeps one repository's blobs out of another's reach.
    pub(crate) async fn is_linked(&self, link: Link, name: &Name, digest: &Digest) -> Result<bool> {
        let (cache_key, link_key) = match link {
            Link::Revision => (
                key::revision(name, digest),
                self.config.layout.manifest_revision_link(name, digest),
            ),
            Link::Layer => (
                key::layer(name, digest),
                self.config.layout.layer_link(name, digest),
            ),
        };
        if self.cache.get(&cache_key).await.is_some() {
            return Ok(true);
        }
        let Some(bytes) = self.store.get(&link_key).await? else {
            return Ok(false);
        };
        match parse_link(&bytes) {
            Some(target) if target == *digest => {
                self.cache
                    .put(&cache_key, b"1", self.config.tag_cache_seconds)
                    .await;
                Ok(true)
            }
            _ => Err(Error::internal(format!(
                "link {link_key} does not hold {digest}"
            ))),
        }
    }

    /// The manifest `digest` (bytes verified, media type read from them), or `None` when storage
    /// has no such blob. Cached as `<media type>\n<bytes>`, so a hit parses nothing.
    pub(crate) async fn manifest(&self, digest: &Digest) -> Result<Option<Manifest>> {
        if let Some(manifest) = self.cached_manifest(digest).await {
            return Ok(Some(manifest));
        }
        let data_key = self.config.layout.blob_data(digest);
        let Some(bytes) = self.store.get(&data_key).await? else {
            return Ok(None);
        };
        if !digest.verifies(&bytes) {
            // Never serve corrupt content: the client would reject it anyway, and a cache must not
            // keep it.
            return Err(Error::internal(format!(
                "stored content at {data_key} does not match its digest {digest}"
            )));
        }
        let media_type = media::manifest_media_type(&bytes)
            .ok_or_else(|| Error::internal(format!("stored manifest {digest} is not JSON")))?;
        let manifest = Manifest { media_type, bytes };
        self.cache
            .put(
                &key::manifest(digest),
                &manifest.encode(),
                IMMUTABLE_SECONDS,
            )
            .await;
        Ok(Some(manifest))
    }

    /// The manifest `digest` if the edge holds it, without asking storage.
    pub(crate) async fn cached_manifest(&self, digest: &Digest) -> Option<Manifest> {
        Manifest::decode(self.cache.get(&key::manifest(digest)).await?)
    }

    /// The size of the blob `digest` in storage, or `None` when it is missing.
    pub(crate) async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let cache_key = key::blob_size(digest);
        if let Some(size) = self.cache.get(&cache_key).await
            && let Some(size) = std::str::from_utf8(&size).ok().and_then(|s| s.parse().ok())
        {
            return Ok(Some(size));
        }
        let Some(size) = self
            .store
            .head(&self.config.layout.blob_data(digest))
            .await?
        else {
            return Ok(None);
        };
        self.cache
            .put(&cache_key, size.to_string().as_bytes(), IMMUTABLE_SECONDS)
            .await;
        Ok(Some(size))
    }
}

#[cfg(test)]
mod tests {
    use super::Manifest;

    #[test]
    fn manifest_cache_entries_round_trip() {
        let m = Manifest {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            bytes: b"{\n}".to_vec(),
        };
        assert_eq!(Manifest::decode(m.encode()), Some(m));
        assert_eq!(Manifest::decode(b"no newline".to_vec()), None);
    }
}
