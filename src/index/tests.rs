//! The indexes' updates and pages, over the memory store; concurrent writers are simulated by a
//! write slipped in just before a conditional write is judged.

use futures::FutureExt;
use futures::executor::block_on;
use serde_json::json;

use super::*;
use crate::platform::FixedClock;

type MemoryCache = crate::cache::MemoryCache<FixedClock>;

fn new_cache() -> MemoryCache {
    crate::cache::MemoryCache::new(FixedClock(std::cell::Cell::new(1)), 64 << 20)
}
use crate::storage::memory::MemoryStore;

fn layout() -> Layout {
    Layout::new("/origin")
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("team/app{i:05}")).collect()
}

fn set(store: &MemoryStore, cache: &MemoryCache, changes: &[(&str, bool)]) -> bool {
    let changes: Vec<(String, bool)> = changes.iter().map(|(n, p)| (n.to_string(), *p)).collect();
    block_on(set_repositories(store, cache, &layout(), &changes, 1)).unwrap()
}

/// Marks the root complete, as a rebuild's end does, keeping its names.
fn complete(store: &MemoryStore, cache: &MemoryCache) {
    let existing = block_on(catalog_names(store, cache, &layout()))
        .unwrap()
        .unwrap();
    let written = block_on(write_catalog(
        store,
        &layout(),
        existing.names,
        existing.version.as_deref(),
        &existing.shards,
        existing.removed,
        1,
    ))
    .unwrap();
    assert!(written);
}

/// The first page of 10, everything visible, one shard.
fn first_page(store: &MemoryStore, cache: &MemoryCache) -> Lookup<Page> {
    block_on(catalog_page(store, cache, &layout(), None, 10, |_| true, 1)).unwrap()
}

/// Every page from the start, `n` at a time, as a client follows `Link`; the pages' sizes too.
fn all_pages(
    store: &MemoryStore,
    cache: &MemoryCache,
    n: usize,
    visible: impl Fn(&str) -> bool + Copy,
    shards: usize,
) -> (Vec<String>, Vec<usize>) {
    let mut last: Option<String> = None;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let Lookup::Found(page) = block_on(catalog_page(
            store,
            cache,
            &layout(),
            last.as_deref(),
            n,
            visible,
            shards,
        ))
        .unwrap() else {
            panic!("no index");
        };
        sizes.push(page.names.len());
        seen.extend(page.names);
        match page.next {
            Some(next) => last = Some(next),
            None => return (seen, sizes),
        }
        assert!(sizes.len() < 10_000, "pages never end");
    }
}

#[test]
fn updates_insert_and_remove_names_in_order_and_write_only_on_change() {
    let (store, cache) = (MemoryStore::default(), new_cache());
    assert!(set(
        &store,
        &cache,
        &[("b", true), ("a/b", true), ("a", true)]
    ));
    assert!(!set(&store, &cache, &[("a", true)]), "already listed");
    assert!(!set(&store, &cache, &[("zzz", false)]), "not listed");
    // Not complete until a rebuild says so: reads fall back.
    assert_eq!(first_page(&store, &cache), Lookup::NotBuilt);
    complete(&store, &cache);
    assert!(set(&store, &cache, &[("a-b", true), ("b", false)]));
    let (seen, _) = all_pages(&store, &cache, 100, |_| true, 1);
    assert_eq!(seen, ["a", "a/b", "a-b"]);
}

#[test]
fn shards_split_and_a_page_reads_the_root_and_one_shard() {
    let (store, cache) = (MemoryStore::default(), new_cache());
    let all = names(2_500);
    // In batches, as jobs would, in an order that is not the catalog's.
    for chunk in all.iter().rev().collect::<Vec<_>>().chunks(100) {
        let changes: Vec<(String, bool)> = chunk.iter().map(|n| (n.to_string(), true)).collect();
        block_on(set_repositories(&store, &cache, &layout(), &changes, 1)).unwrap();
    }
    complete(&store, &cache);
    let Lookup::Found(root) = block_on(catalog_root(&store, &layout())).unwrap() else {
        panic!("no root");
    };
    assert!(root.shards.len() >= 3, "{} shards", root.shards.len());
    assert!(root.shards.iter().all(|s| s.count <= SHARD_NAMES));
    let (seen, sizes) = all_pages(&store, &cache, 1000, |_| true, 1);
    assert_eq!(seen, all);
    // A page ends early at a shard's end rather than read a second one.
    assert!(sizes.iter().all(|s| *s <= 1000));

    // From `last` anywhere: one root read and one shard read (none, once the shard is cached).
    let cold = new_cache();
    store.calls.borrow_mut().clear();
    let Lookup::Found(page) = block_on(catalog_page(
        &store,
        &cold,
        &layout(),
        Some("team/app01234"),
        5,
        |_| true,
        1,
    ))
    .unwrap() else {
        panic!("no index");
    };
    assert_eq!(page.names, all[1235..1240]);
    assert_eq!(page.next.as_deref(), Some("team/app01239"));
    assert_eq!(store.call_count(), 2, "{:?}", store.calls.borrow());
    store.calls.borrow_mut().clear();
    block_on(catalog_page(
        &store,
        &cold,
        &layout(),
        Some("team/app01234"),
        5,
        |_| true,
        1,
    ))
    .unwrap();
    assert_eq!(store.call_count(), 1, "the shard came from the cache");

    // Names removed until shards empty: they leave the root.
    let gone: Vec<(String, bool)> = all[..2000].iter().map(|n| (n.clone(), false)).collect();
    block_on(set_repositories(&store, &cache, &layout(), &gone, 1)).unwrap();
    let (seen, _) = all_pages(&store, &cache, 100, |_| true, 1);
    assert_eq!(seen, all[2000..]);
}

#[test]
fn a_filtered_page_walks_shards_within_a_bound_and_pages_through_everything() {
    let (store, cache) = (MemoryStore::default(), new_cache());
    let all = names(5_000);
    block_on(write_catalog(
        &store,
        &layout(),
        all.clone(),
        None,
        &[],
        Vec::new(),
        1,
    ))
    .unwrap();
    // One repository in a thousand is visible.
    let visible = |n: &str| n.ends_with("777");
    let want: Vec<String> = all.iter().filter(|n| visible(n)).cloned().collect();
    let (seen, sizes) = all_pages(&store, &cache, 100, visible, 4);
    assert_eq!(seen, want);
    // 10 shards of 500: each page reads at most 4, so at least 3 pages, some of them short.
    assert!(sizes.len() >= 3, "{sizes:?}");
    let cold = new_cache();
    store.calls.borrow_mut().clear();
    block_on(catalog_page(
        &store,
        &cold,
        &layout(),
        None,
        100,
        visible,
        4,
    ))
    .unwrap();
    assert_eq!(store.call_count(), 5, "the root and four shards");
}

#[test]
fn concurrent_writers_of_the_catalog_lose_nothing() {
    let (store, cache) = (MemoryStore::default(), new_cache());
    set(&store, &cache, &[("first", true)]);
    // Just before this writer's root is judged, another writer adds a name of its own.
    *store.before_put_if.borrow_mut() = Some(Box::new(|store: &MemoryStore, _| {
        let cache = new_cache();
        let changes = [("other/writer".to_owned(), true)];
        // The memory store never waits: the other writer runs to its end at once.
        set_repositories(store, &cache, &layout(), &changes, 1)
            .now_or_never()
            .unwrap()
            .unwrap();
    }));
    assert!(set(&store, &cache, &[("this/writer", true)]));
    complete(&store, &cache);
    let (seen, _) = all_pages(&store, &cache, 100, |_| true, 1);
    assert_eq!(seen, ["first", "other/writer", "this/writer"]);
}

#[test]
fn concurrent_writers_of_referrers_lose_nothing() {
    let store = MemoryStore::default();
    let name: Name = "team/app".parse().unwrap();
    let subject = Digest::sha256(b"subject");
    let descriptor = |d: &Digest| json!({"mediaType": "m", "digest": d.to_string(), "size": 1});
    let (one, two) = (Digest::sha256(b"one"), Digest::sha256(b"two"));
    let (n, s, t) = (name.clone(), subject.clone(), two.clone());
    *store.before_put_if.borrow_mut() = Some(Box::new(move |store: &MemoryStore, _| {
        let d = json!({"mediaType": "m", "digest": t.to_string(), "size": 1});
        set_referrer(store, &layout(), &n, &s, &t, Some(&d))
            .now_or_never()
            .unwrap()
            .unwrap();
    }));
    let d = descriptor(&one);
    assert!(
        block_on(set_referrer(
            &store,
            &layout(),
            &name,
            &subject,
            &one,
            Some(&d)
        ))
        .unwrap()
    );
    let Lookup::Found(found) = block_on(referrers(&store, &layout(), &name, &subject)).unwrap()
    else {
        panic!("no referrers object");
    };
    let mut want = vec![descriptor(&one), descriptor(&two)];
    want.sort_by_key(|d| d["digest"].as_str().unwrap().to_owned());
    assert_eq!(found, want);
    // Taken off again; twice is once.
    for _ in 0..2 {
        block_on(set_referrer(&store, &layout(), &name, &subject, &one, None)).unwrap();
    }
    let Lookup::Found(found) = block_on(referrers(&store, &layout(), &name, &subject)).unwrap()
    else {
        panic!("no referrers object");
    };
    assert_eq!(found, [descriptor(&two)]);
}

#[test]
fn index_objects_edited_by_hand_are_never_served() {
    let (store, cache) = (MemoryStore::default(), new_cache());
    block_on(write_catalog(
        &store,
        &layout(),
        vec!["a".into(), "b".into()],
        None,
        &[],
        Vec::new(),
        1,
    ))
    .unwrap();
    let root_key = layout().catalog_root();
    let root = block_on(ObjectStore::get(&store, &root_key))
        .unwrap()
        .unwrap();
    let page = || first_page(&store, &cache);
    assert!(matches!(page(), Lookup::Found(_)));

    // A shard named in the root, edited: its bytes no longer hash to its name.
    let Lookup::Found(catalog) = block_on(catalog_root(&store, &layout())).unwrap() else {
        panic!("no root");
    };
    let shard_key = layout().catalog_shard(&catalog.shards[0].sha256);
    store.put(shard_key.clone(), br#"{"names":["a","b","evil"]}"#.to_vec());
    let cold = new_cache();
    let cold_page = || {
        block_on(catalog_page(
            &store,
            &cold,
            &layout(),
            None,
            10,
            |_| true,
            1,
        ))
        .unwrap()
    };
    assert!(
        matches!(cold_page(), Lookup::Corrupt(_)),
        "{:?}",
        cold_page()
    );
    store.remove(&shard_key);

    // The root, edited without its checksum.
    let edited = String::from_utf8(root.clone())
        .unwrap()
        .replace("\"count\":2", "\"count\":3");
    store.put(root_key.clone(), edited.into_bytes());
    assert!(matches!(page(), Lookup::Corrupt(_)));
    // Cut short, or not JSON.
    store.put(root_key.clone(), root[..root.len() / 2].to_vec());
    assert!(matches!(page(), Lookup::Corrupt(_)));
    // And an update refuses to build on it (a rebuild replaces it).
    let changes = [("c".to_owned(), true)];
    assert!(matches!(
        block_on(set_repositories(&store, &cache, &layout(), &changes, 1)),
        Err(Problem::Corrupt(_))
    ));

    // A referrers object edited by hand.
    let name: Name = "a".parse().unwrap();
    let subject = Digest::sha256(b"subject");
    let one = Digest::sha256(b"one");
    let d = json!({"mediaType": "m", "digest": one.to_string(), "size": 1});
    block_on(set_referrer(
        &store,
        &layout(),
        &name,
        &subject,
        &one,
        Some(&d),
    ))
    .unwrap();
    let key = layout().referrers_index(&name, &subject);
    let text = String::from_utf8(block_on(ObjectStore::get(&store, &key)).unwrap().unwrap())
        .unwrap()
        .replace("\"size\":1", "\"size\":2");
    store.put(key, text.into_bytes());
    assert!(matches!(
        block_on(referrers(&store, &layout(), &name, &subject)).unwrap(),
        Lookup::Corrupt(_)
    ));
}
