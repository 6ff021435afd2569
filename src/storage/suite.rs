//! The one test suite every `ObjectStore` backend passes (as distribution's driver test suites):
//! `fixture` is what a store is loaded with, `run` checks a store that serves it. The memory
//! store and the S3 client (over a fake server) run it as unit tests; the R2 binding runs it
//! inside workerd, in a build with the `storage-suite` feature (`scripts/test`).

use super::ObjectStore;

/// More directories under one prefix than one list page holds (R2 and S3 answer 1,000).
const MANY: usize = 1_100;

/// The objects a store under test holds: `(key, bytes)`.
pub fn fixture() -> Vec<(String, Vec<u8>)> {
    let mut objects = vec![
        ("r/small".to_owned(), b"hello".to_vec()),
        ("r/empty".to_owned(), Vec::new()),
        ("r/with space+plus".to_owned(), b"odd key".to_vec()),
        ("r/dirs/file".to_owned(), b"not a dir".to_vec()),
    ];
    for d in ["a", "a-b", "b", "c", "d", "e"] {
        objects.push((format!("r/dirs/{d}/x/link"), b"1".to_vec()));
    }
    for i in 0..MANY {
        objects.push((format!("r/many/{i:04}/link"), b"1".to_vec()));
    }
    objects
}

#[cfg(test)]
pub fn load(objects: &super::memory::MemoryStore) {
    for (key, bytes) in fixture() {
        objects.put(key, bytes);
    }
}

macro_rules! check {
    ($got:expr, $want:expr, $what:literal) => {{
        let got = $got;
        let want = $want;
        if got != want {
            return Err(format!("{}: got {:?}, want {:?}", $what, got, want));
        }
    }};
}

/// Checks `store`, loaded with `fixture`; the first difference, named.
pub async fn run(store: &impl ObjectStore) -> Result<(), String> {
    let err = |e: super::StoreError| e.0;
    check!(
        store.get("r/small").await.map_err(err)?,
        Some(b"hello".to_vec()),
        "get r/small"
    );
    check!(
        store.get("r/empty").await.map_err(err)?,
        Some(Vec::new()),
        "get r/empty"
    );
    check!(
        store.get("r/with space+plus").await.map_err(err)?,
        Some(b"odd key".to_vec()),
        "get of a key with a space and a plus"
    );
    check!(
        store.get("r/missing").await.map_err(err)?,
        None,
        "get r/missing"
    );
    check!(
        store.head("r/small").await.map_err(err)?,
        Some(5),
        "head r/small"
    );
    check!(
        store.head("r/empty").await.map_err(err)?,
        Some(0),
        "head r/empty"
    );
    check!(
        store.head("r/missing").await.map_err(err)?,
        None,
        "head r/missing"
    );
    let mut dirs = store.list_dirs("r/dirs/").await.map_err(err)?;
    dirs.sort();
    check!(dirs, ["a", "a-b", "b", "c", "d", "e"], "list_dirs r/dirs/");
    check!(
        store.list_dirs("r/nothing/").await.map_err(err)?,
        Vec::<String>::new(),
        "list_dirs of an empty prefix"
    );
    let mut many = store.list_dirs("r/many/").await.map_err(err)?;
    many.sort();
    let want: Vec<String> = (0..MANY).map(|i| format!("{i:04}")).collect();
    check!(many.len(), MANY, "list_dirs across pages: how many");
    check!(many, want, "list_dirs across pages");
    Ok(())
}

/// Checks `store`'s writes (keys under `w/`, left as they were found).
pub async fn run_writes(store: &impl ObjectStore) -> Result<(), String> {
    let err = |e: super::StoreError| e.0;
    let key = "w/docker/registry/v2/repositories/m/_layers/sha256/ab/link";
    store.delete(key).await.map_err(err)?;
    check!(store.get(key).await.map_err(err)?, None, "get before put");
    store.put(key, b"sha256:ab".to_vec()).await.map_err(err)?;
    check!(
        store.get(key).await.map_err(err)?,
        Some(b"sha256:ab".to_vec()),
        "get after put"
    );
    check!(
        store.head(key).await.map_err(err)?,
        Some(9),
        "head after put"
    );
    store.put(key, b"sha256:abcd".to_vec()).await.map_err(err)?;
    check!(
        store.get(key).await.map_err(err)?,
        Some(b"sha256:abcd".to_vec()),
        "get after a second put"
    );
    store.put("w/empty", Vec::new()).await.map_err(err)?;
    check!(
        store.head("w/empty").await.map_err(err)?,
        Some(0),
        "an empty put"
    );
    store.delete(key).await.map_err(err)?;
    store.delete("w/empty").await.map_err(err)?;
    check!(store.get(key).await.map_err(err)?, None, "get after delete");
    store.delete(key).await.map_err(err)?;
    run_conditional(store).await
}

/// Conditional writes: only over the version read, or only where nothing is; a stale version or
/// an object that appeared in between refuses the write and leaves the object as it was.
async fn run_conditional(store: &impl ObjectStore) -> Result<(), String> {
    use super::Expect;
    let err = |e: super::StoreError| e.0;
    let key = "w/registry-edge/index/catalog.json";
    store.delete(key).await.map_err(err)?;
    check!(
        store.get_versioned(key).await.map_err(err)?,
        None,
        "get_versioned of nothing"
    );
    check!(
        store
            .put_if(key, b"one".to_vec(), Expect::Absent)
            .await
            .map_err(err)?,
        true,
        "a create where nothing is"
    );
    check!(
        store
            .put_if(key, b"again".to_vec(), Expect::Absent)
            .await
            .map_err(err)?,
        false,
        "a create over an object"
    );
    let Some((bytes, first)) = store.get_versioned(key).await.map_err(err)? else {
        return Err("get_versioned after a create: nothing".into());
    };
    check!(bytes, b"one".to_vec(), "get_versioned's bytes");
    check!(
        store
            .put_if(key, b"two".to_vec(), Expect::Version(&first))
            .await
            .map_err(err)?,
        true,
        "a write over the version read"
    );
    check!(
        store
            .put_if(key, b"three".to_vec(), Expect::Version(&first))
            .await
            .map_err(err)?,
        false,
        "a write over a stale version"
    );
    let Some((bytes, second)) = store.get_versioned(key).await.map_err(err)? else {
        return Err("get_versioned after a write: nothing".into());
    };
    check!(bytes, b"two".to_vec(), "what a refused write left");
    check!(second != first, true, "a new version after a write");
    store.delete(key).await.map_err(err)?;
    check!(
        store
            .put_if(key, b"four".to_vec(), Expect::Version(&second))
            .await
            .map_err(err)?,
        false,
        "a write over a version that was deleted"
    );
    check!(store.get(key).await.map_err(err)?, None, "nothing written");
    Ok(())
}

#[test]
fn memory_store_passes() {
    let store = super::memory::MemoryStore::default();
    load(&store);
    futures::executor::block_on(run(&store)).unwrap();
    futures::executor::block_on(run_writes(&store)).unwrap();
}
