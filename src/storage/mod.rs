//! Files of a run wherever the user keeps them: a local folder or a Cloud Storage prefix
//! (`gs://bucket/prefix`), with one set of semantics so the layers above need not care which:
//!
//! - a read streams (memory stays a few pieces, however large the object);
//! - a write appears whole or not at all (local: written aside, then renamed; Cloud Storage: an
//!   upload becomes the object only when it completes);
//! - a create-only write fails if the name exists, atomically (the run lock, [`ObjectLock`]);
//! - a listing names the files under a prefix, relative to the location, sorted;
//! - a delete of a missing name succeeds.
//!
//! Cloud Storage requests are retried with backoff on 429, 5xx and dropped connections; a missing
//! bucket or a 403 stops at once, naming the bucket, the object and the credential source.
//! `STORAGE_EMULATOR_HOST` points the client at an emulator, unsigned, as Google's libraries do.
//!
//! Bottom layer: imports nothing from the rest of the crate.

mod credentials;
mod error;
mod gcs;
mod local;
mod location;
mod lock;

use std::io::Read;
use std::ops::Range;

pub use credentials::{CredentialSource, EMULATOR_HOST_VAR};
pub use error::StorageError;
pub use location::{GcsPrefix, Location};
pub use lock::ObjectLock;

enum Backend {
    Local(local::LocalStore),
    Gcs(gcs::GcsStore),
}

/// An opened [`Location`]; names given to its methods are `/`-separated and relative to it.
pub struct Store {
    location: Location,
    backend: Backend,
}

impl Store {
    /// Opens `location`; for Cloud Storage this sets up the client without a request, so a
    /// missing bucket shows at the first operation.
    pub fn open(location: &Location) -> Result<Store, StorageError> {
        let backend = match location {
            Location::Local(dir) => Backend::Local(local::LocalStore::new(dir.clone())),
            Location::Gcs(place) => Backend::Gcs(gcs::GcsStore::open(place.clone())?),
        };
        Ok(Store {
            location: location.clone(),
            backend,
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// A streaming reader of `name`.
    pub fn read(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        match &self.backend {
            Backend::Local(store) => store.read(name),
            Backend::Gcs(store) => store.read(name),
        }
    }

    /// A streaming reader of bytes `range` of `name`, for reading a small part of a large
    /// object (one record of a data shard) without fetching the rest: on Cloud Storage ranged
    /// requests only for `range`, no size lookup first. A range beyond the end reads short.
    pub fn read_range(
        &self,
        name: &str,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send>, StorageError> {
        match &self.backend {
            Backend::Local(store) => store.read_range(name, range),
            Backend::Gcs(store) => store.read_range(name, range),
        }
    }

    /// Writes `name` from `data` (streamed), replacing any object of that name atomically.
    pub fn write(&self, name: &str, data: &mut dyn Read) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Local(store) => store.write(name, data),
            Backend::Gcs(store) => store.write(name, data),
        }
    }

    /// Writes `name` only if no object has that name; else [`StorageError::AlreadyExists`]. Of
    /// racing writers exactly one succeeds.
    pub fn create_only(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Local(store) => store.create_only(name, data),
            Backend::Gcs(store) => store.create_only(name, data),
        }
    }

    /// The names of the files whose names start with `prefix` (`""` for all), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        match &self.backend {
            Backend::Local(store) => store.list(prefix),
            Backend::Gcs(store) => store.list(prefix),
        }
    }

    /// Deletes `name`; a name that does not exist is not an error.
    pub fn delete(&self, name: &str) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Local(store) => store.delete(name),
            Backend::Gcs(store) => store.delete(name),
        }
    }
}
