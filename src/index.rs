//! The indexes the edge keeps beside the layout, so that the catalog and the referrers API cost a
//! constant number of storage reads whatever the registry's size: walking the layout costs one
//! listing per repository and level, and scanning for referrers one read per manifest.
//!
//! They live in the bucket, under the edge's own prefix (`Layout::catalog_root` ...), never in
//! distribution's tree, and not in KV: KV takes one write per second per key and is eventually
//! consistent, where object storage is consistent on read-after-write and has conditional writes.
//!
//! - **catalog**: a root object lists shards in order (each shard's first and last name, count
//!   and sha256); a shard holds up to `SHARD_NAMES` sorted names and is named by the sha256 of its
//!   bytes, so it never changes once written (and an edge cache may keep it forever). A page of
//!   `_catalog` reads the root and one shard.
//! - **referrers**: one object per repository and subject, the descriptors of the manifests whose
//!   `subject` it is. A referrers list reads one object.
//!
//! Concurrent writers never lose each other's entries: every update is a read-modify-write that
//! is written only over the version it read (`ObjectStore::put_if`: S3's `If-Match` and
//! `If-None-Match: *`, R2's `onlyIf`), and read again when another writer came first. New shards
//! are written before the root that names them; the root is the one commit point.
//!
//! Nothing here is served as truth unchecked: the root and the referrers objects carry the sha256
//! of their content, a shard is named by its own, names must parse, be sorted and fall where the
//! root says. An object that fails is `Lookup::Corrupt`: the reader falls back to the walk and the
//! indexes are rebuilt (`handlers::index`).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::cache::{EdgeCache, IMMUTABLE_SECONDS};
use crate::content::compare_names;
use crate::layout::Layout;
use crate::reference::{Digest, Name};
use crate::storage::{Expect, ObjectStore, StoreError};

/// A shard splits when it holds more names than this (a shard of long names stays well under a
/// megabyte).
pub const SHARD_NAMES: usize = 1_000;

/// How many names a shard gets when shards are cut (a rebuild, a split): room to grow.
pub const SHARD_FILL: usize = SHARD_NAMES / 2;

/// How many times an update reads again after another writer came first.
const ATTEMPTS: usize = 16;

/// What a read of an index found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    Found(T),
    /// The index does not exist yet, or is still being built.
    NotBuilt,
    /// An index object fails its checks (named): never served.
    Corrupt(String),
}

/// A failure of an update: storage, or an index object that fails its checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    Store(StoreError),
    Corrupt(String),
    /// Other writers came first `ATTEMPTS` times.
    Contended(String),
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Problem::Store(e)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Store(e) => write!(f, "{e}"),
            Problem::Corrupt(why) => write!(f, "index object fails its checks: {why}"),
            Problem::Contended(key) => {
                write!(f, "{key}: other writers came first {ATTEMPTS} times")
            }
        }
    }
}

/// An index object as stored: its content and the sha256 of the content's JSON, so that an
/// object edited by hand (or cut short) is told apart from one the edge wrote.
#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    #[serde(flatten)]
    body: T,
    sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn seal<T: Serialize>(body: &T) -> Vec<u8> {
    let inner = serde_json::to_vec(body).expect("JSON serializes");
    let mut value = serde_json::to_value(body).expect("JSON serializes");
    value["sha256"] = Value::String(sha256_hex(&inner));
    serde_json::to_vec(&value).expect("JSON serializes")
}

fn unseal<T: Serialize + DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, String> {
    let sealed: Sealed<T> =
        serde_json::from_slice(bytes).map_err(|e| format!("{key} is not an index object: {e}"))?;
    let inner = serde_json::to_vec(&sealed.body).expect("JSON serializes");
    if sha256_hex(&inner) != sealed.sha256 {
        return Err(format!("{key} does not match its sha256"));
    }
    Ok(sealed.body)
}

/// One shard as the root names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRef {
    pub first: String,
    pub last: String,
    pub count: usize,
    pub sha256: String,
}

/// The catalog's root.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub version: u32,
    /// Whether every repository of the layout is in the index: false until a rebuild finished
    /// (updates since then were applied too, so the names are a floor until then).
    pub complete: bool,
    /// When the last rebuild finished (Unix seconds).
    #[serde(default)]
    pub built: u64,
    pub shards: Vec<ShardRef>,
    /// The last `REMOVALS` names taken off, and when (Unix seconds): a rebuild that found one of
    /// them before it was removed checks it again rather than list it back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<(String, u64)>,
}

/// How many removals the root remembers.
pub const REMOVALS: usize = 1_000;

#[derive(Serialize, Deserialize)]
struct Shard {
    names: Vec<String>,
    /// Random: two shards of the same names are two objects, so deleting a replaced one never
    /// takes away what another root names.
    nonce: String,
}

/// The root as read, and the version a write back must find.
struct Root {
    catalog: Catalog,
    version: Option<String>,
}

async fn read_root(store: &impl ObjectStore, layout: &Layout) -> Result<Lookup<Root>, StoreError> {
    let key = layout.catalog_root();
    let Some((bytes, version)) = store.get_versioned(&key).await? else {
        return Ok(Lookup::NotBuilt);
    };
    Ok(
        match unseal::<Catalog>(&key, &bytes).and_then(|c| check_root(&key, c)) {
            Ok(catalog) => Lookup::Found(Root {
                catalog,
                version: Some(version),
            }),
            Err(why) => Lookup::Corrupt(why),
        },
    )
}

/// The root's own checks: shards named by a sha256, in order, none empty, none overlapping.
fn check_root(key: &str, catalog: Catalog) -> Result<Catalog, String> {
    for (i, shard) in catalog.shards.iter().enumerate() {
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if shard.sha256.len() != 64 || !shard.sha256.chars().all(hex) {
            return Err(format!("{key}: shard {i} is not named by a sha256"));
        }
        if shard.count == 0 || compare_names(&shard.first, &shard.last) == Ordering::Greater {
            return Err(format!("{key}: shard {i} is empty or reversed"));
        }
        if i > 0 && compare_names(&catalog.shards[i - 1].last, &shard.first) != Ordering::Less {
            return Err(format!("{key}: shard {i} overlaps the one before"));
        }
    }
    Ok(catalog)
}

/// A shard's names, checked against the root's entry: the bytes hash to the name, and hold
/// `count` valid names, sorted, from `first` to `last`. Kept in the edge cache (immutable).
async fn read_shard(
    store: &impl ObjectStore,
    cache: &impl EdgeCache,
    layout: &Layout,
    shard: &ShardRef,
) -> Result<Lookup<Vec<String>>, StoreError> {
    let key = layout.catalog_shard(&shard.sha256);
    let cache_key = crate::cache::key::index_shard(&shard.sha256);
    let (bytes, cached) = match cache.get(&cache_key).await {
        Some(bytes) => (bytes, true),
        None => match store.get(&key).await? {
            Some(bytes) => (bytes, false),
            // Replaced since the root was read (the caller reads the root again), or lost.
            None => return Ok(Lookup::NotBuilt),
        },
    };
    let checked = (|| {
        if sha256_hex(&bytes) != shard.sha256 {
            return Err(format!("{key} does not match its sha256"));
        }
        let names = serde_json::from_slice::<Shard>(&bytes)
            .map_err(|e| format!("{key}: {e}"))?
            .names;
        let sorted = names
            .windows(2)
            .all(|w| compare_names(&w[0], &w[1]) == Ordering::Less);
        if names.len() != shard.count
            || !sorted
            || names.first() != Some(&shard.first)
            || names.last() != Some(&shard.last)
            || names.iter().any(|n| n.parse::<Name>().is_err())
        {
            return Err(format!("{key} does not hold what the root says"));
        }
        Ok(names)
    })();
    Ok(match checked {
        Ok(names) => {
            if !cached {
                cache.put(&cache_key, &bytes, IMMUTABLE_SECONDS).await;
            }
            Lookup::Found(names)
        }
        Err(why) => Lookup::Corrupt(why),
    })
}

/// Writes a shard of `names` (sorted, not empty); its entry for the root.
async fn write_shard(
    store: &impl ObjectStore,
    layout: &Layout,
    names: &[String],
) -> Result<ShardRef, StoreError> {
    let nonce = crate::auth::secret::random_id().map_err(StoreError)?;
    let bytes = serde_json::to_vec(&Shard {
        names: names.to_vec(),
        nonce,
    })
    .expect("JSON serializes");
    let sha256 = sha256_hex(&bytes);
    store.put(&layout.catalog_shard(&sha256), bytes).await?;
    Ok(ShardRef {
        first: names[0].clone(),
        last: names[names.len() - 1].clone(),
        count: names.len(),
        sha256,
    })
}

/// One page of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub names: Vec<String>,
    /// Where the next page starts (`last=`), when there is one.
    pub next: Option<String>,
}

/// A page of at most `n` names after `last` that `visible` shows, read from the root and the
/// shards from the one that holds what follows `last`: at most `shards` of them (a caller who sees
/// everything needs one; a filtered page walks on until it has `n` names, within that bound, and
/// else ends early with a `next` to go on from). `NotBuilt` until a rebuild completed the index.
pub async fn catalog_page(
    store: &impl ObjectStore,
    cache: &impl EdgeCache,
    layout: &Layout,
    last: Option<&str>,
    n: usize,
    visible: impl Fn(&str) -> bool,
    shards: usize,
) -> Result<Lookup<Page>, StoreError> {
    // A shard replaced between the reads of the root and of the shard: the root once more.
    for _ in 0..2 {
        let root = match read_root(store, layout).await? {
            Lookup::Found(root) if root.catalog.complete => root.catalog,
            Lookup::Found(_) | Lookup::NotBuilt => return Ok(Lookup::NotBuilt),
            Lookup::Corrupt(why) => return Ok(Lookup::Corrupt(why)),
        };
        let after = |name: &str| last.is_none_or(|l| compare_names(name, l) == Ordering::Greater);
        let start = root
            .shards
            .iter()
            .position(|s| after(&s.last))
            .unwrap_or(root.shards.len());
        let mut page = Page {
            names: Vec::new(),
            next: None,
        };
        if n == 0 {
            return Ok(Lookup::Found(page));
        }
        let mut replaced = false;
        for (i, shard) in root.shards.iter().enumerate().skip(start).take(shards) {
            let names = match read_shard(store, cache, layout, shard).await? {
                Lookup::Found(names) => names,
                Lookup::NotBuilt => {
                    replaced = true;
                    break;
                }
                Lookup::Corrupt(why) => return Ok(Lookup::Corrupt(why)),
            };
            for (j, name) in names.iter().enumerate() {
                if !after(name) || !visible(name) {
                    continue;
                }
                page.names.push(name.clone());
                if page.names.len() == n {
                    let more = j + 1 < names.len() || i + 1 < root.shards.len();
                    page.next = more.then(|| name.clone());
                    return Ok(Lookup::Found(page));
                }
            }
            // This shard is read to its end; the next page starts after it.
            if i + 1 < root.shards.len() {
                page.next = Some(shard.last.clone());
            } else {
                page.next = None;
            }
        }
        if !replaced {
            return Ok(Lookup::Found(page));
        }
    }
    Ok(Lookup::Corrupt(format!(
        "{} names a shard that is not there",
        layout.catalog_root()
    )))
}

/// The catalog's root, checked.
pub async fn catalog_root(
    store: &impl ObjectStore,
    layout: &Layout,
) -> Result<Lookup<Catalog>, StoreError> {
    Ok(match read_root(store, layout).await? {
        Lookup::Found(root) => Lookup::Found(root.catalog),
        Lookup::NotBuilt => Lookup::NotBuilt,
        Lookup::Corrupt(why) => Lookup::Corrupt(why),
    })
}

/// The catalog index as it stands, for a rebuild's last step.
pub struct Existing {
    /// Every name its shards hold (none, when it is broken: its names are not trusted).
    pub names: Vec<String>,
    /// The names it took off lately, and when.
    pub removed: Vec<(String, u64)>,
    /// The root's version, for the write that replaces it.
    pub version: Option<String>,
    /// Its shards (sha256), to delete once replaced.
    pub shards: Vec<String>,
}

/// The catalog index as it stands; `None` when there is none.
pub async fn catalog_names(
    store: &impl ObjectStore,
    cache: &impl EdgeCache,
    layout: &Layout,
) -> Result<Option<Existing>, Problem> {
    let key = layout.catalog_root();
    let Some((bytes, version)) = store.get_versioned(&key).await? else {
        return Ok(None);
    };
    let mut existing = Existing {
        names: Vec::new(),
        removed: Vec::new(),
        version: Some(version),
        shards: Vec::new(),
    };
    let Ok(catalog) = unseal::<Catalog>(&key, &bytes).and_then(|c| check_root(&key, c)) else {
        return Ok(Some(existing));
    };
    existing.removed = catalog.removed.clone();
    for shard in &catalog.shards {
        existing.shards.push(shard.sha256.clone());
        if let Lookup::Found(found) = read_shard(store, cache, layout, shard).await? {
            existing.names.extend(found);
        }
    }
    Ok(Some(existing))
}

/// Sets whether each repository is in the catalog (`true`: it holds a manifest), creating the
/// index (not yet complete) if there is none. Returns whether anything changed. Writes nothing
/// when the index already says so: a push to a known repository costs two reads.
pub async fn set_repositories(
    store: &impl ObjectStore,
    cache: &impl EdgeCache,
    layout: &Layout,
    changes: &[(String, bool)],
    now: u64,
) -> Result<bool, Problem> {
    for _ in 0..ATTEMPTS {
        let root = match read_root(store, layout).await? {
            Lookup::Found(root) => root,
            Lookup::NotBuilt => Root {
                catalog: Catalog {
                    version: 1,
                    ..Catalog::default()
                },
                version: None,
            },
            Lookup::Corrupt(why) => return Err(Problem::Corrupt(why)),
        };
        let mut shards: Vec<(Option<ShardRef>, Option<Vec<String>>)> = root
            .catalog
            .shards
            .iter()
            .map(|s| (Some(s.clone()), None))
            .collect();
        if shards.is_empty() {
            shards.push((None, Some(Vec::new())));
        }
        let mut changed = false;
        let mut missing = false;
        let mut removed = Vec::new();
        for (name, present) in changes {
            // The shard whose range holds the name: the last that starts at or before it.
            let i = shards
                .iter()
                .rposition(|(r, _)| {
                    r.as_ref()
                        .is_none_or(|r| compare_names(&r.first, name) != Ordering::Greater)
                })
                .unwrap_or(0);
            if shards[i].1.is_none() {
                let r = shards[i].0.as_ref().expect("a stored shard");
                match read_shard(store, cache, layout, r).await? {
                    Lookup::Found(names) => shards[i].1 = Some(names),
                    Lookup::NotBuilt => {
                        missing = true;
                        break;
                    }
                    Lookup::Corrupt(why) => return Err(Problem::Corrupt(why)),
                }
            }
            let names = shards[i].1.as_mut().expect("read above");
            match (names.binary_search_by(|n| compare_names(n, name)), *present) {
                (Err(at), true) => {
                    names.insert(at, name.clone());
                    changed = true;
                }
                (Ok(at), false) => {
                    names.remove(at);
                    removed.push((name.clone(), now));
                    changed = true;
                }
                _ => {}
            }
        }
        if missing {
            continue;
        }
        if !changed {
            return Ok(false);
        }
        let mut next = Vec::new();
        let mut replaced = Vec::new();
        for (stored, names) in shards {
            match names {
                None => next.push(stored.expect("a stored shard")),
                Some(names) => {
                    if let Some(stored) = stored {
                        replaced.push(stored.sha256);
                    }
                    let chunk = if names.len() > SHARD_NAMES {
                        SHARD_FILL
                    } else {
                        SHARD_NAMES
                    };
                    for part in names.chunks(chunk) {
                        next.push(write_shard(store, layout, part).await?);
                    }
                }
            }
        }
        let mut catalog = Catalog {
            shards: next,
            ..root.catalog
        };
        catalog.removed.extend(removed);
        let over = catalog.removed.len().saturating_sub(REMOVALS);
        catalog.removed.drain(..over);
        if commit_root(store, layout, &catalog, root.version.as_deref()).await? {
            forget_shards(store, layout, &catalog, &replaced).await;
            return Ok(true);
        }
    }
    Err(Problem::Contended(layout.catalog_root()))
}

/// Writes the whole catalog: `names` (any order, duplicates allowed), complete, built at `now`;
/// only over the root's `version` (`None`: where there is no root), then deletes the `replaced`
/// shards. `Ok(false)`: another writer came first; read again.
pub async fn write_catalog(
    store: &impl ObjectStore,
    layout: &Layout,
    mut names: Vec<String>,
    version: Option<&str>,
    replaced: &[String],
    removed: Vec<(String, u64)>,
    now: u64,
) -> Result<bool, StoreError> {
    names.sort_by(|a, b| compare_names(a, b));
    names.dedup();
    let mut shards = Vec::new();
    for part in names.chunks(SHARD_FILL) {
        shards.push(write_shard(store, layout, part).await?);
    }
    let catalog = Catalog {
        version: 1,
        complete: true,
        built: now,
        shards,
        removed,
    };
    if !commit_root(store, layout, &catalog, version).await? {
        return Ok(false);
    }
    forget_shards(store, layout, &catalog, replaced).await;
    Ok(true)
}

async fn commit_root(
    store: &impl ObjectStore,
    layout: &Layout,
    catalog: &Catalog,
    version: Option<&str>,
) -> Result<bool, StoreError> {
    let expect = match version {
        Some(v) => Expect::Version(v),
        None => Expect::Absent,
    };
    store
        .put_if(&layout.catalog_root(), seal(catalog), expect)
        .await
}

/// Deletes the shards a committed root no longer names (a reader that read the earlier root
/// reads it again). Failures leave an unnamed object behind, nothing worse.
async fn forget_shards(store: &impl ObjectStore, layout: &Layout, root: &Catalog, gone: &[String]) {
    for sha in gone {
        if !root.shards.iter().any(|s| &s.sha256 == sha) {
            let _ = store.delete(&layout.catalog_shard(sha)).await;
        }
    }
}

/// The referrers of one subject in one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Referrers {
    version: u32,
    subject: String,
    /// Descriptors, by digest.
    manifests: Vec<Value>,
}

fn descriptor_digest(d: &Value) -> Option<&str> {
    d["digest"].as_str()
}

/// The descriptors of `name`'s manifests whose subject is `subject`, from its index object.
/// `NotBuilt` when there is none (the caller asks whether the index is complete: then there are
/// no referrers).
pub async fn referrers(
    store: &impl ObjectStore,
    layout: &Layout,
    name: &Name,
    subject: &Digest,
) -> Result<Lookup<Vec<Value>>, StoreError> {
    let key = layout.referrers_index(name, subject);
    let Some(bytes) = store.get(&key).await? else {
        return Ok(Lookup::NotBuilt);
    };
    Ok(match check_referrers(&key, &bytes, subject) {
        Ok(r) => Lookup::Found(r.manifests),
        Err(why) => Lookup::Corrupt(why),
    })
}

fn check_referrers(key: &str, bytes: &[u8], subject: &Digest) -> Result<Referrers, String> {
    let r = unseal::<Referrers>(key, bytes)?;
    let digests_parse = r.manifests.iter().all(|d| {
        descriptor_digest(d).is_some_and(|d| d.parse::<Digest>().is_ok())
            && d["mediaType"].is_string()
            && d["size"].is_u64()
    });
    if r.subject != subject.to_string() || !digests_parse {
        return Err(format!("{key} does not hold {subject}'s referrers"));
    }
    Ok(r)
}

/// Changes the referrers of `subject` in `name` with `change` (which returns whether it changed
/// anything), written only over the version read. A corrupt object is an error, unless
/// `replace_corrupt` (a rebuild, which knows the whole list).
pub async fn update_referrers(
    store: &impl ObjectStore,
    layout: &Layout,
    name: &Name,
    subject: &Digest,
    replace_corrupt: bool,
    change: impl Fn(&mut Vec<Value>) -> bool,
) -> Result<bool, Problem> {
    let key = layout.referrers_index(name, subject);
    for _ in 0..ATTEMPTS {
        let (mut manifests, version) = match store.get_versioned(&key).await? {
            None => (Vec::new(), None),
            Some((bytes, version)) => match check_referrers(&key, &bytes, subject) {
                Ok(r) => (r.manifests, Some(version)),
                Err(_) if replace_corrupt => (Vec::new(), Some(version)),
                Err(why) => return Err(Problem::Corrupt(why)),
            },
        };
        let corrupt_replaced = replace_corrupt && version.is_some() && manifests.is_empty();
        if !change(&mut manifests) && !corrupt_replaced {
            return Ok(false);
        }
        manifests.sort_by(|a, b| descriptor_digest(a).cmp(&descriptor_digest(b)));
        manifests.dedup_by(|a, b| descriptor_digest(a) == descriptor_digest(b));
        let body = seal(&Referrers {
            version: 1,
            subject: subject.to_string(),
            manifests,
        });
        let expect = match &version {
            Some(v) => Expect::Version(v),
            None => Expect::Absent,
        };
        if store.put_if(&key, body, expect).await? {
            return Ok(true);
        }
    }
    Err(Problem::Contended(key))
}

/// Lists `descriptor` (of the manifest `digest`) among `subject`'s referrers, or takes `digest`
/// off them when `descriptor` is `None`.
pub async fn set_referrer(
    store: &impl ObjectStore,
    layout: &Layout,
    name: &Name,
    subject: &Digest,
    digest: &Digest,
    descriptor: Option<&Value>,
) -> Result<bool, Problem> {
    let digest = digest.to_string();
    update_referrers(store, layout, name, subject, false, |manifests| {
        let at = manifests
            .iter()
            .position(|d| descriptor_digest(d) == Some(digest.as_str()));
        match (at, descriptor) {
            (None, Some(d)) => manifests.push(d.clone()),
            (Some(i), Some(d)) if manifests[i] != *d => manifests[i] = d.clone(),
            (Some(i), None) => {
                manifests.remove(i);
            }
            _ => return false,
        }
        true
    })
    .await
}

#[cfg(test)]
mod tests;
