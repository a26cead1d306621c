//! Errors raised while loading, validating or resolving a model spec. Each one says where the spec came
//! from (a built-in name or a file path) and, for validation failures, which field is wrong, so a user
//! editing a JSON file is pointed at the exact line to change.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "unknown model `{name}`: not a built-in model ({builtins}) and not a readable JSON file"
    )]
    UnknownModel { name: String, builtins: String },
    #[error("cannot read model spec {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: invalid model spec JSON: {source}")]
    Json {
        origin: String,
        source: serde_json::Error,
    },
    #[error("{origin}: field `{field}`: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    #[error("{origin}: {message}")]
    Unsupported { origin: String, message: String },
}

/// A validation failure before the origin of the spec is known; [`FieldError::at`] attaches it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn at(self, origin: &str) -> SpecError {
        SpecError::Invalid {
            origin: origin.to_string(),
            field: self.field,
            message: self.message,
        }
    }
}
