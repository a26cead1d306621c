//! The error type of the runtime layer.
//!
//! Errors raised by a plugin keep PJRT's status code and message verbatim, tagged with the C API
//! function that returned them, so a caller can both match on the code and show XLA's own words.

use std::fmt;
use std::path::PathBuf;

use super::version::ApiVersion;

/// A PJRT status code (the `absl::StatusCode` numbering that `PJRT_Error_GetCode` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl ErrorCode {
    /// Maps a raw `PJRT_Error_Code`; values outside the enum (and `OK`, which no error carries)
    /// become `Unknown`.
    pub(crate) fn from_raw(code: u32) -> ErrorCode {
        match code {
            1 => ErrorCode::Cancelled,
            3 => ErrorCode::InvalidArgument,
            4 => ErrorCode::DeadlineExceeded,
            5 => ErrorCode::NotFound,
            6 => ErrorCode::AlreadyExists,
            7 => ErrorCode::PermissionDenied,
            8 => ErrorCode::ResourceExhausted,
            9 => ErrorCode::FailedPrecondition,
            10 => ErrorCode::Aborted,
            11 => ErrorCode::OutOfRange,
            12 => ErrorCode::Unimplemented,
            13 => ErrorCode::Internal,
            14 => ErrorCode::Unavailable,
            15 => ErrorCode::DataLoss,
            16 => ErrorCode::Unauthenticated,
            _ => ErrorCode::Unknown,
        }
    }

    /// The canonical upper-case name (`INVALID_ARGUMENT`), as XLA prints it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Unknown => "UNKNOWN",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::OutOfRange => "OUT_OF_RANGE",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::DataLoss => "DATA_LOSS",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong between this crate and a PJRT plugin.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A PJRT function returned an error; `code` and `message` are the plugin's.
    #[error("{function} failed with {code}: {message}")]
    Pjrt {
        function: &'static str,
        code: ErrorCode,
        message: String,
    },

    /// The file could not be opened as a PJRT plugin (missing, not a shared library, no
    /// `GetPjrtApi`, malformed function table).
    #[error("cannot load PJRT plugin {}: {reason}", path.display())]
    Load { path: PathBuf, reason: String },

    /// The plugin implements a PJRT C API version whose layouts this crate cannot talk to.
    #[error(
        "PJRT plugin {} implements PJRT C API {plugin}, but this build declares its structs at {declared} \
         and supports plugins from {oldest} on: {reason}",
        path.display()
    )]
    Version {
        path: PathBuf,
        plugin: ApiVersion,
        declared: ApiVersion,
        oldest: ApiVersion,
        reason: &'static str,
    },

    /// The plugin's function table ends before the slot of a function we need.
    #[error("{function} is not provided by this plugin (PJRT C API {version}, function table of {table_size} bytes)")]
    Unsupported {
        function: &'static str,
        version: ApiVersion,
        table_size: usize,
    },

    /// A caller mistake caught before anything reached the plugin (mismatched sizes, foreign
    /// buffers, zero replicas, ...).
    #[error("{0}")]
    InvalidArgument(String),

    /// The plugin returned something this crate cannot represent (an element type outside
    /// [`crate::hlo::ElementType`], a null object without an error, ...).
    #[error("unexpected answer from {function}: {message}")]
    Protocol {
        function: &'static str,
        message: String,
    },
}

impl RuntimeError {
    /// The PJRT status code, for errors that came from the plugin.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RuntimeError::Pjrt { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether `error` was caused by a plugin running out of device memory (while compiling,
    /// allocating or executing).
    pub fn out_of_memory_in(error: &anyhow::Error) -> bool {
        error.chain().any(|cause| {
            cause
                .downcast_ref::<RuntimeError>()
                .is_some_and(|e| e.code() == Some(ErrorCode::ResourceExhausted))
        })
    }

    pub(crate) fn invalid(message: impl Into<String>) -> RuntimeError {
        RuntimeError::InvalidArgument(message.into())
    }

    pub(crate) fn protocol(function: &'static str, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Protocol {
            function,
            message: message.into(),
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
