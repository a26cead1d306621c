//! Whose credentials a Cloud Storage request carries, named in errors (a 403 is usually the
//! wrong account, not the wrong bucket).

use std::fmt;
use std::path::PathBuf;

/// The variable Google's client libraries read to talk to an emulator (then with no credentials).
pub const EMULATOR_HOST_VAR: &str = "STORAGE_EMULATOR_HOST";

/// Whose credentials a request carries, found in the order Google's client libraries look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `STORAGE_EMULATOR_HOST` is set: requests go there, unsigned.
    Emulator(String),
    /// A key file named by `GOOGLE_APPLICATION_CREDENTIALS`.
    KeyFile(PathBuf),
    /// `gcloud auth application-default login`'s file.
    ApplicationDefault(PathBuf),
    /// The VM's service account, from the metadata server (a Cloud TPU VM).
    MetadataServer,
}

impl CredentialSource {
    /// What this process would use, read from the environment and the well-known file.
    pub fn detect() -> CredentialSource {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(host) = var(EMULATOR_HOST_VAR) {
            return CredentialSource::Emulator(host.to_string_lossy().into_owned());
        }
        if let Some(path) = var("GOOGLE_APPLICATION_CREDENTIALS") {
            return CredentialSource::KeyFile(path.into());
        }
        let config = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config")));
        let adc = config.map(|dir| dir.join("gcloud/application_default_credentials.json"));
        match adc {
            Some(path) if path.is_file() => CredentialSource::ApplicationDefault(path),
            _ => CredentialSource::MetadataServer,
        }
    }
}

impl CredentialSource {
    /// What to do when this source yields no credential (the client could not sign a request).
    pub fn why_unusable(&self) -> String {
        match self {
            CredentialSource::Emulator(host) => {
                format!("the emulator at {host} needs none; this is a bug")
            }
            CredentialSource::KeyFile(path) => format!(
                "the key file {} named by GOOGLE_APPLICATION_CREDENTIALS could not be loaded \
                 (missing, unreadable, or not a service-account or authorized-user key)",
                path.display()
            ),
            CredentialSource::ApplicationDefault(path) => format!(
                "gcloud's application-default credentials {} could not be loaded; run `gcloud \
                 auth application-default login` again",
                path.display()
            ),
            CredentialSource::MetadataServer => "no metadata server answered (not a Cloud VM?); \
                 set GOOGLE_APPLICATION_CREDENTIALS to a key file or run `gcloud auth \
                 application-default login`"
                .to_string(),
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Emulator(host) => write!(f, "none, emulator at {host}"),
            CredentialSource::KeyFile(path) => {
                write!(f, "GOOGLE_APPLICATION_CREDENTIALS={}", path.display())
            }
            CredentialSource::ApplicationDefault(path) => {
                write!(
                    f,
                    "gcloud application-default credentials {}",
                    path.display()
                )
            }
            CredentialSource::MetadataServer => {
                write!(f, "the VM's service account (metadata server)")
            }
        }
    }
}
