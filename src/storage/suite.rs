//! The one test suite every `ObjectStore` backend passes (as distribution's driver test suites):
//! `load` writes a fixture into a `MemoryStore` (or a fake server backed by one), `run` checks a
//! store that serves it.

use super::ObjectStore;
use super::memory::MemoryStore;

pub fn load(objects: &MemoryStore) {
    objects.put("r/small", b"hello".to_vec());
    objects.put("r/empty", Vec::new());
    objects.put("r/with space+plus", b"odd key".to_vec());
    for d in ["a", "a-b", "b", "c", "d", "e"] {
        objects.put(format!("r/dirs/{d}/x/link"), b"1".to_vec());
    }
    objects.put("r/dirs/file", b"not a dir".to_vec());
}

pub async fn run(store: &impl ObjectStore) {
    assert_eq!(store.get("r/small").await.unwrap(), Some(b"hello".to_vec()));
    assert_eq!(store.get("r/empty").await.unwrap(), Some(Vec::new()));
    assert_eq!(
        store.get("r/with space+plus").await.unwrap(),
        Some(b"odd key".to_vec())
    );
    assert_eq!(store.get("r/missing").await.unwrap(), None);
    assert_eq!(store.head("r/small").await.unwrap(), Some(5));
    assert_eq!(store.head("r/empty").await.unwrap(), Some(0));
    assert_eq!(store.head("r/missing").await.unwrap(), None);
    let mut dirs = store.list_dirs("r/dirs/").await.unwrap();
    dirs.sort();
    assert_eq!(dirs, ["a", "a-b", "b", "c", "d", "e"]);
    assert!(store.list_dirs("r/nothing/").await.unwrap().is_empty());
}

#[test]
fn memory_store_passes() {
    let store = MemoryStore::default();
    load(&store);
    futures::executor::block_on(run(&store));
}
