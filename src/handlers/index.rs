//! Keeping the indexes (`crate::index`) true: one job per written manifest, and a rebuild that
//! walks the layout, a bounded step per queue invocation, for what reached storage without the
//! edge (an adopted registry, a push straight to the origin) or an index object that failed its
//! checks. `GET /api/v1/indexes` tells the rebuild's state; `POST /api/v1/indexes/rebuild`
//! starts one.
//!
//! Every update derives the truth from the layout when it runs, never from what the job says
//! happened: jobs arrive late, twice and in any order, and each leaves the index as storage is.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::cache::{EdgeCache, key};
use crate::content::{Manifest, referrer};
use crate::error::{Error, ErrorCode, Result};
use crate::index::{self, Problem};
use crate::jobs::{Job, Jobs, Outcome};
use crate::layout::parse_link;
use crate::platform::{Clock, Platform};
use crate::reference::{Algorithm, Digest, Name};
use crate::storage::{Expect, ObjectStore, StoreError};

/// How many storage requests a rebuild step has in flight.
const IN_FLIGHT: usize = 16;

/// A repository of at most this many manifests is indexed whole, beside others.
const SMALL: usize = 8;

/// What indexing a small repository found.
struct Small {
    present: bool,
    manifests: u64,
    referrers: u64,
    spent: usize,
}

/// A rebuild whose state has not moved for this long has stopped (its chain of jobs was lost):
/// a new one may start without `force`.
pub const STALLED_SECONDS: u64 = 600;

/// How long a location waits before it asks again for a rebuild for the same reason (a rebuild
/// under way refuses the ask anyway; this spares the read of its state).
const ASK_AGAIN_SECONDS: u64 = 60;

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Listing the layout's directories for repositories.
    #[default]
    Walking,
    /// Reading each repository's manifests for their subjects.
    Indexing,
    /// Writing the catalog.
    Writing,
    Done,
}

/// The rebuild's state, one object in storage (`Layout::index_rebuild`), written only over the
/// version read: two deliveries of one step never both advance it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rebuild {
    pub run: u64,
    pub phase: Phase,
    pub reason: String,
    pub started: u64,
    pub updated: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    pub steps: u32,
    /// Repositories indexed, manifests read, referrers found.
    pub repositories: u64,
    pub manifests: u64,
    pub referrers: u64,
    /// Directories still to list ("" is the repositories' root).
    #[serde(default)]
    frontier: Vec<String>,
    /// Repositories found, in the order they are indexed.
    #[serde(default)]
    found: Vec<String>,
    #[serde(default)]
    position: usize,
    /// The current repository's manifests (sha256 hex), once listed, and how many are read.
    #[serde(default)]
    listed: Option<Vec<String>>,
    #[serde(default)]
    read: usize,
    /// The current repository's referrers so far, by subject.
    #[serde(default)]
    subjects: BTreeMap<String, Vec<Value>>,
    /// The current repository's subjects still to write, once its manifests are read.
    #[serde(default)]
    pending: Option<Vec<String>>,
    /// Repositories that hold a manifest.
    #[serde(default)]
    present: Vec<String>,
}

impl Rebuild {
    /// What `GET /api/v1/indexes` shows of it.
    pub fn view(&self) -> Value {
        json!({
            "run": self.run,
            "phase": self.phase,
            "reason": self.reason,
            "started": self.started,
            "updated": self.updated,
            "finished": self.finished,
            "steps": self.steps,
            "repositoriesFound": self.found.len(),
            "repositoriesIndexed": self.repositories,
            "manifestsRead": self.manifests,
            "referrersFound": self.referrers,
            "directoriesToList": self.frontier.len(),
        })
    }
}

impl<P: Platform> App<P> {
    /// Whether `name` holds a manifest (the catalog lists it then): one listing.
    async fn holds_manifests(&self, name: &Name) -> std::result::Result<bool, StoreError> {
        let dir = self
            .config
            .layout
            .manifest_revisions_dir(name, Algorithm::Sha256);
        Ok(!self.store.list_dirs(&dir).await?.is_empty())
    }

    /// The manifest `digest` as storage holds its bytes (verified), or `None`.
    async fn stored_manifest(
        &self,
        digest: &Digest,
    ) -> std::result::Result<Option<Manifest>, StoreError> {
        let Some(bytes) = self
            .store
            .get(&self.config.layout.blob_data(digest))
            .await?
        else {
            return Ok(None);
        };
        if !digest.verifies(&bytes) {
            return Ok(None);
        }
        Ok(crate::media::manifest_media_type(&bytes)
            .map(|media_type| Manifest { media_type, bytes }))
    }

    /// Queues the index update for a manifest just written or deleted in `name`. A queue that
    /// cannot take it is logged (the next rebuild finds what it missed).
    pub(crate) async fn queue_index(&self, name: &Name, digest: &Digest, subject: Option<&Digest>) {
        if !self.indexes_kept() {
            return;
        }
        let job = Job::IndexManifest {
            name: name.to_string(),
            digest: digest.to_string(),
            subject: subject.map(Digest::to_string),
        };
        if let Err(e) = self.jobs.enqueue(&[job]).await {
            (self.log)(&format!(
                "the index update for {name}@{digest} was not queued: {e}"
            ));
        }
    }

    /// `Job::IndexManifest`.
    pub(crate) async fn run_index_manifest(
        &self,
        name: &str,
        digest: &str,
        subject: Option<&str>,
    ) -> Outcome {
        let (Ok(name), Ok(digest)) = (name.parse::<Name>(), digest.parse::<Digest>()) else {
            return Outcome::Failed(format!("not a repository and digest: {name}@{digest}"));
        };
        let subject = subject.and_then(|s| s.parse::<Digest>().ok());
        match self.index_manifest(&name, &digest, subject.as_ref()).await {
            Ok(()) => Outcome::Done,
            Err(Problem::Corrupt(why)) => {
                self.ask_rebuild(&format!("an index object fails its checks: {why}"))
                    .await;
                Outcome::Done
            }
            Err(e) => Outcome::Retry(format!("indexing {name}@{digest}: {e}")),
        }
    }

    /// Brings the indexes up to date with `digest` in `name`, as storage has them now. What
    /// storage said is read again after each write, and the write redone when it changed
    /// meanwhile: of two jobs racing a push and a delete, the one that writes last checks last.
    pub(crate) async fn index_manifest(
        &self,
        name: &Name,
        digest: &Digest,
        subject: Option<&Digest>,
    ) -> std::result::Result<(), Problem> {
        let layout = &self.config.layout;
        let now = self.clock.now();
        let mut present = self.holds_manifests(name).await?;
        for _ in 0..4 {
            let changes = [(name.to_string(), present)];
            if !index::set_repositories(&self.store, &self.cache, layout, &changes, now).await? {
                break;
            }
            let again = self.holds_manifests(name).await?;
            if again == present {
                break;
            }
            present = again;
        }
        let found = self
            .stored_manifest(digest)
            .await?
            .and_then(|m| referrer(digest, &m));
        let (subject, descriptor) = match found {
            Some((subject, descriptor)) => (subject.parse::<Digest>().ok(), Some(descriptor)),
            None => (subject.cloned(), None),
        };
        let Some(subject) = subject else {
            return Ok(());
        };
        let mut linked = self.manifest_linked(name, digest).await?;
        for _ in 0..4 {
            let listed = descriptor.as_ref().filter(|_| linked);
            if !index::set_referrer(&self.store, layout, name, &subject, digest, listed).await? {
                break;
            }
            let again = self.manifest_linked(name, digest).await?;
            if again == linked {
                break;
            }
            linked = again;
        }
        self.cache.delete(&key::referrers(name, &subject)).await;
        Ok(())
    }

    /// Whether `name` links the manifest `digest`.
    async fn manifest_linked(
        &self,
        name: &Name,
        digest: &Digest,
    ) -> std::result::Result<bool, StoreError> {
        let link = self.config.layout.manifest_revision_link(name, digest);
        Ok(self
            .store
            .get(&link)
            .await?
            .and_then(|b| parse_link(&b))
            .is_some())
    }

    /// Asks for a rebuild from a read that found no index, or a broken one: at most once per
    /// `ASK_AGAIN_SECONDS` per location and reason, and not while one runs.
    pub(crate) async fn ask_rebuild(&self, reason: &str) {
        let marker = key::index_rebuild_asked(reason);
        if self.cache.get(&marker).await.is_some() {
            return;
        }
        self.cache.put(&marker, b"1", ASK_AGAIN_SECONDS).await;
        if let Err(e) = self.start_rebuild(reason, false).await {
            (self.log)(&format!("the index rebuild ({reason}) did not start: {e}"));
        }
    }

    async fn read_rebuild(&self) -> std::result::Result<Option<(Rebuild, String)>, StoreError> {
        let Some((bytes, version)) = self
            .store
            .get_versioned(&self.config.layout.index_rebuild())
            .await?
        else {
            return Ok(None);
        };
        // A state that does not parse is no rebuild: a new one replaces it.
        Ok(Some((
            serde_json::from_slice(&bytes).unwrap_or_default(),
            version,
        )))
    }

    /// Starts a rebuild, unless one is running (and moved within `STALLED_SECONDS`) and not
    /// `force`: the rebuild's state, and whether this call started it.
    pub(crate) async fn start_rebuild(
        &self,
        reason: &str,
        force: bool,
    ) -> std::result::Result<(Rebuild, bool), String> {
        let now = self.clock.now();
        for _ in 0..4 {
            let current = self.read_rebuild().await.map_err(|e| e.to_string())?;
            if let Some((state, _)) = &current
                && state.phase != Phase::Done
                && now.saturating_sub(state.updated) < STALLED_SECONDS
                && !force
            {
                return Ok((state.clone(), false));
            }
            let previous = current.as_ref().map_or(0, |(s, _)| s.run);
            let fresh = Rebuild {
                // A run id a late job of an earlier run never matches.
                run: (now * 1000).max(previous + 1),
                reason: reason.to_owned(),
                started: now,
                updated: now,
                frontier: vec![String::new()],
                ..Rebuild::default()
            };
            let expect = match &current {
                Some((_, version)) => Expect::Version(version),
                None => Expect::Absent,
            };
            let bytes = serde_json::to_vec(&fresh).expect("JSON serializes");
            let written = self
                .store
                .put_if(&self.config.layout.index_rebuild(), bytes, expect)
                .await
                .map_err(|e| e.to_string())?;
            if written {
                self.jobs
                    .enqueue(&[Job::RebuildIndex { run: fresh.run }])
                    .await?;
                (self.log)(&format!("index rebuild {} started: {reason}", fresh.run));
                return Ok((fresh, true));
            }
        }
        Err("the rebuild's state changed under every attempt".into())
    }

    /// `Job::RebuildIndex`: one step of about `INDEX_REBUILD_BUDGET` storage requests, then the
    /// next step is queued. A failed step saves nothing and is retried from the saved state.
    pub(crate) async fn run_rebuild(&self, run: u64) -> Outcome {
        let (mut state, version) = match self.read_rebuild().await {
            Ok(Some(found)) => found,
            Ok(None) => return Outcome::Done,
            Err(e) => return Outcome::Retry(format!("rebuild {run}: {e}")),
        };
        if state.run != run || state.phase == Phase::Done {
            // An earlier run's job, or a step delivered twice after the end.
            return Outcome::Done;
        }
        if let Err(e) = self.rebuild_step(&mut state).await {
            return Outcome::Retry(format!("rebuild {run}, step {}: {e}", state.steps + 1));
        }
        state.steps += 1;
        state.updated = self.clock.now();
        let bytes = serde_json::to_vec(&state).expect("JSON serializes");
        match self
            .store
            .put_if(
                &self.config.layout.index_rebuild(),
                bytes,
                Expect::Version(&version),
            )
            .await
        {
            Ok(true) => {}
            // Another delivery of this step came first (or a new run started): its chain goes on.
            Ok(false) => return Outcome::Done,
            Err(e) => return Outcome::Retry(format!("rebuild {run}: saving its state: {e}")),
        }
        if state.phase == Phase::Done {
            self.cache.delete(&key::index_complete()).await;
            (self.log)(&format!(
                "index rebuild {run} done in {} steps: {} repositories, {} manifests, {} \
                 referrers",
                state.steps, state.repositories, state.manifests, state.referrers
            ));
            return Outcome::Done;
        }
        match self.jobs.enqueue(&[Job::RebuildIndex { run }]).await {
            Ok(()) => Outcome::Done,
            // Sent again, this job does the next step from the saved state.
            Err(e) => Outcome::Retry(format!("rebuild {run}: queueing its next step: {e}")),
        }
    }

    /// Advances `state` by about the budget's storage requests.
    async fn rebuild_step(&self, state: &mut Rebuild) -> std::result::Result<(), Problem> {
        let layout = &self.config.layout;
        let budget = self.config.index_rebuild_budget as usize;
        let mut spent = 0;
        while spent < budget {
            match state.phase {
                Phase::Walking => {
                    if state.frontier.is_empty() {
                        state.phase = Phase::Indexing;
                        continue;
                    }
                    // Up to `IN_FLIGHT` listings at a time, in the frontier's order.
                    let take = state.frontier.len().min(IN_FLIGHT).min(budget - spent);
                    let paths: Vec<String> = state
                        .frontier
                        .drain(..take)
                        // Not the rebuild's own (its state was edited): skipped.
                        .filter(|p| p.is_empty() || p.parse::<Name>().is_ok())
                        .collect();
                    let listings: Vec<Vec<String>> = futures::stream::iter(paths.iter())
                        .map(|path| {
                            let prefix = if path.is_empty() {
                                layout.repositories()
                            } else {
                                layout.repository_dir(path)
                            };
                            async move { self.store.list_dirs(&prefix).await }
                        })
                        .buffered(IN_FLIGHT)
                        .try_collect()
                        .await?;
                    spent += paths.len();
                    for (path, dirs) in paths.iter().zip(listings) {
                        if !path.is_empty() && dirs.iter().any(|d| d == "_manifests") {
                            state.found.push(path.clone());
                        }
                        state
                            .frontier
                            .extend(crate::layout::child_paths(path, dirs));
                    }
                }
                Phase::Indexing => {
                    if state.position >= state.found.len() {
                        state.phase = Phase::Writing;
                        continue;
                    }
                    if state.listed.is_none() {
                        // Small repositories (the most), several at a time, each whole.
                        let done = self.index_small_repositories(state, budget - spent).await?;
                        spent += done;
                        if done > 0 {
                            continue;
                        }
                    }
                    let name = state.found[state.position].clone();
                    let name: Name = name.parse().map_err(|_| {
                        Problem::Corrupt(format!("the rebuild found {name:?}, not a name"))
                    })?;
                    spent += self.index_repository(state, &name).await?;
                }
                Phase::Writing => {
                    spent += self.write_rebuilt_catalog(state).await?;
                    state.phase = Phase::Done;
                    state.finished = Some(self.clock.now());
                }
                Phase::Done => break,
            }
        }
        Ok(())
    }

    /// Indexes the repositories from `state.position` on, up to `IN_FLIGHT` at a time, while each
    /// holds at most `SMALL` manifests and the budget lasts; stops at the first larger one (which
    /// `index_repository` takes in steps). Returns the storage requests made (0: none done).
    async fn index_small_repositories(
        &self,
        state: &mut Rebuild,
        budget: usize,
    ) -> std::result::Result<usize, Problem> {
        // About what a small repository costs: its listing, its manifests, its subjects' listing.
        let each = SMALL + 2;
        let count = (budget / each).clamp(1, IN_FLIGHT);
        let names: Vec<Name> = state.found[state.position..]
            .iter()
            .take(count)
            .map_while(|n| n.parse::<Name>().ok())
            .collect();
        let results: Vec<Option<Small>> = futures::stream::iter(names.iter())
            .map(|name| self.index_small_repository(name))
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        let mut spent = 0;
        for (name, result) in names.iter().zip(results) {
            let Some(small) = result else {
                break;
            };
            if small.present {
                state.present.push(name.to_string());
            }
            state.manifests += small.manifests;
            state.referrers += small.referrers;
            state.repositories += 1;
            state.position += 1;
            spent += small.spent;
        }
        Ok(spent)
    }

    /// One repository of at most `SMALL` manifests, whole; `None` for a larger one (nothing
    /// written).
    async fn index_small_repository(
        &self,
        name: &Name,
    ) -> std::result::Result<Option<Small>, Problem> {
        let layout = &self.config.layout;
        let dir = layout.manifest_revisions_dir(name, Algorithm::Sha256);
        let mut hexes = self.store.list_dirs(&dir).await?;
        hexes.retain(|h| Digest::from_parts(Algorithm::Sha256, h).is_ok());
        if hexes.len() > SMALL {
            return Ok(None);
        }
        let digests: Vec<Digest> = hexes
            .iter()
            .map(|h| Digest::from_parts(Algorithm::Sha256, h).expect("checked above"))
            .collect();
        let manifests: Vec<Option<Manifest>> = futures::stream::iter(digests.iter())
            .map(|d| self.stored_manifest(d))
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        let mut found: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut referrers = 0;
        for (digest, manifest) in digests.iter().zip(manifests) {
            if let Some((subject, descriptor)) = manifest.and_then(|m| referrer(digest, &m)) {
                found.entry(subject).or_default().push(descriptor);
                referrers += 1;
            }
        }
        let (mut subjects, mut spent) = self.stored_subjects(name).await?;
        spent += 1 + digests.len();
        subjects.extend(found.keys().cloned());
        let listed: BTreeSet<String> = digests.iter().map(Digest::to_string).collect();
        for subject in subjects {
            let Ok(subject_digest) = subject.parse::<Digest>() else {
                continue;
            };
            let rebuilt = found.remove(&subject).unwrap_or_default();
            spent += self
                .replace_referrers(name, &subject_digest, &listed, rebuilt)
                .await?;
        }
        Ok(Some(Small {
            present: !digests.is_empty(),
            manifests: digests.len() as u64,
            referrers,
            spent,
        }))
    }

    /// The subjects the referrers index holds for `name`, and the storage requests that took:
    /// a listing, and one per digest algorithm found.
    async fn stored_subjects(
        &self,
        name: &Name,
    ) -> std::result::Result<(BTreeSet<String>, usize), Problem> {
        let dir = self.config.layout.referrers_index_dir(name);
        let algorithms = self.store.list_dirs(&dir).await?;
        let mut spent = 1;
        let mut subjects = BTreeSet::new();
        for algorithm in Algorithm::ALL {
            if !algorithms.iter().any(|a| a == algorithm.as_str()) {
                continue;
            }
            let stored = self
                .store
                .list_dirs(&format!("{dir}{}/", algorithm.as_str()))
                .await?;
            spent += 1;
            subjects.extend(
                stored
                    .iter()
                    .filter_map(|hex| Digest::from_parts(algorithm, hex).ok())
                    .map(|d| d.to_string()),
            );
        }
        Ok((subjects, spent))
    }

    /// Some of the work of indexing one repository: its listing, then its manifests, then its
    /// referrers' objects once every manifest is read, then the next repository. Returns the
    /// storage requests made.
    async fn index_repository(
        &self,
        state: &mut Rebuild,
        name: &Name,
    ) -> std::result::Result<usize, Problem> {
        let layout = &self.config.layout;
        let Some(listed) = &state.listed else {
            let dir = layout.manifest_revisions_dir(name, Algorithm::Sha256);
            let mut hexes = self.store.list_dirs(&dir).await?;
            hexes.retain(|h| Digest::from_parts(Algorithm::Sha256, h).is_ok());
            state.listed = Some(hexes);
            state.read = 0;
            state.subjects.clear();
            state.pending = None;
            return Ok(1);
        };
        if let Some(hex) = listed.get(state.read) {
            let digest = Digest::from_parts(Algorithm::Sha256, hex).expect("checked when listed");
            if let Some((subject, descriptor)) = self
                .stored_manifest(&digest)
                .await?
                .and_then(|m| referrer(&digest, &m))
            {
                state.subjects.entry(subject).or_default().push(descriptor);
                state.referrers += 1;
            }
            state.read += 1;
            state.manifests += 1;
            return Ok(1);
        }
        let listed: BTreeSet<String> = listed.iter().map(|hex| format!("sha256:{hex}")).collect();
        let Some(pending) = &mut state.pending else {
            // Every manifest read: the subjects to write are those found and those the index
            // holds for the repository (stale ones are emptied): a listing, and one per digest
            // algorithm found.
            let (mut subjects, spent) = self.stored_subjects(name).await?;
            subjects.extend(state.subjects.keys().cloned());
            state.pending = Some(subjects.into_iter().collect());
            return Ok(spent);
        };
        // One subject per call: a repository with many signed subjects spreads over steps.
        if let Some(subject) = pending.pop() {
            let Ok(subject_digest) = subject.parse::<Digest>() else {
                return Ok(0);
            };
            let rebuilt = state.subjects.get(&subject).cloned().unwrap_or_default();
            return self
                .replace_referrers(name, &subject_digest, &listed, rebuilt)
                .await;
        }
        if !listed.is_empty() {
            state.present.push(name.to_string());
        }
        state.repositories += 1;
        state.position += 1;
        state.listed = None;
        state.read = 0;
        state.subjects.clear();
        state.pending = None;
        Ok(0)
    }

    /// Writes `rebuilt` as the referrers of `subject` in `name`, the manifests `listed` having
    /// been read. An entry of another manifest stays while that manifest is linked (pushed after
    /// the listing), and one of `rebuilt` goes only while its manifest is linked still (deleted
    /// since it was read); a broken object is replaced.
    async fn replace_referrers(
        &self,
        name: &Name,
        subject: &Digest,
        listed: &BTreeSet<String>,
        rebuilt: Vec<Value>,
    ) -> std::result::Result<usize, Problem> {
        let layout = &self.config.layout;
        let mut spent = 1;
        let existing = match index::referrers(&self.store, layout, name, subject).await? {
            index::Lookup::Found(found) => found,
            _ => Vec::new(),
        };
        let digest_of = |d: &Value| d["digest"].as_str().unwrap_or("").to_owned();
        let mut gone = BTreeSet::new();
        let candidates = existing
            .iter()
            .map(digest_of)
            .filter(|d| !listed.contains(d))
            .chain(rebuilt.iter().map(digest_of));
        for digest in candidates.collect::<BTreeSet<String>>() {
            let Ok(parsed) = digest.parse::<Digest>() else {
                continue;
            };
            spent += 1;
            if !self.manifest_linked(name, &parsed).await? {
                gone.insert(digest);
            }
        }
        index::update_referrers(&self.store, layout, name, subject, true, |manifests| {
            let before = manifests.clone();
            manifests.retain(|d| !listed.contains(&digest_of(d)));
            manifests.extend(rebuilt.iter().cloned());
            manifests.retain(|d| !gone.contains(&digest_of(d)));
            manifests.sort_by_key(digest_of);
            *manifests != before
        })
        .await?;
        self.cache.delete(&key::referrers(name, subject)).await;
        Ok(spent + 2)
    }

    /// The rebuild's last step: the catalog, as the walk found it, checked again where the index
    /// removed a name since the rebuild began (a repository emptied after the walk passed it),
    /// plus what the index gained meanwhile and storage confirms (a repository pushed after the
    /// walk passed it), written complete over the root's version.
    async fn write_rebuilt_catalog(&self, state: &Rebuild) -> std::result::Result<usize, Problem> {
        let layout = &self.config.layout;
        let present: BTreeSet<&String> = state.present.iter().collect();
        let mut spent = 0;
        for _ in 0..8 {
            let existing = index::catalog_names(&self.store, &self.cache, layout).await?;
            spent += 1;
            let existing = existing.unwrap_or(index::Existing {
                names: Vec::new(),
                removed: Vec::new(),
                version: None,
                shards: Vec::new(),
            });
            let removed_since: BTreeSet<&String> = existing
                .removed
                .iter()
                .filter(|(_, at)| *at >= state.started)
                .map(|(name, _)| name)
                .collect();
            let mut check: BTreeSet<&String> = existing
                .names
                .iter()
                .filter(|n| !present.contains(n))
                .collect();
            check.extend(
                present
                    .iter()
                    .copied()
                    .filter(|n| removed_since.contains(n)),
            );
            let mut all: Vec<String> = state
                .present
                .iter()
                .filter(|n| !removed_since.contains(n))
                .cloned()
                .collect();
            for name in check {
                let Ok(parsed) = name.parse::<Name>() else {
                    continue;
                };
                spent += 1;
                if self.holds_manifests(&parsed).await? {
                    all.push(name.clone());
                }
            }
            let now = self.clock.now();
            let written = index::write_catalog(
                &self.store,
                layout,
                all,
                existing.version.as_deref(),
                &existing.shards,
                existing.removed.clone(),
                now,
            )
            .await?;
            if written {
                return Ok(spent + 1);
            }
        }
        Err(Problem::Contended(layout.catalog_root()))
    }

    /// `GET /api/v1/indexes` and `POST /api/v1/indexes/rebuild` (the admin's).
    pub(crate) async fn manage_indexes(
        &self,
        method: &Method,
        rebuild: bool,
    ) -> Result<Response<Vec<u8>>> {
        match (method, rebuild) {
            (&Method::GET, false) => {
                let state = self.read_rebuild().await?;
                let catalog = match index::catalog_root(&self.store, &self.config.layout).await? {
                    index::Lookup::Found(c) => json!({
                        "complete": c.complete,
                        "built": c.built,
                        "shards": c.shards.len(),
                        "repositories": c.shards.iter().map(|s| s.count).sum::<usize>(),
                    }),
                    index::Lookup::NotBuilt => json!(null),
                    // The object's key stays in the edge's log, not in an answer.
                    index::Lookup::Corrupt(why) => {
                        (self.log)(&format!("catalog index: {why}"));
                        json!({ "corrupt": "the catalog index fails its checks; a rebuild mends it" })
                    }
                };
                let body = json!({
                    "catalog": catalog,
                    "rebuild": state.map(|(s, _)| s.view()),
                });
                Ok(crate::app::json_response(
                    StatusCode::OK,
                    super::to_json(&body),
                ))
            }
            (&Method::POST, true) => {
                let (state, _) = self
                    .start_rebuild("asked for by the admin", true)
                    .await
                    .map_err(Error::internal)?;
                Ok(crate::app::json_response(
                    StatusCode::ACCEPTED,
                    super::to_json(&state.view()),
                ))
            }
            _ => Err(Error::new(ErrorCode::Unsupported)
                .with_message(format!("{method} is not supported here"))),
        }
    }
}

/// The rebuild's state as storage holds it, for tests.
#[cfg(test)]
pub(crate) fn parse_rebuild(bytes: &[u8]) -> Rebuild {
    serde_json::from_slice(bytes).unwrap()
}
