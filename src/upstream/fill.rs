//! Mirror fills: the queue jobs that copy what a mirror's readers fetched from the upstream into
//! the edge's storage, in distribution's layout under the mirror's repository name
//! (`docker.io/library/nginx`), so that the next read is served from storage (blobs as `307`s to
//! presigned URLs) and the upstream can go away.
//!
//! The order keeps every reader safe: content first, then the links that make it visible. A
//! manifest's bytes are verified against its digest before they are written; a blob is uploaded
//! in parts (upstream `Range` requests into a multipart upload) whose sha256 the runtime computes
//! as the bytes go by, and the upload is completed only when it matches: a copy that fails or
//! does not verify leaves no object and no link. Then the revision or layer link, and for a tag
//! its index entry and `current` link (last known: the tag as the upstream said it when read).
//!
//! Jobs are idempotent: content this upstream already supplied is not copied again, and links are
//! rewritten with the same bytes. Blob data stored by anything else (the origin's pushes, another
//! upstream) is copied from the upstream, verified, before the mirror links it: knowing a digest
//! never opens its content. A manifest's references are jobs of their own, each remembered like a read's
//! (one job per object and location within `FILL_MARKER_SECONDS`).

use serde::Deserialize;

use super::client::is_transient;
use super::{Mode, Target};
use crate::app::App;
use crate::cache::EdgeCache;
use crate::content::{Content, FILL_MARKER_SECONDS};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{Job, Jobs, Outcome};
use crate::platform::Platform;
use crate::reference::{Algorithm, Digest, Name, Tag};
use crate::storage::{BlobSink, ObjectStore};

/// Most jobs one send carries (a Queues batch holds 100 messages).
const BATCH: usize = 100;

/// The parts of a manifest that name other content.
#[derive(Deserialize)]
struct References {
    #[serde(default)]
    manifests: Vec<Reference>,
    config: Option<Reference>,
    #[serde(default)]
    layers: Vec<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    digest: Option<String>,
    /// A foreign layer (Windows base layers) lives at these URLs, not in the registry.
    #[serde(default)]
    urls: Vec<String>,
}

impl Reference {
    fn digest(&self) -> Option<Digest> {
        let digest: Digest = self.digest.as_deref()?.parse().ok()?;
        (digest.algorithm() == Algorithm::Sha256 && self.urls.is_empty()).then_some(digest)
    }
}

impl<P: Platform> App<P> {
    /// Runs one job off the queue. `last` says no retry follows this attempt: a failure then
    /// forgets that the fill was queued, so the next read queues it again.
    pub async fn run_job(&self, job: &Job, last: bool) -> Outcome {
        let (result, name, what) = match job {
            Job::FillManifest { name, digest, tag } => (
                self.fill_manifest(name, digest, tag.as_deref()).await,
                name,
                format!("@{digest}"),
            ),
            Job::FillBlob { name, digest } => (
                self.fill_blob(name, digest).await,
                name,
                format!("@{digest}"),
            ),
        };
        let error = match result {
            Ok(()) => return Outcome::Done,
            Err(error) => error,
        };
        let text = format!("{job:?}: {error}");
        let passing = is_transient(&error)
            || matches!(
                error.code,
                ErrorCode::Unknown | ErrorCode::StorageTimeout | ErrorCode::UpstreamTimeout
            );
        if (last || !passing)
            && let Ok(name) = name.parse::<Name>()
        {
            let marker = crate::content::fill_marker(&self.config.upstreams, &name, &what);
            self.cache.delete(&marker).await;
        }
        if passing {
            Outcome::Retry(text)
        } else {
            Outcome::Failed(text)
        }
    }

    /// The mirror repository a job names, when it still is one (the configuration may have
    /// changed since the job was queued).
    fn mirror_target(&self, name: &Name) -> Option<Target<'_>> {
        super::resolve(&self.config.upstreams, name, None)
            .filter(|t| t.prefixed && t.allowed && t.upstream.mode == Mode::Mirror)
    }

    async fn fill_manifest(&self, name: &str, digest: &str, tag: Option<&str>) -> Result<()> {
        let (name, digest) = parse_job(name, digest)?;
        let tag: Option<Tag> = tag
            .map(|t| t.parse())
            .transpose()
            .map_err(|_| Error::new(ErrorCode::TagInvalid).with_message("the job's tag"))?;
        if self.mirror_target(&name).is_none() {
            return Ok(());
        }
        // Verified against the digest, or an error: nothing unverified is written.
        let Some(manifest) = self.upstream_content().manifest(&name, &digest).await? else {
            return Ok(());
        };
        let layout = &self.config.layout;
        let data = layout.blob_data(&digest);
        if self.store.head(&data).await?.is_none() {
            self.store.put(&data, manifest.bytes.clone()).await?;
        }
        let link = digest.to_string().into_bytes();
        // The manifest blob is linked as a layer too, as distribution does on a push.
        self.store
            .put(&layout.layer_link(&name, &digest), link.clone())
            .await?;
        self.store
            .put(&layout.manifest_revision_link(&name, &digest), link.clone())
            .await?;
        self.queue_references(&name, &manifest.bytes).await;
        if let Some(tag) = tag {
            self.store
                .put(&layout.tag_index_link(&name, &tag, &digest), link.clone())
                .await?;
            self.store
                .put(&layout.tag_current_link(&name, &tag), link)
                .await?;
            self.cache
                .delete(&crate::cache::key::tag(&name, &tag))
                .await;
        }
        Ok(())
    }

    /// Queues fills of what the manifest `bytes` references: an index's manifests, an image's
    /// config and layers (sha256 only; foreign layers are not the registry's).
    async fn queue_references(&self, name: &Name, bytes: &[u8]) {
        let Ok(refs) = serde_json::from_slice::<References>(bytes) else {
            return;
        };
        let mut jobs = Vec::new();
        let manifests = refs.manifests.iter().filter_map(Reference::digest);
        for digest in manifests {
            jobs.push((
                format!("@{digest}"),
                Job::FillManifest {
                    name: name.to_string(),
                    digest: digest.to_string(),
                    tag: None,
                },
            ));
        }
        let blobs = refs.config.iter().chain(&refs.layers);
        for digest in blobs.filter_map(Reference::digest) {
            jobs.push((
                format!("@{digest}"),
                Job::FillBlob {
                    name: name.to_string(),
                    digest: digest.to_string(),
                },
            ));
        }
        let mut queued = Vec::new();
        for (what, job) in jobs {
            let marker = crate::content::fill_marker(&self.config.upstreams, name, &what);
            if self.cache.get(&marker).await.is_some() || queued.contains(&job) {
                continue;
            }
            self.cache.put(&marker, b"1", FILL_MARKER_SECONDS).await;
            queued.push(job);
        }
        for batch in queued.chunks(BATCH) {
            if let Err(e) = self.jobs.enqueue(batch).await {
                (self.log)(&format!("mirror fills for {name} not queued: {e}"));
            }
        }
    }

    async fn fill_blob(&self, name: &str, digest: &str) -> Result<()> {
        let (name, digest) = parse_job(name, digest)?;
        let Some(target) = self.mirror_target(&name) else {
            return Ok(());
        };
        let layout = &self.config.layout;
        // The upstream must say the repository has the blob, whatever storage holds.
        let Some(size) = self.upstream_content().blob_size(&name, &digest).await? else {
            return Ok(());
        };
        // Data already stored is linked without a copy only when this upstream's own bytes are
        // what is stored (a mirror's earlier fill): a digest an upstream names (an attacker's
        // manifest can name any) is no proof that it has the content, and linking the origin's
        // private blob into a public mirror would serve it to the mirror's readers.
        let data = layout.blob_data(&digest);
        let mark = layout.mirrored(&target.upstream.prefix, &digest);
        let vouched =
            self.store.head(&data).await? == Some(size) && self.store.head(&mark).await?.is_some();
        if !vouched {
            self.copy_blob(&target, &digest, size, &data).await?;
            self.store
                .put(&mark, digest.to_string().into_bytes())
                .await?;
        }
        self.store
            .put(
                &layout.layer_link(&name, &digest),
                digest.to_string().into_bytes(),
            )
            .await?;
        Ok(())
    }

    /// Copies the blob `digest` (`size` bytes) of `target` to `key` in parts, verified: the
    /// upload is completed only when the sha256 of its parts is the digest.
    async fn copy_blob(
        &self,
        target: &Target<'_>,
        digest: &Digest,
        size: u64,
        key: &str,
    ) -> Result<()> {
        let upstream = self.upstream_content();
        let part = target.upstream.part_bytes;
        let mut upload = self.store.begin(key).await?;
        let copied = async {
            let mut start = 0;
            loop {
                let end = size.min(start + part);
                let body = upstream
                    .blob_part(target, digest, (start, end), size)
                    .await?;
                self.store.part(&mut upload, body, end - start).await?;
                start = end;
                if start >= size {
                    break;
                }
            }
            let sha256 = self.store.sha256(&mut upload).await?;
            if sha256 != digest.hex() {
                return Err(Error::new(ErrorCode::UpstreamError)
                    .with_message(format!(
                        "the upstream registry {} sent a blob for {}@{digest} whose bytes do not \
                         match that digest",
                        target.upstream.label(),
                        target.name
                    ))
                    .with_detail(serde_json::json!({
                        "digest": digest.to_string(),
                        "content": format!("sha256:{sha256}"),
                    })));
            }
            Ok(())
        }
        .await;
        match copied {
            Ok(()) => Ok(self.store.commit(upload).await?),
            Err(error) => {
                self.store.abort(upload).await;
                Err(error)
            }
        }
    }
}

/// A job's repository and digest, parsed as a request's would be (a job is only queued with
/// parsed values, but a queue is input too).
fn parse_job(name: &str, digest: &str) -> Result<(Name, Digest)> {
    let name: Name = name
        .parse()
        .map_err(|_| Error::new(ErrorCode::NameInvalid).with_message("the job's repository"))?;
    let digest: Digest = digest
        .parse()
        .ok()
        .filter(|d: &Digest| d.algorithm() == Algorithm::Sha256)
        .ok_or_else(|| Error::new(ErrorCode::DigestInvalid).with_message("the job's digest"))?;
    Ok((name, digest))
}
