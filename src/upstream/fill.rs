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

/// The sha256 of no bytes: the one blob stored without an upload.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl<P: Platform> App<P> {
    /// Runs one fill off the queue. `last` says no retry follows this attempt: a failure then
    /// forgets that the fill was queued, so the next read (in the location that queued it)
    /// queues it again.
    pub(crate) async fn run_fill(&self, job: &Job, last: bool) -> Outcome {
        let (result, name, markers) = match job {
            Job::FillManifest {
                name,
                digest,
                tag,
                seen,
            } => {
                let mut markers = vec![format!("@{digest}")];
                if let Some(tag) = tag {
                    markers.push(format!(":{tag}@{digest}"));
                }
                let filled = self
                    .fill_manifest(name, digest, tag.as_deref(), *seen)
                    .await;
                (filled, name, markers)
            }
            Job::FillBlob { name, digest } => (
                self.fill_blob(name, digest).await,
                name,
                vec![format!("@{digest}")],
            ),
            _ => return Outcome::Failed("not a fill".into()),
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
            for what in markers {
                let marker = crate::content::fill_marker(&self.config.upstreams, &name, &what);
                self.cache.delete(&marker).await;
            }
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

    async fn fill_manifest(
        &self,
        name: &str,
        digest: &str,
        tag: Option<&str>,
        seen: u64,
    ) -> Result<()> {
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
        // The mirror's repository enters the catalog with its first manifest, and a manifest
        // with a subject its referrers (a failure is the rebuild's to mend, not the fill's).
        if self.indexes_kept()
            && let Err(e) = self.index_manifest(&name, &digest, None).await
        {
            (self.log)(&format!("indexing the mirror's {name}@{digest}: {e}"));
        }
        self.queue_references(&name, &manifest.bytes).await?;
        let Some(tag) = tag else {
            return Ok(());
        };
        // The tag is written last, once everything it leads to is stored: a reader that finds
        // the tag in storage (the upstream gone) can pull the whole image. Until then the job
        // waits, retried with its delays.
        if !self.stored_whole(&name, &manifest.bytes, 0).await? {
            return Err(Error::internal(format!(
                "{name}:{tag} waits for what {digest} references to be stored"
            )));
        }
        // Never back to what an older read saw (jobs arrive in any order).
        let record_key = layout.mirrored_tag(&name, &tag);
        if let Some(record) = self.store.get(&record_key).await?
            && let Some((_, at)) = std::str::from_utf8(&record)
                .ok()
                .and_then(|r| r.split_once(' '))
            && at.parse::<u64>().is_ok_and(|at| at > seen)
        {
            return Ok(());
        }
        self.store
            .put(&layout.tag_index_link(&name, &tag, &digest), link.clone())
            .await?;
        self.store
            .put(&layout.tag_current_link(&name, &tag), link)
            .await?;
        self.store
            .put(&record_key, format!("{digest} {seen}").into_bytes())
            .await?;
        self.cache
            .delete(&crate::cache::key::tag(&name, &tag))
            .await;
        Ok(())
    }

    /// Whether storage holds, linked in `name`, everything the manifest `bytes` references: an
    /// image's config and layers; an index's manifests, and theirs (one level down).
    async fn stored_whole(&self, name: &Name, bytes: &[u8], depth: usize) -> Result<bool> {
        let Ok(refs) = serde_json::from_slice::<References>(bytes) else {
            return Ok(true);
        };
        let layout = &self.config.layout;
        let blobs = refs.config.iter().chain(&refs.layers);
        for digest in blobs.filter_map(Reference::digest) {
            if self
                .store
                .head(&layout.layer_link(name, &digest))
                .await?
                .is_none()
            {
                return Ok(false);
            }
        }
        for digest in refs.manifests.iter().filter_map(Reference::digest) {
            let Some(child) = self.layout_content().manifest(name, &digest).await? else {
                return Ok(false);
            };
            if depth == 0 && !Box::pin(self.stored_whole(name, &child.bytes, depth + 1)).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Queues fills of what the manifest `bytes` references: an index's manifests, an image's
    /// config and layers (sha256 only; foreign layers are not the registry's). What is already
    /// stored is not queued. A queue that cannot take them is a passing failure of the job.
    async fn queue_references(&self, name: &Name, bytes: &[u8]) -> Result<()> {
        let Ok(refs) = serde_json::from_slice::<References>(bytes) else {
            return Ok(());
        };
        let layout = &self.config.layout;
        let manifests = refs.manifests.iter().map(|r| (r, true));
        let blobs = refs.config.iter().chain(&refs.layers).map(|r| (r, false));
        let mut jobs = Vec::new();
        for (reference, manifest) in manifests.chain(blobs) {
            let Some(digest) = reference.digest() else {
                continue;
            };
            let (link, job) = if manifest {
                let job = Job::FillManifest {
                    name: name.to_string(),
                    digest: digest.to_string(),
                    tag: None,
                    seen: 0,
                };
                (layout.manifest_revision_link(name, &digest), job)
            } else {
                let job = Job::FillBlob {
                    name: name.to_string(),
                    digest: digest.to_string(),
                };
                (layout.layer_link(name, &digest), job)
            };
            if self.store.head(&link).await?.is_none() {
                jobs.push((format!("@{digest}"), job));
            }
        }
        let mut queued: Vec<(String, Job)> = Vec::new();
        for (what, job) in jobs {
            let marker = crate::content::fill_marker(&self.config.upstreams, name, &what);
            if self.cache.get(&marker).await.is_some() || queued.iter().any(|(_, j)| *j == job) {
                continue;
            }
            self.cache.put(&marker, b"1", FILL_MARKER_SECONDS).await;
            queued.push((marker, job));
        }
        for batch in queued.chunks(BATCH) {
            let jobs: Vec<Job> = batch.iter().map(|(_, job)| job.clone()).collect();
            if let Err(e) = self.jobs.enqueue(&jobs).await {
                for (marker, _) in batch {
                    self.cache.delete(marker).await;
                }
                return Err(Error::internal(format!(
                    "mirror fills for {name} not queued: {e}"
                )));
            }
        }
        Ok(())
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
        let mark = layout.mirrored(
            &target.upstream.prefix,
            &target.upstream.identity(),
            &digest,
        );
        let vouched =
            self.store.head(&data).await? == Some(size) && self.store.head(&mark).await?.is_some();
        if !vouched {
            if size == 0 {
                // No bytes to fetch: the digest says whether the upstream is right.
                if digest.hex() != EMPTY_SHA256 {
                    return Err(blob_mismatch(&target, &digest, EMPTY_SHA256));
                }
                self.store.put(&data, Vec::new()).await?;
            } else {
                self.copy_blob(&target, &digest, size, &data).await?;
            }
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

    /// Copies the blob `digest` (`size` bytes, more than none) of `target` to `key` in parts,
    /// verified: the upload is completed only when the sha256 of its parts is the digest. An
    /// upstream that answers the first part's `Range` with the whole blob is copied in one part.
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
            while start < size {
                let end = size.min(start + part);
                let (body, whole) = upstream
                    .blob_part(target, digest, (start, end), size)
                    .await?;
                let end = if whole { size } else { end };
                self.store.part(&mut upload, body, end - start).await?;
                start = end;
            }
            let sha256 = self.store.sha256(&mut upload).await?;
            if sha256 != digest.hex() {
                return Err(blob_mismatch(target, digest, &sha256));
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

/// The refusal of a blob whose bytes hash to `sha256`, not to its digest: dropped, never retried.
fn blob_mismatch(target: &Target<'_>, digest: &Digest, sha256: &str) -> Error {
    Error::new(ErrorCode::UpstreamError)
        .with_message(format!(
            "the upstream registry {} sent a blob for {}@{digest} whose bytes do not match that \
             digest",
            target.upstream.label(),
            target.name
        ))
        .with_detail(serde_json::json!({
            "digest": digest.to_string(),
            "content": format!("sha256:{sha256}"),
        }))
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
