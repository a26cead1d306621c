//! Cloud Storage through `opendal` (its GCS service speaks the JSON API, which the emulator the
//! tests use serves; see docs/storage.md for why not `object_store`), behind a blocking face: a
//! private tokio runtime drives the async client.

use std::io::Read;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use opendal::options::{ListOptions, ReaderOptions, WriteOptions};
use opendal::{blocking, ErrorKind};

use super::credentials::CredentialSource;
use super::error::StorageError;
use super::location::GcsPrefix;

/// Bytes per ranged read request, with one piece read ahead: memory per read stream stays a few
/// of these.
const CHUNK: usize = 8 << 20;
/// Tries per request on 429, 5xx and dropped connections, with jittered exponential backoff.
const RETRIES: usize = 6;
/// Named, not left out: an object without a content type comes back with `null` there from the
/// emulator, which the client refuses to parse.
const CONTENT_TYPE: &str = "application/octet-stream";
/// How the client's error reads when no credential could be loaded (reqsign's message).
const SIGNING_FAILED: &str = "failed to load signing credential";

pub(crate) struct GcsStore {
    // Declared before the runtime so it is dropped while the runtime still runs.
    operator: blocking::Operator,
    runtime: Arc<tokio::runtime::Runtime>,
    place: GcsPrefix,
    credentials: CredentialSource,
}

impl GcsStore {
    pub(crate) fn open(place: GcsPrefix) -> Result<GcsStore, StorageError> {
        let credentials = CredentialSource::detect();
        let remote = |source| StorageError::Remote {
            bucket: place.bucket().to_string(),
            object: place.prefix().to_string(),
            credentials: credentials.clone(),
            source: Box::new(source),
        };
        // The reqwest transport, installed once per process (opendal's constructor-time
        // registration is off: it would register every service, at start-up). Installed from
        // the transport crate itself: opendal's own `install_default` installs it only with the
        // feature that also picks aws-lc-rs.
        opendal::install_default();
        opendal_http_transport_reqwest::install_default();
        // TLS through rustls with the `ring` provider: reqwest's default provider (aws-lc-rs)
        // is a large C build that a fresh machine would spend minutes on. rustls deprecates the
        // ring provider only because it lacks post-quantum key exchange, which Cloud Storage does
        // not require. Installing fails only when a provider is already installed: as good.
        #[allow(deprecated)]
        let ring = rustls::crypto::ring::default_provider();
        let _ = ring.install_default();
        let mut builder = opendal::services::Gcs::default()
            .bucket(place.bucket())
            .root(&format!("/{}", place.prefix()));
        if let CredentialSource::Emulator(host) = &credentials {
            builder = builder
                .endpoint(host.trim_end_matches('/'))
                .skip_signature()
                .disable_vm_metadata()
                .disable_config_load();
        }
        let retry = opendal::layers::RetryLayer::new()
            .with_jitter()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(RETRIES);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("effnetv2-storage")
            .enable_all()
            .build()
            .map_err(|e| StorageError::io("tokio runtime", e))?;
        let operator = opendal::Operator::new(builder)
            .map_err(remote)?
            .layer(retry);
        let operator = {
            let _inside = runtime.enter();
            blocking::Operator::new(operator).map_err(remote)?
        };
        Ok(GcsStore {
            operator,
            runtime: Arc::new(runtime),
            place,
            credentials,
        })
    }

    /// Turns a client error on `name` into one naming the bucket, object and credentials; a 404
    /// is told apart as a missing bucket or a missing object by listing the bucket.
    fn error(&self, name: &str, error: opendal::Error) -> StorageError {
        let bucket = self.place.bucket().to_string();
        let object = format!("{}{name}", self.place.prefix());
        let credentials = self.credentials.clone();
        match error.kind() {
            ErrorKind::NotFound if !self.bucket_exists() => StorageError::BucketNotFound {
                bucket,
                credentials,
            },
            ErrorKind::NotFound => StorageError::NotFound {
                location: format!("gs://{bucket}/{object}"),
            },
            ErrorKind::PermissionDenied => StorageError::PermissionDenied {
                bucket,
                object,
                credentials,
            },
            ErrorKind::ConditionNotMatch => StorageError::AlreadyExists {
                location: format!("gs://{bucket}/{object}"),
            },
            // reqsign's words when no credential could be loaded to sign the request; opendal
            // gives it no kind of its own.
            _ if error.to_string().contains(SIGNING_FAILED) => StorageError::NoCredentials {
                bucket,
                credentials,
            },
            _ => StorageError::Remote {
                bucket,
                object,
                credentials,
                source: Box::new(error),
            },
        }
    }

    fn bucket_exists(&self) -> bool {
        let one = ListOptions {
            limit: Some(1),
            ..Default::default()
        };
        !matches!(self.operator.list_options("", one), Err(e) if e.kind() == ErrorKind::NotFound)
    }

    pub(crate) fn read(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let size = self
            .operator
            .stat(name)
            .map_err(|e| self.error(name, e))?
            .content_length();
        self.read_range(name, 0..size)
    }

    pub(crate) fn read_range(
        &self,
        name: &str,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send>, StorageError> {
        let options = ReaderOptions {
            chunk: Some(CHUNK),
            concurrent: 2,
            ..Default::default()
        };
        let reader = self
            .operator
            .reader_options(name, options)
            .and_then(|reader| reader.into_std_read(range))
            .map_err(|e| self.error(name, e))?;
        Ok(Box::new(RuntimeTied {
            reader,
            _runtime: Arc::clone(&self.runtime),
        }))
    }

    /// One upload of the whole object. Unconditional: one JSON-API request
    /// (`uploadType=multipart`: the object's bytes with its content type), however large, since
    /// opendal would send a write of several pieces through the XML multipart API, which
    /// emulators do not serve; the object is held in memory for it (a checkpoint's writer holds
    /// it anyway) and a retried request resends it. Create-only: a JSON resumable upload with
    /// `ifGenerationMatch=0`. Either becomes the object only when complete.
    fn put(&self, name: &str, bytes: Vec<u8>, if_not_exists: bool) -> Result<(), StorageError> {
        let options = WriteOptions {
            content_type: Some(CONTENT_TYPE.to_string()),
            if_not_exists,
            ..Default::default()
        };
        self.operator
            .write_options(name, bytes, options)
            .map_err(|e| self.error(name, e))?;
        Ok(())
    }

    pub(crate) fn write(&self, name: &str, data: &mut dyn Read) -> Result<(), StorageError> {
        let mut whole = Vec::new();
        data.read_to_end(&mut whole).map_err(|e| {
            StorageError::io(format!("source of gs://{}/{name}", self.place.bucket()), e)
        })?;
        self.put(name, whole, false)
    }

    /// An upload with `ifGenerationMatch=0`: Cloud Storage answers 412 if the object exists.
    pub(crate) fn create_only(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.put(name, data.to_vec(), true)
    }

    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        // List from the folder the prefix names (the API lists by prefix; this keeps it cheap).
        let start = prefix.rfind('/').map_or("", |end| &prefix[..=end]);
        let everything = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = self
            .operator
            .list_options(start, everything)
            .map_err(|e| self.error(prefix, e))?;
        let mut names: Vec<String> = entries
            .into_iter()
            .filter(|entry| entry.metadata().is_file() && entry.path().starts_with(prefix))
            .map(|entry| entry.path().to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    pub(crate) fn delete(&self, name: &str) -> Result<(), StorageError> {
        match self.operator.delete(name) {
            Err(e) if e.kind() != ErrorKind::NotFound || !self.bucket_exists() => {
                Err(self.error(name, e))
            }
            _ => Ok(()),
        }
    }
}

/// A reader that keeps the client's runtime alive: a reader may outlive the store it came from
/// (`Store::open(..)?.read(..)?`), and a reader whose runtime is gone fails its next read with a
/// panic that carries no message.
struct RuntimeTied<R> {
    reader: R,
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl<R: Read> Read for RuntimeTied<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}
