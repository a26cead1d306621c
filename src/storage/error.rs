//! What can go wrong with storage, each naming the place and, for Cloud Storage, whose
//! credentials were used (a 403 is usually the wrong account, not the wrong bucket).

use std::path::PathBuf;

use super::credentials::CredentialSource;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("bad storage location `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{location}` does not exist")]
    NotFound { location: String },
    #[error("`{location}` already exists")]
    AlreadyExists { location: String },
    #[error(
        "`{location}` is locked by another trainer ({holder}); if that trainer is dead (a \
         preempted VM), break the lock by deleting `{location}`"
    )]
    Locked { location: String, holder: String },
    #[error(
        "no usable Cloud Storage credentials for bucket `{bucket}`: {}",
        credentials.why_unusable()
    )]
    NoCredentials {
        bucket: String,
        credentials: CredentialSource,
    },
    #[error("bucket `{bucket}` does not exist (credentials: {credentials})")]
    BucketNotFound {
        bucket: String,
        credentials: CredentialSource,
    },
    #[error(
        "permission denied for `gs://{bucket}/{object}` (credentials: {credentials}): grant this \
         account access to the bucket, or use other credentials"
    )]
    PermissionDenied {
        bucket: String,
        object: String,
        credentials: CredentialSource,
    },
    #[error("Cloud Storage `gs://{bucket}/{object}` (credentials: {credentials}): {source}")]
    Remote {
        bucket: String,
        object: String,
        credentials: CredentialSource,
        // Boxed: the client's error is large, and every storage result carries this type.
        source: Box<opendal::Error>,
    },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}
