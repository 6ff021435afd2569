//! The content seam: everything a read asks of the registry's content, as one trait (`Content`),
//! so the handlers never know where content lives. `LayoutContent` is the first source: the
//! storage layout distribution writes, read through the edge cache. A pull-through source (an
//! upstream registry, issue "mirrors") and a replica-aware reader will be the next, each a new
//! implementation beside this one.
//!
//! What every source guarantees: content is served from a repository only where that repository
//! links it (no cross-repository reads); manifest bytes are verified against their digest before
//! they are served or cached; a download goes to a URL the source chooses (`blob_location`), and
//! blob bytes never pass through the edge.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;

use crate::cache::{EdgeCache, IMMUTABLE_SECONDS, key};
use crate::error::{Error, ErrorCode, Result};
use crate::layout::{Layout, parse_link};
use crate::media;
use crate::reference::{Algorithm, Digest, Name, Tag};
use crate::storage::ObjectStore;

/// A stored manifest: its media type and its verified bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Manifest {
    /// As a cache entry: `<media type>\n<bytes>`, so a hit parses nothing.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut entry = Vec::with_capacity(self.media_type.len() + 1 + self.bytes.len());
        entry.extend_from_slice(self.media_type.as_bytes());
        entry.push(b'\n');
        entry.extend_from_slice(&self.bytes);
        entry
    }

    pub(crate) fn decode(mut entry: Vec<u8>) -> Option<Manifest> {
        let newline = entry.iter().position(|b| *b == b'\n')?;
        let bytes = entry.split_off(newline + 1);
        entry.truncate(newline);
        Some(Manifest {
            media_type: String::from_utf8(entry).ok()?,
            bytes,
        })
    }
}

/// How many storage reads a walk or a scan has in flight (Workers open 6 connections at a time
/// per request; the rest wait their turn).
const CONCURRENT_READS: usize = 16;

/// How long a location trusts that the indexes are complete before it reads the root again.
const COMPLETE_SECONDS: u64 = 60;

/// Where a blob download goes, and how long a client or cache may keep the redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    pub url: String,
    pub cache_control: &'static str,
}

/// How a blob download is answered.
#[derive(Debug)]
pub enum Download {
    /// `307` to a URL that needs no credentials (presigned storage, a CDN, an upstream's blob
    /// host).
    Redirect(BlobLocation),
    /// The bytes themselves, as an upstream streams them: this answer's status and headers; its
    /// body is attached by the platform (`UpstreamHttp::pass_through`), never read by the core.
    Streamed(http::Response<Vec<u8>>),
}

/// `Cache-Control` of what is addressed by digest.
pub const IMMUTABLE_CACHE_CONTROL: &str = "max-age=31536000, immutable";

/// What the read side of the API asks of the registry's content.
#[allow(async_fn_in_trait)]
pub trait Content {
    /// The digest a tag of `name` points at, or `None` for an unknown tag.
    async fn resolve_tag(&self, name: &Name, tag: &Tag) -> Result<Option<Digest>>;

    /// The manifest `digest` as `name` holds it (linked there), bytes verified; `None` when `name`
    /// does not link it.
    async fn manifest(&self, name: &Name, digest: &Digest) -> Result<Option<Manifest>>;

    /// The manifest `digest` if the edge holds it already, without asking anything further.
    async fn cached_manifest(&self, digest: &Digest) -> Option<Manifest>;

    /// The size of the blob `digest` as `name` holds it; `None` when `name` does not link it.
    async fn blob_size(&self, name: &Name, digest: &Digest) -> Result<Option<u64>>;

    /// How a download of the blob `digest` from `name` is answered (`range`: the client's
    /// `Range`, already checked to be one byte range); `None` when `name` does not link it.
    async fn blob_download(
        &self,
        name: &Name,
        digest: &Digest,
        range: Option<&str>,
    ) -> Result<Option<Download>>;

    /// Every tag of `name`, sorted; empty when the repository has none (or does not exist).
    async fn tags(&self, name: &Name) -> Result<Vec<String>>;

    /// Every repository, in distribution's catalog order.
    async fn repositories(&self) -> Result<Vec<String>>;

    /// The descriptors of `name`'s manifests whose `subject` is `subject` (none for a
    /// repository that holds no manifest).
    async fn referrers(&self, name: &Name, subject: &Digest) -> Result<Vec<Value>>;

    /// Whether `name` exists (holds any manifest or blob), for the not-found answers.
    async fn repository_exists(&self, name: &Name) -> Result<bool>;

    /// The digest `name` keeps `digest`'s content under, as a manifest or as a blob, when it is
    /// another digest (an alias: distribution's sha512 link to the canonical sha256 digest).
    /// Locks are looked up under both, so no alias reaches what a lock closes.
    async fn canonical(&self, name: &Name, digest: &Digest) -> Result<Option<Digest>>;

    /// `Warning` texts for the answer, about what this source served (stale content, when an
    /// upstream could not be asked). Taken once.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The storage layout distribution writes, through the edge cache. Immutable things (manifest
/// bytes and blob sizes, by digest) are cached for a year; tags, links and lists for
/// `TAG_CACHE_SECONDS`.
pub struct LayoutContent<'a, S, C> {
    pub store: &'a S,
    pub cache: &'a C,
    pub layout: &'a Layout,
    pub tag_cache_seconds: u64,
    /// Downloads go to `<base>/<blob key>` instead of the store's own URL (a CDN).
    pub blob_base_url: Option<&'a Url>,
    /// Lifetime of a store-signed download URL.
    pub presign_seconds: u64,
    /// Unix seconds, for signing.
    pub now: u64,
    /// Whether the referrers index is kept (storage and a queue to keep it with).
    pub indexed: bool,
    /// Why a read walked the layout where the index should have answered (no index yet, or a
    /// broken one): the handler asks for a rebuild and warns the client.
    /// `(why, whether an index object failed its checks)`.
    pub unindexed: std::cell::RefCell<Option<(String, bool)>>,
}

/// What a repository links: its manifests (`_manifests/revisions`) or its blobs (`_layers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Revision,
    Layer,
}

impl<S: ObjectStore, C: EdgeCache> LayoutContent<'_, S, C> {
    /// The digest `name` stores `digest` under, when `name` links it; `None` when it does not.
    /// Only linked content is served from a repository: that is what keeps one repository's
    /// blobs out of another's reach.
    ///
    /// distribution stores content once, under its canonical (sha256) digest, and links a digest
    /// of another algorithm it was pushed by (`_layers/sha512/<hex>/link`) to the canonical one.
    /// Such a link is followed as the origin follows it, one step: the canonical digest must be
    /// linked in the repository in its own right, and it is where the content lives.
    async fn linked(&self, link: Link, name: &Name, digest: &Digest) -> Result<Option<Digest>> {
        let Some(target) = self.read_link(link, name, digest).await? else {
            return Ok(None);
        };
        if target == *digest {
            return Ok(Some(target));
        }
        if target.algorithm() == digest.algorithm() {
            // Not an alias: a link naming another digest of its own kind is corrupt storage.
            return Err(Error::internal(format!(
                "the {link:?} link of {name} for {digest} names {target}"
            )));
        }
        match self.read_link(link, name, &target).await? {
            Some(canonical) if canonical == target => Ok(Some(target)),
            // The canonical link is gone (the blob was deleted by that digest), or is itself an
            // alias: the repository no longer links the content.
            _ => Ok(None),
        }
    }

    /// The digest the link of `digest` in `name` holds (cached for `TAG_CACHE_SECONDS`).
    async fn read_link(&self, link: Link, name: &Name, digest: &Digest) -> Result<Option<Digest>> {
        let (cache_key, link_key) = match link {
            Link::Revision => (
                key::revision(name, digest),
                self.layout.manifest_revision_link(name, digest),
            ),
            Link::Layer => (
                key::layer(name, digest),
                self.layout.layer_link(name, digest),
            ),
        };
        // "1" is how earlier versions cached a link that holds its own digest.
        self.cached_link(&cache_key, &link_key, Some(digest)).await
    }

    /// The digest the link file `link_key` holds, through the cache entry `cache_key` (kept
    /// `TAG_CACHE_SECONDS`); `None` when there is no such link. A cache entry that is no digest
    /// means `legacy` when given, else it is read again from storage.
    async fn cached_link(
        &self,
        cache_key: &str,
        link_key: &str,
        legacy: Option<&Digest>,
    ) -> Result<Option<Digest>> {
        if let Some(cached) = self.cache.get(cache_key).await
            && let Some(digest) = parse_link(&cached).or_else(|| legacy.cloned())
        {
            return Ok(Some(digest));
        }
        let Some(bytes) = self.store.get(link_key).await? else {
            return Ok(None);
        };
        let target = parse_link(&bytes)
            .ok_or_else(|| Error::internal(format!("link {link_key} does not hold a digest")))?;
        self.cache
            .put(
                cache_key,
                target.to_string().as_bytes(),
                self.tag_cache_seconds,
            )
            .await;
        Ok(Some(target))
    }

    /// The bytes of the manifest blob `digest` (verified, media type read from them), or `None`
    /// when storage has no such blob.
    async fn manifest_blob(&self, digest: &Digest) -> Result<Option<Manifest>> {
        if let Some(manifest) = self.cached_manifest(digest).await {
            return Ok(Some(manifest));
        }
        let data_key = self.layout.blob_data(digest);
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

    /// Where downloads of the stored blob `stored` go.
    fn location(&self, stored: &Digest) -> Result<BlobLocation> {
        let key = self.layout.blob_data(stored);
        if let Some(base) = self.blob_base_url {
            let base = base.as_str().trim_end_matches('/');
            return Ok(BlobLocation {
                url: format!("{base}/{key}"),
                cache_control: IMMUTABLE_CACHE_CONTROL,
            });
        }
        let expires = Duration::from_secs(self.presign_seconds);
        match self.store.download_url(&key, expires, self.now) {
            Some(url) => Ok(BlobLocation {
                url: url.to_string(),
                cache_control: "no-store",
            }),
            None => Err(Error::internal(
                "the store signs no download URLs and no BLOB_BASE_URL is configured",
            )),
        }
    }

    async fn find_referrers(&self, name: &Name, subject: &Digest) -> Result<Vec<Value>> {
        let mut digests = Vec::new();
        for algorithm in Algorithm::ALL {
            let dir = self.layout.manifest_revisions_dir(name, algorithm);
            let hexes = self.store.list_dirs(&dir).await?;
            digests.extend(
                hexes
                    .iter()
                    .filter_map(|hex| Digest::from_parts(algorithm, hex).ok()),
            );
        }
        // At most `CONCURRENT_READS` at a time: a repository of thousands of manifests would
        // otherwise queue them all behind the runtime's connection limit, each on its timeout.
        let manifests: Vec<Option<Manifest>> = futures::stream::iter(digests.iter())
            .map(|d| self.manifest_blob(d))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let subject = subject.to_string();
        Ok(digests
            .iter()
            .zip(manifests)
            .filter_map(|(digest, manifest)| referrer(digest, &manifest?))
            .filter(|(of, _)| *of == subject)
            .map(|(_, descriptor)| descriptor)
            .collect())
    }

    /// Whether the indexes are complete (a rebuild finished), as the catalog's root says; kept
    /// `TAG_CACHE_SECONDS`.
    async fn index_complete(&self) -> Result<bool> {
        if let Some(cached) = self.cache.get(&key::index_complete()).await {
            return Ok(cached == b"1");
        }
        let complete = matches!(
            crate::index::catalog_root(self.store, self.layout).await?,
            crate::index::Lookup::Found(root) if root.complete
        );
        // Complete stays complete (a rebuild only replaces a complete root with another): kept a
        // minute; not complete yet, kept as long as a tag.
        let (entry, seconds): (&[u8], u64) = if complete {
            (b"1", COMPLETE_SECONDS)
        } else {
            (b"0", self.tag_cache_seconds)
        };
        self.cache.put(&key::index_complete(), entry, seconds).await;
        Ok(complete)
    }

    async fn walk_repositories(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut level = vec![String::new()];
        while !level.is_empty() {
            let listings: Vec<(&String, Vec<String>)> = futures::stream::iter(level.iter())
                .map(|path| {
                    let prefix = if path.is_empty() {
                        self.layout.repositories()
                    } else {
                        self.layout.repository_dir(path)
                    };
                    async move { self.store.list_dirs(&prefix).await.map(|dirs| (path, dirs)) }
                })
                .buffered(CONCURRENT_READS)
                .try_collect()
                .await?;
            let mut next = Vec::new();
            for (path, dirs) in listings {
                // distribution counts a directory with `_layers` (a repository that holds only
                // blobs, after a mount or an upload, is one too).
                if !path.is_empty() && dirs.iter().any(|d| d == "_layers" || d == "_manifests") {
                    found.push(path.clone());
                }
                // Directories that cannot be part of a valid name are not repositories.
                next.extend(crate::layout::child_paths(path, dirs));
            }
            level = next;
        }
        found.sort_by(|a, b| compare_names(a, b));
        Ok(found)
    }
}

impl<S: ObjectStore, C: EdgeCache> Content for LayoutContent<'_, S, C> {
    async fn resolve_tag(&self, name: &Name, tag: &Tag) -> Result<Option<Digest>> {
        let link_key = self.layout.tag_current_link(name, tag);
        self.cached_link(&key::tag(name, tag), &link_key, None)
            .await
    }

    async fn manifest(&self, name: &Name, digest: &Digest) -> Result<Option<Manifest>> {
        let Some(stored) = self.linked(Link::Revision, name, digest).await? else {
            return Ok(None);
        };
        let Some(manifest) = self.manifest_blob(&stored).await? else {
            return Err(Error::new(ErrorCode::ManifestUnknown)
                .with_message("manifest is linked in the repository but its content is missing")
                .with_detail(json!({ "name": name.as_str(), "digest": digest.to_string() })));
        };
        if stored != *digest {
            // Served by the digest the client asked for: the bytes must hash to it too.
            if !digest.verifies(&manifest.bytes) {
                return Err(Error::internal(format!(
                    "manifest {stored} does not match {digest}, which {name} links to it"
                )));
            }
            self.cache
                .put(
                    &key::manifest(digest),
                    &manifest.encode(),
                    IMMUTABLE_SECONDS,
                )
                .await;
        }
        Ok(Some(manifest))
    }

    async fn cached_manifest(&self, digest: &Digest) -> Option<Manifest> {
        Manifest::decode(self.cache.get(&key::manifest(digest)).await?)
    }

    async fn blob_size(&self, name: &Name, digest: &Digest) -> Result<Option<u64>> {
        let Some(stored) = self.linked(Link::Layer, name, digest).await? else {
            return Ok(None);
        };
        let cache_key = key::blob_size(&stored);
        if let Some(size) = self.cache.get_number(&cache_key).await {
            return Ok(Some(size));
        }
        let Some(size) = self.store.head(&self.layout.blob_data(&stored)).await? else {
            return Err(Error::new(ErrorCode::BlobUnknown)
                .with_message("blob is linked in the repository but its content is missing")
                .with_detail(json!({ "name": name.as_str(), "digest": digest.to_string() })));
        };
        self.cache
            .put_number(&cache_key, size, IMMUTABLE_SECONDS)
            .await;
        Ok(Some(size))
    }

    /// `BLOB_BASE_URL` when set (long-lived, public); else the store's own signed URL, which
    /// expires, so nobody may keep the redirect. The content is where the repository's link
    /// leads (the canonical digest, for an alias), and must be there. The range is the
    /// client's business with the URL.
    async fn blob_download(
        &self,
        name: &Name,
        digest: &Digest,
        _range: Option<&str>,
    ) -> Result<Option<Download>> {
        if self.blob_size(name, digest).await?.is_none() {
            return Ok(None);
        }
        let Some(stored) = self.linked(Link::Layer, name, digest).await? else {
            return Ok(None);
        };
        self.location(&stored).map(|l| Some(Download::Redirect(l)))
    }
    async fn tags(&self, name: &Name) -> Result<Vec<String>> {
        let cache_key = key::tags(name);
        if let Some(cached) = self.cache.get(&cache_key).await
            && let Some(tags) = crate::handlers::decode_lines(&cached)
        {
            return Ok(tags);
        }
        let mut tags = self.store.list_dirs(&self.layout.tags_dir(name)).await?;
        // Only what is a valid tag is a tag: a stray directory never reaches a client.
        tags.retain(|t| t.parse::<Tag>().is_ok());
        tags.sort();
        self.cache
            .put(
                &cache_key,
                &crate::handlers::encode_lines(&tags),
                self.tag_cache_seconds,
            )
            .await;
        Ok(tags)
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        if let Some(cached) = self.cache.get(&key::catalog()).await
            && let Some(names) = crate::handlers::decode_lines(&cached)
        {
            return Ok(names);
        }
        let found = self.walk_repositories().await?;
        self.cache
            .put(
                &key::catalog(),
                &crate::handlers::encode_lines(&found),
                self.tag_cache_seconds,
            )
            .await;
        Ok(found)
    }

    /// From the referrers index: one read (and the root's, for whether the index is complete,
    /// once a minute). Without a complete index, or with a broken object, from a scan of every
    /// manifest of the repository.
    async fn referrers(&self, name: &Name, subject: &Digest) -> Result<Vec<Value>> {
        let cache_key = key::referrers(name, subject);
        if let Some(cached) = self
            .cache
            .get(&cache_key)
            .await
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
        {
            return Ok(cached);
        }
        let lookup = if self.indexed {
            crate::index::referrers(self.store, self.layout, name, subject).await?
        } else {
            crate::index::Lookup::NotBuilt
        };
        // An object is the whole truth only once a rebuild completed the index: before that, a
        // subject's object holds what was pushed since, not what storage held already.
        let complete = self.indexed && self.index_complete().await?;
        let found = match lookup {
            crate::index::Lookup::Found(found) if complete => found,
            crate::index::Lookup::NotBuilt if complete => Vec::new(),
            lookup => {
                if self.indexed {
                    *self.unindexed.borrow_mut() = Some(match lookup {
                        crate::index::Lookup::Corrupt(why) => (why, true),
                        _ => ("the referrers index is not built yet".to_owned(), false),
                    });
                }
                self.find_referrers(name, subject).await?
            }
        };
        self.cache
            .put(
                &cache_key,
                &serde_json::to_vec(&found).expect("JSON serializes"),
                self.tag_cache_seconds,
            )
            .await;
        Ok(found)
    }

    async fn canonical(&self, name: &Name, digest: &Digest) -> Result<Option<Digest>> {
        for link in [Link::Revision, Link::Layer] {
            if let Some(stored) = self.linked(link, name, digest).await?
                && stored != *digest
            {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }

    /// Costs a listing, on the miss path only.
    async fn repository_exists(&self, name: &Name) -> Result<bool> {
        let dirs = self
            .store
            .list_dirs(&self.layout.repository_dir(name.as_str()))
            .await?;
        Ok(dirs.iter().any(|d| d == "_manifests" || d == "_layers"))
    }
}

/// The content sources of one request, in order: the edge's own storage (`own`), then the
/// upstream registries (`upstream`). A name under a proxy's namespace (`docker.io/...`) is the
/// upstream's (a proxy keeps nothing in storage); a name under a mirror's namespace is read from
/// storage first, and what the upstream had to serve is queued to be copied there (`jobs`); a
/// name the default upstream serves (Docker's `registry-mirrors`, or the fronted origin) is the
/// edge's own first, and the upstream's only where storage has nothing.
pub struct Sources<'a, O, U, J, C> {
    pub own: O,
    pub upstream: U,
    pub upstreams: &'a [crate::upstream::Upstream],
    /// Where mirror fills are queued.
    pub jobs: &'a J,
    /// Remembers the fills queued, so that a hot object is queued once.
    pub cache: &'a C,
    pub log: fn(&str),
    /// Unix seconds.
    pub now: u64,
    pub warnings: std::cell::RefCell<Vec<String>>,
}

/// Which source answers for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Own,
    Upstream,
    /// Own storage, then the upstream.
    Fallback,
    /// A mirror's: storage first for what a digest names, the upstream first for what changes
    /// (tags, lists), with storage as the last known answer; what the upstream served is copied
    /// into storage.
    Mirror,
}

/// How long a queued fill is remembered (it is queued again after that, if storage still lacks
/// the object: the job finds what is done and does the rest).
pub const FILL_MARKER_SECONDS: u64 = 600;

impl<O: Content, U: Content, J: crate::jobs::Jobs, C: EdgeCache> Sources<'_, O, U, J, C> {
    fn route(&self, name: &Name) -> Route {
        match crate::upstream::resolve(self.upstreams, name, None) {
            None => Route::Own,
            Some(target)
                if target.prefixed
                    && target.allowed
                    && target.upstream.mode == crate::upstream::Mode::Mirror =>
            {
                Route::Mirror
            }
            Some(target) if target.prefixed => Route::Upstream,
            Some(_) => Route::Fallback,
        }
    }

    /// Queues `job` unless it was queued within `FILL_MARKER_SECONDS` (by this location).
    /// A queue that cannot take it is logged, never the client's failure.
    async fn fill(&self, name: &Name, what: &str, job: crate::jobs::Job) {
        let marker = fill_marker(self.upstreams, name, what);
        if self.cache.get(&marker).await.is_some() {
            return;
        }
        self.cache.put(&marker, b"1", FILL_MARKER_SECONDS).await;
        if let Err(e) = self.jobs.enqueue(std::slice::from_ref(&job)).await {
            self.cache.delete(&marker).await;
            (self.log)(&format!("mirror fill of {name} {what} not queued: {e}"));
        }
    }

    /// A mirror's tag: the upstream's answer, copied into storage when storage says otherwise;
    /// the tag storage holds when the upstream cannot be asked, with a warning.
    async fn mirror_tag(&self, name: &Name, tag: &Tag) -> Result<Option<Digest>> {
        match self.upstream.resolve_tag(name, tag).await {
            Ok(Some(digest)) => {
                let what = format!(":{tag}@{digest}");
                let marker = fill_marker(self.upstreams, name, &what);
                if self.cache.get(&marker).await.is_none() {
                    let stored = self.own.resolve_tag(name, tag).await.ok().flatten();
                    if stored.as_ref() == Some(&digest) {
                        self.cache.put(&marker, b"1", FILL_MARKER_SECONDS).await;
                    } else {
                        let job = crate::jobs::Job::FillManifest {
                            name: name.to_string(),
                            digest: digest.to_string(),
                            tag: Some(tag.to_string()),
                            seen: self.now,
                        };
                        self.fill(name, &what, job).await;
                        // The manifest itself is in that job.
                        let by_digest = fill_marker(self.upstreams, name, &format!("@{digest}"));
                        self.cache.put(&by_digest, b"1", FILL_MARKER_SECONDS).await;
                    }
                }
                Ok(Some(digest))
            }
            Ok(None) => Ok(None),
            Err(error) if crate::upstream::client::is_transient(&error) => {
                match self.own.resolve_tag(name, tag).await? {
                    Some(digest) => {
                        self.warnings.borrow_mut().push(format!(
                            "the upstream registry could not be asked about {name}:{tag} ({}); \
                             this is the digest the mirror stored for the tag, which may be stale",
                            error.message.as_deref().unwrap_or(error.code.message())
                        ));
                        Ok(Some(digest))
                    }
                    None => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// A mirror's list (tags, referrers): the upstream's, or storage's when the upstream cannot
    /// be asked.
    async fn mirror_list<T>(
        &self,
        name: &Name,
        upstream: Result<Vec<T>>,
        own: impl std::future::Future<Output = Result<Vec<T>>>,
    ) -> Result<Vec<T>> {
        match upstream {
            Err(error) if crate::upstream::client::is_transient(&error) => {
                let stored = own.await?;
                if stored.is_empty() {
                    return Err(error);
                }
                self.warnings.borrow_mut().push(format!(
                    "the upstream registry could not be asked about {name} ({}); this list is \
                     what the mirror stored, which may be stale",
                    error.message.as_deref().unwrap_or(error.code.message())
                ));
                Ok(stored)
            }
            answer => answer,
        }
    }
}

/// The cache key that remembers a fill of `what` in `name` was queued.
pub(crate) fn fill_marker(
    upstreams: &[crate::upstream::Upstream],
    name: &Name,
    what: &str,
) -> String {
    let prefix = crate::upstream::resolve(upstreams, name, None)
        .map(|t| t.upstream.prefix.as_str())
        .unwrap_or("");
    key::upstream(prefix, "fill", &format!("{name}{what}"))
}

/// `own`'s answer, unless the route falls back and it has none: then `upstream`'s. (A mirror's
/// routes are spelled out in each method.)
macro_rules! routed {
    ($self:ident, $name:expr, |$source:ident| $call:expr, $none:expr) => {{
        match $self.route($name) {
            Route::Own => {
                let $source = &$self.own;
                $call
            }
            Route::Upstream => {
                let $source = &$self.upstream;
                $call
            }
            Route::Fallback | Route::Mirror => {
                let found = {
                    let $source = &$self.own;
                    $call
                }?;
                if $none(&found) {
                    let $source = &$self.upstream;
                    $call
                } else {
                    Ok(found)
                }
            }
        }
    }};
}

impl<O: Content, U: Content, J: crate::jobs::Jobs, C: EdgeCache> Content
    for Sources<'_, O, U, J, C>
{
    async fn resolve_tag(&self, name: &Name, tag: &Tag) -> Result<Option<Digest>> {
        if self.route(name) == Route::Mirror {
            return self.mirror_tag(name, tag).await;
        }
        routed!(
            self,
            name,
            |s| s.resolve_tag(name, tag).await,
            Option::is_none
        )
    }

    async fn manifest(&self, name: &Name, digest: &Digest) -> Result<Option<Manifest>> {
        if self.route(name) == Route::Mirror {
            // Storage first; a storage failure is no reason to fail a read the upstream can
            // answer.
            if let Ok(Some(found)) = self.own.manifest(name, digest).await {
                return Ok(Some(found));
            }
            let found = self.upstream.manifest(name, digest).await?;
            if found.is_some() {
                let job = crate::jobs::Job::FillManifest {
                    name: name.to_string(),
                    digest: digest.to_string(),
                    tag: None,
                    seen: 0,
                };
                self.fill(name, &format!("@{digest}"), job).await;
            }
            return Ok(found);
        }
        routed!(
            self,
            name,
            |s| s.manifest(name, digest).await,
            Option::is_none
        )
    }

    async fn cached_manifest(&self, digest: &Digest) -> Option<Manifest> {
        self.own.cached_manifest(digest).await
    }

    async fn blob_size(&self, name: &Name, digest: &Digest) -> Result<Option<u64>> {
        if self.route(name) == Route::Mirror {
            if let Ok(Some(size)) = self.own.blob_size(name, digest).await {
                return Ok(Some(size));
            }
            return self.upstream.blob_size(name, digest).await;
        }
        routed!(
            self,
            name,
            |s| s.blob_size(name, digest).await,
            Option::is_none
        )
    }

    async fn blob_download(
        &self,
        name: &Name,
        digest: &Digest,
        range: Option<&str>,
    ) -> Result<Option<Download>> {
        if self.route(name) == Route::Mirror {
            if let Ok(Some(found)) = self.own.blob_download(name, digest, range).await {
                return Ok(Some(found));
            }
            let found = self.upstream.blob_download(name, digest, range).await?;
            if found.is_some() {
                let job = crate::jobs::Job::FillBlob {
                    name: name.to_string(),
                    digest: digest.to_string(),
                };
                self.fill(name, &format!("@{digest}"), job).await;
            }
            return Ok(found);
        }
        routed!(
            self,
            name,
            |s| s.blob_download(name, digest, range).await,
            Option::is_none
        )
    }

    async fn tags(&self, name: &Name) -> Result<Vec<String>> {
        if self.route(name) == Route::Mirror {
            let upstream = self.upstream.tags(name).await;
            return self.mirror_list(name, upstream, self.own.tags(name)).await;
        }
        routed!(self, name, |s| s.tags(name).await, Vec::is_empty)
    }

    /// The catalog lists what the edge stores (a mirror's repositories once filled).
    async fn repositories(&self) -> Result<Vec<String>> {
        self.own.repositories().await
    }

    async fn referrers(&self, name: &Name, subject: &Digest) -> Result<Vec<Value>> {
        if self.route(name) == Route::Mirror {
            let upstream = self.upstream.referrers(name, subject).await;
            return self
                .mirror_list(name, upstream, self.own.referrers(name, subject))
                .await;
        }
        routed!(
            self,
            name,
            |s| s.referrers(name, subject).await,
            Vec::is_empty
        )
    }

    async fn repository_exists(&self, name: &Name) -> Result<bool> {
        routed!(
            self,
            name,
            |s| s.repository_exists(name).await,
            |e: &bool| !e
        )
    }

    async fn canonical(&self, name: &Name, digest: &Digest) -> Result<Option<Digest>> {
        routed!(
            self,
            name,
            |s| s.canonical(name, digest).await,
            Option::is_none
        )
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.own.warnings();
        warnings.extend(self.upstream.warnings());
        warnings.extend(self.warnings.borrow_mut().drain(..));
        warnings
    }
}

/// Repository order: component by component, so `a` < `a/b` < `a-b` (as distribution walks).
pub(crate) fn compare_names(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// When the manifest `digest` has a `subject`: that subject, and the manifest's descriptor as
/// the referrers API lists it (media type, digest, size, `artifactType`, annotations).
pub(crate) fn referrer(digest: &Digest, manifest: &Manifest) -> Option<(String, Value)> {
    let m = serde_json::from_slice::<Referrer>(&manifest.bytes).ok()?;
    let subject = m.subject?.digest?;
    let media_type = m.media_type.unwrap_or_else(|| manifest.media_type.clone());
    let artifact_type = m
        .artifact_type
        .or_else(|| m.config.and_then(|c| c.media_type));
    let mut descriptor = json!({
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": manifest.bytes.len(),
    });
    if let Some(t) = artifact_type {
        descriptor["artifactType"] = json!(t);
    }
    if let Some(a) = m.annotations.filter(|a| !a.is_empty()) {
        descriptor["annotations"] = Value::Object(a);
    }
    Some((subject, descriptor))
}

/// The parts of a manifest the referrers API reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Referrer {
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    subject: Option<Descriptor>,
    annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_cache_entries_round_trip() {
        let m = Manifest {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            bytes: b"{\n}".to_vec(),
        };
        assert_eq!(Manifest::decode(m.encode()), Some(m));
        assert_eq!(Manifest::decode(b"no newline".to_vec()), None);
    }

    #[test]
    fn component_order() {
        let mut names = vec!["a-b", "a/b", "a", "b", "a/b/c", "a.b", "a/c"];
        names.sort_by(|a, b| compare_names(a, b));
        assert_eq!(names, ["a", "a/b", "a/b/c", "a/c", "a-b", "a.b", "b"]);
    }
}
