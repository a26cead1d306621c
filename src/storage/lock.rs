//! The one-trainer-per-run lock as an object created only if absent: on Cloud Storage an upload
//! with `ifGenerationMatch=0`, on disk a hard link; so it holds across the hosts that share a
//! bucket, where a file lock would not.

use super::error::StorageError;
use super::Store;

/// A lock object this process created; [`ObjectLock::release`] deletes it.
#[must_use = "a lock is held until released"]
pub struct ObjectLock<'a> {
    store: &'a Store,
    name: String,
}

impl<'a> ObjectLock<'a> {
    /// Creates `name` holding `holder` (who took the lock: host, process, time), or fails with
    /// [`StorageError::Locked`] naming the current holder.
    pub fn acquire(
        store: &'a Store,
        name: &str,
        holder: &str,
    ) -> Result<ObjectLock<'a>, StorageError> {
        match store.create_only(name, holder.as_bytes()) {
            Ok(()) => Ok(ObjectLock {
                store,
                name: name.to_string(),
            }),
            Err(StorageError::AlreadyExists { location }) => {
                let holder = Self::holder(store, name)?;
                Err(StorageError::Locked { location, holder })
            }
            Err(e) => Err(e),
        }
    }

    /// Who holds the lock `name`, as they wrote it.
    fn holder(store: &Store, name: &str) -> Result<String, StorageError> {
        let mut text = String::new();
        // A lock released between the failed create and this read leaves nothing to name.
        match store.read(name) {
            Ok(mut reader) => {
                std::io::Read::read_to_string(&mut reader, &mut text)
                    .map_err(|e| StorageError::io(store.location().join(name).to_string(), e))?;
            }
            Err(StorageError::NotFound { .. }) => text.push_str("released just now"),
            Err(e) => return Err(e),
        }
        Ok(text)
    }

    /// Removes a lock left by a dead trainer (a preempted VM); returns who held it. Only for
    /// when that trainer is known to be gone: a live one would then share the run.
    pub fn break_stale(store: &Store, name: &str) -> Result<String, StorageError> {
        let holder = Self::holder(store, name)?;
        store.delete(name)?;
        Ok(holder)
    }

    pub fn release(self) -> Result<(), StorageError> {
        self.store.delete(&self.name)
    }
}
