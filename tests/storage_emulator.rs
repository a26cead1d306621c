//! `gs://` storage against a real Cloud Storage JSON API server on loopback: the
//! `gcp-storage-emulator` package (pinned), installed into a venv in the user cache on first use,
//! started by this test on a free 127.0.0.1 port and killed when the test ends (also on failure).
//! The client finds it through `STORAGE_EMULATOR_HOST`, as Google's own libraries do.
//!
//! The emulator does not implement preconditions (`ifGenerationMatch` is ignored) nor 403s:
//! create-only and permission errors are tested in `storage_responder.rs` instead.
//!
//! One test function: the variable is process-wide, and the emulator is started once.

mod storage_common;

use std::io::Read;

use effnetv2::storage::{Location, StorageError, Store};
use sha2::{Digest, Sha256};

fn read_all(store: &Store, name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    store.read(name).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

/// Deterministic bytes that are not a repeating pattern (a splitmix64 stream).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Streams `len` bytes from a reader, hashing as it goes (nothing of the object is kept).
fn streamed_digest(reader: &mut dyn Read) -> (usize, Vec<u8>) {
    let mut hasher = Sha256::new();
    let mut piece = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = reader.read(&mut piece).unwrap();
        if n == 0 {
            return (total, hasher.finalize().to_vec());
        }
        hasher.update(&piece[..n]);
        total += n;
    }
}

/// A source that fails: a disk error or a killed producer.
struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("source failed"))
    }
}

#[test]
fn gs_storage_round_trips_against_the_emulator() {
    let emulator = storage_common::start_and_use();
    emulator.create_bucket("runs");
    let store = Store::open(&Location::parse("gs://runs/exp-1").unwrap()).unwrap();

    // write, read, overwrite, list (relative, sorted, by prefix), delete
    store.write("ckpt-2/params.bin", &mut &b"two"[..]).unwrap();
    store.write("ckpt-10/params.bin", &mut &b"ten"[..]).unwrap();
    store.write("metrics.jsonl", &mut &b"{}\n"[..]).unwrap();
    store
        .write("metrics.jsonl", &mut &b"{\"step\":1}\n"[..])
        .unwrap();
    assert_eq!(read_all(&store, "ckpt-2/params.bin"), b"two");
    assert_eq!(read_all(&store, "metrics.jsonl"), b"{\"step\":1}\n");
    assert_eq!(
        store.list("").unwrap(),
        ["ckpt-10/params.bin", "ckpt-2/params.bin", "metrics.jsonl"]
    );
    assert_eq!(store.list("ckpt-1").unwrap(), ["ckpt-10/params.bin"]);
    assert_eq!(store.list("ckpt-2/").unwrap(), ["ckpt-2/params.bin"]);
    store.delete("ckpt-2/params.bin").unwrap();
    store.delete("ckpt-2/params.bin").unwrap();
    assert_eq!(store.list("ckpt-2").unwrap(), Vec::<String>::new());
    // The prefix is the store's root: another prefix in the bucket does not see these objects.
    let other = Store::open(&Location::parse("gs://runs/exp-2").unwrap()).unwrap();
    assert_eq!(other.list("").unwrap(), Vec::<String>::new());

    // a missing object, named with its bucket
    match store.read("ckpt-2/params.bin") {
        Err(StorageError::NotFound { location }) => {
            assert_eq!(location, "gs://runs/exp-1/ckpt-2/params.bin")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }

    // a large object (several of the 8 MiB read pieces) written in one JSON-API upload and
    // read back in ranged pieces, streamed
    let large = pseudo_random(40 << 20 | 12_345);
    store.write("large.bin", &mut &large[..]).unwrap();
    let (len, digest) = streamed_digest(&mut store.read("large.bin").unwrap());
    assert_eq!(len, large.len());
    assert_eq!(digest, Sha256::digest(&large).to_vec());
    // a reader outlives the store it came from
    let mut orphan = Store::open(&Location::parse("gs://runs/exp-1").unwrap())
        .unwrap()
        .read("large.bin")
        .unwrap();
    assert_eq!(streamed_digest(&mut orphan).0, large.len());

    // a write whose source fails midway leaves the old object whole
    let failing = &mut (&large[..(1 << 20)]).chain(Failing);
    assert!(matches!(
        store.write("metrics.jsonl", failing),
        Err(StorageError::Io { .. })
    ));
    assert_eq!(read_all(&store, "metrics.jsonl"), b"{\"step\":1}\n");

    // a missing bucket stops at once, named, with the credential source
    let missing = Store::open(&Location::parse("gs://no-such-bucket/x").unwrap()).unwrap();
    for error in [
        missing.write("a", &mut &b"a"[..]).unwrap_err(),
        missing.read("a").map(|_| ()).unwrap_err(),
        missing.list("").unwrap_err(),
    ] {
        assert!(
            matches!(error, StorageError::BucketNotFound { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("no-such-bucket") && message.contains("emulator at http://127.0.0.1"),
            "{message}"
        );
    }
}
