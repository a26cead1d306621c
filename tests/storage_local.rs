//! Storage on local disk keeps the object-store semantics: whole-or-nothing writes, sorted
//! relative listings, idempotent deletes, and a create-only write that exactly one of racing
//! writers wins (the run lock), with its holder named and a way to break it.

use std::io::Read;
use std::sync::{Arc, Barrier};

use effnetv2::storage::{Location, ObjectLock, StorageError, Store};

fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(&Location::parse(dir.path().join("run").to_str().unwrap()).unwrap()).unwrap()
}

fn read_all(store: &Store, name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    store.read(name).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("source failed"))
    }
}

#[test]
fn write_read_list_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    store.write("ckpt-2/params.bin", &mut &b"two"[..]).unwrap();
    store.write("ckpt-10/params.bin", &mut &b"ten"[..]).unwrap();
    store.write("metrics.jsonl", &mut &b"old"[..]).unwrap();
    store.write("metrics.jsonl", &mut &b"new"[..]).unwrap();
    assert_eq!(read_all(&store, "ckpt-2/params.bin"), b"two");
    assert_eq!(read_all(&store, "metrics.jsonl"), b"new");
    assert_eq!(
        store.list("").unwrap(),
        ["ckpt-10/params.bin", "ckpt-2/params.bin", "metrics.jsonl"]
    );
    assert_eq!(store.list("ckpt-1").unwrap(), ["ckpt-10/params.bin"]);
    assert_eq!(store.list("nothing/").unwrap(), Vec::<String>::new());

    // A failed write leaves the old file whole and no partial file in listings.
    let failing = &mut (&b"partial"[..]).chain(Failing);
    assert!(matches!(
        store.write("metrics.jsonl", failing),
        Err(StorageError::Io { .. })
    ));
    assert_eq!(read_all(&store, "metrics.jsonl"), b"new");
    assert_eq!(store.list("metrics").unwrap(), ["metrics.jsonl"]);

    store.delete("ckpt-2/params.bin").unwrap();
    store.delete("ckpt-2/params.bin").unwrap();
    assert_eq!(store.list("ckpt-2").unwrap(), Vec::<String>::new());
    let error = store.read("ckpt-2/params.bin").map(|_| ()).unwrap_err();
    assert!(matches!(error, StorageError::NotFound { .. }));
    assert!(error.to_string().contains("ckpt-2/params.bin"), "{error}");
}

#[test]
fn create_only_racing_writers_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store(&dir));
    for round in 0..20 {
        let name = format!("lock-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|racer| {
                let (store, barrier, name) = (store.clone(), barrier.clone(), name.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.create_only(&name, format!("racer {racer}").as_bytes())
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            matches!(loser, StorageError::AlreadyExists { .. }),
            "{loser:?}"
        );
        // The file holds the winner's whole text, never a mix or nothing.
        let winner = results.iter().position(|r| r.is_ok()).unwrap();
        assert_eq!(
            read_all(&store, &name),
            format!("racer {winner}").as_bytes()
        );
    }
}

#[test]
fn lock_names_its_holder_and_can_be_broken() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let lock = ObjectLock::acquire(&store, "run.lock", "host-a pid 7").unwrap();
    let Err(error) = ObjectLock::acquire(&store, "run.lock", "host-b pid 9") else {
        panic!("second lock acquired");
    };
    let message = error.to_string();
    assert!(matches!(error, StorageError::Locked { .. }), "{error:?}");
    assert!(
        message.contains("host-a pid 7") && message.contains("run.lock"),
        "{message}"
    );
    lock.release().unwrap();

    // A lock whose trainer died (never released) is broken deliberately.
    std::mem::forget(ObjectLock::acquire(&store, "run.lock", "host-c pid 3").unwrap());
    assert_eq!(
        ObjectLock::break_stale(&store, "run.lock").unwrap(),
        "host-c pid 3"
    );
    ObjectLock::acquire(&store, "run.lock", "host-d pid 4")
        .unwrap()
        .release()
        .unwrap();
    assert_eq!(store.list("").unwrap(), Vec::<String>::new());
}
